/**
 * Resends on the real collector (file sink, fsync): a client that resends a
 * chunk whose first copy another connection is still writing, and sends on
 * behind it, while the first copy needs the render budget to finish.
 */
import { rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeMsgpack } from '../../src/collector/forward/encode.js';
import { mp, rawClient } from '../helpers/forward.js';
import { startCollector, tempDir, type RunningCollector } from '../helpers/services.js';

const T = 1795341190;
const dirs: string[] = [];
let collector: RunningCollector | undefined;

afterAll(async () => {
  await collector?.stop('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function packed(tag: string, records: number, chunk: string, record: Buffer): Buffer {
  return mp.arr(mp.str(tag), mp.bin(Buffer.concat(Array.from({ length: records }, () => mp.arr(mp.int32(T), record)))), encodeMsgpack({ chunk, size: records }));
}

describe('a chunk resent while its first copy is being written', () => {
  it('is acked after it, and so are the requests after it, on every connection', async () => {
    const files = tempDir('resend-files');
    const state = tempDir('resend-state');
    dirs.push(files, state);
    collector = await startCollector(['--no-docker', '--forward', '127.0.0.1:0', '--http', '127.0.0.1:0', '--file', files, '--state', state]);
    // Half a million tiny records: rendered in many slices, most of the render budget.
    const big = packed('big', 500_000, 'chunk-X', mp.strMap({ log: 'x' }));
    const a = await rawClient(collector.forwardPort());
    void a.send(big);
    await new Promise((r) => setTimeout(r, 100));
    const others = [await rawClient(collector.forwardPort()), await rawClient(collector.forwardPort())];
    for (const [n, c] of others.entries()) {
      void c.send(big);
      for (let i = 0; i < 12; i++) {
        const record = mp.strMap({ log: `c${n} ${i} ${'y'.repeat(120)}`, source: 'stdout', container_id: 'abcdefabcdef', container_name: '/app' });
        void c.send(packed(`c${n}`, 5000, `chunk-${n}-${i}`, record));
      }
    }
    // The parent acked nothing here for as long as one waited.
    expect(await a.waitReplies(1, 60_000)).toEqual([{ ack: 'chunk-X' }]);
    for (const c of others) expect((await c.waitReplies(13, 60_000)).length).toBe(13);
    for (const c of [a, ...others]) c.socket.destroy();
    expect(await collector.stop()).toBe(0);
    collector = undefined;
  }, 150_000);
});
