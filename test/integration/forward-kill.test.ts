/**
 * kill -9 in the middle of a request written in slices: the real collector
 * process gets one PackedForward request of 300,000 records (about 32
 * slices), is killed with SIGKILL once more of it is on disk than the file
 * sink's replay guard reads back (16 MiB) and before the ack, and started
 * again on the same state and file store; the client resends the request
 * byte for byte. At the end every record is in the file store exactly once,
 * in order: the stored progress, not the guard's window, carries the resend
 * past what was written.
 * Message mode without acks, as Docker's driver sends by default: its lines
 * are written deferred, synced within a second; those in the files when the
 * collector is killed are there, whole and once, after it starts again.
 */
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeMsgpack } from '../../src/collector/forward/encode.js';
import { mp, rawClient } from '../helpers/forward.js';
import { until } from '../helpers/until.js';
import { readFileStore, startCollector, tempDir, type RunningCollector } from '../helpers/services.js';

const T = 1795341190;
const RECORDS = 300_000;
const dirs: string[] = [];
/** Beyond the replay guard's window (sinks/file/replay.ts). */
const PAST_GUARD_BYTES = 17 * 1024 * 1024;

function storeBytes(dir: string): number {
  let bytes = 0;
  for (const f of readdirSync(dir, { recursive: true, encoding: 'utf8' })) {
    try {
      const st = statSync(join(dir, f));
      if (st.isFile()) bytes += st.size;
    } catch {
      // Renamed or compressed away between readdir and stat.
    }
  }
  return bytes;
}

/** A file store and a state directory kept across the collector's restarts, and how to start it (without Docker) on them. */
function collectorDirs(name: string): { files: string; state: string; start: () => Promise<RunningCollector> } {
  const files = tempDir(`${name}-files`);
  const state = tempDir(`${name}-state`);
  dirs.push(files, state);
  return { files, state, start: () => startCollector(['--no-docker', '--forward', '127.0.0.1:0', '--http', '127.0.0.1:0', '--file', files, '--state', state]) };
}

afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('kill -9 between the slices of a request', () => {
  it('writes every record once after the resend', async () => {
    const { files, state, start } = collectorDirs('fkill');
    const entries = Array.from({ length: RECORDS }, (_, i) => mp.arr(mp.eventTime(T + Math.floor(i / 1000), i % 1000), mp.strMap({ log: `n ${i}` })));
    const request = mp.arr(mp.str('kill'), mp.bin(Buffer.concat(entries)), encodeMsgpack({ chunk: 'kill-1' }));
    const progress = join(state, 'forward-progress');

    const first = await start();
    const c1 = await rawClient(first.forwardPort());
    await c1.send(request);
    await until(
      'more than the guard reads durable',
      () => existsSync(progress) && readdirSync(progress).some((f) => !f.endsWith('.tmp')) && storeBytes(files) > PAST_GUARD_BYTES,
      60_000,
    );
    await first.stop('SIGKILL');
    expect(c1.replies()).toEqual([]);
    const before = readFileStore(files).length;
    expect(before).toBeGreaterThan(0);
    expect(before).toBeLessThan(RECORDS);

    const second = await start();
    const c2 = await rawClient(second.forwardPort());
    await c2.send(request);
    expect(await c2.waitReplies(1, 120_000)).toEqual([{ ack: 'kill-1' }]);
    c2.socket.end();
    expect(await second.stop()).toBe(0);

    const messages = readFileStore(files).map((e) => e.message);
    expect(messages.length).toBe(RECORDS);
    expect(messages).toEqual(Array.from({ length: RECORDS }, (_, i) => `n ${i}`));
  }, 300_000);
});

describe('kill -9 after requests without acks', () => {
  it('keeps every line they wrote, whole and once', async () => {
    const { files, start } = collectorDirs('fkill-noack');
    const LINES = 5000;
    const messages = Array.from({ length: LINES }, (_, i) => mp.arr(mp.str(`noack.${i % 7}`), mp.eventTime(T, i), mp.strMap({ log: `line ${i} "quoted" é` })));

    const first = await start();
    const c = await rawClient(first.forwardPort());
    await c.send(Buffer.concat(messages));
    await until('every line in the files', () => readFileStore(files).length === LINES, 60_000, () => readFileStore(files).length);
    await first.stop('SIGKILL');

    const second = await start();
    expect(await second.stop()).toBe(0);
    const seen = readFileStore(files).map((e) => e.message);
    expect(seen.length).toBe(LINES);
    expect(new Set(seen).size).toBe(LINES);
  }, 120_000);
});
