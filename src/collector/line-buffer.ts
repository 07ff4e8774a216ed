/**
 * Bytes of whole NDJSON lines, encoded straight into Buffers. Measured: building
 * one string per batch and converting it with Buffer.from at the end cost about
 * as much as the encoding itself (V8 flattens the concatenation ropes, then
 * encodes UTF-8), 2.6 to 3.3 µs per event in all against about 2.0 µs when each
 * piece is written once, where it stays (bench/file-sink.bench.ts).
 *
 * A line never spans two chunks, so a chunk can be cut at any "\n" in it
 * (rotation by size cuts on line boundaries).
 */
import type { ChunkPool } from './chunk-pool.js';

/**
 * Under half of Buffer.poolSize, so the first chunk is a slice of node's
 * shared pool rather than an ArrayBuffer of its own. Measured (bench/docker.bench.ts
 * rate, 100 containers): a batch holds one small source per container per
 * 100 ms cycle, and an ArrayBuffer each kept the garbage collector's threads
 * busy out of proportion to the bytes.
 */
const FIRST_CHUNK = 2 * 1024;
const MAX_CHUNK = 256 * 1024;
const EMPTY = Buffer.alloc(0);

/** Where a batch's buffers take their chunks, and the list of those taken, to be given back with the batch (chunk-pool.ts). */
export interface PooledChunks {
  pool: ChunkPool;
  taken: Array<Buffer<ArrayBuffer>>;
}

export class LineBuffer {
  private readonly chunks: Buffer[] = [];
  /** Allocated at the first byte written: a buffer that only takes `lines()` never needs one. */
  private chunk = EMPTY;
  /** A DataView of `chunk`, made once per chunk when asked for. */
  private chunkView: DataView | undefined;
  /** Where the next byte goes in the chunk room() returns. */
  offset = 0;
  private lineStart = 0;
  /** Bytes of the complete lines held. */
  bytes = 0;

  /** `tally`: counts the bytes of complete lines added here, shared by the buffers of one batch. */
  constructor(
    private readonly firstChunk = FIRST_CHUNK,
    private readonly tally?: { bytes: number },
    private readonly pooled?: PooledChunks,
  ) {}

  text(s: string): void {
    // A UTF-16 code unit takes at most 3 bytes in UTF-8.
    if (this.chunk.length - this.offset < s.length * 3) this.grow(s.length * 3);
    this.offset += this.chunk.write(s, this.offset);
  }

  raw(b: Buffer): void {
    if (this.chunk.length - this.offset < b.length) this.grow(b.length);
    this.offset += b.copy(this.chunk, this.offset);
  }

  /**
   * The chunk with room for `n` more bytes at `offset`, for a caller that
   * writes bytes itself and then moves `offset` past them.
   */
  room(n: number): Buffer {
    if (this.chunk.length - this.offset < n) this.grow(n);
    return this.chunk;
  }

  /**
   * A DataView of the chunk room() returned, for a caller that writes four
   * bytes at a time: one per chunk, not one per line, when lines go to many
   * buffers in turn (one per container).
   */
  get view(): DataView {
    return (this.chunkView ??= new DataView(this.chunk.buffer, this.chunk.byteOffset, this.chunk.byteLength));
  }

  /** Adds chunks of whole lines after the lines held, without copying them. */
  lines(chunks: readonly Buffer[], bytes: number): void {
    if (this.lineStart > 0) {
      this.chunks.push(this.chunk.subarray(0, this.lineStart));
      this.chunk = this.chunk.subarray(this.lineStart);
      this.chunkView = undefined;
      this.offset -= this.lineStart;
      this.lineStart = 0;
    }
    for (const c of chunks) this.chunks.push(c);
    this.bytes += bytes;
    if (this.tally) this.tally.bytes += bytes;
  }

  /** Bytes of the line being written, so far. */
  get lineBytes(): number {
    return this.offset - this.lineStart;
  }

  /** Marks the bytes written so far (ending in "\n") as a complete line. */
  endLine(): void {
    const n = this.offset - this.lineStart;
    this.bytes += n;
    if (this.tally) this.tally.bytes += n;
    this.lineStart = this.offset;
  }

  /** Forgets what was written since the last complete line. */
  dropPartialLine(): void {
    this.offset = this.lineStart;
  }

  /** The complete lines, in order; the buffer is empty afterwards. */
  take(): Buffer[] {
    const out = this.chunks.splice(0);
    if (this.lineStart > 0) out.push(this.chunk.subarray(0, this.lineStart));
    this.chunk = this.chunk.subarray(this.lineStart);
    this.chunkView = undefined;
    this.offset -= this.lineStart;
    this.lineStart = 0;
    this.bytes = 0;
    return out;
  }

  /** Moves the line being written to a new chunk with room for `need` more bytes. */
  private grow(need: number): void {
    const partial = this.offset - this.lineStart;
    const size = Math.max(this.chunk.length === 0 ? this.firstChunk : Math.min(this.chunk.length * 2, MAX_CHUNK), partial + need);
    const pooled = this.pooled;
    let next: Buffer<ArrayBuffer>;
    if (pooled !== undefined && pooled.pool.keeps(size)) {
      next = pooled.pool.take(size);
      pooled.taken.push(next);
    } else next = Buffer.allocUnsafe(size);
    this.chunk.copy(next, 0, this.lineStart, this.offset);
    if (this.lineStart > 0) this.chunks.push(this.chunk.subarray(0, this.lineStart));
    this.chunk = next;
    this.chunkView = undefined;
    this.offset = partial;
    this.lineStart = 0;
  }
}
