/**
 * `clogs tail`, `ps` and `search`, run as the built CLI, over a store whose
 * rotated files the real file sink gzipped: read in order across compressed
 * and plain files, and followed while the sink rotates and compresses.
 */
import { EncodedBatch } from '../../src/collector/encoded.js';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { LogEvent } from '../../src/collector/event.js';
import { fileSinkSchema } from '../../src/config/schema.js';
import { createLogger } from '../../src/log.js';
import { createFileSink } from '../../src/sinks/file/index.js';
import type { Sink } from '../../src/sinks/sink.js';
import { until } from '../helpers/until.js';
import { container, fakeId, makeEvent, outputLines, runCli, startCli } from '../helpers/tail.js';

const WEB = container(fakeId('e1'), 'gz-web');
const T0 = Math.floor(Date.now() / 1000) - 3600;

const tmp: string[] = [];
afterAll(() => {
  for (const d of tmp) rmSync(d, { recursive: true, force: true });
});

async function compressingSink(): Promise<{ store: string; sink: Sink }> {
  const store = mkdtempSync(join(tmpdir(), 'clogs-tail-gz-'));
  tmp.push(store);
  const sink = createFileSink(fileSinkSchema.parse({ dir: store, rotate_size: 2048 }), { log: createLogger('silent') });
  await sink.start();
  return { store, sink };
}

let seq = 1;
const line = (n: number): LogEvent => makeEvent({ container: WEB, sec: T0 + n, nsec: 5, seq: seq++, message: `gz ${n}`, stream: 'stdout' });
const files = (store: string) => readdirSync(join(store, 'gz-web')).sort();
/** Every file but the newest is a .gz. */
const compressed = (store: string) => files(store).filter((f) => f.endsWith('.ndjson')).length === 1;
const env = { CLOGS_HTTP_ENABLED: 'false' };

describe('clogs over a store with compressed rotated files', () => {
  it('tail -n across compressed and plain files, -n all, ps and search read them in order', async () => {
    const { store, sink } = await compressingSink();
    for (let i = 0; i < 300; i += 10) await sink.write(EncodedBatch.of(Array.from({ length: 10 }, (_, k) => line(i + k))));
    await until('rotated files compressed', () => compressed(store), 30_000);
    await sink.close();
    expect(files(store).filter((f) => f.endsWith('.gz')).length).toBeGreaterThan(5);
    const clogs = (...args: string[]) => runCli([...args, '--file', store], { env });
    // 120 lines: the plain newest file holds far fewer, so the read crosses into the .gz files.
    const tail = await clogs('tail', 'gz-web', '-n', '120');
    expect(tail.stderr).toBe('');
    expect(outputLines(tail.stdout)).toEqual(Array.from({ length: 120 }, (_, k) => `gz ${180 + k}`));
    expect(outputLines((await clogs('tail', 'gz-web', '-n', 'all')).stdout)).toEqual(Array.from({ length: 300 }, (_, k) => `gz ${k}`));
    const ps = outputLines((await clogs('ps')).stdout);
    expect(ps.find((l) => l.startsWith('gz-web '))!.split(/\s{2,}/)[5]).toBe('300');
    expect(outputLines((await clogs('search', 'gz 17')).stdout)).toEqual(['gz-web | gz 17', ...Array.from({ length: 10 }, (_, k) => `gz-web | gz ${170 + k}`)]);
  });

  it('tail -f while the sink rotates and compresses prints every line once, in order', async () => {
    const { store, sink } = await compressingSink();
    for (let i = 0; i < 50; i += 10) await sink.write(EncodedBatch.of(Array.from({ length: 10 }, (_, k) => line(i + k))));
    const tail = startCli(['tail', 'gz-web', '-f', '-n', '1', '--file', store], { env });
    try {
      await tail.waitFor('gz 49\n');
      for (let i = 50; i < 400; i += 10) await sink.write(EncodedBatch.of(Array.from({ length: 10 }, (_, k) => line(i + k))));
      await tail.waitFor('gz 399\n', 30_000);
      await until('rotated files compressed', () => compressed(store), 30_000);
      // Whatever the follower reread after a compression would come after the last line: one more line closes the window.
      await sink.write(EncodedBatch.of([line(400)]));
      await tail.waitFor('gz 400\n', 30_000);
      expect(outputLines(tail.stdout())).toEqual(Array.from({ length: 352 }, (_, k) => `gz ${49 + k}`));
      expect(tail.stderr()).toBe('');
    } finally {
      await tail.stop();
      await sink.close();
    }
  });
});
