import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.js';

const dir = mkdtempSync(join(tmpdir(), 'clogs-config-'));
function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

describe('loadConfig', () => {
  it('gives every default with no file', () => {
    const c = loadConfig({});
    expect(c.forward.listen).toEqual({ host: '127.0.0.1', port: 24224 });
    expect(c.sinks.file).toMatchObject({ enabled: true, dir: './data', fsync: 'batch', rotate_size: 100 * 1024 * 1024 });
    expect(c.sinks.elasticsearch).toBeUndefined();
    expect(c.docker.enabled).toBe(true);
    expect(c.forward.partial_timeout).toBe(5000);
  });

  it('reads compression and retention: off limits by default, days as durations, from the file or the environment', () => {
    expect(loadConfig({}).sinks.file).toMatchObject({ compress: true, retention: { check_interval: 30_000 } });
    expect(loadConfig({}).sinks.file.retention.max_total_size).toBeUndefined();
    const f = file('retention.yaml', 'sinks:\n  file:\n    compress: false\n    retention:\n      max_age: 7d\n      max_container_size: 1GiB\n');
    const c = loadConfig({ file: f, env: { CLOGS_SINKS_FILE_RETENTION_MAX_TOTAL_SIZE: '20GiB' } });
    expect(c.sinks.file.compress).toBe(false);
    expect(c.sinks.file.retention).toEqual({ max_age: 7 * 86_400_000, max_container_size: 1024 ** 3, max_total_size: 20 * 1024 ** 3, check_interval: 30_000 });
    const bad = file('bad-retention.yaml', 'sinks:\n  file:\n    retention:\n      max_age: a week\n');
    expect(() => loadConfig({ file: bad })).toThrow(/sinks\.file\.retention\.max_age[\s\S]*duration/);
    expect(() => loadConfig({ env: { CLOGS_SINKS_FILE_RETENTION_CHECK_INTERVAL: '10ms' } })).toThrow(/sinks\.file\.retention\.check_interval: expected at least 1s/);
  });

  it('reads the shipped config file and it equals the defaults', () => {
    expect(loadConfig({ file: 'config/clogs.yaml' })).toEqual(loadConfig({}));
  });

  it('lets the environment override the file and flags override both', () => {
    const f = file('a.yaml', 'state_dir: /from-file\nsinks:\n  file:\n    dir: /file-dir\n');
    const c = loadConfig({
      file: f,
      env: { CLOGS_STATE_DIR: '/from-env', CLOGS_FORWARD_MAX_FRAME_SIZE: '1MiB', CLOGS_SINKS_FILE_DIR: '/env-dir', CLOGS_DOCKER_ENABLED: 'false', PATH: '/bin' },
      flags: { 'sinks.file.dir': { flag: '--file', value: '/flag-dir' } },
    });
    expect(c.state_dir).toBe('/from-env');
    expect(c.forward.max_frame_size).toBe(1024 * 1024);
    expect(c.sinks.file.dir).toBe('/flag-dir');
    expect(c.docker.enabled).toBe(false);
  });

  it('turns on Elasticsearch from a URL alone', () => {
    const c = loadConfig({ flags: { 'sinks.elasticsearch.url': { flag: '--es', value: 'http://127.0.0.1:9200' } } });
    expect(c.sinks.elasticsearch).toMatchObject({ url: 'http://127.0.0.1:9200', data_stream: { dataset: 'clogs', namespace: 'default' } });
  });

  it('names the file, line, key and what was expected', () => {
    const f = file('bad.yaml', 'forward:\n  listen: nowhere\n');
    expect(() => loadConfig({ file: f })).toThrow(`${f}:2: forward.listen: expected HOST:PORT like "127.0.0.1:24224", got "nowhere"`);
  });

  it('names the multiline key whose regular expression does not compile', () => {
    const f = file('regex.yaml', 'multiline:\n  mode: regex\n  start: "^(unclosed"\n');
    expect(() => loadConfig({ file: f })).toThrow(/regex.yaml:3: multiline.start: expected a JavaScript regular expression: .*Unterminated group/);
  });

  it('refuses index patterns Elasticsearch would refuse, with the key and an example', () => {
    for (const bad of ['Clogs-%Y', 'clogs logs', '_clogs', 'clogs-%H', 'a*b', '']) {
      const f = file('index.yaml', `sinks:\n  elasticsearch:\n    url: http://127.0.0.1:9200\n    index: "${bad}"\n`);
      expect(() => loadConfig({ file: f })).toThrow(/index.yaml:4: sinks\.elasticsearch\.index: expected an index pattern .*"clogs-%Y\.%m\.%d"/);
    }
    const f = file('index.yaml', 'sinks:\n  elasticsearch:\n    url: http://127.0.0.1:9200\n    index: clogs-%Y.%m.%d\n');
    expect(loadConfig({ file: f }).sinks.elasticsearch?.index).toBe('clogs-%Y.%m.%d');
  });

  it('rejects unknown keys, naming them', () => {
    const f = file('unknown.yaml', 'sinks:\n  file:\n    dir: x\n    rotate: 5\n');
    expect(() => loadConfig({ file: f })).toThrow(/unknown.yaml:\d: sinks.file: unknown key "rotate"/);
  });

  it('names the variable or flag a bad value came from', () => {
    expect(() => loadConfig({ env: { CLOGS_SINKS_FILE_FSYNC: 'always' } })).toThrow(/environment CLOGS_SINKS_FILE_FSYNC: sinks.file.fsync/);
    expect(() => loadConfig({ flags: { 'forward.listen': { flag: '--forward', value: '1.2.3.4' } } })).toThrow(/flag --forward: forward.listen: expected HOST:PORT/);
  });

  it('reports bad durations, sizes and types', () => {
    const f = file('types.yaml', 'forward:\n  partial_timeout: soon\n  max_record_keys: many\n');
    let message = '';
    try {
      loadConfig({ file: f });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain('forward.partial_timeout: expected a duration like "500ms", "5s", "10m", got "soon"');
    expect(message).toContain('forward.max_record_keys: expected number');
  });

  it('reports YAML syntax errors with the line', () => {
    const f = file('syntax.yaml', 'forward:\n  listen: [unclosed\n');
    expect(() => loadConfig({ file: f })).toThrow(/syntax.yaml:\d+: not valid YAML/);
  });

  it('requires http.auth when http.listen is not a loopback address', () => {
    const wide = { 'http.listen': { flag: '--http', value: '0.0.0.0:24280' } };
    expect(() => loadConfig({ flags: wide })).toThrow(/http\.auth: required because http\.listen 0\.0\.0\.0:24280 is not a loopback address/);
    expect(() => loadConfig({ flags: wide, env: { CLOGS_HTTP_AUTH_TOKEN: 'short' } })).toThrow(/environment CLOGS_HTTP_AUTH_TOKEN: http\.auth\.token: expected a token of at least 16 characters/);
    expect(loadConfig({ flags: wide, env: { CLOGS_HTTP_AUTH_TOKEN: 'a-token-long-enough' } }).http.auth?.token).toBe('a-token-long-enough');
    const users = file('users.yaml', 'http:\n  listen: 10.0.0.5:24280\n  auth:\n    users:\n      - { username: ops, password: s3cret }\n');
    expect(loadConfig({ file: users }).http.auth?.users).toEqual([{ username: 'ops', password: 's3cret' }]);
    for (const host of ['127.0.0.1', '127.1.2.3', '[::1]', 'localhost']) {
      expect(loadConfig({ flags: { 'http.listen': { flag: '--http', value: `${host}:24280` } } }).http.auth).toBeUndefined();
    }
    expect(loadConfig({ flags: { ...wide, 'http.enabled': { flag: '--no-http', value: false } } }).http.enabled).toBe(false);
  });

  it('reports a missing file', () => {
    expect(() => loadConfig({ file: join(dir, 'nope.yaml') })).toThrow(/nope.yaml: cannot read the config file \(ENOENT\)/);
  });
});
