/**
 * What a forward input a reload stops hands to the one it starts next: its
 * open connections, and its ledger of acked chunks.
 *
 * A client without acks (Docker's fluentd driver by default) counts what the
 * kernel took as delivered: closing its connection at a reload dropped the
 * requests it had written and clogs had not read, with nothing logged, and
 * a reload restarts the inputs for any of their settings (host_name,
 * docker.*). Kept open and paused, such a client waits through TCP flow
 * control while the inputs restart, and the next input reads on where the
 * last one stopped, from the bytes it had read of an unfinished request.
 * Fluentd's graceful reload and Vector's (for sources it leaves alone) keep
 * their connections the same way. The ledger goes along so that a chunk the
 * last input acked, sent again after the reload, is acked again rather than
 * written twice.
 *
 * Only an input that admits clients as the last one did takes the
 * connections: the same bound address, the same TLS material (the bytes of
 * certificate, key and CA, not their paths: a CA replaced in place revokes)
 * and the same handshake (shared key, users, self_hostname); otherwise a
 * reload that tightened access would keep clients the new settings refuse.
 */
import type { Socket } from 'node:net';
import { isDeepStrictEqual } from 'node:util';
import type { ForwardConfig } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import type { ChunkLedger } from './acks.js';
import type { Listener } from './server.js';

/** One connection between two inputs: paused, after every request it held was written and acked. */
export class KeptSocket {
  /**
   * Made before the connection lets go of the socket: from then on until an
   * input takes it, an error (a reset by the client) has this listener and
   * cannot reach the process unhandled.
   */
  constructor(
    readonly socket: Socket,
    /** What it had read of a request not finished yet. */
    readonly unread: Buffer,
    /** Whether the client had acks from this connection (it reads the socket). */
    readonly acked: boolean,
    private readonly log: Logger,
  ) {
    socket.on('error', this.onError);
  }

  /** The connection that takes the socket over listens from now on. */
  taken(): void {
    this.socket.off('error', this.onError);
  }

  private readonly onError = (err: Error): void => {
    this.log.debug({ err }, 'forward connection error while the inputs restart');
  };
}

/** Who may connect and how: an input takes kept connections only when this is the same. */
function admission(cfg: ForwardConfig, listener: Pick<Listener, 'address' | 'tlsDigest'>) {
  return { address: listener.address, tls: listener.tlsDigest, sharedKey: cfg.shared_key, selfHostname: cfg.self_hostname, users: cfg.users };
}

export class KeptConnections {
  private kept: KeptSocket[];

  constructor(
    kept: readonly KeptSocket[],
    /** Chunks acked so far, for the next input to know them. */
    readonly ledger: ChunkLedger,
    private readonly settings: ForwardConfig,
    private readonly listener: Pick<Listener, 'address' | 'tlsDigest'>,
    private readonly log: Logger,
  ) {
    this.kept = [...kept];
  }

  get size(): number {
    return this.kept.length;
  }

  /**
   * The connections an input with `cfg`, listening on `listener`, takes
   * over: all those still open when it admits clients as the input before it
   * did, else none (those are closed).
   */
  takeFor(cfg: ForwardConfig, listener: Pick<Listener, 'address' | 'tlsDigest'>): KeptSocket[] {
    if (!isDeepStrictEqual(admission(cfg, listener), admission(this.settings, this.listener))) {
      if (this.kept.length > 0) this.log.info({ connections: this.kept.length }, 'closing forward connections at the reload: the forward address, TLS or handshake settings changed');
      this.close();
      return [];
    }
    const taken = this.kept.filter((k) => !k.socket.destroyed);
    for (const k of this.kept) k.taken();
    this.kept = [];
    return taken;
  }

  /** Closes those no input took (the forward input is off, or a reload failed twice). */
  close(): void {
    for (const k of this.kept) k.socket.destroy();
    this.kept = [];
  }
}
