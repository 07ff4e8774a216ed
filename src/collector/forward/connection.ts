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
 * Memory per connection is bounded: at most MAX_IN_FLIGHT_BYTES of decoded
 * requests (wire size, or decompressed size, plus REQUEST_OVERHEAD_BYTES
 * each) wait for their write before the socket is paused, with their events
 * (as rendered lines, about 1.5 times the wire size for Docker records), plus
 * the request being received (at most max_frame_size). A paused socket stops
 * the client through TCP flow control.
 *
 * A request naming a container the container directory does not know yet
 * waits for its lookup (at most records.ts LOOKUP_WAIT_MS) before it is
 * mapped; the requests behind it wait with it, in order.
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
import type { Normalizer } from '../normalize.js';
import type { Pipeline } from '../pipeline.js';
import { ChunkLedger, PendingChunk, chunkKey, encodeAcks } from './acks.js';
import { DecodeCache, decodeRequest, decodeValue } from './decoder.js';
import { Framer } from './framer.js';
import { checkPing, encodeHelo, type HandshakeConfig, type HandshakeSecrets } from './handshake.js';
import { FLUENT_SIGNAL_LOGS, type DecodeLimits, type ForwardEntry, type ForwardOption } from './messages.js';
import { PackedLineEncoder } from './packed-lines.js';
import type { HoldWatcher } from '../multiline/stage.js';
import { pieceOf, traceId, type HeldLine, type PartialStore } from './partials.js';
import type { RecordMapper } from './records.js';

/** Decoded, unacked request bytes per connection before the socket is paused. */
export const MAX_IN_FLIGHT_BYTES = 4 * 1024 * 1024;
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
  handshake: HandshakeConfig | undefined;
  log: Logger;
}

interface Job {
  /** Acked pieces of split lines and lines of held traces, stored before the ack (see partials.ts). */
  held: HeldLine[] | undefined;
  /** Ids of split lines and traces that are complete in this request's events. */
  completed: string[] | undefined;
  /** The chunk to ack, as it was encoded. */
  chunk: Buffer | undefined;
  /** Its ledger key, and its entry while this job writes it. */
  key: string | undefined;
  pending: PendingChunk | undefined;
  /** The same chunk being written already (by this connection or another): ack once that write is durable. */
  wait: PendingChunk | undefined;
  bytes: number;
  receivedAt: number;
}

interface Batch {
  jobs: Job[];
  durable: boolean;
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
  private readonly packedLines: PackedLineEncoder;
  /** When the bytes being processed were read. */
  private readAt = 0;
  /** Requests cut but not decoded yet: more than one only while a gzip chunk inflates. */
  private frames: Buffer[] = [];
  private frameIdx = 0;
  private frameBytes = 0;
  private inflating = false;
  /** A request waits for container lookups; it and those behind it are handled once they are in. */
  private awaiting = false;
  private queue: Job[] = [];
  /** The events of the queued requests, handed to the pipeline together by flush(). */
  private queuedEvents: EncodedBatch | undefined;
  /** Batches handed to the pipeline, oldest first; acked from the front, in order. */
  private writes: Batch[] = [];
  private inFlightBytes = 0;
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
    this.packedLines = new PackedLineEncoder({ normalizer: ctx.normalizer, mapper: ctx.mapper, limits: ctx.limits, cache: this.cache });
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
    return this.writes.length === 0 && this.queue.length === 0 && !this.inflating && !this.awaiting && this.frameIdx >= this.frames.length;
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
    // Requests waiting behind a gzip chunk outlive this read: the Framer may reuse their bytes.
    for (let i = Math.max(before, this.frameIdx); i < this.frames.length; i++) this.frames[i] = Buffer.from(this.frames[i]!);
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

  private processFrames(): void {
    while (this.frameIdx < this.frames.length && !this.inflating && !this.awaiting && !this.failed) {
      const frame = this.frames[this.frameIdx++]!;
      this.frameBytes -= frame.length;
      let wait: Promise<void> | undefined;
      try {
        wait = this.handleFrame(frame);
      } catch (err) {
        this.fail(err);
      }
      if (wait !== undefined) {
        // Handled again from the start once the lookups are in: nothing of it was taken yet.
        this.frameIdx--;
        this.frameBytes += frame.length;
        this.awaiting = true;
        void wait.then(() => {
          this.awaiting = false;
          this.resume();
        });
      }
    }
    if (this.frameIdx === this.frames.length) {
      this.frames.length = 0;
      this.frameIdx = 0;
    }
  }

  /** Returns what the request waits for before it can be handled (see accept). */
  private handleFrame(frame: Buffer): Promise<void> | undefined {
    if (this.secrets !== undefined) {
      this.onPing(frame, this.secrets);
      return undefined;
    }
    const receivedAt = this.readAt;
    const msg = decodeRequest(frame, this.ctx.limits, this.cache);
    if (msg.mode === 'Heartbeat') return undefined;
    // Keyed on the bytes as received: what a resend repeats byte for byte.
    const chunk = msg.option.chunk;
    const key = chunk === undefined ? undefined : chunkKey(chunk, frame);
    switch (msg.mode) {
      case 'Message':
        return this.accept(msg.tag, msg.entry, msg.option, key, frame.length, receivedAt);
      case 'Forward':
        return this.accept(msg.tag, msg.entries, msg.option, key, frame.length, receivedAt);
      case 'PackedForward':
        return this.accept(msg.tag, msg.entries, msg.option, key, frame.length, receivedAt);
      case 'CompressedPackedForward':
        this.inflate(msg.tag, msg.entries, msg.option, key, frame.length, receivedAt);
        return undefined;
    }
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

  private inflate(tag: string, gz: Buffer, option: ForwardOption, key: string | undefined, bytes: number, receivedAt: number): void {
    const max = this.ctx.limits.maxFrameSize;
    this.inflating = true;
    // Off the main thread (zlib's thread pool), on a copy (the Framer may
    // reuse the request's bytes); requests behind this one wait, in order.
    gunzip(Buffer.from(gz), { maxOutputLength: max }, (err, stream) => {
      const take = (): void => {
        if (this.failed) {
          this.inflating = false;
          this.maybeFinish();
          return;
        }
        let wait: Promise<void> | undefined;
        try {
          if (err) {
            throw (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE'
              ? new ClogsError('CLOGS_FRAME_TOO_LARGE', `a gzip chunk inflates to more than max_frame_size (${max} bytes)`)
              : new ClogsError('CLOGS_FRAME_MALFORMED', `a gzip chunk does not inflate: ${err.message}`);
          }
          wait = this.accept(tag, stream, option, key, Math.max(bytes, stream.length), receivedAt);
        } catch (e) {
          this.fail(e);
        }
        // Still inflating while it waits: the requests behind it keep their order.
        if (wait !== undefined) {
          void wait.then(take);
          return;
        }
        this.inflating = false;
        this.resume();
      };
      take();
    });
  }

  /** Goes on with the requests held behind an inflate or a lookup. */
  private resume(): void {
    this.processFrames();
    this.flush();
    this.applyBackpressure();
    this.maybeFinish();
  }

  /**
   * `entries`: decoded, or a PackedForward stream; `key`: the chunk's ledger key, when the request has a chunk.
   * Returns, without taking any of it, what the request waits for first: lookups of containers not known yet.
   */
  private accept(
    tag: string,
    entries: readonly ForwardEntry[] | Buffer,
    option: ForwardOption,
    key: string | undefined,
    bytes: number,
    receivedAt: number,
  ): Promise<void> | undefined {
    const chunk = option.chunk;
    const job: Job = {
      held: undefined,
      completed: undefined,
      chunk,
      key: undefined,
      pending: undefined,
      wait: undefined,
      bytes: bytes + REQUEST_OVERHEAD_BYTES,
      receivedAt,
    };
    if (key !== undefined) {
      const seen = this.ctx.ledger.lookup(key);
      if (seen !== undefined) {
        if (seen === true) this.log.debug({ tag }, 'chunk already written: acking the resend without writing it again');
        else job.wait = seen;
        this.enqueue(job);
        return undefined;
      }
    }
    if (option.signal !== FLUENT_SIGNAL_LOGS) {
      this.log.debug({ tag, signal: option.signal }, 'dropping a metrics or traces request (fluent_signal); acking it');
      this.enqueue(job);
      return undefined;
    }
    const { mapper, normalizer } = this.ctx;
    const watch = chunk === undefined ? undefined : holdWatcher(job);
    const general = (entry: ForwardEntry): LogEvent[] => {
      const raw = mapper.toRawLine(entry, tag);
      const partial = raw.partial;
      if (partial !== undefined) {
        if (partial.last) (job.completed ??= []).push(partial.id);
        else if (chunk !== undefined) (job.held ??= []).push(pieceOf(raw));
      }
      return normalizer.push(raw, watch);
    };
    // A malformed request throws before any of its events is added:
    // packed-lines.ts and decodeRequest read every entry first.
    const out = (this.queuedEvents ??= new EncodedBatch());
    if (Buffer.isBuffer(entries)) {
      const wait = this.packedLines.encode(entries, tag, out, general, watch);
      if (wait !== undefined) return wait;
    } else {
      const wait = mapper.lookupsOf(entries);
      if (wait !== undefined) return wait;
      for (const entry of entries) out.add(general(entry));
    }
    if (key !== undefined) {
      job.key = key;
      job.pending = this.ctx.ledger.begin(key);
    }
    this.enqueue(job);
    return undefined;
  }

  private enqueue(job: Job): void {
    this.queue.push(job);
    this.inFlightBytes += job.bytes;
  }

  /** Hands the queued requests to the pipeline, unless enough writes are under way already. */
  private flush(): void {
    if (this.queue.length === 0 || this.writes.length >= MAX_WRITES_IN_FLIGHT) return;
    const jobs = this.queue;
    this.queue = [];
    const batch: Batch = { jobs, durable: false };
    this.writes.push(batch);
    const events = this.queuedEvents;
    this.queuedEvents = undefined;
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
    // Acks leave in request order: a batch is acked only after every older one.
    while (this.writes[0]?.durable) {
      const done = this.writes.shift()!;
      const completed = done.jobs.flatMap((j) => j.completed ?? []);
      if (completed.length > 0) {
        this.ctx.partials.complete(completed).catch((err: unknown) => this.log.warn({ err }, 'could not delete stored split-line pieces'));
      }
      for (const job of done.jobs) {
        if (job.pending !== undefined) this.ctx.ledger.settle(job.key!, job.pending, true);
        this.inFlightBytes -= job.bytes;
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
    this.flush();
    this.applyBackpressure();
    this.maybeFinish();
  }

  private writeFailed(batch: Batch, err: unknown): void {
    if (!this.writes.includes(batch)) return;
    // Nothing after the failed batch may be acked either: acks are in order.
    for (const batch of this.writes) this.settleFailed(batch.jobs);
    this.writes = [];
    this.settleFailed(this.queue);
    this.queue = [];
    this.queuedEvents = undefined;
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

  private applyBackpressure(): void {
    const over = this.inFlightBytes + this.frameBytes > MAX_IN_FLIGHT_BYTES;
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
