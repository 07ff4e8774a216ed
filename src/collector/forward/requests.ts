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
import { chunkKey } from './acks.js';
import { DecodeCache, decodeRequest, messageSpan, type MessageSpan } from './decoder.js';
import { Framer } from './framer.js';
import { FLUENT_SIGNAL_LOGS, type DecodeLimits, type ForwardOption } from './messages.js';
import { MAX_IN_FLIGHT_BYTES, SLICE_BYTES, SLICE_ENTRIES } from './render-budget.js';
import { SliceRenderer, type SliceContext, type TaggedStream } from './slices.js';
import { WriteQueue, type Job, type WriteContext, type WriteHooks } from './writes.js';

export interface RequestContext extends SliceContext, WriteContext {
  limits: DecodeLimits;
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
  private frameIdx = 0;
  private frameBytes = 0;
  /** Frames before this index go one by one: taken together, one of them was malformed. */
  private singlesUntil = 0;
  private inflating = false;
  private stopped = false;

  constructor(
    private readonly ctx: RequestContext,
    private readonly hooks: RequestHooks,
    private readonly log: Logger,
  ) {
    this.framer = new Framer(ctx.limits.maxFrameSize);
    this.ping = hooks.ping;
    this.writes = new WriteQueue(ctx, { ack: hooks.ack, wake: hooks.wake, failed: (err) => this.writeFailed(err) }, log);
    this.slices = new SliceRenderer(ctx, this.writes, hooks.wake);
  }

  /** Bytes of a request whose end has not been read yet. */
  get buffered(): number {
    return this.framer.buffered;
  }

  get midFrame(): boolean {
    return this.framer.midFrame;
  }

  /** Whether reading should stop: while a request is being rendered, and above MAX_IN_FLIGHT_BYTES of what this connection holds. */
  get full(): boolean {
    return this.slices.rendering || this.writes.held + this.frameBytes > MAX_IN_FLIGHT_BYTES;
  }

  /** Whether no request waits to be decoded, rendered, written or acked. */
  get idle(): boolean {
    return this.writes.idle && this.slices.idle && !this.inflating && this.frameIdx >= this.frames.length;
  }

  /** Takes the bytes read: the requests they complete are handled as far as the bounds allow. */
  read(chunk: Buffer): void {
    this.readAt = performance.now();
    const before = this.frames.length;
    let error: unknown;
    try {
      this.framer.push(chunk, this.frames);
    } catch (err) {
      error = err;
    }
    for (let i = before; i < this.frames.length; i++) this.frameBytes += this.frames[i]!.length;
    // Requests completed before a broken one are still good.
    this.process();
    // Requests waiting behind a gzip chunk or a request being rendered outlive
    // this read: the Framer may reuse their bytes.
    for (let i = Math.max(before, this.frameIdx); i < this.frames.length; i++) this.frames[i] = Buffer.from(this.frames[i]!);
    this.slices.keep((entries) => this.framer.lasts(entries));
    if (error !== undefined) this.hooks.bad(error);
    this.flush();
  }

  /** Goes on with what waits, as far as the bounds allow. */
  run(): void {
    this.process();
    this.flush();
  }

  /** Reads no further request: those not decoded yet are dropped. */
  stop(): void {
    this.stopped = true;
    this.frames.length = 0;
    this.frameIdx = 0;
    this.frameBytes = 0;
  }

  /** Renders the current request's slices while the bounds allow, then the requests behind it. */
  private process(): void {
    for (;;) {
      if (this.slices.rendering) {
        if (!this.slices.next()) break;
        // A slice goes out as it comes; whole requests go out together after the loop.
        if (this.slices.rendering) this.flush();
        continue;
      }
      if (this.frameIdx >= this.frames.length || this.inflating || this.stopped) break;
      const frame = this.frames[this.frameIdx++]!;
      this.frameBytes -= frame.length;
      try {
        if (!this.acceptMessages(frame)) this.handleFrame(frame);
      } catch (err) {
        this.hooks.bad(err);
      }
    }
    if (this.frameIdx === this.frames.length) {
      this.frames.length = 0;
      this.frameIdx = 0;
      this.singlesUntil = 0;
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
        this.accept([{ tag: msg.tag, entries: msg.entry }], msg.option, key, receivedAt, false);
        return;
      case 'Forward':
      case 'PackedForward':
        this.accept([{ tag: msg.tag, entries: msg.entries }], msg.option, key, receivedAt, false);
        return;
      case 'CompressedPackedForward':
        this.inflate(msg.tag, msg.entries, msg.option, key, receivedAt);
        return;
    }
  }

  /**
   * Message mode (one record per request: Docker's fluentd driver) read
   * together: `first` and the Message-mode requests right behind it in this
   * read are taken as one request of PackedForward streams, one per tag (in
   * order within a tag: a container's lines keep their order), rendered by
   * the fast path, with one job, one write and one ack write. A request with
   * a chunk goes alone (its ledger entry and its ack are its own), still as a
   * stream. False when `first` is not Message mode, or is to go through
   * handleFrame() alone.
   */
  private acceptMessages(first: Buffer): boolean {
    const firstIdx = this.frameIdx - 1;
    if (this.ping !== undefined || firstIdx < this.singlesUntil) return false;
    const { limits } = this.ctx;
    const head = messageSpan(first, limits, this.cache);
    if (head === undefined) return false;
    const spans: MessageSpan[] = [head];
    let wire = first.length;
    if (head.option.chunk === undefined) {
      while (this.frameIdx < this.frames.length && spans.length < SLICE_ENTRIES && wire < SLICE_BYTES) {
        const next = this.frames[this.frameIdx]!;
        const span = messageSpan(next, limits, this.cache);
        if (span === undefined || span.option.chunk !== undefined || span.option.signal !== head.option.signal) break;
        spans.push(span);
        this.frameIdx++;
        this.frameBytes -= next.length;
        wire += next.length;
      }
    }
    const chunk = head.option.chunk;
    try {
      // Buffers of their own: they outlive the read.
      this.accept(streamsByTag(spans, this.frames, firstIdx), head.option, chunk === undefined ? undefined : chunkKey(chunk, first), this.readAt, true);
    } catch (err) {
      if (spans.length === 1) throw err;
      // Requests before the malformed one are still written and acked: one by one.
      for (let i = firstIdx + 1; i < this.frameIdx; i++) this.frameBytes += this.frames[i]!.length;
      this.frameIdx = firstIdx + 1;
      this.singlesUntil = firstIdx + spans.length;
      return false;
    }
    return true;
  }

  private inflate(tag: string, gz: Buffer, option: ForwardOption, key: string | undefined, receivedAt: number): void {
    const max = this.ctx.limits.maxFrameSize;
    this.inflating = true;
    // Off the main thread (zlib's thread pool), on a copy (the Framer may
    // reuse the request's bytes); requests behind this one wait, in order.
    gunzip(Buffer.from(gz), { maxOutputLength: max }, (err, stream) => {
      this.inflating = false;
      if (this.stopped) return;
      try {
        if (err) {
          throw (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE'
            ? new ClogsError('CLOGS_FRAME_TOO_LARGE', `a gzip chunk inflates to more than max_frame_size (${max} bytes)`)
            : new ClogsError('CLOGS_FRAME_MALFORMED', `a gzip chunk does not inflate: ${err.message}`);
        }
        // Inflated into a buffer of its own.
        this.accept([{ tag, entries: stream }], option, key, receivedAt, true);
      } catch (e) {
        this.hooks.bad(e);
      }
      this.hooks.wake();
    });
  }

  /**
   * Takes a request of one or more streams of `[time, record]` entries;
   * `key`: its chunk's ledger key, when it has a chunk; `owned`: whether its
   * streams are buffers of their own, not views of the bytes read.
   */
  private accept(streams: TaggedStream[], option: ForwardOption, key: string | undefined, receivedAt: number, owned: boolean): void {
    const job: Job = { held: undefined, completed: undefined, chunk: option.chunk, key: undefined, pending: undefined, wait: undefined, receivedAt };
    const tag = streams[0]!.tag;
    if (key !== undefined) {
      const seen = this.ctx.ledger.lookup(key);
      if (seen !== undefined) {
        if (seen === true) this.log.debug({ tag }, 'chunk already written: acking the resend without writing it again');
        else job.wait = seen;
        this.ackOnly(job);
        return;
      }
    }
    if (option.signal !== FLUENT_SIGNAL_LOGS) {
      this.log.debug({ tag, signal: option.signal }, 'dropping a metrics or traces request (fluent_signal); acking it');
      this.ackOnly(job);
      return;
    }
    this.slices.check(streams);
    let skip = 0;
    if (key !== undefined) {
      job.key = key;
      job.pending = this.ctx.ledger.begin(key);
      skip = this.ctx.progress.resumeAt(key);
      if (skip > 0) this.log.info({ tag, records: skip }, 'resent request was partly written before: going on after its written records');
    }
    this.writes.open();
    this.slices.start(job, streams, skip, owned);
  }

  /** A request acked without being rendered. */
  private ackOnly(job: Job): void {
    this.writes.open();
    this.writes.ready(job);
  }

  /** Nothing not acked yet is written: the request being rendered is dropped with the rest. */
  private writeFailed(err: unknown): void {
    const job = this.slices.drop();
    if (job !== undefined) this.writes.abandon([job]);
    this.stop();
    this.hooks.failed(err);
  }
}

/**
 * The Message-mode requests of `spans` (cut from `frames`, from `firstIdx`
 * on) as PackedForward streams, one per tag, in order within a tag.
 */
function streamsByTag(spans: readonly MessageSpan[], frames: readonly Buffer[], firstIdx: number): TaggedStream[] {
  const byTag = new Map<string, number[]>();
  for (let i = 0; i < spans.length; i++) {
    const tag = spans[i]!.tag;
    const list = byTag.get(tag);
    if (list === undefined) byTag.set(tag, [i]);
    else list.push(i);
  }
  const streams: TaggedStream[] = [];
  for (const [tag, list] of byTag) {
    let size = 0;
    for (const i of list) size += 1 + spans[i]!.end - spans[i]!.at;
    const entries = Buffer.allocUnsafe(size);
    let p = 0;
    for (const i of list) {
      // fixarray(2): the span is the `time, record` pair of a `[time, record]` entry.
      entries[p++] = 0x92;
      p += frames[firstIdx + i]!.copy(entries, p, spans[i]!.at, spans[i]!.end);
    }
    streams.push({ tag, entries });
  }
  return streams;
}
