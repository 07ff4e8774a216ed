/**
 * One forward-protocol connection: reads the socket, cuts and decodes
 * requests, hands their events to the pipeline and acks each chunk once the
 * pipeline says it is durable.
 *
 * Up to MAX_WRITES_IN_FLIGHT writes of one connection are under way at once;
 * requests decoded meanwhile wait in `queue` and go out together as the next
 * write, so a client that pipelines requests is not held to one fsync each,
 * and Docker's stop-and-wait driver still gets each ack right after its own
 * write. Acks leave in request order: a batch is acked once it and every
 * older batch are durable.
 *
 * A request is rendered in slices (at most SLICE_ENTRIES records or about
 * SLICE_BYTES of rendered lines each), handed to the pipeline as they come,
 * with reading paused until its last slice is rendered; it is acked after its
 * last slice is durable. Every request is read through once before its first
 * slice, so a malformed one is refused whole.
 *
 * Memory is bounded by what requests render to, not by their wire size (a
 * 3-byte record renders to about 150 bytes): a connection renders its next
 * slice only while it holds less than MAX_IN_FLIGHT_BYTES of rendered lines
 * in flight, and only while all connections together hold less than the
 * input's RenderBudget. A slice of a request with a chunk id stays in flight
 * until the progress it brings is stored (progress.ts), not only until it is
 * durable: released at durability, it would let the next slices be written
 * while progress records lag behind, and after a crash a resend would find
 * its written records neither in the progress store nor in the last 16 MiB
 * that the file sink's replay guard reads. The socket is paused above
 * MAX_IN_FLIGHT_BYTES of rendered lines, requests waiting to be rendered and
 * REQUEST_OVERHEAD_BYTES per unacked request. A paused socket stops the
 * client through TCP flow control.
 *
 * Bad input (malformed or over-limit request, failed handshake) closes this
 * connection only: requests before it are still written and acked, nothing
 * after it is read. A failed sink write closes it without acks, so the client
 * resends; what it had read and not yet handed over is dropped, which a
 * client without acks never sees again. A full disk is therefore not a
 * failed write: the sinks keep the write pending until the disk takes it
 * (sinks/disk-retry.ts), and this connection stays open and paused.
 */
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import { gunzip } from 'node:zlib';
import { ClogsError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { ackLatency, bytesIn, connections, eventsIn, inputErrors } from '../../metrics.js';
import { EncodedBatch } from '../encoded.js';
import type { LogEvent } from '../event.js';
import type { HoldWatcher } from '../multiline/stage.js';
import type { Normalizer } from '../normalize.js';
import type { Pipeline } from '../pipeline.js';
import { ChunkLedger, PendingChunk, chunkKey, encodeAcks } from './acks.js';
import { DecodeCache, decodeRequest, decodeValue, messageSpan, type MessageSpan } from './decoder.js';
import { Framer } from './framer.js';
import { checkPing, encodeHelo, type HandshakeConfig, type HandshakeSecrets } from './handshake.js';
import { FLUENT_SIGNAL_LOGS, type DecodeLimits, type ForwardEntry, type ForwardOption } from './messages.js';
import type { PackedLineEncoder } from './packed-lines.js';
import { pieceOf, traceId, type HeldLine, type PartialStore } from './partials.js';
import type { RecordMapper } from './records.js';
import type { RequestProgress } from './progress.js';
import type { RenderBudget } from './render-budget.js';

/** Rendered, undurable bytes (and requests waiting) per connection before it stops rendering and reading. */
export const MAX_IN_FLIGHT_BYTES = 8 * 1024 * 1024;
/**
 * A slice: at most this many records, and a record more once its lines passed
 * SLICE_BYTES. Records, as the fast path reads ahead that many (40 bytes each).
 */
export const SLICE_ENTRIES = 10_000;
export const SLICE_BYTES = 2 * 1024 * 1024;
/**
 * Writes of one connection under way at once. The file sink encodes a write
 * when it is handed over and syncs in groups, so the next batch is encoded
 * while the previous one is fsync'd.
 * Measured (PackedForward benchmark profile): with 1, the main thread sat
 * idle 22% of the time waiting on fsync; with 4, 12%.
 */
const MAX_WRITES_IN_FLIGHT = 4;
/** A client must send its PING this soon after HELO. */
const HANDSHAKE_TIMEOUT_MS = 30_000;
/** After our FIN, how long the peer gets to close before the socket is destroyed. */
const CLOSE_GRACE_MS = 1000;

const eventsInForward = eventsIn.labels({ input: 'forward' });
const bytesInForward = bytesIn.labels({ input: 'forward' });
const connectionsForward = connections.labels({ input: 'forward' });

/** inputErrors `reason` label: a fixed set, whatever the message says. */
const REASONS: Partial<Record<string, string>> = {
  CLOGS_FRAME_TOO_LARGE: 'frame_too_large',
  CLOGS_FRAME_MALFORMED: 'malformed',
  CLOGS_TOO_MANY_KEYS: 'too_many_keys',
  CLOGS_AUTH: 'auth',
};

export interface ConnectionContext {
  limits: DecodeLimits;
  pipeline: Pipeline;
  normalizer: Normalizer;
  mapper: RecordMapper;
  ledger: ChunkLedger;
  partials: PartialStore;
  /**
   * One for all connections: its read-ahead (up to SLICE_ENTRIES records) is
   * kept once, not per connection; a connection's slice that finds another's
   * reading there reads again.
   */
  packedLines: PackedLineEncoder;
  /** Rendered bytes in flight, all connections together. */
  budget: RenderBudget;
  progress: RequestProgress;
  handshake: HandshakeConfig | undefined;
  log: Logger;
}

interface Job {
  /** Acked pieces of split lines and lines of held traces, stored before the ack (see partials.ts). */
  held: HeldLine[] | undefined;
  /** Partial ids whose line is complete in this request's events. */
  completed: string[] | undefined;
  /** The chunk to ack, as it was encoded. */
  chunk: Buffer | undefined;
  /** Its ledger key, and its entry while this job writes it. */
  key: string | undefined;
  pending: PendingChunk | undefined;
  /** The same chunk being written already (by this connection or another): ack once that write is durable. */
  wait: PendingChunk | undefined;
  receivedAt: number;
}

/** A request being rendered, slice by slice. */
interface Rendering {
  job: Job;
  tag: string;
  /** A stream of entries (PackedForward, Forward, Message) with where its next slice starts. */
  entries: Buffer;
  pos: number;
  /** Records rendered so far; the first `skip` were written before a crash, and are rendered again only to be dropped (progress.ts). */
  records: number;
  skip: number;
  /** Whether `entries` stays valid after the Framer's next push (copied when it would not). */
  owned: boolean;
  general: (entry: ForwardEntry) => LogEvent[];
  /** The request's view of the traces the Normalizer holds, when it has a chunk to ack. */
  watch: HoldWatcher | undefined;
  /** Streams of the same request still to render after `entries`, each with its tag (Message-mode requests read together). */
  more: TaggedStream[];
}

interface TaggedStream {
  tag: string;
  entries: Buffer;
}

interface Batch {
  jobs: Job[];
  durable: boolean;
  /** Bytes of its rendered events, counted in the connection's and the budget's totals. */
  rendered: number;
  /** The request being rendered, with how many of its records are written once this batch is. */
  progress: { key: string; records: number } | undefined;
}

/**
 * What a request costs besides its bytes while it waits (its job, its ledger
 * entry, its share of the line buffers), counted against MAX_IN_FLIGHT_BYTES
 * so that many tiny requests (Message mode) are bounded too.
 */
const REQUEST_OVERHEAD_BYTES = 1024;

export class ForwardConnection {
  /** Resolves once the socket is closed. */
  readonly closed: Promise<void>;
  private readonly log: Logger;
  private readonly framer: Framer;
  private readonly cache = new DecodeCache();
  /** When the bytes being processed were read. */
  private readAt = 0;
  /** Requests cut but not decoded yet: more than one only while a gzip chunk inflates. */
  private frames: Buffer[] = [];
  private frameIdx = 0;
  private frameBytes = 0;
  /** Frames before this index go one by one: taken together, one of them was malformed. */
  private singlesUntil = 0;
  private inflating = false;
  private queue: Job[] = [];
  /** The events of the queued requests, handed to the pipeline together by flush(). */
  private queuedEvents: EncodedBatch | undefined;
  private queuedBytes = 0;
  /** The request being rendered, while it has slices left. */
  private current: Rendering | undefined;
  /** Whether this connection waits in the budget's line. */
  private waitingBudget = false;
  /** The next slice waits for lookups of its containers (see records.ts). */
  private awaiting = false;
  /** Batches handed to the pipeline, oldest first; acked from the front, in order. */
  private writes: Batch[] = [];
  /** Rendered bytes queued or being written. */
  private rendered = 0;
  /** Durable batches whose progress is being stored (their bytes still counted). */
  private recording = 0;
  /** REQUEST_OVERHEAD_BYTES per request not acked yet. */
  private overheadBytes = 0;
  private paused = false;
  /** False once closing: further bytes are ignored. */
  private accepting = true;
  /** Close once everything accepted is written and acked. */
  private ending = false;
  private failed = false;
  private secrets: HandshakeSecrets | undefined;
  private graceTimer: NodeJS.Timeout | undefined;
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly socket: Socket,
    private readonly ctx: ConnectionContext,
    id: number,
  ) {
    this.log = ctx.log.child({ conn: id, remote: `${socket.remoteAddress}:${socket.remotePort}` });
    this.framer = new Framer(ctx.limits.maxFrameSize);
    connectionsForward.inc();
    this.closed = new Promise((resolve) => {
      socket.once('close', () => {
        connectionsForward.dec();
        clearTimeout(this.graceTimer);
        // Requests already decoded are still written (no ack can go out now,
        // but a resend of their chunk is then recognised as written).
        this.accepting = false;
        this.log.debug('forward connection closed');
        resolve();
      });
    });
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onPeerEnd());
    socket.on('error', (err) => this.log.debug({ err }, 'forward connection error'));
    this.log.debug('forward connection opened');
    if (ctx.handshake) {
      this.secrets = { nonce: randomBytes(16), authSalt: ctx.handshake.users.length > 0 ? randomBytes(16) : Buffer.alloc(0) };
      socket.write(encodeHelo(this.secrets));
      socket.setTimeout(HANDSHAKE_TIMEOUT_MS, () => this.fail(new ClogsError('CLOGS_AUTH', `no PING within ${HANDSHAKE_TIMEOUT_MS / 1000} s of HELO`)));
    }
  }

  /** Stops reading, writes and acks what was already received, then closes. */
  async shutdown(): Promise<void> {
    this.accepting = false;
    this.ending = true;
    this.maybeFinish();
    await Promise.all([this.closed, this.idle()]);
  }

  /** Resolves once no request of this connection waits for a write. */
  private idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private isIdle(): boolean {
    return (
      this.writes.length === 0 &&
      this.recording === 0 &&
      this.queue.length === 0 &&
      this.current === undefined &&
      this.queuedEvents === undefined &&
      !this.inflating &&
      !this.awaiting &&
      this.frameIdx >= this.frames.length
    );
  }

  private onData(chunk: Buffer): void {
    if (!this.accepting) return;
    bytesInForward.inc(chunk.length);
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
    this.processFrames();
    // Requests waiting behind a gzip chunk or a request being rendered outlive
    // this read: the Framer may reuse their bytes.
    for (let i = Math.max(before, this.frameIdx); i < this.frames.length; i++) this.frames[i] = Buffer.from(this.frames[i]!);
    const current = this.current;
    if (current !== undefined && !current.owned && Buffer.isBuffer(current.entries)) {
      // Also a small request in a large read: the copy lets the read go.
      const e = current.entries;
      if (!this.framer.lasts(e) || e.buffer.byteLength > 2 * e.length) current.entries = Buffer.from(e);
      current.owned = true;
    }
    if (error !== undefined) this.fail(error);
    this.flush();
    this.applyBackpressure();
  }

  private onPeerEnd(): void {
    if (this.accepting && this.framer.midFrame) {
      this.fail(new ClogsError('CLOGS_FRAME_MALFORMED', `connection closed in the middle of a request (${this.framer.buffered} bytes held)`));
      return;
    }
    this.accepting = false;
    this.ending = true;
    this.maybeFinish();
  }

  /** Renders the current request's slices while the bounds allow, then the requests behind it. */
  private processFrames(): void {
    for (;;) {
      if (this.current !== undefined) {
        if (!this.mayRender() || this.waitsForLookups(this.current)) break;
        this.renderSlice(this.current);
        // A slice goes out as it comes; whole requests go out together after the loop.
        if (this.current !== undefined) this.flush();
        continue;
      }
      if (this.frameIdx >= this.frames.length || this.inflating || this.failed) break;
      const frame = this.frames[this.frameIdx++]!;
      this.frameBytes -= frame.length;
      try {
        if (!this.acceptMessages(frame)) this.handleFrame(frame);
      } catch (err) {
        this.fail(err);
      }
    }
    if (this.frameIdx === this.frames.length) {
      this.frames.length = 0;
      this.frameIdx = 0;
      this.singlesUntil = 0;
    }
  }

  private handleFrame(frame: Buffer): void {
    if (this.secrets !== undefined) {
      this.onPing(frame, this.secrets);
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
        this.accept(msg.tag, msg.entry, msg.option, key, receivedAt);
        return;
      case 'Forward':
      case 'PackedForward':
        this.accept(msg.tag, msg.entries, msg.option, key, receivedAt);
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
    if (this.secrets !== undefined || firstIdx < this.singlesUntil) return false;
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
        entries[p++] = 0x92;
        p += this.frames[firstIdx + i]!.copy(entries, p, spans[i]!.at, spans[i]!.end);
      }
      streams.push({ tag, entries });
    }
    const chunk = head.option.chunk;
    const main = streams.shift()!;
    try {
      this.accept(main.tag, main.entries, head.option, chunk === undefined ? undefined : chunkKey(chunk, first), this.readAt, streams);
    } catch (err) {
      if (spans.length === 1) throw err;
      // Requests before the malformed one are still written and acked: one by one.
      for (let i = firstIdx + 1; i < this.frameIdx; i++) this.frameBytes += this.frames[i]!.length;
      this.frameIdx = firstIdx + 1;
      this.singlesUntil = firstIdx + spans.length;
      return false;
    }
    // Buffers of its own: they outlive the read.
    if (this.current !== undefined) this.current.owned = true;
    return true;
  }

  private onPing(frame: Buffer, secrets: HandshakeSecrets): void {
    const verdict = checkPing(decodeValue(frame, this.ctx.limits, 'all'), this.ctx.handshake!, secrets);
    this.socket.write(verdict.pong);
    if (!verdict.ok) {
      this.fail(new ClogsError('CLOGS_AUTH', `handshake refused: ${verdict.reason}`));
      return;
    }
    this.secrets = undefined;
    this.socket.setTimeout(0);
    this.log.debug({ client: verdict.clientHostname, user: verdict.username || undefined }, 'forward handshake done');
  }

  private inflate(tag: string, gz: Buffer, option: ForwardOption, key: string | undefined, receivedAt: number): void {
    const max = this.ctx.limits.maxFrameSize;
    this.inflating = true;
    // Off the main thread (zlib's thread pool), on a copy (the Framer may
    // reuse the request's bytes); requests behind this one wait, in order.
    gunzip(Buffer.from(gz), { maxOutputLength: max }, (err, stream) => {
      this.inflating = false;
      if (this.failed) return;
      try {
        if (err) {
          throw (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE'
            ? new ClogsError('CLOGS_FRAME_TOO_LARGE', `a gzip chunk inflates to more than max_frame_size (${max} bytes)`)
            : new ClogsError('CLOGS_FRAME_MALFORMED', `a gzip chunk does not inflate: ${err.message}`);
        }
        this.accept(tag, stream, option, key, receivedAt);
        // Inflated into a buffer of its own.
        if (this.current !== undefined) this.current.owned = true;
      } catch (e) {
        this.fail(e);
      }
      this.processFrames();
      this.flush();
      this.applyBackpressure();
      this.maybeFinish();
    });
  }

  /** `entries`: a stream of `[time, record]` entries; `key`: the chunk's ledger key, when the request has a chunk. */
  private accept(
    tag: string,
    entries: Buffer,
    option: ForwardOption,
    key: string | undefined,
    receivedAt: number,
    more: TaggedStream[] = [],
  ): void {
    const chunk = option.chunk;
    const job: Job = { held: undefined, completed: undefined, chunk, key: undefined, pending: undefined, wait: undefined, receivedAt };
    if (key !== undefined) {
      const seen = this.ctx.ledger.lookup(key);
      if (seen !== undefined) {
        if (seen === true) this.log.debug({ tag }, 'chunk already written: acking the resend without writing it again');
        else job.wait = seen;
        this.enqueue(job);
        return;
      }
    }
    if (option.signal !== FLUENT_SIGNAL_LOGS) {
      this.log.debug({ tag, signal: option.signal }, 'dropping a metrics or traces request (fluent_signal); acking it');
      this.enqueue(job);
      return;
    }
    // Every entry is read before the first slice: a malformed request throws
    // here, before the Normalizer saw any of it.
    // The first stream last: the encoder keeps its reading of the last one checked.
    for (const stream of [...more.map((m) => m.entries), entries]) this.ctx.packedLines.check(stream, SLICE_ENTRIES);
    let skip = 0;
    if (key !== undefined) {
      job.key = key;
      job.pending = this.ctx.ledger.begin(key);
      skip = this.ctx.progress.resumeAt(key);
      if (skip > 0) this.log.info({ tag, records: skip }, 'resent request was partly written before: going on after its written records');
    }
    this.overheadBytes += REQUEST_OVERHEAD_BYTES;
    const watch = chunk === undefined ? undefined : holdWatcher(job);
    this.current = { job, tag, entries, pos: 0, records: 0, skip, owned: false, general: this.generalPath(job, tag, watch), watch, more };
  }

  /** Renders an entry the fast path leaves, noting split lines in `job`. */
  private generalPath(job: Job, tag: string, watch: HoldWatcher | undefined): (entry: ForwardEntry) => LogEvent[] {
    const { mapper, normalizer } = this.ctx;
    return (entry) => {
      const raw = mapper.toRawLine(entry, tag);
      const partial = raw.partial;
      if (partial !== undefined) {
        if (partial.last) (job.completed ??= []).push(partial.id);
        else if (job.chunk !== undefined) (job.held ??= []).push(pieceOf(raw));
      }
      return normalizer.push(raw, watch);
    };
  }

  /**
   * Whether the next slice of `r` names containers whose metadata is being
   * looked up: it then waits (at most records.ts LOOKUP_WAIT_MS) and goes on.
   */
  private waitsForLookups(r: Rendering): boolean {
    if (this.awaiting) return true;
    const wait = this.ctx.packedLines.lookups(r.entries, r.pos, SLICE_ENTRIES);
    if (wait === undefined) return false;
    this.awaiting = true;
    void wait.then(() => {
      this.awaiting = false;
      this.resume();
    });
    return true;
  }

  /** Whether the bounds let this connection render a slice now; if only the budget says no, waits in its line. */
  private mayRender(): boolean {
    if (this.rendered >= MAX_IN_FLIGHT_BYTES) return false;
    if (this.ctx.budget.available()) return true;
    if (!this.waitingBudget) {
      this.waitingBudget = true;
      this.ctx.budget.wait(() => {
        this.waitingBudget = false;
        this.resume();
      });
    }
    return false;
  }

  /** Renders the next slice of `r` into the queued events; enqueues its job after the last. */
  private renderSlice(r: Rendering): void {
    const skipping = r.records < r.skip;
    // Records written before a crash go into a batch that is dropped.
    const out = skipping ? new EncodedBatch() : (this.queuedEvents ??= new EncodedBatch());
    const maxEntries = skipping ? Math.min(SLICE_ENTRIES, r.skip - r.records) : SLICE_ENTRIES;
    const before = out.bytes;
    r.pos = this.ctx.packedLines.encodeSlice(r.entries, r.pos, r.tag, out, r.general, maxEntries, SLICE_BYTES, r.watch);
    r.records += this.ctx.packedLines.sliced;
    const done = r.pos >= r.entries.length;
    const bytes = out.bytes - before;
    if (!skipping) {
      this.queuedBytes += bytes;
      this.rendered += bytes;
      this.ctx.budget.take(bytes);
    }
    const next = done ? r.more.shift() : undefined;
    if (next !== undefined) {
      r.tag = next.tag;
      r.entries = next.entries;
      r.pos = 0;
      r.general = this.generalPath(r.job, next.tag, r.watch);
    } else if (done) {
      this.current = undefined;
      this.queue.push(r.job);
    }
  }

  /** Goes on once the budget has room. */
  private resume(): void {
    this.processFrames();
    this.flush();
    this.applyBackpressure();
    this.maybeFinish();
  }

  /** A request acked without being rendered. */
  private enqueue(job: Job): void {
    this.queue.push(job);
    this.overheadBytes += REQUEST_OVERHEAD_BYTES;
  }

  /** Hands the queued requests to the pipeline, unless enough writes are under way already. */
  private flush(): void {
    if ((this.queue.length === 0 && this.queuedEvents === undefined) || this.writes.length >= MAX_WRITES_IN_FLIGHT) return;
    const jobs = this.queue;
    this.queue = [];
    const current = this.current;
    const progress = current?.job.key !== undefined ? { key: current.job.key, records: current.records } : undefined;
    const batch: Batch = { jobs, durable: false, rendered: this.queuedBytes, progress };
    this.writes.push(batch);
    const events = this.queuedEvents;
    this.queuedEvents = undefined;
    this.queuedBytes = 0;
    const waits: Promise<unknown>[] = [];
    const count = events === undefined ? 0 : events.count;
    if (events !== undefined && count > 0) {
      eventsInForward.inc(count);
      waits.push(this.ctx.pipeline.write(events));
    }
    const held = jobs.flatMap((j) => j.held ?? []);
    if (held.length > 0) waits.push(this.ctx.partials.persist(held));
    for (const job of jobs) {
      // A resend in the same write as its first copy is durable with it (waiting for itself, it never would be).
      if (job.wait === undefined || jobs.some((j) => j.pending === job.wait)) continue;
      waits.push(job.wait.outcome().then((ok) => (ok ? undefined : Promise.reject(new Error('the first copy of a resent chunk was not written')))));
    }
    const durable = waits.length === 1 ? waits[0]! : Promise.all(waits);
    durable.then(
      () => this.written(batch),
      (err: unknown) => this.writeFailed(batch, err),
    );
  }

  private written(batch: Batch): void {
    // Dropped by a failed write before it: already settled as failed.
    if (!this.writes.includes(batch)) return;
    batch.durable = true;
    const socket = this.socket;
    const open = !socket.destroyed && socket.writable;
    const chunks: Buffer[] = [];
    const now = performance.now();
    let released = 0;
    // Acks leave in request order: a batch is acked only after every older one.
    while (this.writes[0]?.durable) {
      const done = this.writes.shift()!;
      if (done.progress !== undefined) this.recordProgress(done, done.progress);
      else released += done.rendered;
      const completed = done.jobs.flatMap((j) => j.completed ?? []);
      if (completed.length > 0) {
        this.ctx.partials.complete(completed).catch((err: unknown) => this.log.warn({ err }, 'could not delete stored split-line pieces'));
      }
      for (const job of done.jobs) {
        if (job.pending !== undefined) {
          this.ctx.ledger.settle(job.key!, job.pending, true);
          this.ctx.progress.forget(job.key!);
        }
        this.overheadBytes -= REQUEST_OVERHEAD_BYTES;
        if (job.chunk !== undefined && open) {
          chunks.push(job.chunk);
          ackLatency.observe((now - job.receivedAt) / 1000);
        }
      }
    }
    // One socket write for all the acks that are due.
    // Measured: a write per ack cost 7% of the collector's CPU with pipelined
    // Message-mode clients. Separate writes would not help Docker's driver
    // either: with request-ack its stdout and stderr goroutines read acks from
    // one socket at once, each through a fresh buffered reader
    // (fluent-logger-golang `write`), so one can take the other's ack, even
    // from a server that acks every message at once; it then waits for the
    // logger's 10 s close and resends. The resend is acked without a duplicate.
    if (chunks.length > 0) socket.write(encodeAcks(chunks));
    this.release(released);
    this.processFrames();
    this.flush();
    this.applyBackpressure();
    this.maybeFinish();
  }

  /** Releases the batch's bytes once the progress it brings is stored: only then may further slices be written. */
  private recordProgress(batch: Batch, progress: { key: string; records: number }): void {
    this.recording++;
    void this.ctx.progress.record(progress.key, progress.records).then(() => {
      this.recording--;
      this.release(batch.rendered);
      this.resume();
    });
  }

  private writeFailed(batch: Batch, err: unknown): void {
    if (!this.writes.includes(batch)) return;
    // Nothing after the failed batch may be acked either: acks are in order.
    let released = this.queuedBytes;
    for (const batch of this.writes) {
      this.settleFailed(batch.jobs);
      released += batch.rendered;
    }
    this.writes = [];
    this.settleFailed(this.queue);
    this.queue = [];
    if (this.current !== undefined) this.settleFailed([this.current.job]);
    this.current = undefined;
    this.queuedEvents = undefined;
    this.queuedBytes = 0;
    this.release(released);
    this.log.warn({ err }, 'closing forward connection unacked: the sinks did not take its events (the client will resend)');
    inputErrors.inc({ input: 'forward', reason: 'sink' });
    this.failed = true;
    this.accepting = false;
    this.socket.destroy();
    this.maybeFinish();
  }

  /** Jobs never written: their chunks are not durable, resends must write them. */
  private settleFailed(jobs: readonly Job[]): void {
    for (const job of jobs) if (job.pending !== undefined) this.ctx.ledger.settle(job.key!, job.pending, false);
  }

  private release(bytes: number): void {
    this.rendered -= bytes;
    this.ctx.budget.release(bytes);
  }

  /** Reading stops while a request is being rendered, and above MAX_IN_FLIGHT_BYTES of what this connection holds. */
  private applyBackpressure(): void {
    const over = this.current !== undefined || this.rendered + this.overheadBytes + this.frameBytes > MAX_IN_FLIGHT_BYTES;
    if (over && !this.paused && this.accepting) {
      this.paused = true;
      this.socket.pause();
    } else if (!over && this.paused) {
      this.paused = false;
      this.socket.resume();
    }
  }

  /** Bad input: log the reason, count it, stop reading, close once what came before is acked. */
  private fail(err: unknown): void {
    if (this.failed) return;
    this.failed = true;
    this.accepting = false;
    this.ending = true;
    this.frames.length = 0;
    this.frameIdx = 0;
    this.frameBytes = 0;
    const code = err instanceof ClogsError ? err.code : undefined;
    const reason = err instanceof Error ? err.message : String(err);
    this.log.warn({ code, reason }, 'closing forward connection: bad input');
    inputErrors.inc({ input: 'forward', reason: (code && REASONS[code]) ?? 'malformed' });
    this.maybeFinish();
  }

  private maybeFinish(): void {
    if (!this.isIdle()) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
    const socket = this.socket;
    if (!this.ending || socket.destroyed) return;
    this.ending = false;
    // Keep reading (and ignoring) so the peer's FIN is seen and the socket closes.
    if (this.paused) socket.resume();
    socket.end();
    this.graceTimer = setTimeout(() => socket.destroy(), CLOSE_GRACE_MS);
    this.graceTimer.unref();
  }
}

/**
 * A request's view of the traces the Normalizer holds: a line held past the
 * ack is stored with the request; a trace let go within the request needs
 * none of its lines stored, and the file an earlier request stored for it is
 * deleted once this request's events are written.
 */
function holdWatcher(job: Job): HoldWatcher {
  return {
    held: (first, line) => (job.held ??= []).push({ id: traceId(first), first, line }),
    released: (first) => {
      const id = traceId(first);
      if (job.held !== undefined) job.held = job.held.filter((h) => h.id !== id);
      (job.completed ??= []).push(id);
    },
  };
}
