/**
 * One forward-protocol connection's life: the socket read (requests.ts
 * handles what it brings) and paused for backpressure, the handshake (HELO,
 * PING, PONG) and its timeout, acks written back, and the close, with its
 * reason logged and counted.
 *
 * Reading stops while a request is being rendered, and above
 * MAX_IN_FLIGHT_BYTES of rendered lines, requests waiting to be rendered and
 * a share per unacked request (render-budget.ts); a paused socket stops the
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
import { ClogsError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { ackLatency, connections, countBytesIn, inputErrors } from '../../metrics.js';
import { encodeAcks } from './acks.js';
import { checkPingFrame, encodeHelo, type HandshakeConfig, type HandshakeSecrets } from './handshake.js';
import { KeptSocket } from './handover.js';
import { RequestReader, type RequestContext } from './requests.js';
import type { Job } from './writes.js';

/** A client must send its PING this soon after HELO, however slowly it sends its bytes. */
const HANDSHAKE_TIMEOUT_MS = 30_000;
/** After our FIN, how long the peer gets to close before the socket is destroyed. */
const CLOSE_GRACE_MS = 1000;
/**
 * Acks written and not yet taken by the client above which reading pauses: a
 * client that never reads its acks would otherwise have them pile up here,
 * since an acked request holds nothing else.
 */
const MAX_UNREAD_ACK_BYTES = 1024 * 1024;
/** TCP keepalive: a peer whose host vanished does not hold a `max_connections` slot for ever. */
const KEEPALIVE_DELAY_MS = 60_000;

const connectionsForward = connections.labels({ input: 'forward' });

/** inputErrors `reason` label: a fixed set, whatever the message says. */
const REASONS: Partial<Record<string, string>> = {
  CLOGS_FRAME_TOO_LARGE: 'frame_too_large',
  CLOGS_FRAME_MALFORMED: 'malformed',
  CLOGS_TOO_MANY_KEYS: 'too_many_keys',
  CLOGS_AUTH: 'auth',
};

export interface ConnectionContext extends RequestContext {
  handshake: HandshakeConfig | undefined;
  log: Logger;
}

export class ForwardConnection {
  /** Resolves once the socket is closed. */
  readonly closed: Promise<void>;
  private readonly log: Logger;
  private readonly requests: RequestReader;
  private paused = false;
  /** False once closing: further bytes are ignored. */
  private accepting = true;
  /** Close once everything accepted is written and acked. */
  private ending = false;
  private failed = false;
  /** The collector is stopping or reloading: reading stays paused until the close. */
  private shuttingDown = false;
  /** Whether an ack was written: the client reads this socket. */
  private acked = false;
  /** HELO sent, PING not taken yet. */
  private handshaking = false;
  private graceTimer: NodeJS.Timeout | undefined;
  private handshakeTimer: NodeJS.Timeout | undefined;
  private idleWaiters: Array<() => void> = [];
  /** Removes this connection's listeners from the socket (release()). */
  private readonly detach: () => void;

  /** `kept`: a connection an input stopped for a reload handed over (handover.ts), its handshake done then if there was one. */
  constructor(
    private readonly socket: Socket,
    private readonly ctx: ConnectionContext,
    id: number,
    kept?: KeptSocket,
  ) {
    this.log = ctx.log.child({ conn: id, remote: `${socket.remoteAddress}:${socket.remotePort}` });
    const handshake = kept === undefined ? ctx.handshake : undefined;
    const secrets = handshake && { nonce: randomBytes(16), authSalt: handshake.users.length > 0 ? randomBytes(16) : Buffer.alloc(0) };
    this.requests = new RequestReader(
      ctx,
      {
        ping: secrets && ((frame) => this.onPing(frame, secrets)),
        bad: (err) => this.fail(err),
        failed: (err) => this.writeFailed(err),
        ack: (jobs) => this.ack(jobs),
        wake: () => this.resume(),
      },
      this.log,
    );
    connectionsForward.inc();
    let onClose!: () => void;
    this.closed = new Promise((resolve) => {
      onClose = () => {
        connectionsForward.dec();
        clearTimeout(this.graceTimer);
        clearTimeout(this.handshakeTimer);
        // Requests already decoded are still written (no ack can go out now,
        // but a resend of their chunk is then recognised as written).
        this.accepting = false;
        this.log.debug('forward connection closed');
        resolve();
      };
    });
    const onData = (chunk: Buffer): void => this.onData(chunk);
    const onDrain = (): void => this.resume();
    const onEnd = (): void => this.onPeerEnd();
    const onError = (err: Error): void => this.log.debug({ err }, 'forward connection error');
    socket.once('close', onClose);
    socket.on('data', onData);
    socket.on('drain', onDrain);
    socket.on('end', onEnd);
    socket.on('error', onError);
    this.detach = () => {
      socket.off('close', onClose);
      socket.off('data', onData);
      socket.off('drain', onDrain);
      socket.off('end', onEnd);
      socket.off('error', onError);
    };
    socket.setNoDelay(true);
    socket.setKeepAlive(true, KEEPALIVE_DELAY_MS);
    if (kept !== undefined) {
      this.log.debug({ unread: kept.unread.length }, 'forward connection taken over at a reload');
      // Paused by the input before: read on, from what it had read of an unfinished request.
      this.paused = true;
      this.acked = kept.acked;
      if (kept.unread.length > 0) this.requests.read(kept.unread);
      this.applyBackpressure();
      return;
    }
    this.log.debug('forward connection opened');
    if (secrets) {
      this.handshaking = true;
      socket.write(encodeHelo(secrets));
      this.handshakeTimer = setTimeout(() => this.fail(new ClogsError('CLOGS_AUTH', `no PING within ${HANDSHAKE_TIMEOUT_MS / 1000} s of HELO`), true), HANDSHAKE_TIMEOUT_MS);
      this.handshakeTimer.unref();
    }
  }

  /**
   * Stops reading, writes and acks what was already received, then closes.
   * What the client sends meanwhile stays unread in the socket rather than
   * read and dropped: a client without acks (Docker's driver by default)
   * cannot tell, and the sooner it sees the close the less it writes into it.
   */
  async shutdown(): Promise<void> {
    this.stopReading();
    this.ending = true;
    this.maybeFinish();
    await Promise.all([this.closed, this.idle()]);
  }

  /**
   * As shutdown(), but the socket stays open and paused, without this
   * connection's listeners, for the input a reload starts next
   * (handover.ts). Undefined when it closes instead: bad input or a failed
   * write closed it, its client ended it, or its handshake is not done.
   */
  async release(): Promise<KeptSocket | undefined> {
    this.stopReading();
    this.maybeFinish();
    await this.idle();
    // writableEnded: its close began (the client ended it, and what it sent is written).
    if (this.failed || this.ending || this.handshaking || this.socket.destroyed || this.socket.writableEnded) {
      this.ending = true;
      this.maybeFinish();
      await this.closed;
      return undefined;
    }
    // Its own error listener first, then this connection's go.
    const kept = new KeptSocket(this.socket, this.requests.unfinished(), this.acked, this.ctx.log);
    this.detach();
    clearTimeout(this.handshakeTimer);
    connectionsForward.dec();
    return kept;
  }

  /** For good, as the collector stops or reloads: what was read is still written and acked. */
  private stopReading(): void {
    this.shuttingDown = true;
    this.accepting = false;
    if (!this.paused) {
      this.paused = true;
      this.socket.pause();
    }
  }

  /** Resolves once no request of this connection waits for a write. */
  private idle(): Promise<void> {
    if (this.requests.idle) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private onData(chunk: Buffer): void {
    if (!this.accepting) return;
    countBytesIn('forward', chunk.length);
    this.requests.read(chunk);
    this.applyBackpressure();
  }

  private onPeerEnd(): void {
    if (this.accepting && this.requests.midFrame) {
      this.fail(new ClogsError('CLOGS_FRAME_MALFORMED', `connection closed in the middle of a request (${this.requests.buffered} bytes held)`));
      return;
    }
    this.accepting = false;
    this.ending = true;
    this.maybeFinish();
  }

  private onPing(frame: Buffer, secrets: HandshakeSecrets): void {
    const verdict = checkPingFrame(frame, this.ctx.limits, this.ctx.handshake!, secrets);
    this.socket.write(verdict.pong);
    if (!verdict.ok) {
      this.fail(new ClogsError('CLOGS_AUTH', `handshake refused: ${verdict.reason}`), true);
      return;
    }
    clearTimeout(this.handshakeTimer);
    this.handshaking = false;
    this.log.debug({ client: verdict.clientHostname, user: verdict.username || undefined }, 'forward handshake done');
  }

  /** Goes on once something the requests waited for is done. */
  private resume(): void {
    this.requests.run();
    this.applyBackpressure();
    this.maybeFinish();
  }

  /**
   * One socket write for all the acks that are due.
   * Measured: a write per ack cost 7% of the collector's CPU with pipelined
   * Message-mode clients. Separate writes would not help Docker's driver
   * either: with request-ack its stdout and stderr goroutines read acks from
   * one socket at once, each through a fresh buffered reader
   * (fluent-logger-golang `write`), so one can take the other's ack, even
   * from a server that acks every message at once; it then waits for the
   * logger's 10 s close and resends. The resend is acked without a duplicate.
   */
  private ack(jobs: readonly Job[]): void {
    const socket = this.socket;
    if (socket.destroyed || !socket.writable) return;
    this.acked = true;
    const now = performance.now();
    const chunks: Buffer[] = [];
    for (const job of jobs) {
      chunks.push(job.chunk!);
      ackLatency.observe((now - job.receivedAt) / 1000);
    }
    socket.write(encodeAcks(chunks));
  }

  private writeFailed(err: unknown): void {
    this.log.warn({ err }, 'closing forward connection unacked: the sinks did not take its events (the client will resend)');
    inputErrors.inc({ input: 'forward', reason: 'sink' });
    this.failed = true;
    this.accepting = false;
    this.socket.destroy();
    this.maybeFinish();
  }

  private applyBackpressure(): void {
    const over = this.requests.full || this.socket.writableLength > MAX_UNREAD_ACK_BYTES;
    if (over && !this.paused && this.accepting) {
      this.paused = true;
      this.socket.pause();
    } else if (!over && this.paused && !this.shuttingDown) {
      this.paused = false;
      this.socket.resume();
    }
  }

  /**
   * Bad input: log the reason, count it, stop reading, close once what came
   * before is written and acked. `untrusted`: a refused handshake, after
   * which nothing the client sent is taken.
   */
  private fail(err: unknown, untrusted = false): void {
    if (this.failed) return;
    this.failed = true;
    this.accepting = false;
    this.ending = true;
    if (untrusted) this.requests.stop();
    const code = err instanceof ClogsError ? err.code : undefined;
    const reason = err instanceof Error ? err.message : String(err);
    this.log.warn({ code, reason }, 'closing forward connection: bad input');
    inputErrors.inc({ input: 'forward', reason: (code && REASONS[code]) ?? 'malformed' });
    this.maybeFinish();
  }

  private maybeFinish(): void {
    if (!this.requests.idle) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
    const socket = this.socket;
    if (!this.ending || socket.destroyed) return;
    this.ending = false;
    if (this.shuttingDown && !this.acked) {
      // No ack to deliver: closed at once, so the client's next write fails and
      // it reconnects, instead of writing on into a socket read only to be dropped.
      socket.destroy();
      return;
    }
    // Keep reading (and ignoring) so the peer's FIN is seen and the socket
    // closes without a reset, which could drop acks the client has not read.
    if (this.paused) socket.resume();
    socket.end();
    this.graceTimer = setTimeout(() => socket.destroy(), CLOSE_GRACE_MS);
    this.graceTimer.unref();
  }
}
