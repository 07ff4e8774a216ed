/**
 * `clogs tail`, `ps` and `search` over the file store, run as the built CLI:
 * a store written by the real file sink, a running `clogs collect` fed by the
 * real fluent-logger client for the switch from history to live, and the
 * real Docker engine for a container that is gone.
 */
import { EncodedBatch } from '../../src/collector/encoded.js';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LogEvent } from '../../src/collector/event.js';
import { fileSinkSchema } from '../../src/config/schema.js';
import { createLogger } from '../../src/log.js';
import { createFileSink } from '../../src/sinks/file/index.js';
import type { Sink } from '../../src/sinks/sink.js';
import { docker, removeContainers, uniquePrefix, waitExited } from '../helpers/docker.js';
import { CLI, requireDocker, startCollector, type RunningCollector } from '../helpers/services.js';
import { until } from '../helpers/until.js';
import { container, emitRecord, endSender, expectFollowedIntoLive, fakeId, fluentSender, makeEvent, outputLines, runCli, startCli } from '../helpers/tail.js';

const WEB1 = container(fakeId('a1b2'), 'shop-web-1', { compose: { project: 'shop', service: 'web' } });
const WEB2 = container(fakeId('a1c3'), 'shop-web-2', { compose: { project: 'shop', service: 'web' } });
const DB = container(fakeId('d4'), 'shop-db-1', { compose: { project: 'shop', service: 'db' } });
const T0 = Math.floor(Date.now() / 1000) - 3600;

const tmp: string[] = [];
function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), `clogs-${prefix}-`));
  tmp.push(d);
  return d;
}
afterAll(() => {
  for (const d of tmp) rmSync(d, { recursive: true, force: true });
});

/** The real file sink, rotating every `rotateBytes`. */
async function fileSink(dir: string, rotateBytes = 4096): Promise<Sink> {
  const sink = createFileSink(fileSinkSchema.parse({ dir, rotate_size: rotateBytes }), { log: createLogger('silent') });
  await sink.start();
  return sink;
}

let seq = 1;
const ev = (meta: typeof WEB1, sec: number, message: string, more: { stream?: 'stdout' | 'stderr'; level?: string; nsec?: number } = {}): LogEvent =>
  makeEvent({ container: meta, sec: T0 + sec, nsec: more.nsec ?? 123456789, seq: seq++, message, stream: more.stream ?? 'stdout', ...(more.level ? { level: more.level } : {}) });


describe('clogs tail on the file store', () => {
  let store: string;
  const clogs = (command: string, ...args: string[]) => runCli([command, '--file', store, ...args], { env: { CLOGS_HTTP_ENABLED: 'false' } });

  beforeAll(async () => {
    store = tempDir('tail-file');
    const sink = await fileSink(store, 2048);
    for (let i = 0; i < 30; i++) {
      await sink.write(EncodedBatch.of([ev(WEB1, i * 60, `web1 ${i}`, { stream: i % 5 === 4 ? 'stderr' : 'stdout', ...(i % 10 === 9 ? { level: 'error' } : {}) })]));
    }
    await sink.write(EncodedBatch.of([0, 1, 2, 3, 4].map((i) => ev(WEB2, i * 60 + 30, `web2 ${i}`))));
    await sink.write(EncodedBatch.of([ev(DB, 100, 'db boom one'), ev(DB, 200, 'db fine'), ev(WEB1, 1790, 'web1 Boom')]));
    // Written in this order, stamped the other way round: the reader sorts.
    await sink.write(EncodedBatch.of([ev(DB, 400, 'ns 2', { nsec: 1_000_002 }), ev(DB, 400, 'ns 1', { nsec: 1_000_001 })]));
    await sink.close();
    expect(readdirSync(join(store, 'shop-web-1')).length).toBeGreaterThan(2);
  });

  it('prints the last 10 lines by default, in order, across rotated files', async () => {
    const r = await clogs('tail', 'shop-web-1');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(outputLines(r.stdout)).toEqual(['web1 21', 'web1 22', 'web1 23', 'web1 24', 'web1 25', 'web1 26', 'web1 27', 'web1 28', 'ERROR web1 29', 'web1 Boom']);
  });

  it('-n, -t, and nanosecond order', async () => {
    expect(outputLines((await clogs('tail', 'shop-web-1', '-n', '1', '-t')).stdout)[0]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.123456789Z web1 Boom$/);
    expect(outputLines((await clogs('tail', 'shop-db-1', '-n', '2')).stdout)).toEqual(['ns 1', 'ns 2']);
    expect(outputLines((await clogs('tail', 'shop-web-1', '-n', 'all')).stdout)).toHaveLength(31);
  });

  it('time window: --since and --until', async () => {
    const until = new Date((T0 + 5 * 60) * 1000).toISOString();
    expect(outputLines((await clogs('tail', 'shop-web-1', '--since', '2h', '--until', until)).stdout)).toEqual(['web1 0', 'web1 1', 'web1 2', 'web1 3', 'web1 4']);
    const back = Math.round(Date.now() / 1000 - (T0 + 19 * 60 + 30));
    const recent = outputLines((await clogs('tail', 'shop-web-1', '--since', `${back}s`)).stdout);
    expect(recent[0]).toBe('web1 20');
    expect(recent).toHaveLength(11);
  });

  it('filters by stream, level and regular expression', async () => {
    expect(outputLines((await clogs('tail', 'shop-web-1', '--stream', 'stderr', '-n', '3')).stdout)).toEqual(['ERROR web1 19', 'web1 24', 'ERROR web1 29']);
    expect(outputLines((await clogs('tail', 'shop-web-1', '--level', 'error')).stdout)).toEqual(['ERROR web1 9', 'ERROR web1 19', 'ERROR web1 29']);
    expect(outputLines((await clogs('tail', 'shop-web-1', '--grep', '^web1 1[0-2]$')).stdout)).toEqual(['web1 10', 'web1 11', 'web1 12']);
  });

  it('-o json prints each line exactly as stored; -o raw the message alone', async () => {
    const json = outputLines((await clogs('tail', 'shop-db-1', '-n', '1', '-o', 'json')).stdout);
    expect(JSON.parse(json[0]!)).toMatchObject({ message: 'ns 2', container: { id: DB.id } });
    expect(outputLines((await clogs('tail', 'shop-web-1', '-n', '1', '-o', 'raw', '-t')).stdout)).toEqual(['web1 Boom']);
  });

  it('resolves an id prefix and a compose service; refuses ambiguous and unknown ids with close matches', async () => {
    expect(outputLines((await clogs('tail', 'a1b', '-n', '1')).stdout)).toEqual(['web1 Boom']);
    expect(outputLines((await clogs('tail', 'web', '-n', '2')).stdout)).toEqual(['shop-web-1 | ERROR web1 29', 'shop-web-1 | web1 Boom']);
    const ambiguous = await clogs('tail', 'a1');
    expect(ambiguous.code).toBe(1);
    expect(ambiguous.stderr).toMatch(/^clogs: "a1" is ambiguous: it is the start of 2 container ids; give more of the id, or the name:\n {2}shop-web-1 \(id a1b200000000[^\n]*\n {2}shop-web-2 \(id a1c300000000/);
    const unknown = await clogs('tail', 'shop-wbe-1');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/no container, compose service or tag matches "shop-wbe-1"[\s\S]*close matches:\n {2}shop-web-1/);
    expect(unknown.stderr).not.toMatch(/\n\s+at /);
  });

  it('ps lists every container with its line counts', async () => {
    const rows = outputLines((await clogs('ps')).stdout);
    expect(rows[0]).toMatch(/^NAME\s+CONTAINER ID\s+IMAGE\s+FIRST SEEN\s+LAST SEEN\s+STDOUT\s+STDERR\s+STATE$/);
    expect(rows.find((l) => l.startsWith('shop-web-1 '))!.split(/\s{2,}/)).toEqual([
      'shop-web-1',
      'a1b200000000',
      'clogs-busybox:latest',
      expect.stringMatching(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/),
      expect.any(String),
      '25',
      '6',
      expect.stringMatching(/^(removed|\?)$/),
    ]);
    expect(rows).toHaveLength(4);
  });

  it('search: substring, regular expression, ignoring case, one container', async () => {
    expect(outputLines((await clogs('search', 'boom')).stdout)).toEqual(['shop-db-1 | db boom one']);
    expect(outputLines((await clogs('search', 'boom', '-i')).stdout)).toEqual(['shop-db-1 | db boom one', 'shop-web-1 | web1 Boom']);
    expect(outputLines((await clogs('search', '^web2 [34]$', '--regex')).stdout)).toEqual(['shop-web-2 | web2 3', 'shop-web-2 | web2 4']);
    expect(outputLines((await clogs('search', 'o', '--container', 'shop-db-1', '-n', '1')).stdout)).toEqual(['db boom one']);
  });

  it('stops quietly on a closed pipe', async () => {
    const big = tempDir('tail-pipe');
    const sink = await fileSink(big, 1024 * 1024);
    for (let b = 0; b < 20; b++) await sink.write(EncodedBatch.of(Array.from({ length: 1000 }, (_, i) => ev(WEB1, b * 1000 + i, `line ${b * 1000 + i} ${'x'.repeat(100)}`))));
    await sink.close();
    const result = await new Promise<{ out: string; err: string; code: number | null }>((resolve) => {
      const sh = spawn('bash', ['-c', `node ${CLI} tail --file ${big} shop-web-1 -n all | head -n 2; echo "status=\${PIPESTATUS[0]}"`], { env: { ...process.env, CLOGS_HTTP_ENABLED: 'false' } });
      let out = '';
      let err = '';
      sh.stdout.on('data', (d: Buffer) => (out += d.toString()));
      sh.stderr.on('data', (d: Buffer) => (err += d.toString()));
      sh.on('close', (code) => resolve({ out, err, code }));
    });
    expect(outputLines(result.out)).toEqual([expect.stringMatching(/^line 0 x+$/), expect.stringMatching(/^line 1 x+$/), 'status=0']);
    expect(result.err).toBe('');
  });
});

describe('clogs tail -f on the file store', () => {
  it('follows the sink through rotation: every line once, in order', async () => {
    const dir = tempDir('tail-rotate');
    const sink = await fileSink(dir, 1024);
    await sink.write(EncodedBatch.of([ev(DB, 0, 'before')]));
    const tail = startCli(['tail', '-f', 'shop-db-1', '--file', dir], { env: { CLOGS_HTTP_ENABLED: 'false' } });
    try {
      await tail.waitFor('before\n');
      for (let i = 0; i < 200; i++) {
        await sink.write(EncodedBatch.of([ev(DB, 1 + i, `follow ${i} ${'y'.repeat(50)}`)]));
        if (i % 20 === 0) await new Promise((r) => setTimeout(r, 20));
      }
      await tail.waitFor(/follow 199 y+\n/);
      await new Promise((r) => setTimeout(r, 1200));
    } finally {
      await sink.close();
      const end = await tail.stop('SIGINT');
      expect(end.code).toBe(130);
    }
    expect(readdirSync(join(dir, 'shop-db-1')).length).toBeGreaterThan(10);
    expect(outputLines(tail.stdout())).toEqual(['before', ...Array.from({ length: 200 }, (_, i) => `follow ${i} ${'y'.repeat(50)}`)]);
    expect(tail.stderr()).toBe('');
  });

  it('-f waits for a container that has not written yet, and follows it once it does', async () => {
    const dir = tempDir('tail-wait');
    const sink = await fileSink(dir, 1024);
    await sink.write(EncodedBatch.of([ev(DB, 0, 'another container')]));
    const later = container(fakeId('f7'), 'starts-later');
    const tail = startCli(['tail', '-f', 'starts-later', '--file', dir], { env: { CLOGS_HTTP_ENABLED: 'false' } });
    try {
      await until('the waiting message', () => tail.stderr().includes('waiting for its lines'));
      await sink.write(EncodedBatch.of([ev(later, 1, 'its first line'), ev(DB, 2, 'not this one'), ev(later, 3, 'its second line')]));
      await tail.waitFor('its second line\n');
    } finally {
      await sink.close();
      const end = await tail.stop('SIGINT');
      expect(end.code).toBe(130);
    }
    expect(outputLines(tail.stdout())).toEqual(['its first line', 'its second line']);
    expect(tail.stderr()).toBe('clogs: warning: no container named "starts-later" has written yet; waiting for its lines (Ctrl-C to stop)\n');
    // Without -f, a name nothing has is still an error.
    expect((await runCli(['tail', 'starts-never', '--file', dir], { env: { CLOGS_HTTP_ENABLED: 'false' } })).code).toBe(1);
  });

  it('switches from history to a running collector\'s live stream with no line lost or doubled', async () => {
    const dir = tempDir('tail-live');
    const collector: RunningCollector = await startCollector(['--no-docker', '--forward', '127.0.0.1:0', '--http', '127.0.0.1:0', '--file', join(dir, 'data'), '--state', join(dir, 'state'), '--log-level', 'debug']);
    const s = fluentSender(collector.forwardPort());
    const emit = (i: number) => emitRecord(s, 'switch', { message: `line ${i}` });
    let tail: ReturnType<typeof startCli> | undefined;
    try {
      for (let i = 0; i < 50; i++) await emit(i);
      // The producer keeps going while tail starts, reads history and subscribes.
      const producing = (async () => {
        for (let i = 50; i < 400; i++) {
          await emit(i);
          if (i % 10 === 0) await new Promise((r) => setTimeout(r, 5));
        }
      })();
      tail = startCli(['tail', '-f', 'app.switch', '-n', '5', '--file', join(dir, 'data'), '--http', collector.ready.http!]);
      await producing;
      await expectFollowedIntoLive(tail, collector.lines, 400, 1500);
    } finally {
      await tail?.stop('SIGINT');
      await endSender(s);
      await collector.stop();
    }
  });
});

describe('clogs tail for a removed container (real Docker)', () => {
  it('reads the lines of a container that was removed, by name and by id prefix; ps says removed', async () => {
    await requireDocker();
    const dir = tempDir('tail-docker');
    const collector = await startCollector(['--no-docker', '--forward', '127.0.0.1:0', '--http', '127.0.0.1:0', '--file', join(dir, 'data'), '--state', join(dir, 'state')]);
    const name = uniquePrefix('tail');
    try {
      const id = await docker(
        'run', '-d', '--name', name, '--log-driver', 'fluentd',
        '--log-opt', `fluentd-address=127.0.0.1:${collector.forwardPort()}`, '--log-opt', 'fluentd-sub-second-precision=true',
        'clogs-busybox:latest', 'sh', '-c', 'echo one; sleep 0.1; echo two >&2; sleep 0.1; echo three',
      );
      await waitExited(name);
      await docker('rm', name);
      const store = ['--file', join(dir, 'data')];
      const deadline = Date.now() + 10_000;
      let r = await runCli(['tail', name, ...store]);
      while (outputLines(r.stdout).length < 3 && Date.now() < deadline) r = await runCli(['tail', name, ...store]);
      expect(outputLines(r.stdout)).toEqual(['one', 'two', 'three']);
      expect(outputLines((await runCli(['tail', id.slice(0, 6), '--stream', 'stderr', ...store])).stdout)).toEqual(['two']);
      const ps = outputLines((await runCli(['ps', ...store])).stdout);
      // Docker's fluentd driver sends no image name: it comes from the engine (forward.enrich).
      expect(ps.find((l) => l.startsWith(name))!.split(/\s{2,}/)).toEqual([name, id.slice(0, 12), 'clogs-busybox:latest', expect.any(String), expect.any(String), '2', '1', 'removed']);
    } finally {
      await removeContainers(name);
      await collector.stop();
    }
  });
});
