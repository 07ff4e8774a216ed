/**
 * A resend that waits for its first copy (job.wait) asks for the outcome
 * only when its write is flushed (writes.ts flush()). If the first copy
 * settles in between (the resend's connection had MAX_WRITES_IN_FLIGHT
 * writes under way), PendingChunk.outcome() registers a waiter on a chunk
 * already settled, which is never resolved: the resend and everything
 * behind it on that connection were never acked, and the input's stop
 * never ended. PendingChunk keeps its result now.
 */
import { describe, expect, it } from 'vitest';
import { encodeMsgpack } from '../../../src/collector/forward/encode.js';
import { dockerRecord, mp, rawClient, startTestInput } from '../../helpers/forward.js';
import { until } from '../../helpers/until.js';

const T = 1795341190;
const req = (log: string, chunk: string) => mp.arr(mp.str('docker.web'), mp.eventTime(T, 0), dockerRecord(log), encodeMsgpack({ chunk }));

describe('resend waiting for a first copy that settles before the resend is flushed', () => {
  it('is acked', async () => {
    const t = await startTestInput();
    t.sink.hold();
    const a = await rawClient(t.port);
    const b = await rawClient(t.port);
    const x = req('first copy', 'x');
    await a.send(x);
    await until('A write held', () => t.sink.pendingWrites === 1);
    // B: four writes in flight.
    for (let i = 0; i < 4; i++) {
      await b.send(req(`b${i}`, `b${i}`));
      await until(`B write ${i}`, () => t.sink.pendingWrites === 2 + i);
    }
    // B resends X (byte-identical) while A's copy is being written: it waits, queued behind B's 4 writes.
    await b.send(x);
    await new Promise((r) => setTimeout(r, 50));
    // A's copy becomes durable: A is acked, the ledger settles X.
    t.sink.releaseOldest();
    expect(await a.waitReplies(1)).toEqual([{ ack: 'x' }]);
    // B's writes become durable: B's 4 acks, then the resend's.
    t.sink.release();
    expect(await b.waitReplies(5)).toEqual([{ ack: 'b0' }, { ack: 'b1' }, { ack: 'b2' }, { ack: 'b3' }, { ack: 'x' }]);
    a.socket.destroy();
    b.socket.destroy();
    await t.stop();
  });
});
