/**
 * A request written in several slices, interrupted between two of them (the
 * collector dies; the client never saw its ack) and resent whole to a new
 * collector on the same state dir: the records written before are not
 * written again, and those after come out as they would have (ordinals go on).
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { LogEvent } from '../../../src/collector/event.js';
import { encodeMsgpack } from '../../../src/collector/forward/encode.js';
import { CaptureSink, dockerRecord, mp, rawClient, startTestInput, until, type TestInput } from '../../helpers/forward.js';

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
  for (const t of stopped.splice(0)) await t.stop();
});

describe('a resent request whose first slices were written before a crash', () => {
  it('is written from where it stopped, each record once, and acked', async () => {
    const bytes = request();
    const first = await startTestInput();
    first.sink.hold();
    const c1 = await rawClient(first.port);
    await c1.send(bytes);
    // The first slice becomes durable and its progress is stored; nothing after it ever will.
    await until(() => first.sink.pendingWrites > 0, 10_000, 'the first slice');
    first.sink.releaseOldest();
    await until(() => progressFiles(first.stateDir).length === 1, 10_000, 'the progress of the first slice');
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
    await until(() => progressFiles(first.stateDir).length === 0, 10_000, 'the progress record deleted after the ack');
  }, 120_000);
});
