/**
 * Queue entries (each a `create` action line and its document line) back to
 * back in one buffer, with where each one ends: the body of a bulk request
 * as it is sent. A request that is split in halves or partly sent again
 * takes its entries out of it.
 *
 * One buffer and one array of offsets per batch, not a Buffer per entry:
 * batches wait for Elasticsearch long enough to be promoted, and 5,000
 * small objects per request in the old generation, copied into a body at
 * every send, were work for the garbage collector and the main thread alike.
 */
export class BulkEntries {
  /** `ends[i]`: where entry i ends in `body`; entry 0 starts at 0. */
  constructor(
    readonly body: Buffer,
    private readonly ends: readonly number[],
  ) {}

  get length(): number {
    return this.ends.length;
  }

  entry(i: number): Buffer {
    return this.body.subarray(i === 0 ? 0 : this.ends[i - 1], this.ends[i]);
  }

  /** Entries `from` to `to` (exclusive), as a view of this body. */
  slice(from: number, to: number): BulkEntries {
    const start = from === 0 ? 0 : this.ends[from - 1]!;
    return new BulkEntries(
      this.body.subarray(start, this.ends[to - 1]),
      this.ends.slice(from, to).map((end) => end - start),
    );
  }

  /** These entries, in this order, copied into a body of their own. */
  pick(indices: readonly number[]): BulkEntries {
    const parts = indices.map((i) => this.entry(i));
    const ends: number[] = [];
    let end = 0;
    for (const p of parts) ends.push((end += p.length));
    return new BulkEntries(Buffer.concat(parts, end), ends);
  }
}
