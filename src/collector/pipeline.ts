import { ClogsError } from '../errors.js';
import type { Sink, SyncOptions, WriteOptions } from '../sinks/sink.js';
import { EncodedBatch } from './encoded.js';
import type { LogEvent } from './event.js';

/**
 * Reads the batch's lines before it returns (copying what it keeps): the input
 * may then reuse them (chunk-pool.ts). It must not throw: the batch is
 * durable in every sink by then, and a failed write would make the input
 * send it again.
 */
export type Subscriber = (batch: EncodedBatch) => void;

/**
 * inputs → (normalized events) → every sink.
 *
 * Only one thing travels back: the promise that the batch is durable everywhere
 * (or, for a deferred write, written everywhere, durable after the next
 * `sync()`), which inputs turn into a forward ack or a Docker checkpoint. Live
 * subscribers (`/tail`) see events once every sink has them, so a line shown
 * live is a line that is also in the store.
 */
export class Pipeline {
  private readonly subscribers = new Set<Subscriber>();
  private seq: number;
  /** Writes and syncs under way on the running sinks. */
  private busy = 0;
  /** Called when `busy` comes to 0, while replaceSinks waits for that. */
  private idle: (() => void) | undefined;
  /** While the sinks are replaced: writes and syncs wait for it. */
  private replacing: Promise<void> | undefined;
  /** Why sinks replaced earlier failed to close, for the next sync (see replaceSinks). */
  private closeFailure: unknown = undefined;
  /** Why the sinks of the last replace did not start: until the next, nothing takes a write. */
  private notStarted: unknown = undefined;

  constructor(private sinks: readonly Sink[] = []) {
    // Starts from the wall clock in microseconds so sequence numbers keep
    // increasing across restarts (events of one source never go backwards).
    this.seq = Date.now() * 1000;
  }

  /** The next per-process sequence number; see ClogsFields.seq. */
  nextSeq(): number {
    return this.seq++;
  }

  /** Events are rendered here once, if an input did not render them, and everyone downstream takes the lines. */
  async write(input: readonly LogEvent[] | EncodedBatch, opts?: WriteOptions): Promise<void> {
    if (!(input instanceof EncodedBatch) && input.length === 0) return;
    const batch = input instanceof EncodedBatch ? input : EncodedBatch.of(input);
    while (this.replacing) await this.replacing;
    const sinks = this.running();
    this.busy++;
    try {
      if (sinks.length === 1) await sinks[0]!.write(batch, opts);
      else await allOf(sinks.map((s) => s.write(batch, opts)));
    } finally {
      this.settled();
    }
    for (const fn of this.subscribers) fn(batch);
  }

  /** Makes every deferred write resolved so far durable in every sink. */
  async sync(opts?: SyncOptions): Promise<void> {
    while (this.replacing) await this.replacing;
    const lost = this.closeFailure;
    if (lost !== undefined && opts?.background !== true) {
      this.closeFailure = undefined;
      throw lost;
    }
    const sinks = this.running();
    this.busy++;
    try {
      await allOf(sinks.map((s) => s.sync?.(opts)));
    } finally {
      this.settled();
    }
  }

  subscribe(fn: Subscriber): () => void {
    this.subscribers.add(fn);
    return () => this.subscribers.delete(fn);
  }

  get sinkList(): readonly Sink[] {
    return this.sinks;
  }

  /**
   * Replaces the sinks under running inputs (a start, a reload, a stop):
   * holds new writes and syncs, lets those under way finish on the running
   * sinks, makes the deferred writes of those not in `keep` durable and
   * closes them, then takes the sinks `open` returns (`keep` and the ones it
   * started) and lets the held writes go to them. The inputs only feel a
   * pause, as from a slow sink. While no sink runs (`open` rejected, or
   * returned none), writes and syncs reject. When a closed sink's last sync
   * fails, deferred writes may be lost: the next sync that is not in the
   * background fails with that error, so the input that deferred them (the
   * Docker input) reads them again instead of moving its checkpoint past
   * them. Returns why closed sinks failed to sync or close.
   */
  async replaceSinks(keep: readonly Sink[], open: () => Promise<readonly Sink[]>): Promise<unknown[]> {
    while (this.replacing) await this.replacing;
    let release!: () => void;
    this.replacing = new Promise<void>((resolve) => (release = resolve));
    try {
      if (this.busy > 0) await new Promise<void>((resolve) => (this.idle = resolve));
      this.idle = undefined;
      const retired = this.sinks.filter((s) => !keep.includes(s));
      // Until `open` returns, the kept sinks are the running ones: a later replace closes them.
      this.sinks = keep;
      // Not in the background: a sync failure a sink holds for the next caller is taken here.
      const synced = rejections(await Promise.allSettled(retired.map((s) => s.sync?.())));
      if (synced.length > 0) this.closeFailure = synced[0];
      const failures = [...synced, ...rejections(await Promise.allSettled(retired.map((s) => s.close())))];
      this.notStarted = undefined;
      try {
        this.sinks = await open();
      } catch (err) {
        this.notStarted = err;
        throw err;
      }
      return failures;
    } finally {
      this.replacing = undefined;
      release();
    }
  }

  /** Whether writes wait for the sinks to be replaced, for /readyz. */
  get isReplacing(): boolean {
    return this.replacing !== undefined;
  }

  private running(): readonly Sink[] {
    const err = this.notStarted;
    // Only kept sinks run then: a write they took would be acked without the others.
    if (err !== undefined) throw new ClogsError('CLOGS_SINK', `the sinks did not start: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    if (this.sinks.length === 0) throw new ClogsError('CLOGS_SINK', 'no sink runs');
    return this.sinks;
  }

  private settled(): void {
    if (--this.busy === 0) this.idle?.();
  }
}

/**
 * Settles once every sink did, with the first failure: a sink still writing
 * when another failed keeps the batch's memory and must not be closed under
 * that write (replaceSinks waits for it).
 */
async function allOf(pending: (Promise<unknown> | undefined)[]): Promise<void> {
  const failed = rejections(await Promise.allSettled(pending));
  if (failed.length > 0) throw failed[0];
}

function rejections(settled: PromiseSettledResult<unknown>[]): unknown[] {
  return settled.flatMap((c) => (c.status === 'rejected' ? [c.reason as unknown] : []));
}
