/**
 * A request written in several slices, interrupted between two of them (the
 * collector dies; the client never saw its ack) and resent whole to a new
 * collector on the same state dir: the records written before are not
 * written again, and those after come out as they would have (ordinals go on).
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { EncodedBatch } from '../../../src/collector/encoded.js';
import type { LogEvent } from '../../../src/collector/event.js';
import { encodeMsgpack } from '../../../src/collector/forward/encode.js';
import { RequestProgress } from '../../../src/collector/forward/progress.js';
import { MAX_IN_FLIGHT_BYTES, SLICE_BYTES } from '../../../src/collector/forward/render-budget.js';
import { CaptureSink, dockerRecord, mp, rawClient, startTestInput, type TestInput } from '../../helpers/forward.js';
import { until } from '../../helpers/until.js';

const T = 1795341190;
const RECORDS = 30_000;

const request = (): Buffer =>
  mp.arr(
    mp.str('sliced'),
    mp.bin(Buffer.concat(Array.from({ length: RECORDS }, (_, i) => mp.arr(mp.eventTime(T, 5), dockerRecord(`line ${i}`))))),
    encodeMsgpack({ chunk: 'sliced-1' }),
  );

const progressFiles = (stateDir: string): string[] => {
  const dir = join(stateDir, 'forward-progress');
  return existsSync(dir) ? readdirSync(dir).filter((f) => !f.endsWith('.tmp')) : [];
};

const stopped: TestInput[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const t of stopped.splice(0)) await t.stop();
});

/** Counts the rendered bytes it made durable. */
class ByteSink extends CaptureSink {
  bytes = 0;

  override write(batch: EncodedBatch): Promise<void> {
    const bytes = batch.bytes;
    return this.take(() => (this.bytes += bytes));
  }
}

describe('a resent request whose first slices were written before a crash', () => {
  it('is written from where it stopped, each record once, and acked', async () => {
    const bytes = request();
    const first = await startTestInput();
    first.sink.hold();
    const c1 = await rawClient(first.port);
    await c1.send(bytes);
    // The first slice becomes durable and its progress is stored; nothing after it ever will.
    await until('the first slice', () => first.sink.pendingWrites > 0, 10_000);
    first.sink.releaseOldest();
    await until('the progress of the first slice', () => progressFiles(first.stateDir).length === 1, 10_000);
    const before: LogEvent[] = [...first.sink.events];
    expect(before.length).toBeGreaterThan(0);
    expect(before.length).toBeLessThan(RECORDS);
    expect(c1.replies()).toEqual([]);
    // The crash: the first collector is abandoned with its writes pending, and its client gone.
    c1.socket.destroy();

    const second = await startTestInput({}, { stateDir: first.stateDir, sink: new CaptureSink() });
    stopped.push(second);
    const c2 = await rawClient(second.port);
    await c2.send(bytes);
    expect(await c2.waitReplies(1, 60_000)).toEqual([{ ack: 'sliced-1' }]);
    c2.socket.end();

    const all = [...before, ...second.sink.events];
    expect(all.map((e) => e.message).sort()).toEqual(Array.from({ length: RECORDS }, (_, i) => `line ${i}`).sort());
    // Same timestamp throughout: the ordinals count on across the crash as in one run.
    expect(all.map((e) => e.clogs.ordinal)).toEqual(Array.from({ length: RECORDS }, (_, i) => i));
    await until('the progress record deleted after the ack', () => progressFiles(first.stateDir).length === 0, 10_000);
  }, 120_000);
});

describe('a request written in slices while its progress cannot be stored yet', () => {
  it('stops once its share of rendered bytes is durable and unrecorded, and goes on as progress is stored', async () => {
    // A slow disk for the progress store: nothing is recorded until released.
    const held: Array<() => void> = [];
    const record = RequestProgress.prototype.record;
    vi.spyOn(RequestProgress.prototype, 'record').mockImplementation(function (this: RequestProgress, key: string, records: number) {
      return new Promise<void>((resolve) => held.push(() => void record.call(this, key, records).then(resolve)));
    });
    const t = await startTestInput({}, { sink: new ByteSink() });
    stopped.push(t);
    const c = await rawClient(t.port);
    const all = Buffer.concat(Array.from({ length: 300_000 }, (_, i) => mp.arr(mp.eventTime(T, 5), mp.strMap({ log: `line ${i}` }))));
    await c.send(mp.arr(mp.str('slow'), mp.bin(all), encodeMsgpack({ chunk: 'slow-1' })));

    // Every slice handed out is durable, none recorded: the connection must wait.
    await until('the connection to stop', () => t.input.budget.inFlight >= MAX_IN_FLIGHT_BYTES && held.length > 0, 60_000);
    // What the replay guard would have to find after a crash now (it reads 16 MiB).
    expect(t.sink.bytes).toBeLessThanOrEqual(MAX_IN_FLIGHT_BYTES + SLICE_BYTES + 4096);
    expect(t.sink.bytes).toBe(t.input.budget.inFlight);
    expect(c.replies()).toEqual([]);

    const pump = setInterval(() => {
      for (const release of held.splice(0)) release();
    }, 1);
    try {
      expect(await c.waitReplies(1, 120_000)).toEqual([{ ack: 'slow-1' }]);
    } finally {
      clearInterval(pump);
    }
    expect(t.sink.writes).toBeGreaterThan(4);
    expect(t.input.budget.peak).toBeLessThanOrEqual(MAX_IN_FLIGHT_BYTES + SLICE_BYTES + 4096);
    c.socket.end();
  }, 120_000);
});
