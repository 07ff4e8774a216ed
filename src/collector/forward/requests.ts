/**
 * One connection's requests: cut from the bytes read (framer.ts), decoded
 * (decoder.ts), rendered slice by slice (slices.ts) and written and acked
 * (writes.ts), in the order they came.
 *
 * Every request is read through once before its first slice, so a malformed
 * one is refused whole: requests before it are still written and acked,
 * nothing after it is read. A resent chunk that is written already, or
 * being written, is acked without being written again (acks.ts); a metrics
 * or traces request (fluent_signal) is acked and dropped. A gzip chunk
 * inflates off the main thread while the requests behind it wait, in order.
 */
import { performance } from 'node:perf_hooks';
import { gunzip } from 'node:zlib';
import { ClogsError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { LogEvent } from '../event.js';
import { chunkKey, type PendingChunk } from './acks.js';
import { DecodeCache, decodeRequest } from './decoder.js';
import { Framer } from './framer.js';
import { FLUENT_SIGNAL_LOGS, type DecodeLimits, type ForwardOption } from './messages.js';
import { MAX_IN_FLIGHT_BYTES, SLICE_BYTES, SLICE_ENTRIES } from './render-budget.js';
import { SliceRenderer, type SliceContext, type TaggedStream } from './slices.js';
import { WriteQueue, type Job, type WriteContext, type WriteHooks } from './writes.js';

export interface RequestContext extends SliceContext, WriteContext {
  limits: DecodeLimits;
  /** Writes events the Normalizer let go outside any request, then forgets the stored lines of `traces` (ids). */
  writeHeld(events: LogEvent[], traces: readonly string[]): void;
}

export interface RequestHooks extends WriteHooks {
  /** With a handshake: takes the connection's first request, the client's PING. */
  ping: ((frame: Buffer) => void) | undefined;
  /** Bad input (malformed or over-limit request): nothing after it is read. */
  bad(err: unknown): void;
}

export class RequestReader {
  private readonly framer: Framer;
  private readonly cache = new DecodeCache();
  private readonly writes: WriteQueue;
  private readonly slices: SliceRenderer;
  private ping: ((frame: Buffer) => void) | undefined;
  /** When the bytes being processed were read. */
  private readAt = 0;
  /** Requests cut but not decoded yet: more than one only while a gzip chunk inflates or a request is rendered. */
  private frames: Buffer[] = [];
  /**
   * Per frame, 1 when it lies right after the frame before it in the same
   * bytes (a run of Message-mode requests is then one view of them). Kept
   * from what the Framer says, not from the views' `buffer` and `byteOffset`:
   * each read of those is a call to V8's generic load IC (byte-copy.ts).
   */
  private joined: number[] = [];
  private frameIdx = 0;
  private frameBytes = 0;
  private inflating = false;
  private stopped = false;
  /** A request was refused: nothing after it is taken. */
  private refused = false;
  /** Resends taken whose first copy is still being written (see waitFor). */
  private waiting = 0;

  constructor(
    private readonly ctx: RequestContext,
    private readonly hooks: RequestHooks,
    private readonly log: Logger,
  ) {
    this.framer = new Framer(ctx.limits.maxFrameSize);
    this.ping = hooks.ping;
    this.writes = new WriteQueue(ctx, { ack: hooks.ack, wake: hooks.wake, failed: (err, jobs) => this.writeFailed(err, jobs) }, log);
    this.slices = new SliceRenderer(ctx, this.writes, hooks.wake);
  }

  /** Bytes of a request whose end has not been read yet. */
  get buffered(): number {
    return this.framer.buffered;
  }

  get midFrame(): boolean {
    return this.framer.midFrame;
  }

  /** What was read of a request not finished yet (Framer.unfinished()). */
  unfinished(): Buffer {
    return this.framer.unfinished();
  }

  /**
   * Whether reading should stop: while a request is being rendered, while a
   * resend waits for its first copy, and above MAX_IN_FLIGHT_BYTES of what
   * this connection holds.
   */
  get full(): boolean {
    return this.slices.rendering || this.waiting > 0 || this.writes.held + this.frameBytes > MAX_IN_FLIGHT_BYTES;
  }

  /** Whether no request waits to be decoded, rendered, written or acked. */
  get idle(): boolean {
    return this.writes.idle && this.slices.idle && !this.inflating && this.frameIdx >= this.frames.length;
  }

  /** Takes the bytes read: the requests they complete are handled as far as the bounds allow. */
  read(chunk: Buffer): void {
    this.readAt = performance.now();
    // The requests this read completes, from here on.
    let keepFrom = this.frames.length;
    let from = keepFrom;
    let error: unknown;
    try {
      const at = this.framer.finish(chunk, this.frames);
      from = this.noteFrames(from);
      if (at < chunk.length) {
        // The request the last read cut, and those before it, go before the ones behind it.
        this.process();
        keepFrom = Math.min(keepFrom, this.frames.length);
        from = Math.min(from, this.frames.length);
        const rest = this.takeMessages(chunk, at);
        if (!this.stopped && !this.refused) this.framer.cut(chunk, rest, this.frames);
      }
    } catch (err) {
      error = err;
    }
    // Requests completed before a broken one are still good.
    this.noteFrames(from);
    this.process();
    // Requests waiting behind a gzip chunk or a request being rendered outlive
    // this read: the Framer may reuse their bytes.
    keepFrames(this.frames, this.joined, Math.max(keepFrom, this.frameIdx));
    this.slices.keep((entries) => this.framer.lasts(entries));
    if (error !== undefined) this.hooks.bad(error);
    this.flush();
  }

  /** Counts in the requests the Framer appended from `from` on, and notes which lie right after the one before; returns where the next will go. */
  private noteFrames(from: number): number {
    const viewsFrom = this.framer.viewsFrom;
    for (let i = from; i < this.frames.length; i++) {
      this.frameBytes += this.frames[i]!.length;
      this.joined[i] = i > viewsFrom ? 1 : 0;
    }
    return this.frames.length;
  }

  /**
   * Renders the Message-mode requests of `chunk` from `at` that it holds
   * whole, straight from its bytes, as acceptMessages() does with the
   * Framer's requests, and returns where the rest, for the Framer, begins.
   * Only while nothing read before waits, and within the bounds. Measured in
   * process (Docker's shape, the bench's lines): the Framer's reading and a
   * view for each request were about 90 of the 1,600 ns a record cost.
   */
  private takeMessages(chunk: Buffer, at: number): number {
    if (this.ping !== undefined || this.stopped || this.refused || this.inflating || this.frameIdx < this.frames.length) return at;
    // No request taken here is larger than `chunk`, so none is larger than the Framer allows.
    if (chunk.length > this.ctx.limits.maxFrameSize) return at;
    while (at < chunk.length && isMessageHead(chunk[at]) && !this.slices.rendering && !this.full) {
      let stream: TaggedStream;
      try {
        stream = this.slices.checkMessages(chunk.subarray(at, at + SLICE_BYTES));
      } catch {
        // Malformed: left to the Framer, and refused with its reason once those before it are written.
        break;
      }
      if (stream.entries.length === 0) break;
      at += stream.entries.length;
      this.startMessages(stream);
      this.process();
    }
    return at;
  }

  /** Goes on with what waits, as far as the bounds allow. */
  run(): void {
    this.process();
    this.flush();
  }

  /**
   * The request being taken was refused: those after it are dropped, those
   * before it still go on (the connection reads nothing more).
   */
  private refuse(err: unknown): void {
    this.refused = true;
    for (let i = this.frameIdx; i < this.frames.length; i++) this.frameBytes -= this.frames[i]!.length;
    this.frames.length = this.frameIdx;
    this.joined.length = this.frameIdx;
    this.hooks.bad(err);
  }

  /** Reads no further request: those not decoded yet are dropped. */
  stop(): void {
    this.stopped = true;
    this.frames.length = 0;
    this.joined.length = 0;
    this.frameIdx = 0;
    this.frameBytes = 0;
  }

  /** Renders the current request's slices while the bounds allow, then the requests behind it. */
  private process(): void {
    for (;;) {
      if (this.slices.rendering) {
        let more: boolean;
        try {
          more = this.slices.next();
        } catch (err) {
          // Every record was read before any was rendered (slices.check()):
          // this is clogs's fault, not the client's, but it costs that
          // connection, never the process.
          const job = this.slices.drop();
          if (job !== undefined) this.writes.abandon([job]);
          this.refuse(err);
          break;
        }
        if (!more) break;
        // A slice goes out as it comes; whole requests go out together after the loop.
        if (this.slices.rendering) this.flush();
        continue;
      }
      if (this.frameIdx >= this.frames.length || this.inflating || this.stopped || this.waiting > 0) break;
      const frame = this.frames[this.frameIdx++]!;
      this.frameBytes -= frame.length;
      try {
        if (!this.acceptMessages(frame)) this.handleFrame(frame);
      } catch (err) {
        this.refuse(err);
      }
    }
    if (this.frameIdx === this.frames.length) {
      this.frames.length = 0;
      this.joined.length = 0;
      this.frameIdx = 0;
    }
  }

  /** Hands what is rendered to the pipeline. */
  private flush(): void {
    this.writes.flush(this.slices.progress());
  }

  private handleFrame(frame: Buffer): void {
    const ping = this.ping;
    if (ping !== undefined) {
      this.ping = undefined;
      ping(frame);
      return;
    }
    const receivedAt = this.readAt;
    const msg = decodeRequest(frame, this.ctx.limits, this.cache);
    if (msg.mode === 'Heartbeat') return;
    // Keyed on the bytes as received: what a resend repeats byte for byte.
    const chunk = msg.option.chunk;
    const key = chunk === undefined ? undefined : chunkKey(chunk, frame);
    switch (msg.mode) {
      case 'Message':
        this.accept({ tag: msg.tag, entries: msg.entry }, msg.option, key, receivedAt, false);
        return;
      case 'Forward':
      case 'PackedForward':
        this.accept({ tag: msg.tag, entries: msg.entries }, msg.option, key, receivedAt, false);
        return;
      case 'CompressedPackedForward':
        this.inflate(msg.tag, msg.entries, msg.option, key, receivedAt);
        return;
    }
  }

  /**
   * Message mode (one record per request: Docker's fluentd driver) read
   * together: `first` and the Message-mode requests right behind it in the
   * same bytes (so the run of them is one view of those bytes, with no copy)
   * are rendered as one request, each record with its own request's tag and
   * in the order they came, with one job, one write and one ack write. They
   * are read once, by the encoder as it plans them (packed-lines.ts
   * checkMessages()), which stops before a request that must go alone: one
   * with a chunk (its ledger entry and its ack are its own), another signal,
   * another mode, or a malformed one (refused on its own, after those before
   * it are written and acked). False when `first` is to go through
   * handleFrame() alone.
   */
  private acceptMessages(first: Buffer): boolean {
    if (this.ping !== undefined || !isMessageHead(first[0])) return false;
    const firstIdx = this.frameIdx - 1;
    let wire = first.length;
    let i = this.frameIdx;
    for (; i < this.frames.length && i - firstIdx < SLICE_ENTRIES && wire < SLICE_BYTES; i++) {
      const next = this.frames[i]!;
      if (!isMessageHead(next[0]) || this.joined[i] === 0) break;
      wire += next.length;
    }
    const run = i === this.frameIdx ? first : Buffer.from(first.buffer, first.byteOffset, wire);
    const stream = this.slices.checkMessages(run);
    if (stream.entries.length === 0) return false;
    for (let taken = first.length; taken < stream.entries.length; ) {
      const frame = this.frames[this.frameIdx++]!;
      this.frameBytes -= frame.length;
      taken += frame.length;
    }
    this.startMessages(stream);
    return true;
  }

  /** Renders Message-mode requests read together (checkMessages()) as one request: one job, one write. */
  private startMessages(stream: TaggedStream): void {
    this.writes.open();
    this.slices.start(newJob(undefined, this.readAt), stream, 0, false);
  }

  private inflate(tag: string, gz: Buffer, option: ForwardOption, key: string | undefined, receivedAt: number): void {
    const max = this.ctx.limits.maxFrameSize;
    this.inflating = true;
    // Off the main thread (zlib's thread pool), on a copy (the Framer may
    // reuse the request's bytes); requests behind this one wait, in order.
    gunzip(Buffer.from(gz), { maxOutputLength: max }, (err, stream) => {
      this.inflating = false;
      if (this.stopped) {
        this.hooks.wake();
        return;
      }
      try {
        if (err) {
          throw (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE'
            ? new ClogsError('CLOGS_FRAME_TOO_LARGE', `a gzip chunk inflates to more than max_frame_size (${max} bytes)`)
            : new ClogsError('CLOGS_FRAME_MALFORMED', `a gzip chunk does not inflate: ${err.message}`);
        }
        // Inflated into a buffer of its own.
        this.accept({ tag, entries: stream }, option, key, receivedAt, true);
      } catch (e) {
        this.refuse(e);
      }
      this.hooks.wake();
    });
  }

  /**
   * Takes a request of a stream of `[time, record]` entries; `key`: its
   * chunk's ledger key, when it has a chunk; `owned`: whether its stream is a
   * buffer of its own, not a view of the bytes read.
   */
  private accept(stream: TaggedStream, option: ForwardOption, key: string | undefined, receivedAt: number, owned: boolean): void {
    const job = newJob(option.chunk, receivedAt);
    const tag = stream.tag;
    if (key !== undefined) {
      const seen = this.ctx.ledger.lookup(key);
      if (seen !== undefined) {
        if (seen === true) this.log.debug({ tag }, 'chunk already written: acking the resend without writing it again');
        else {
          job.wait = seen;
          // The requests rendered before it go out without it: in its write, their bytes would be held until its first copy is written.
          this.writes.flush(undefined, true);
          this.waitFor(seen);
        }
        this.ackOnly(job);
        return;
      }
    }
    if (option.signal !== FLUENT_SIGNAL_LOGS) {
      this.log.debug({ tag, signal: option.signal }, 'dropping a metrics or traces request (fluent_signal); acking it');
      this.ackOnly(job);
      return;
    }
    this.slices.check(stream);
    let skip = 0;
    if (key !== undefined) {
      job.key = key;
      job.pending = this.ctx.ledger.begin(key);
      skip = this.ctx.progress.resumeAt(key);
      if (skip > 0) this.log.info({ tag, records: skip }, 'resent request was partly written before: going on after its written records');
    }
    this.writes.open();
    this.slices.start(job, stream, skip, owned);
  }

  /**
   * Takes no request after a resend until its first copy (on this
   * connection or another) is written: its ack comes after that, and so do
   * theirs, but rendered meanwhile their bytes stayed counted in the render
   * budget, released in request order. Two connections resending a large
   * request while sending on filled it, and the first copy's connection
   * could render no more of it: nothing was acked again, nor could stop.
   */
  private waitFor(first: PendingChunk): void {
    this.waiting++;
    void first.outcome().then(() => {
      this.waiting--;
      this.hooks.wake();
    });
  }

  /** A request acked without being rendered. */
  private ackOnly(job: Job): void {
    this.writes.open();
    this.writes.ready(job);
  }

  /**
   * Nothing not acked yet is written: the request being rendered is dropped
   * with the rest, and the client sends them all again. The Normalizer is
   * put back as it held lines before them: the split lines (or parts) and
   * traces those requests let go went out with them, and the traces still
   * held hold lines of theirs; the lines of those acked before are taken
   * back from the store.
   */
  private writeFailed(err: unknown, jobs: readonly Job[]): void {
    const job = this.slices.drop();
    if (job !== undefined) this.writes.abandon([job]);
    const all = [...jobs, ...(job === undefined ? [] : [job])];
    const heldAgain = all.flatMap((j) => j.held ?? []).filter((h) => h.line.partial === undefined);
    const released = new Set([...all.flatMap((j) => j.completed ?? []), ...all.flatMap((j) => j.cuts ?? []).map((c) => c.id)]);
    if (released.size > 0 || heldAgain.length > 0) {
      const { normalizer, partials } = this.ctx;
      const restored = [...released, ...heldAgain.map((h) => h.id)];
      const lines = partials.restore(restored);
      const traces = [...heldAgain.map((h) => h.first), ...lines.filter((l) => l.partial === undefined)];
      const events = normalizer.restoreHeld(traces, released, lines);
      const done = partials.tracesNotHeld(restored, (first) => normalizer.holdsTrace(first));
      if (events.length > 0 || done.length > 0) this.ctx.writeHeld(events, done);
    }
    this.stop();
    this.hooks.failed(err, jobs);
  }
}

/** A job for a request; `chunk`: its chunk option, to be echoed in its ack. */
function newJob(chunk: Buffer | undefined, receivedAt: number): Job {
  return { held: undefined, completed: undefined, cuts: undefined, chunk, key: undefined, pending: undefined, wait: undefined, receivedAt };
}

/** Whether a request's first byte starts an array of 3 or 4: Message mode, or PackedForward or Forward with an option. */
function isMessageHead(b: number | undefined): boolean {
  return b === 0x93 || b === 0x94;
}

/**
 * Copies the requests from `from` on, which outlive the bytes they were cut
 * from: the requests that lie back to back in those bytes are copied together,
 * so they still do in the copy (a run of Message-mode requests stays one view).
 */
function keepFrames(frames: Buffer[], joined: number[], from: number): void {
  for (let i = from; i < frames.length; ) {
    const first = frames[i]!;
    let j = i + 1;
    let size = first.length;
    for (; j < frames.length && joined[j] === 1; j++) size += frames[j]!.length;
    const copy = Buffer.from(Buffer.from(first.buffer, first.byteOffset, size));
    joined[i] = 0;
    for (let at = 0; i < j; i++) {
      const n = frames[i]!.length;
      frames[i] = copy.subarray(at, at + n);
      at += n;
    }
  }
}
