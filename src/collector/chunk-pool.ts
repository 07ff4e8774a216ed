/**
 * Line buffers' chunks (line-buffer.ts), given back once a batch is durable
 * and taken again by the next batches, so an input that renders far more than
 * it reads does not leave a trail of dead Buffers behind it.
 *
 * Why: a rendered chunk lives from its slice until its write is durable,
 * long enough to be promoted to V8's old generation, where its ArrayBuffer is
 * freed only by a full collection; V8 starts one for external memory only
 * after about 64 MiB more of it. Measured on bench/forward.bench.ts tiny
 * (two connections of `[0, {}]` entries): external memory went up and down
 * between 40 and 97 MB while 8 MiB of lines were in flight.
 *
 * Only chunks of the sizes a LineBuffer grows through (powers of two from
 * 1 KiB) are kept, at most `maxBytes` of them; anything else is left to the
 * garbage collector. The owner of a batch gives its chunks back
 * (EncodedBatch.recycle) only when no sink or reader holds a line of it.
 *
 * The Elasticsearch queue's BufferPool does the same for its request bodies,
 * but lends the first free buffer large enough and bounds their count: a
 * line buffer's first 2 KiB chunk would then take a 256 KiB one, so these
 * are kept by exact size and bounded in bytes.
 */
export class ChunkPool {
  /** Free chunks by their size. */
  private readonly free = new Map<number, Array<Buffer<ArrayBuffer>>>();
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  /** Bytes of the chunks kept for reuse. */
  get held(): number {
    return this.bytes;
  }

  /** Whether chunks of `size` bytes are kept here: a size class. */
  keeps(size: number): boolean {
    return size >= 1024 && (size & (size - 1)) === 0;
  }

  /** A chunk of `size` bytes, reused when one is free. */
  take(size: number): Buffer<ArrayBuffer> {
    const chunk = this.free.get(size)?.pop();
    if (chunk === undefined) return Buffer.allocUnsafe(size);
    this.bytes -= size;
    return chunk;
  }

  /** `chunk` (from take()) is no longer read by anyone. */
  give(chunk: Buffer<ArrayBuffer>): void {
    if (this.bytes + chunk.length > this.maxBytes) return;
    let list = this.free.get(chunk.length);
    if (list === undefined) this.free.set(chunk.length, (list = []));
    list.push(chunk);
    this.bytes += chunk.length;
  }
}
