/**
 * One connection's writes: its requests' events handed to the pipeline, and
 * their acks, in request order.
 *
 * Up to MAX_WRITES_IN_FLIGHT writes of one connection are under way at once;
 * requests rendered meanwhile wait and go out together as the next write, so
 * a client that pipelines requests is not held to one fsync each, and
 * Docker's stop-and-wait driver still gets each ack right after its own
 * write. A request is acked once its write and every older one are durable.
 * A write that holds no request with a chunk (nor a resend's wait, nor a
 * request being rendered in slices, which has one, nor one whose events let
 * the partial store forget or store a line) goes deferred, synced within a
 * second (deferred-sync.ts): no ack waits on it. "Durable" below then means
 * written.
 *
 * A write that brings a request's progress (progress.ts) keeps its bytes
 * counted as in flight until that progress is stored, not only until it is
 * durable (render-budget.ts says why).
 *
 * A failed sink write fails every request not acked yet: nothing after it
 * may be acked either, and their chunks are settled as not written, so a
 * resend writes them.
 */
import type { Logger } from '../../log.js';
import { eventsIn } from '../../metrics.js';
import { EncodedBatch } from '../encoded.js';
import type { Pipeline } from '../pipeline.js';
import type { ChunkPool } from '../chunk-pool.js';
import type { WriteOptions } from '../../sinks/sink.js';
import type { ChunkLedger, PendingChunk } from './acks.js';
import type { DeferredSync } from './deferred-sync.js';
import type { LineCut } from '../normalize.js';
import type { OrdinalRecords } from './ordinal-journal.js';
import type { HeldLine, PartialStore } from './partials.js';
import type { RequestProgress } from './progress.js';
import type { RenderBudget } from './render-budget.js';

/**
 * Writes of one connection under way at once. The file sink encodes a write
 * when it is handed over and syncs in groups, so the next batch is encoded
 * while the previous one is fsync'd.
 * Measured (PackedForward benchmark profile): with 1, the main thread sat
 * idle 22% of the time waiting on fsync; with 4, 12%.
 */
const MAX_WRITES_IN_FLIGHT = 4;

/**
 * What a request costs besides its bytes while it waits (its job, its ledger
 * entry, its share of the line buffers), counted with its connection's bytes
 * in flight so that many tiny requests (Message mode) are bounded too.
 */
const REQUEST_OVERHEAD_BYTES = 1024;

const eventsInForward = eventsIn.labels({ input: 'forward' });
const DEFERRED: WriteOptions = { deferred: true };

/** One request, from its decoding until it is acked (or failed). */
export interface Job {
  /** Acked pieces of split lines and lines of held traces, stored before the ack (see partials.ts). */
  held: HeldLine[] | undefined;
  /** Partial ids whose line is complete in this request's events. */
  completed: string[] | undefined;
  /** Split lines written up to a part in this request's events (cut at maxLineBytes). */
  cuts: LineCut[] | undefined;
  /** The chunk to ack, as it was encoded. */
  chunk: Buffer | undefined;
  /** Its ledger key, and its entry while this job writes it. */
  key: string | undefined;
  pending: PendingChunk | undefined;
  /** The same chunk being written already (by this connection or another): ack once that write is durable. */
  wait: PendingChunk | undefined;
  receivedAt: number;
}

/** A request being rendered: how many of its records are written once the write that holds them is. */
export interface Progress {
  key: string;
  records: number;
}

interface Batch {
  jobs: Job[];
  /** Its events, whose chunks go back to the pool once it is durable. */
  events: EncodedBatch | undefined;
  durable: boolean;
  /** Bytes of its rendered events, counted in the connection's and the budget's totals. */
  rendered: number;
  progress: Progress | undefined;
}

export interface WriteContext {
  pipeline: Pipeline;
  partials: PartialStore;
  ledger: ChunkLedger;
  progress: RequestProgress;
  /** Rendered bytes in flight, all connections together. */
  budget: RenderBudget;
  /** Where rendered events take their chunks, given back once they are durable. */
  chunks: ChunkPool;
  /** Syncs the writes that no ack waited on. */
  syncs: DeferredSync;
  /** Where the ordinals of the lines written are counted first, in case of a crash. */
  ordinals: OrdinalRecords;
}

export interface WriteHooks {
  /** These requests are durable, oldest first: their chunks are to be acked. */
  ack(jobs: readonly Job[]): void;
  /** The sinks did not take a write; every request not acked yet (`jobs`) is failed. */
  failed(err: unknown, jobs: readonly Job[]): void;
  /** Writes finished or bytes were released: the connection may go on. */
  wake(): void;
}

export class WriteQueue {
  /** Requests whose events are all rendered, waiting for the next write. */
  private queue: Job[] = [];
  /** The events rendered since the last write, handed to the pipeline together by flush(). */
  private queuedEvents: EncodedBatch | undefined;
  private queuedBytes = 0;
  /** Batches handed to the pipeline, oldest first; acked from the front, in order. */
  private writes: Batch[] = [];
  /** Rendered bytes queued or being written. */
  private rendered = 0;
  /** Durable batches whose progress is being stored (their bytes still counted). */
  private recording = 0;
  /** Durable batches whose acks wait for the partial store to forget what their events hold. */
  private forgetting = 0;
  /** The last of those acks, while any waits: later acks go after it, so acks keep the requests' order. */
  private lastAck: Promise<void> | undefined;
  /** REQUEST_OVERHEAD_BYTES per request not acked yet. */
  private overheadBytes = 0;
  /** The newest batch's way to durable: held lines wait for it (see flush()). */
  private lastDurable: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly ctx: WriteContext,
    private readonly hooks: WriteHooks,
    private readonly log: Logger,
  ) {}

  /** Rendered bytes queued or being written, until released. */
  get inFlight(): number {
    return this.rendered;
  }

  /** What this connection holds for its requests: rendered bytes and the overhead of each request not acked yet. */
  get held(): number {
    return this.rendered + this.overheadBytes;
  }

  get idle(): boolean {
    return this.writes.length === 0 && this.recording === 0 && this.forgetting === 0 && this.queue.length === 0 && this.queuedEvents === undefined;
  }

  /** A request is taken in: counted until it is acked. */
  open(): void {
    this.overheadBytes += REQUEST_OVERHEAD_BYTES;
  }

  /** The request's events are all rendered (or it has none): it goes with the next write. */
  ready(job: Job): void {
    this.queue.push(job);
  }

  /** Where the next slice is rendered. */
  events(): EncodedBatch {
    return (this.queuedEvents ??= new EncodedBatch(this.ctx.chunks));
  }

  /** Counts bytes just rendered into events(). */
  took(bytes: number): void {
    this.queuedBytes += bytes;
    this.rendered += bytes;
    this.ctx.budget.take(bytes);
  }

  /**
   * Hands what is queued to the pipeline, unless enough writes are under way
   * already (or `now`). `progress`: the request being rendered, when it has a chunk.
   */
  flush(progress: Progress | undefined, now = false): void {
    if ((this.queue.length === 0 && this.queuedEvents === undefined) || (!now && this.writes.length >= MAX_WRITES_IN_FLIGHT)) return;
    const jobs = this.queue;
    this.queue = [];
    const events = this.queuedEvents;
    const batch: Batch = { jobs, events, durable: false, rendered: this.queuedBytes, progress };
    this.writes.push(batch);
    this.queuedEvents = undefined;
    this.queuedBytes = 0;
    const waits: Promise<unknown>[] = [];
    const count = events === undefined ? 0 : events.count;
    if (events !== undefined && count > 0) {
      eventsInForward.inc(count);
      this.ctx.ordinals.record();
      // An ack waits on it, or the partial store forgets or stores lines once it is durable (partials.ts).
      const mustSync = progress !== undefined || jobs.some((j) => j.chunk !== undefined || j.wait !== undefined || j.completed !== undefined || j.cuts !== undefined || j.held !== undefined);
      if (mustSync) waits.push(this.ctx.pipeline.write(events), this.ctx.ordinals.sync());
      else waits.push(this.ctx.pipeline.write(events, DEFERRED).then(() => this.ctx.syncs.written()));
    }
    for (const job of jobs) {
      // A resend in the same write as its first copy is durable with it (waiting for itself, it never would be).
      if (job.wait === undefined || jobs.some((j) => j.pending === job.wait)) continue;
      waits.push(job.wait.outcome().then((ok) => (ok ? undefined : Promise.reject(new Error('the first copy of a resent chunk was not written')))));
    }
    const held = jobs.flatMap((j) => j.held ?? []);
    let durable = waits.length === 1 ? waits[0]! : Promise.all(waits);
    // Held lines are stored once every other record of their requests is durable
    // (this write and the older ones): a request with stored lines is then known
    // to be written whole, and its resend after a crash is acked (partials.ts).
    if (held.length > 0) durable = this.ctx.partials.persist(held, Promise.all([durable, this.lastDurable]));
    this.lastDurable = durable;
    durable.then(
      () => this.written(batch),
      (err: unknown) => this.writeFailed(batch, err),
    );
  }

  /** Requests never written: their chunks are not durable, resends must write them. */
  abandon(jobs: readonly Job[]): void {
    for (const job of jobs) if (job.pending !== undefined) this.ctx.ledger.settle(job.key!, job.pending, false);
  }

  private written(batch: Batch): void {
    // Dropped by a failed write before it: already settled as failed.
    if (!this.writes.includes(batch)) return;
    batch.durable = true;
    const due: Job[] = [];
    const forgotten: Promise<void>[] = [];
    let released = 0;
    while (this.writes[0]?.durable) {
      const done = this.writes.shift()!;
      // Every sink has these lines and the subscribers saw them: nothing reads them any more.
      done.events?.recycle();
      if (done.progress !== undefined) this.recordProgress(done, done.progress);
      else released += done.rendered;
      const completed = done.jobs.flatMap((j) => j.completed ?? []);
      if (completed.length > 0) {
        forgotten.push(this.ctx.partials.complete(completed).catch((err: unknown) => this.log.warn({ err }, 'could not delete stored split-line pieces')));
      }
      const cuts = done.jobs.flatMap((j) => j.cuts ?? []);
      if (cuts.length > 0) {
        forgotten.push(this.ctx.partials.cut(cuts).catch((err: unknown) => this.log.warn({ err }, 'could not forget the written parts of stored split lines')));
      }
      for (const job of done.jobs) {
        if (job.pending !== undefined) {
          this.ctx.ledger.settle(job.key!, job.pending, true);
          this.ctx.progress.forget(job.key!);
        }
        this.overheadBytes -= REQUEST_OVERHEAD_BYTES;
        if (job.chunk !== undefined) due.push(job);
      }
    }
    // Acked once the store no longer holds what the events hold: a crash
    // before that would bring those lines back from it, acked, and write them twice.
    if (due.length > 0 && (forgotten.length > 0 || this.lastAck !== undefined)) {
      this.forgetting++;
      const ack: Promise<void> = Promise.all([this.lastAck, ...forgotten]).then(() => {
        this.forgetting--;
        if (this.lastAck === ack) this.lastAck = undefined;
        this.hooks.ack(due);
        this.hooks.wake();
      });
      this.lastAck = ack;
    } else if (due.length > 0) this.hooks.ack(due);
    this.release(released);
    this.hooks.wake();
  }

  /** Releases the batch's bytes once the progress it brings is stored: only then may further slices be written. */
  private recordProgress(batch: Batch, progress: Progress): void {
    this.recording++;
    void this.ctx.progress.record(progress.key, progress.records).then(() => {
      this.recording--;
      this.release(batch.rendered);
      this.hooks.wake();
    });
  }

  private writeFailed(batch: Batch, err: unknown): void {
    if (!this.writes.includes(batch)) return;
    let released = this.queuedBytes;
    const failed: Job[] = [];
    for (const b of this.writes) {
      this.abandon(b.jobs);
      failed.push(...b.jobs);
      released += b.rendered;
    }
    this.writes = [];
    this.abandon(this.queue);
    failed.push(...this.queue);
    this.queue = [];
    this.queuedEvents = undefined;
    this.queuedBytes = 0;
    this.release(released);
    this.hooks.failed(err, failed);
  }

  private release(bytes: number): void {
    this.rendered -= bytes;
    this.ctx.budget.release(bytes);
  }
}
