import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '../../../src/config/load.js';

const dir = mkdtempSync(join(tmpdir(), 'clogs-config-'));
function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

/** The message `load` throws. */
function errorOf(load: () => unknown): string {
  try {
    load();
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('expected an error, got a config');
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
    expect(() => loadConfig({ env: { CLOGS_SINKS_FILE_RETENTION_CHECK_INTERVAL: '10ms' } })).toThrow('environment CLOGS_SINKS_FILE_RETENTION_CHECK_INTERVAL: sinks.file.retention.check_interval: must be at least 1s, got "10ms"');
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

  it('names a mistake of the file under a key a flag or variable sets, instead of setting over it', () => {
    const f = file('flagged.yaml', 'state_dir: /s\nforward: [a]\n');
    expect(() => loadConfig({ file: f, flags: { 'forward.listen': { flag: '--forward', value: '127.0.0.1:25225' } } })).toThrow(/flagged\.yaml:2: forward: expected object/);
    expect(() => loadConfig({ file: f, env: { CLOGS_FORWARD_LISTEN: '127.0.0.1:25225' } })).toThrow(/flagged\.yaml:2: forward: expected object/);
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
    const slow = file('slow.yaml', 'multiline:\n  mode: regex\n  start: "^\\\\d{4}"\n  continue: "^(?=\\\\s)"\n');
    expect(() => loadConfig({ file: slow })).toThrow(/slow.yaml:4: multiline.continue: expected a JavaScript regular expression: .*linear time .*lookarounds/);
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
    expect(() => loadConfig({ file: f })).toThrow(`${f}:4: sinks.file: unknown key "rotate"`);
  });

  it('reports each unknown key on its own line, not its parent\'s', () => {
    const f = file('unknowns.yaml', 'state_dir: ./state\nforward:\n  listen: 127.0.0.1:24224\n  enabled: true\n  partial_timout: 5s\n  tls_options:\n    cert: a.pem\nbogus:\n');
    expect(errorOf(() => loadConfig({ file: f })).split('\n')).toEqual([
      `${f}:5: forward: unknown key "partial_timout"`,
      `${f}:6: forward: unknown key "tls_options"`,
      `${f}:8: (top level): unknown key "bogus"`,
    ]);
    const inList = file('unknown-in-list.yaml', 'forward:\n  shared_key: k\n  users:\n    - username: a\n      password: b\n      role: admin\n');
    expect(() => loadConfig({ file: inList })).toThrow(`${inList}:6: forward.users.0: unknown key "role"`);
  });

  it('names the variable or flag a bad value came from', () => {
    expect(() => loadConfig({ env: { CLOGS_SINKS_FILE_FSYNC: 'always' } })).toThrow(/environment CLOGS_SINKS_FILE_FSYNC: sinks.file.fsync/);
    expect(() => loadConfig({ flags: { 'forward.listen': { flag: '--forward', value: '1.2.3.4' } } })).toThrow(/flag --forward: forward.listen: expected HOST:PORT/);
  });

  it('reports bad durations, sizes and types', () => {
    const f = file('types.yaml', 'forward:\n  partial_timeout: soon\n  max_record_keys: many\n');
    const message = errorOf(() => loadConfig({ file: f }));
    expect(message).toContain(`${f}:2: forward.partial_timeout: expected a duration like 500ms, 5s, 2m or a number of milliseconds, got "soon"`);
    expect(message).toContain('forward.max_record_keys: expected number');
  });

  it('refuses sizes and durations outside their range, saying the range', () => {
    const cases: [string, string][] = [
      ['max_line_size: 0\n', 'max_line_size: must be at least 4 bytes, got 0'],
      ['max_line_size: 0KiB\n', 'max_line_size: must be at least 4 bytes, got "0KiB"'],
      ['max_line_size: 1.5\n', 'max_line_size: must be a whole number of bytes, got 1.5'],
      ['max_line_size: 99999999999999GiB\n', 'max_line_size: must be at most 9007199254740991 bytes, got "99999999999999GiB"'],
      ['forward:\n  max_frame_size: -1\n', 'forward.max_frame_size: must be at least 1 byte, got -1'],
      ['multiline:\n  timeout: 0.5\n', 'multiline.timeout: must be a whole number of milliseconds, got 0.5'],
      ['multiline:\n  timeout: 0\n', 'multiline.timeout: must be at least 1ms, got 0'],
      ['multiline:\n  max_bytes: 0\n', 'multiline.max_bytes: must be at least 1 byte, got 0'],
      ['forward:\n  partial_timeout: 0s\n', 'forward.partial_timeout: must be at least 1ms, got "0s"'],
      ['docker:\n  removed_grace: -5\n', 'docker.removed_grace: must not be negative, got -5'],
      ['sinks:\n  file:\n    rotate_size: -1\n', 'sinks.file.rotate_size: must not be negative, got -1'],
      ['sinks:\n  file:\n    retention:\n      max_age: 0\n', 'sinks.file.retention.max_age: must be at least 1ms, got 0'],
      ['sinks:\n  file:\n    retention:\n      max_total_size: 0\n', 'sinks.file.retention.max_total_size: must be at least 1 byte, got 0'],
      ['sinks:\n  file:\n    retention:\n      check_interval: 25d\n', 'sinks.file.retention.check_interval: must be at most 24d, got "25d"'],
      ['sinks:\n  elasticsearch:\n    url: http://127.0.0.1:9200\n    batch_size: 0\n', 'sinks.elasticsearch.batch_size: must be at least 1 byte, got 0'],
      ['sinks:\n  elasticsearch:\n    url: http://127.0.0.1:9200\n    flush_interval: -1ms\n', 'sinks.elasticsearch.flush_interval: expected a duration like 500ms, 5s, 2m or a number of milliseconds, got "-1ms"'],
      ['sinks:\n  elasticsearch:\n    url: http://127.0.0.1:9200\n    flush_interval: 30d\n', 'sinks.elasticsearch.flush_interval: must be at most 24d, got "30d"'],
      ['sinks:\n  elasticsearch:\n    url: http://127.0.0.1:9200\n    password: pw\n', 'sinks.elasticsearch.password: needs sinks.elasticsearch.username: a password alone is never sent'],
      ['sinks:\n  elasticsearch:\n    url: http://127.0.0.1:9200\n    fingerprint: AA:BB\n', 'sinks.elasticsearch.fingerprint: checks the certificate of an https:// node, but every sinks.elasticsearch.url is http://'],
    ];
    for (const [text, expected] of cases) {
      const f = file('range.yaml', text);
      const line = text.split('\n').length - 1;
      expect(errorOf(() => loadConfig({ file: f }))).toBe(`${f}:${line}: ${expected}`);
    }
  });

  it('takes the range ends and the zeros that mean something', () => {
    const f = file('edges.yaml', [
      'max_line_size: 4',
      'multiline: { timeout: 1ms, max_bytes: 1 }',
      'docker: { removed_grace: 0 }',
      'sinks:',
      '  file:',
      '    rotate_size: 0',
      '    retention: { max_age: 1, check_interval: 24d }',
      '  elasticsearch: { url: http://127.0.0.1:9200, flush_interval: 0 }',
      '',
    ].join('\n'));
    const c = loadConfig({ file: f });
    expect(c.max_line_size).toBe(4);
    expect(c.multiline).toMatchObject({ timeout: 1, max_bytes: 1 });
    expect(c.docker.removed_grace).toBe(0);
    expect(c.sinks.file.rotate_size).toBe(0);
    expect(c.sinks.file.retention).toMatchObject({ max_age: 1, check_interval: 24 * 86_400_000 });
    expect(c.sinks.elasticsearch?.flush_interval).toBe(0);
  });

  it('says what form a duration or a size takes when given neither a string nor a number', () => {
    const f = file('bad.yaml', 'max_line_size: true\nmultiline:\n  timeout: true\n');
    expect(errorOf(() => loadConfig({ file: f })).split('\n')).toEqual([
      `${f}:1: max_line_size: expected a size like 512KiB, 16MiB or a number of bytes, got true`,
      `${f}:3: multiline.timeout: expected a duration like 500ms, 5s, 2m or a number of milliseconds, got true`,
    ]);
    expect(() => loadConfig({ env: { CLOGS_MULTILINE_TIMEOUT: '[1s]' } })).toThrow(
      'environment CLOGS_MULTILINE_TIMEOUT: multiline.timeout: expected a duration like 500ms, 5s, 2m or a number of milliseconds, got ["1s"]',
    );
    const es = file('es.yaml', 'sinks:\n  elasticsearch:\n    url: 9200\n');
    expect(() => loadConfig({ file: es })).toThrow(`${es}:3: sinks.elasticsearch.url: expected an http:// or https:// URL like http://127.0.0.1:9200, or a list of them, got 9200`);
  });

  it('refuses a CLOGS_ variable that names no key, suggesting the nearest', () => {
    expect(() => loadConfig({ env: { CLOGS_HTTP_LISTN: '127.0.0.1:1' } })).toThrow('environment CLOGS_HTTP_LISTN: not a config key: did you mean CLOGS_HTTP_LISTEN?');
    expect(() => loadConfig({ env: { CLOGS_MAXLINE_SIZE: '1MiB' } })).toThrow('environment CLOGS_MAXLINE_SIZE: not a config key: did you mean CLOGS_MAX_LINE_SIZE?');
    expect(() => loadConfig({ env: { CLOGS_SINKS_FILE_DIRECTORY: '/x' } })).toThrow(/^environment CLOGS_SINKS_FILE_DIRECTORY: not a config key: expected CLOGS_ and a key path .*README/);
    // Every unknown variable is reported, with the config's own errors.
    const f = file('also-bad.yaml', 'forward:\n  listen: nowhere\n');
    expect(errorOf(() => loadConfig({ file: f, env: { CLOGS_A: '1', CLOGS_B: '2' } })).split('\n')).toEqual([
      expect.stringMatching(/^environment CLOGS_A: not a config key/),
      expect.stringMatching(/^environment CLOGS_B: not a config key/),
      `${f}:2: forward.listen: expected HOST:PORT like "127.0.0.1:24224", got "nowhere"`,
    ]);
  });

  it('leaves alone the CLOGS_ variables of tests, benchmarks and scripts, and takes every key variable the repository sets', () => {
    const notConfig = {
      CLOGS_TEST_ES_URL: 'http://x',
      CLOGS_TEST_LOG: 'debug',
      CLOGS_BENCH_RUNS: '3',
      CLOGS_ES_VERSION: '9.5.4',
      CLOGS_ES_CACHE: '/tmp',
      CLOGS_ES_M2: '/m2',
      CLOGS_ES_USER: 'clogs-es',
      CLOGS_ES_JAVA_HOME: '/jdk',
      CLOGS_ES_TIMEOUT: '180',
      CLOGS_ES_SECURE_USER: 'clogs',
      CLOGS_ES_SECURE_PASSWORD: 'clogs-test-pw',
      // A Kubernetes Service named clogs in the pod's namespace, and a Docker link.
      CLOGS_SERVICE_HOST: '10.0.0.7',
      CLOGS_SERVICE_PORT: '24224',
      CLOGS_SERVICE_PORT_FORWARD: '24224',
      CLOGS_PORT: 'tcp://10.0.0.7:24224',
      CLOGS_PORT_24224_TCP: 'tcp://10.0.0.7:24224',
      CLOGS_PORT_24224_TCP_PROTO: 'tcp',
      CLOGS_NAME: '/web/clogs',
      CLOGS_ENV_TZ: 'UTC',
    };
    expect(loadConfig({ env: notConfig })).toEqual(loadConfig({}));
    const c = loadConfig({
      env: {
        CLOGS_LOG_LEVEL: 'debug',
        CLOGS_MAX_LINE_SIZE: '32KiB',
        CLOGS_MULTILINE_MODE: 'off',
        CLOGS_HTTP_ENABLED: 'false',
        CLOGS_DOCKER_INCLUDE_NAMES: '[app-*]',
        CLOGS_FORWARD_ENRICH: 'off',
        CLOGS_FORWARD_SHARED_KEY: 'k',
        CLOGS_FORWARD_SELF_HOSTNAME: 'clogs.test',
        CLOGS_SINKS_FILE_ENABLED: 'false',
        CLOGS_SINKS_ELASTICSEARCH_URL: 'http://127.0.0.1:9200',
        CLOGS_SINKS_ELASTICSEARCH_USERNAME: 'clogs',
        CLOGS_SINKS_ELASTICSEARCH_PASSWORD: 'pw',
        CLOGS_SINKS_ELASTICSEARCH_DATA_STREAM_DATASET: 'bench',
        CLOGS_SINKS_ELASTICSEARCH_FLUSH_INTERVAL: '200ms',
      },
    });
    expect(c).toMatchObject({ log_level: 'debug', max_line_size: 32 * 1024, multiline: { mode: 'off' }, http: { enabled: false }, docker: { include: { names: ['app-*'] } } });
    expect(c.sinks.elasticsearch).toMatchObject({ password: 'pw', data_stream: { dataset: 'bench' }, flush_interval: 200 });
  });

  it('leaves alone every CLOGS_ variable the scripts, tests and benchmarks read, which the collectors they start inherit', () => {
    const read = new Set<string>();
    for (const top of ['scripts', 'test', 'bench']) {
      for (const name of readdirSync(top, { recursive: true, encoding: 'utf8' }).filter((n) => /\.(ts|sh)$/.test(n))) {
        for (const m of readFileSync(join(top, name), 'utf8').matchAll(/process\.env\.(CLOGS_\w+)|\$\{?(CLOGS_\w+)/g)) read.add((m[1] ?? m[2])!);
      }
    }
    expect([...read]).toEqual(expect.arrayContaining(['CLOGS_ES_CACHE', 'CLOGS_ES_SECURE_PASSWORD', 'CLOGS_TEST_ES_URL', 'CLOGS_BENCH_RUNS']));
    const refused = [...read].filter((name) => {
      try {
        loadConfig({ env: { [name]: 'x' } });
        return false;
      } catch (err) {
        return (err as Error).message.includes('not a config key');
      }
    });
    expect(refused).toEqual([]);
  });

  it('refuses CLOGS_ES_ variables other than scripts/elasticsearch.sh\'s, and compose.yaml\'s host-side CLOGS_HTTP_TOKEN', () => {
    for (const name of ['CLOGS_ES_URL', 'CLOGS_ES_PASSWORD', 'CLOGS_ES_API_KEY', 'CLOGS_ES', 'CLOGS_HTTP_TOKEN']) {
      expect(errorOf(() => loadConfig({ env: { [name]: 'http://es:9200' } }))).toMatch(new RegExp(`^environment ${name}: not a config key: (did you mean|expected CLOGS_)`));
    }
    // A Kubernetes Service port named es is still Kubernetes's.
    expect(loadConfig({ env: { CLOGS_SERVICE_PORT_ES: '9200', CLOGS_PORT_9200_TCP_ADDR: '10.0.0.7' } })).toEqual(loadConfig({}));
  });

  it('takes the environment value of a key that takes a string as written: secrets, paths and names', () => {
    const wide = { 'http.listen': { flag: '--http', value: '0.0.0.0:24280' } };
    const tokens = [
      'abcdefghijklmnop #qrstu',
      '"quoted-token-value"',
      "'single-quoted-token'",
      '"escaped\\tsixteen-chars"',
      'trailing-space-token ',
      '1234567890123456',
      '!Passw0rd-long-enough',
      'key: value-long-enough',
      '[not, a, list, of, words]',
    ];
    for (const token of tokens) {
      expect(loadConfig({ flags: wide, env: { CLOGS_HTTP_AUTH_TOKEN: token } }).http.auth?.token, token).toBe(token);
    }
    const c = loadConfig({
      env: {
        CLOGS_STATE_DIR: '/var/lib/clogs ',
        CLOGS_SINKS_FILE_DIR: '/var/log/clogs #1',
        CLOGS_HOST_NAME: '007',
        CLOGS_FORWARD_SHARED_KEY: '"s3cret" #1',
        CLOGS_FORWARD_SELF_HOSTNAME: 'true',
        CLOGS_FORWARD_LISTEN: '0.0.0.0:24224',
        CLOGS_SINKS_ELASTICSEARCH_URL: 'http://127.0.0.1:9200',
        CLOGS_SINKS_ELASTICSEARCH_USERNAME: 'null',
        CLOGS_SINKS_ELASTICSEARCH_PASSWORD: '!Passw0rd',
      },
    });
    expect(c.state_dir).toBe('/var/lib/clogs ');
    expect(c.sinks.file.dir).toBe('/var/log/clogs #1');
    expect(c.host_name).toBe('007');
    expect(c.forward).toMatchObject({ shared_key: '"s3cret" #1', self_hostname: 'true', listen: { host: '0.0.0.0', port: 24224 } });
    expect(c.sinks.elasticsearch).toMatchObject({ username: 'null', password: '!Passw0rd' });
    const apiKey = loadConfig({ env: { CLOGS_SINKS_ELASTICSEARCH_URL: 'http://127.0.0.1:9200', CLOGS_SINKS_ELASTICSEARCH_API_KEY: 'aWQ6a2V5 # ' } });
    expect(apiKey.sinks.elasticsearch).toMatchObject({ api_key: 'aWQ6a2V5 # ' });
    // A CA for the https:// nodes of a list that has http:// ones too.
    const mixed = loadConfig({ env: { CLOGS_SINKS_ELASTICSEARCH_URL: '[http://10.0.0.1:9200, https://10.0.0.2:9200]', CLOGS_SINKS_ELASTICSEARCH_FINGERPRINT: 'AA:BB' } });
    expect(mixed.sinks.elasticsearch?.fingerprint).toBe('AA:BB');
    // A word from a list is a string too: a comment after it is not taken off but refused, naming the variable.
    expect(errorOf(() => loadConfig({ env: { CLOGS_LOG_LEVEL: 'debug # while testing' } }))).toMatch(/^environment CLOGS_LOG_LEVEL: log_level: .*"debug"/);
  });

  it('reads the environment value of any other key as YAML, naming the variable when it does not fit', () => {
    const c = loadConfig({
      env: {
        CLOGS_FORWARD_MAX_CONNECTIONS: '10',
        CLOGS_DOCKER_ENABLED: 'false',
        CLOGS_DOCKER_EXCLUDE_NAMES: '[db-*, "cache #1"]',
        CLOGS_FORWARD_TLS: '{cert: a.pem, key: b.pem}',
        // A string or something else: a number of milliseconds, a size, a list of URLs.
        CLOGS_MULTILINE_TIMEOUT: '250',
        CLOGS_MAX_LINE_SIZE: '64KiB',
        CLOGS_SINKS_ELASTICSEARCH_URL: '[http://a:9200, http://b:9200]',
      },
    });
    expect(c.forward).toMatchObject({ max_connections: 10, tls: { cert: 'a.pem', key: 'b.pem' } });
    expect(c.docker).toMatchObject({ enabled: false, exclude: { names: ['db-*', 'cache #1'] } });
    expect(c).toMatchObject({ multiline: { timeout: 250 }, max_line_size: 64 * 1024 });
    expect(c.sinks.elasticsearch?.url).toEqual(['http://a:9200', 'http://b:9200']);
    expect(() => loadConfig({ env: { CLOGS_FORWARD_MAX_CONNECTIONS: 'many' } })).toThrow('environment CLOGS_FORWARD_MAX_CONNECTIONS: forward.max_connections: expected number');
    // Empty is no path, name or secret: refused, not taken as "".
    expect(() => loadConfig({ env: { CLOGS_STATE_DIR: '' } })).toThrow('environment CLOGS_STATE_DIR: state_dir: expected string');
    expect(() => loadConfig({ env: { CLOGS_SINKS_FILE_DIR: '' } })).toThrow('environment CLOGS_SINKS_FILE_DIR: sinks.file.dir: expected string');
  });

  it('refuses forward.users and forward.self_hostname without forward.shared_key, whose handshake alone uses them', () => {
    const f = file('users-without-key.yaml', 'forward:\n  listen: 0.0.0.0:24224\n  self_hostname: clogs\n  users:\n    - { username: app, password: s3cret }\n');
    expect(errorOf(() => loadConfig({ file: f })).split('\n')).toEqual([
      `${f}:5: forward.users: needs forward.shared_key (the forward protocol's user authentication runs inside the shared-key handshake)`,
      `${f}:3: forward.self_hostname: needs forward.shared_key (it is the hostname clogs sends in the shared-key handshake's HELO and PONG)`,
    ]);
    expect(() => loadConfig({ env: { CLOGS_FORWARD_USERS: '[{username: app, password: s3cret}]' } })).toThrow(
      "environment CLOGS_FORWARD_USERS: forward.users: needs forward.shared_key (the forward protocol's user authentication runs inside the shared-key handshake)",
    );
    expect(() => loadConfig({ env: { CLOGS_FORWARD_SELF_HOSTNAME: 'clogs' } })).toThrow(/^environment CLOGS_FORWARD_SELF_HOSTNAME: forward\.self_hostname: needs forward\.shared_key/);
    expect(loadConfig({ file: f, env: { CLOGS_FORWARD_SHARED_KEY: 'k' } }).forward).toMatchObject({
      shared_key: 'k',
      self_hostname: 'clogs',
      users: [{ username: 'app', password: 's3cret' }],
    });
    expect(loadConfig({ file: file('no-users.yaml', 'forward:\n  users: []\n') }).forward.users).toEqual([]);
  });

  it('loads every config file shipped in config/ and the clogs service of compose.yaml', () => {
    for (const name of readdirSync('config').filter((n) => /\.ya?ml$/.test(n))) {
      expect(() => loadConfig({ file: join('config', name) }), name).not.toThrow();
    }
    const clogs = (parse(readFileSync('compose.yaml', 'utf8')) as { services: { clogs: { command: string[]; environment: Record<string, string> } } }).services.clogs;
    // Compose substitutes ${VAR:-default} from the host's environment; unset, the default.
    const env = Object.fromEntries(Object.entries(clogs.environment).map(([k, v]) => [k, v.replace(/\$\{\w+:-([^}]*)\}/g, '$1')]));
    const keyOf: Record<string, string> = { '--forward': 'forward.listen', '--http': 'http.listen', '--es': 'sinks.elasticsearch.url', '--state': 'state_dir', '--file': 'sinks.file.dir' };
    const [command, ...args] = clogs.command;
    expect(command).toBe('collect');
    const flags: Record<string, { flag: string; value: unknown }> = {};
    for (let i = 0; i < args.length; i += 2) {
      const key = keyOf[args[i]!];
      expect(key, `compose.yaml's clogs flag ${args[i]}`).toBeDefined();
      flags[key!] = { flag: args[i]!, value: args[i + 1] };
    }
    // Compose reads CLOGS_HTTP_TOKEN on the host; the collector gets only what it fills.
    expect(Object.keys(env)).not.toContain('CLOGS_HTTP_TOKEN');
    const c = loadConfig({ env, flags });
    expect(c.http).toMatchObject({ listen: { host: '0.0.0.0', port: 24280 }, auth: { token: 'clogs-local-demo-token' } });
    expect(c.sinks.elasticsearch?.url).toBe('http://elasticsearch:9200');
  });

  it('reports YAML syntax errors with the line', () => {
    const f = file('syntax.yaml', 'forward:\n  listen: [unclosed\n');
    expect(() => loadConfig({ file: f })).toThrow(/syntax.yaml:\d+: not valid YAML/);
  });

  it('refuses a tag YAML does not know: its text would be the value, a secret read as ${TOKEN}', () => {
    const f = file('tag.yaml', 'http:\n  listen: 0.0.0.0:24280\n  auth:\n    token: !ENV ${HTTP_TOKEN}\n');
    expect(() => loadConfig({ file: f })).toThrow(/tag.yaml:4: not valid YAML: Unresolved tag: !ENV/);
  });

  it('refuses an alias without its anchor at its line, and aliases that expand without end, as config errors', () => {
    const alias = file('alias.yaml', 'state_dir: /tmp/x\nforward: *nope\n');
    expect(() => loadConfig({ file: alias })).toThrow(expect.objectContaining({ code: 'CLOGS_CONFIG', message: expect.stringMatching(/alias.yaml:2: not valid YAML: Unresolved alias .*nope/) }));
    const rows = ['a: &a [x, x, x, x, x, x, x, x, x]', ...['b', 'c', 'd', 'e'].map((k, i) => `${k}: &${k} [${Array(9).fill(`*${'abcd'[i]}`).join(', ')}]`)];
    const bomb = file('bomb.yaml', `${rows.join('\n')}\n`);
    expect(() => loadConfig({ file: bomb })).toThrow(expect.objectContaining({ code: 'CLOGS_CONFIG', message: expect.stringMatching(/bomb.yaml:\?: not valid YAML: Excessive alias count/) }));
    expect(() => loadConfig({ env: { CLOGS_FORWARD_MAX_CONNECTIONS: '*a' } })).toThrow(/^environment CLOGS_FORWARD_MAX_CONNECTIONS: not valid YAML: Unresolved alias/);
  });

  it('refuses a variable whose value is not the YAML its key reads, naming it', () => {
    expect(() => loadConfig({ env: { CLOGS_DOCKER_EXCLUDE_NAMES: '[web, db' } })).toThrow(/^environment CLOGS_DOCKER_EXCLUDE_NAMES: not valid YAML: Flow sequence must end with a \]$/);
    expect(() => loadConfig({ env: { CLOGS_SINKS_FILE_RETENTION_MAX_AGE: '"7d' } })).toThrow(/^environment CLOGS_SINKS_FILE_RETENTION_MAX_AGE: not valid YAML: Missing closing "quote$/);
    expect(loadConfig({ env: { CLOGS_DOCKER_EXCLUDE_NAMES: '[web, db]' } }).docker.exclude.names).toEqual(['web', 'db']);
  });

  it('names what asked for a missing key, and the mapping it is missing from', () => {
    // The flag that made http.auth required, not the file that never mentioned it.
    const shipped = file('shipped.yaml', 'forward:\n  listen: 127.0.0.1:24224\n');
    expect(() => loadConfig({ file: shipped, flags: { 'http.listen': { flag: '--http', value: '0.0.0.0:8080' } } })).toThrow(/^flag --http: http\.auth: required because/);
    expect(() => loadConfig({ file: shipped, env: { CLOGS_MULTILINE_MODE: 'regex' } })).toThrow(/^environment CLOGS_MULTILINE_MODE: multiline\.start: mode regex needs start, continue or both$/);
    // A variable beside the key is not blamed for what the file asked.
    const regex = file('regex.yaml', 'multiline:\n  mode: regex\n');
    expect(() => loadConfig({ file: regex, env: { CLOGS_MULTILINE_TIMEOUT: '2s' } })).toThrow(/^.*regex\.yaml:2: multiline\.start: mode regex needs start, continue or both$/);
    const open = file('open.yaml', 'http:\n  listen: 0.0.0.0:8080\n');
    expect(() => loadConfig({ file: open, env: { CLOGS_HTTP_ENABLED: 'true' } })).toThrow(/^.*open\.yaml:2: http\.auth: required because/);
    // A mapping only variables made: the variable.
    expect(() => loadConfig({ file: shipped, env: { CLOGS_SINKS_ELASTICSEARCH_USERNAME: 'x' } })).toThrow(/^environment CLOGS_SINKS_ELASTICSEARCH_USERNAME: sinks\.elasticsearch\.url: missing: /);
    const noUrl = file('no-url.yaml', 'sinks:\n  file:\n    enabled: true\n  elasticsearch:\n    username: x\n');
    expect(() => loadConfig({ file: noUrl })).toThrow(/^.*no-url\.yaml:5: sinks\.elasticsearch\.url: missing: expected an http:\/\/ or https:\/\/ URL like http:\/\/127\.0\.0\.1:9200, or a list of them$/);
  });

  it('refuses an empty directory, host name or engine address in the file, as it does in a variable', () => {
    const f = file('empty.yaml', 'state_dir: ""\nhost_name: ""\ndocker:\n  host: ""\nsinks:\n  file:\n    dir: ""\n');
    expect(() => loadConfig({ file: f })).toThrow(
      [
        `${f}:1: state_dir: expected a directory, got an empty string`,
        `${f}:2: host_name: expected a host name, got an empty string`,
        `${f}:4: docker.host: expected an engine address, got an empty string`,
        `${f}:7: sinks.file.dir: expected a directory, got an empty string`,
      ].join('\n'),
    );
  });

  it('takes only http:// and https:// URLs for Elasticsearch', () => {
    for (const url of ['localhost:9200', 'ftp://es:9200', 'notaurl']) {
      expect(() => loadConfig({ flags: { 'sinks.elasticsearch.url': { flag: '--es', value: url } } }), url).toThrow(
        `flag --es: sinks.elasticsearch.url: expected an http:// or https:// URL like http://127.0.0.1:9200, got ${JSON.stringify(url)}`,
      );
    }
    expect(loadConfig({ flags: { 'sinks.elasticsearch.url': { flag: '--es', value: 'https://es.example:9200' } } }).sinks.elasticsearch?.url).toBe('https://es.example:9200');
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
