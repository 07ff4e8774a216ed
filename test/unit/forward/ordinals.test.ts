/**
 * Ordinals across a stop of the forward input: identical lines with the same
 * whole-second time, as Docker's driver sends them, keep distinct
 * identities when the input starts again between them.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { EncodedBatch } from '../../../src/collector/encoded.js';
import { encodeMsgpack } from '../../../src/collector/forward/encode.js';
import type { WriteOptions } from '../../../src/sinks/sink.js';
import { eventsOf } from '../../helpers/batch.js';
import { CaptureSink, dockerRecord, mp, rawClient, startTestInput, type TestInput } from '../../helpers/forward.js';

const T = 1795341190;
let running: TestInput | undefined;

afterEach(async () => {
  await running?.stop();
  running = undefined;
});

/** Sends the records, each acked, on one connection, and closes it. */
async function send(input: TestInput, records: Array<[number, Buffer]>): Promise<void> {
  const c = await rawClient(input.port);
  for (const [i, [time, record]] of records.entries()) await c.send(mp.arr(mp.str('docker.web'), mp.int32(time), record, encodeMsgpack({ chunk: `c-${Date.now()}-${i}` })));
  await c.waitReplies(records.length);
  c.socket.end();
  await c.closed;
}

/** A sink that takes the first write and then fails it, as one of two sinks whose other failed. */
class TookThenFailedSink extends CaptureSink {
  private failed = false;

  override write(batch: EncodedBatch, opts?: WriteOptions): Promise<void> {
    if (this.failed) return super.write(batch, opts);
    this.failed = true;
    this.events.push(...eventsOf(batch));
    return Promise.reject(new Error('the other sink failed this write'));
  }
}

describe('a request sent again after a failed write', () => {
  it('gets the ordinals its first copy had, which a sink that took that copy already holds', async () => {
    const sink = new TookThenFailedSink();
    running = await startTestInput({}, { sink });
    const request = mp.arr(mp.str('docker.web'), mp.bin(Buffer.concat([dockerRecord('same line'), dockerRecord('same line')].map((r) => mp.arr(mp.int32(T), r)))), encodeMsgpack({ chunk: 'again-1' }));
    const first = await rawClient(running.port);
    await first.send(request);
    await first.closed;
    expect(first.replies()).toEqual([]);
    const second = await rawClient(running.port);
    await second.send(request);
    expect(await second.waitReplies(1)).toEqual([{ ack: 'again-1' }]);
    second.socket.end();
    expect(sink.events.map((e) => [e.message, e.clogs.ordinal])).toEqual([
      ['same line', 0],
      ['same line', 1],
      ['same line', 0],
      ['same line', 1],
    ]);
  });
});

describe('forward ordinals across a stop', () => {
  it('count on from where the stopped input was, per source and stream', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'clogs-ordinals-'));
    running = await startTestInput({}, { stateDir });
    await send(running, [[T, dockerRecord('same line')], [T, dockerRecord('same line')], [T, dockerRecord('other stream', {}, 'stderr')]]);
    expect(running.sink.events.map((e) => e.clogs.ordinal)).toEqual([0, 1, 0]);
    await running.stop();

    running = await startTestInput({}, { stateDir });
    await send(running, [[T, dockerRecord('same line')], [T, dockerRecord('other stream', {}, 'stderr')], [T + 1, dockerRecord('same line')]]);
    expect(running.sink.events.map((e) => [e.message, e.stream, e.clogs.ordinal])).toEqual([
      ['same line', 'stdout', 2],
      ['other stream', 'stderr', 1],
      ['same line', 'stdout', 0],
    ]);
  });

  it('count on across starts that saw none of a source\'s lines, as async Docker drivers send buffered lines late', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'clogs-ordinals-'));
    running = await startTestInput({}, { stateDir });
    await send(running, [[T, dockerRecord('same line')], [T, dockerRecord('same line')]]);
    await running.stop();
    running = await startTestInput({}, { stateDir });
    await running.stop();
    running = await startTestInput({}, { stateDir });
    await send(running, [[T, dockerRecord('same line')]]);
    expect(running.sink.events.map((e) => e.clogs.ordinal)).toEqual([2]);
  });

  it('count from 0 when what the last stop saved is damaged', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'clogs-ordinals-'));
    writeFileSync(join(stateDir, 'forward-ordinals.json'), '{"ordinals":[{"source"');
    running = await startTestInput({}, { stateDir });
    await send(running, [[T, dockerRecord('same line')]]);
    expect(running.sink.events.map((e) => e.clogs.ordinal)).toEqual([0]);
    expect(running.logs.some((l) => l.msg === 'the ordinals of the last stop are damaged; counting from 0')).toBe(true);
  });
});
