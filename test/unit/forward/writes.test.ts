/**
 * One connection's writes (writes.ts) on their own: a request is acked only
 * once its write and every older one are durable, whatever order the writes
 * become durable in; a failed write fails every request not acked yet, so
 * their chunks are not taken as written and a resend writes them.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ChunkPool } from '../../../src/collector/chunk-pool.js';
import { Pipeline } from '../../../src/collector/pipeline.js';
import { ChunkLedger } from '../../../src/collector/forward/acks.js';
import { PartialStore } from '../../../src/collector/forward/partials.js';
import { RequestProgress } from '../../../src/collector/forward/progress.js';
import { RENDER_BUDGET_BYTES, RenderBudget } from '../../../src/collector/forward/render-budget.js';
import { DeferredSync } from '../../../src/collector/forward/deferred-sync.js';
import { WriteQueue, type Job } from '../../../src/collector/forward/writes.js';
import { makeEvent } from '../../helpers/elasticsearch.js';
import { CaptureSink, captureLogger } from '../../helpers/forward.js';

/** No ordinals to journal: these tests write no lines through a Normalizer. */
const NO_JOURNAL = { record: (): void => undefined, sync: async (): Promise<void> => undefined, countsBefore: () => undefined, rendered: (): void => undefined };

function setup() {
  const sink = new CaptureSink();
  sink.hold();
  const dir = mkdtempSync(join(tmpdir(), 'clogs-writes-'));
  const { log } = captureLogger();
  const ledger = new ChunkLedger();
  const budget = new RenderBudget(RENDER_BUDGET_BYTES);
  const chunks = new ChunkPool(RENDER_BUDGET_BYTES);
  const pipeline = new Pipeline([sink]);
  const ctx = {
    chunks,
    pipeline,
    syncs: new DeferredSync(pipeline, NO_JOURNAL, log, 10),
    ordinals: NO_JOURNAL,
    partials: new PartialStore(join(dir, 'partials'), log),
    progress: new RequestProgress(join(dir, 'progress'), log),
    ledger,
    budget,
  };
  const acked: string[] = [];
  const failures: unknown[] = [];
  const writes: WriteQueue = new WriteQueue(
    ctx,
    { ack: (jobs) => acked.push(...jobs.map((j) => j.chunk!.toString())), failed: (err) => failures.push(err), wake: () => writes.flush(undefined) },
    log,
  );
  /** A request with chunk id `chunk` (none: `undefined`) and one event, rendered and handed to the pipeline as a write of its own. */
  const request = (chunk: string | undefined, i: number): Job => {
    const acked = chunk !== undefined;
    const job: Job = {
      held: undefined,
      completed: undefined,
      cuts: undefined,
      chunk: acked ? Buffer.from(chunk) : undefined,
      key: chunk,
      pending: acked ? ledger.begin(chunk) : undefined,
      wait: undefined,
      receivedAt: 0,
    };
    writes.open();
    const out = writes.events();
    const before = out.bytes;
    out.add([makeEvent(i)]);
    writes.took(out.bytes - before);
    writes.ready(job);
    writes.flush(undefined);
    return job;
  };
  return { sink, ledger, budget, chunks, writes, acked, failures, request };
}

/** Every promise the last release settled has run its callbacks (no clock involved). */
const settled = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('a connection’s writes', () => {
  it('ack in request order: a newer write durable first waits for the older one', async () => {
    const t = setup();
    t.request('a', 0);
    t.request('b', 1);
    expect(t.sink.pendingWrites).toBe(2);
    t.sink.releaseNewest();
    await settled();
    expect(t.acked).toEqual([]);
    expect(t.ledger.lookup('b')).not.toBe(true);
    t.sink.releaseOldest();
    await settled();
    expect(t.acked).toEqual(['a', 'b']);
    expect(t.ledger.lookup('a')).toBe(true);
    expect(t.ledger.lookup('b')).toBe(true);
    expect(t.writes.idle).toBe(true);
    expect(t.writes.inFlight).toBe(0);
    expect(t.budget.inFlight).toBe(0);
  });

  it('a failed write fails every request not acked yet, older ones included, and releases their bytes', async () => {
    const t = setup();
    t.request('a', 0);
    t.sink.failNext = new Error('disk gone');
    t.request('b', 1);
    await settled();
    expect(t.failures).toHaveLength(1);
    // Neither chunk counts as written: a resend of either is written again.
    expect(t.ledger.lookup('a')).toBeUndefined();
    expect(t.ledger.lookup('b')).toBeUndefined();
    expect(t.budget.inFlight).toBe(0);
    // The older write becoming durable afterwards acks nothing: acks are in order, and b failed.
    t.sink.release();
    await settled();
    expect(t.acked).toEqual([]);
    expect(t.writes.idle).toBe(true);
    // The sink may still have been reading them: the failed writes' chunks are left to the garbage collector.
    expect(t.chunks.held).toBe(0);
  });

  it('gives a write’s chunks back to the pool once it is durable, not before', async () => {
    const t = setup();
    t.sink.hold();
    t.request('a', 0);
    await settled();
    expect(t.chunks.held).toBe(0);
    t.sink.release();
    await settled();
    expect(t.acked).toEqual(['a']);
    expect(t.chunks.held).toBeGreaterThan(0);
    // The next request's lines go into a chunk taken back from the pool.
    t.request('b', 1);
    expect(t.chunks.held).toBe(0);
    await settled();
    expect(t.sink.events.map((e) => e.message)).toEqual([makeEvent(0).message, makeEvent(1).message]);
  });

  it('writes a request no ack waits on deferred, and has it synced within the delay; one with a chunk is durable before its ack', async () => {
    const t = setup();
    t.sink.release();
    t.request(undefined, 0);
    await settled();
    expect(t.sink.deferredWrites).toBe(1);
    expect(t.sink.syncs).toBe(0);
    expect(t.writes.idle).toBe(true);
    expect(t.budget.inFlight).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(t.sink.syncs).toBe(1);
    t.request('a', 1);
    await settled();
    expect(t.acked).toEqual(['a']);
    expect(t.sink.writes).toBe(2);
    expect(t.sink.deferredWrites).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(t.sink.syncs).toBe(1);
  });

  it('writes a request without a chunk durably when its events let the partial store forget a stored piece', async () => {
    const t = setup();
    t.sink.release();
    const job: Job = { held: undefined, completed: ['abc123'], cuts: undefined, chunk: undefined, key: undefined, pending: undefined, wait: undefined, receivedAt: 0 };
    t.writes.open();
    const out = t.writes.events();
    out.add([makeEvent(0)]);
    t.writes.took(out.bytes);
    t.writes.ready(job);
    t.writes.flush(undefined);
    await settled();
    expect(t.sink.writes).toBe(1);
    expect(t.sink.deferredWrites).toBe(0);
  });

  it('writes requests without a chunk durably when they go out with one that has a chunk', async () => {
    const t = setup();
    for (const [i, chunk] of ['a', 'b', 'c', 'd'].entries()) t.request(chunk, i);
    // Rendered while as many writes as may be are held: they go out together, as the next write.
    t.request(undefined, 4);
    t.request('e', 5);
    expect(t.sink.writes).toBe(4);
    t.sink.release();
    await settled();
    expect(t.acked).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(t.sink.writes).toBe(5);
    expect(t.sink.deferredWrites).toBe(0);
  });
});
