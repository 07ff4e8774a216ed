/**
 * Cuts a TCP byte stream into whole msgpack objects (the forward protocol has
 * no length prefix: requests are msgpack values back to back).
 *
 * Each byte is looked at once or twice, however the stream is split: the scan
 * keeps its place (items still to read, payload bytes still to skip, a length
 * field cut in two) between reads, so a client sending one byte at a time
 * costs about the same as one sending the whole request at once; only the
 * part of a request in the read where it starts may be read twice, first by
 * the quicker scan of a request the read holds whole (msgpack-bytes.ts
 * valueEnd()).
 * Payloads (str, bin, ext) are skipped, not read: a PackedForward request is
 * a handful of headers and one skip. A request that ends inside the current
 * read is handed out as a view of that read, with no copy; one that spans
 * reads is copied into a buffer sized from its declared lengths, which is
 * reused for a spanning request that starts in a later read: such a request
 * is valid only until the next push().
 * Measured: reusing it cut the collector's peak Buffer memory (arrayBuffers)
 * from 80 MB to 41 MB on the PackedForward benchmark, where every request
 * spans reads. Back-to-back requests (the next starts in the read that ends
 * this one) get a new buffer, and one whose declared payload is followed by
 * more items grows once: copying each once into two buffers taking turns
 * scavenged less than half as often and raised the benchmark's peak RSS
 * from 139-140 MB to 146-147, for no throughput seen (git log 3ca922b).
 *
 * Bounded: no request may exceed `maxFrameSize`, and a declared length or item
 * count that could not fit is rejected when its header is read, before any
 * buffer is grown for it.
 */
import { ClogsError } from '../../errors.js';
import { COUNT_MAP, FIXED_PAYLOAD, headerKind, LEN_EXT, LEN_PAYLOAD, LENGTH_FIELD_BYTES, valueEnd } from '../msgpack-bytes.js';

/** Growth step when the final size of a spanning request is not declared yet. */
const MIN_HOLD = 16 * 1024;
/** Never allocate more than this ahead of the bytes actually received, whatever the declared length. */
const MAX_AHEAD = 1024 * 1024;
/** A buffer larger than this is not kept for reuse once its request is handed out. */
const MAX_REUSE = 1024 * 1024;

export class Framer {
  /** Items (array elements, map keys and values) still to read in the current request. */
  private remaining = 0;
  /** Payload bytes still to skip. */
  private skip = 0;
  /** Length or count bytes still to read, their value so far, and what they are for. */
  private hdrNeed = 0;
  private hdrVal = 0;
  private hdrKind = 0;
  /** Bytes of the current request seen so far. */
  private frameLen = 0;
  private inFrame = false;
  /** The current request's bytes when it spans reads. */
  private held: Buffer | undefined;
  private heldLen = 0;
  /** The buffer of a request handed out by the current push(), reusable from the next. */
  private lent: Buffer | undefined;
  private spare: Buffer | undefined;
  /**
   * Where, in the `out` of the last push(), the requests handed out as views
   * of its chunk begin: those from there on lie back to back in it.
   */
  viewsFrom = 0;

  constructor(private readonly maxFrameSize: number) {}

  /** Bytes of an unfinished request held in memory (at most `maxFrameSize`). */
  get buffered(): number {
    return this.heldLen;
  }

  /** Whether the stream so far stops inside a request. */
  get midFrame(): boolean {
    return this.inFrame;
  }

  /** A copy of what was read of the request the stream stops inside (empty when none), for a reader that takes the stream over. */
  unfinished(): Buffer {
    return this.inFrame && this.held !== undefined ? Buffer.from(this.held.subarray(0, this.heldLen)) : Buffer.alloc(0);
  }

  /**
   * Whether a request the last push() handed out stays valid after the next
   * one: false only for one in the buffer kept for reuse.
   */
  lasts(request: Buffer): boolean {
    const lent = this.lent;
    return lent === undefined || lent.length > MAX_REUSE || request.buffer !== lent.buffer;
  }

  /**
   * Appends every request completed by `chunk` to `out`. Throws a ClogsError
   * (`CLOGS_FRAME_TOO_LARGE`, `CLOGS_FRAME_MALFORMED`) when the stream can no
   * longer be a valid sequence of requests; requests completed before the bad
   * one are in `out` by then. Requests are valid until the next push(): copy
   * one to keep it longer.
   */
  push(chunk: Buffer, out: Buffer[]): void {
    const at = this.finish(chunk, out);
    if (at < chunk.length) this.cut(chunk, at, out);
  }

  /**
   * The first half of push(): appends the request the last read left
   * unfinished, when `chunk` completes it, and returns where the next one
   * begins in `chunk` (its length when that request goes on past it, or when
   * there was none: 0). A reader may take whole requests from there itself
   * before it hands cut() the rest.
   */
  finish(chunk: Buffer, out: Buffer[]): number {
    if (this.lent !== undefined) {
      if (this.lent.length <= MAX_REUSE) this.spare = this.lent;
      this.lent = undefined;
    }
    this.viewsFrom = out.length;
    if (!this.inFrame) return 0;
    const stop = this.goOn(chunk, 0, out);
    return stop < 0 ? chunk.length : stop;
  }

  /** The second half of push(): appends the requests completed by `chunk` from `from`, where one begins. Throws as push() does. */
  cut(chunk: Buffer, from: number, out: Buffer[]): void {
    const end = chunk.length;
    // Views of the chunk are made from its memory: Buffer.from() on it takes
    // ~40 ns a view, subarray() ~58 (a request each in Message mode).
    const memory = chunk.buffer;
    const offset = chunk.byteOffset;
    let pos = from;
    this.viewsFrom = out.length;
    while (pos < end) {
      const stop = valueEnd(chunk, pos, end);
      if (stop >= 0 && stop - pos <= this.maxFrameSize) {
        out.push(Buffer.from(memory, offset + pos, stop - pos));
        pos = stop;
        continue;
      }
      this.inFrame = true;
      this.remaining = 1;
      this.frameLen = 0;
      pos = this.goOn(chunk, pos, out);
      if (pos < 0) return;
    }
  }

  /** Reads on in the request in progress from `pos`: appends it to `out` and returns where it ends, or -1 when it goes on past `chunk` (held). */
  private goOn(chunk: Buffer, pos: number, out: Buffer[]): number {
    const end = chunk.length;
    const start = pos;
    const stop = this.scan(chunk, pos, end, this.frameLen - start);
    if (stop < 0) {
      this.frameLen += end - start;
      this.hold(chunk, start, end);
      return -1;
    }
    this.frameLen += stop - start;
    this.inFrame = false;
    if (this.heldLen > 0) {
      this.hold(chunk, start, stop);
      out.push(this.held!.subarray(0, this.heldLen));
      this.viewsFrom = out.length;
      this.lent = this.held;
      this.held = undefined;
      this.heldLen = 0;
    } else {
      out.push(Buffer.from(chunk.buffer, chunk.byteOffset + start, stop - start));
    }
    return stop;
  }

  /**
   * Scans from `pos`; returns where the current request ends, or -1 when it
   * goes on past `end`. `base + pos` is the offset in the request.
   */
  private scan(buf: Buffer, pos: number, end: number, base: number): number {
    const max = this.maxFrameSize;
    for (;;) {
      if (this.hdrNeed > 0) {
        while (this.hdrNeed > 0) {
          if (pos >= end) return -1;
          this.hdrVal = this.hdrVal * 256 + buf[pos++]!;
          this.hdrNeed--;
        }
        const n = this.hdrVal;
        const kind = this.hdrKind;
        if (kind === LEN_PAYLOAD || kind === LEN_EXT) {
          this.skip = kind === LEN_EXT ? n + 1 : n;
          if (base + pos + this.skip > max) throw tooLarge(base + pos + this.skip, max);
        } else {
          this.addItems(kind === COUNT_MAP ? n * 2 : n, base + pos);
        }
      }
      if (this.skip > 0) {
        if (end - pos < this.skip) {
          this.skip -= end - pos;
          return -1;
        }
        pos += this.skip;
        this.skip = 0;
      }
      if (this.remaining === 0) return pos;
      if (pos >= end) return -1;
      this.remaining--;
      const b = buf[pos++]!;
      const fixed = FIXED_PAYLOAD[b]!;
      if (fixed >= 0) {
        this.skip = fixed;
      } else if (b <= 0x8f) {
        this.addItems((b & 0x0f) * 2, base + pos);
      } else if (b <= 0x9f) {
        this.addItems(b & 0x0f, base + pos);
      } else if (b <= 0xbf) {
        this.skip = b & 0x1f;
      } else {
        const size = LENGTH_FIELD_BYTES[b]!;
        if (size === 0) throw new ClogsError('CLOGS_FRAME_MALFORMED', `byte 0x${b.toString(16)} at offset ${base + pos - 1} of a request is not a msgpack type`);
        this.header(headerKind(b), size);
      }
      if (base + pos + this.skip > max) throw tooLarge(base + pos + this.skip, max);
    }
  }

  private header(kind: number, bytes: number): void {
    this.hdrKind = kind;
    this.hdrNeed = bytes;
    this.hdrVal = 0;
  }

  private addItems(n: number, at: number): void {
    // Every item takes at least one byte.
    if (n > this.maxFrameSize - at) {
      throw new ClogsError('CLOGS_FRAME_TOO_LARGE', `a request declares ${n} items at offset ${at}, more than max_frame_size (${this.maxFrameSize} bytes) can hold`);
    }
    this.remaining += n;
  }

  private hold(chunk: Buffer, start: number, stop: number): void {
    const n = stop - start;
    const need = this.heldLen + n;
    if (this.held === undefined || need > this.held.length) {
      // Size from the declared payload still to come (capped, so a header
      // promising 8 MiB that never comes costs at most MAX_AHEAD), doubling otherwise.
      const declared = Math.min(need + this.skip, need + MAX_AHEAD, this.maxFrameSize);
      const size = Math.max(need, declared, Math.min((this.held?.length ?? 0) * 2, this.maxFrameSize), MIN_HOLD);
      const spare = this.spare;
      this.spare = undefined;
      const next = this.held === undefined && spare !== undefined && spare.length >= size ? spare : Buffer.allocUnsafe(size);
      if (this.held !== undefined) this.held.copy(next, 0, 0, this.heldLen);
      this.held = next;
    }
    chunk.copy(this.held, this.heldLen, start, stop);
    this.heldLen = need;
  }
}

function tooLarge(size: number, max: number): ClogsError {
  return new ClogsError('CLOGS_FRAME_TOO_LARGE', `a request of at least ${size} bytes exceeds max_frame_size (${max} bytes)`);
}
