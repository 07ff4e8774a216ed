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

  constructor(private sinks: readonly Sink[]) {
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
    if (this.sinks.length === 1) await this.sinks[0]!.write(batch, opts);
    else await Promise.all(this.sinks.map((s) => s.write(batch, opts)));
    for (const fn of this.subscribers) fn(batch);
  }

  /** Makes every deferred write resolved so far durable in every sink. */
  async sync(opts?: SyncOptions): Promise<void> {
    await Promise.all(this.sinks.map((s) => s.sync?.(opts)));
  }

  subscribe(fn: Subscriber): () => void {
    this.subscribers.add(fn);
    return () => this.subscribers.delete(fn);
  }

  get sinkList(): readonly Sink[] {
    return this.sinks;
  }

  /** On reload: later writes go to the new sinks; writes under way finish on the old ones. */
  replaceSinks(sinks: readonly Sink[]): void {
    this.sinks = sinks;
  }
}
