import type { Sink } from '../sinks/sink.js';
import { EncodedBatch } from './encoded.js';
import type { LogEvent } from './event.js';

/**
 * inputs → (normalized events) → every sink.
 *
 * Only one thing travels back: the promise that the batch is durable everywhere,
 * which inputs turn into a forward ack or a Docker checkpoint. Live subscribers
 * (`/tail`) see events after they are durable, so a line shown live is a line
 * that is also in the store.
 */
export type Subscriber = (events: readonly LogEvent[]) => void;

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

  /**
   * Whether inputs should hand in EncodedBatches: every sink stores lines as
   * they are and nobody subscribes to objects.
   */
  takesEncoded(): boolean {
    return this.subscribers.size === 0 && this.sinks.every((s) => s.writeEncoded !== undefined);
  }

  async write(batch: readonly LogEvent[] | EncodedBatch): Promise<void> {
    if (batch instanceof EncodedBatch) {
      await Promise.all(this.sinks.map((s) => (s.writeEncoded ? s.writeEncoded(batch) : s.write(batch.events()))));
      if (this.subscribers.size > 0) this.publish(batch.events());
      return;
    }
    if (batch.length === 0) return;
    if (this.sinks.length === 1) await this.sinks[0]!.write(batch);
    else await Promise.all(this.sinks.map((s) => s.write(batch)));
    this.publish(batch);
  }

  private publish(events: readonly LogEvent[]): void {
    for (const fn of this.subscribers) fn(events);
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
