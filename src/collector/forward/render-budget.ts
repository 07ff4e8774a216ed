/**
 * The forward input's memory bound: the bytes of events that its
 * connections have rendered and not yet seen durable. Wire bytes say little
 * about memory: a 3-byte record `[0,{}]` renders to a line of about 150
 * bytes, so the bound is kept on what requests become.
 *
 * A request is rendered in slices (slices.ts). A connection renders its next
 * slice only while it holds less than MAX_IN_FLIGHT_BYTES, and only while
 * the total of all connections is below the budget's limit; otherwise it
 * waits its turn (first come, first served). Rendering is synchronous, so
 * the total stays below the limit plus one slice.
 *
 * A slice of a request with a chunk id stays in flight until the progress it
 * brings is stored (progress.ts), not only until it is durable: released at
 * durability, it would let the next slices be written while progress
 * records lag behind, and after a crash a resend would find its written
 * records neither in the progress store nor in the last 16 MiB that the file
 * sink's replay guard reads.
 */
import { forwardRenderedBytes } from '../../metrics.js';

/**
 * Rendered, undurable bytes per connection before it stops rendering; with
 * the requests it read and holds, before it stops reading too. Four slices:
 * one rendering, others being written and synced. Measured (bench packed,
 * paired runs, with 1 MiB slices): the same records/s as with 8 MiB and 2 MiB
 * slices, peak RSS 128-130 MB against 154; Message mode within noise (3
 * pairs); 10,000 records a slice kept, since 2,500 cost Message mode a sixth.
 */
export const MAX_IN_FLIGHT_BYTES = 4 * 1024 * 1024;
/**
 * A slice: at most this many records, and a record more once its lines passed
 * SLICE_BYTES. Records, as the fast path reads ahead that many (40 bytes each).
 */
export const SLICE_ENTRIES = 10_000;
export const SLICE_BYTES = 1024 * 1024;

/**
 * The forward input's limit: with slices of 1 MiB and 4 MiB per connection,
 * two connections at full speed; more share it. Measured (bench tiny, 500
 * connections at once): with 32 MiB, peak RSS 238 MB; with 16 MiB, 189 MB;
 * below that the JS heap's garbage, not the rendered bytes, set the peak
 * (178-259 MB run to run with either 16 or 8 MiB) until rendered chunks were
 * reused (chunk-pool.ts) and the young generation grew at once (clogs.cts).
 */
export const RENDER_BUDGET_BYTES = 8 * 1024 * 1024;

export class RenderBudget {
  private used = 0;
  private highest = 0;
  private waiters: Array<() => void> = [];
  private draining = false;
  /** True while a waiter is being resumed: its turn, ahead of those behind it. */
  private turn = false;

  constructor(readonly limit: number) {}

  /** Bytes in flight now. */
  get inFlight(): number {
    return this.used;
  }

  /** The most bytes ever in flight at once. */
  get peak(): number {
    return this.highest;
  }

  /** Whether a connection may render another slice now. */
  available(): boolean {
    return this.used < this.limit && (this.waiters.length === 0 || this.turn);
  }

  take(bytes: number): void {
    this.used += bytes;
    if (this.used > this.highest) this.highest = this.used;
    forwardRenderedBytes.set(this.used);
  }

  release(bytes: number): void {
    this.used -= bytes;
    forwardRenderedBytes.set(this.used);
    if (this.waiters.length > 0 && !this.draining) {
      this.draining = true;
      // Not from inside the caller's own bookkeeping: a waiter renders and hands out writes.
      queueMicrotask(() => this.drain());
    }
  }

  /** Calls `resume` once the budget has room, after those that waited before. */
  wait(resume: () => void): void {
    this.waiters.push(resume);
  }

  private drain(): void {
    this.draining = false;
    while (this.used < this.limit && this.waiters.length > 0) {
      const resume = this.waiters.shift()!;
      this.turn = true;
      try {
        resume();
      } finally {
        this.turn = false;
      }
    }
  }
}
