/**
 * Forward connections handed from an input a reload stops to the one it
 * starts next, instead of closed.
 *
 * A client without acks (Docker's fluentd driver by default) counts what the
 * kernel took as delivered: closing its connection at a reload dropped the
 * requests it had written and clogs had not read, with nothing logged, and
 * a reload restarts the inputs for any of their settings (host_name,
 * docker.*). Kept open and paused, such a client waits through TCP flow
 * control while the inputs restart, and the next input reads on where the
 * last one stopped, from the bytes it had read of an unfinished request.
 * Fluentd's graceful reload and Vector's (for sources it leaves alone) keep
 * their connections the same way.
 *
 * Only an input that admits clients as the last one did takes them: the same
 * address, TLS settings and handshake (shared key, users); otherwise a reload
 * that tightened access would keep clients the new settings refuse.
 */
import type { Socket } from 'node:net';
import { isDeepStrictEqual } from 'node:util';
import type { ForwardConfig } from '../../config/schema.js';
import type { Logger } from '../../log.js';

/** One connection between two inputs: paused, after every request it held was written and acked. */
export interface KeptSocket {
  readonly socket: Socket;
  /** What it had read of a request not finished yet. */
  readonly unread: Buffer;
}

/** The settings that decide who may connect and how, besides the address: an input takes kept connections only when they are the same. */
const admission = (cfg: ForwardConfig) => ({ tls: cfg.tls, sharedKey: cfg.shared_key, selfHostname: cfg.self_hostname, users: cfg.users });

export class KeptConnections {
  private kept: KeptSocket[];

  /** `address`: where the input that kept them listened (`host:port` as bound). */
  constructor(
    kept: readonly KeptSocket[],
    private readonly settings: ForwardConfig,
    private readonly address: string,
    private readonly log: Logger,
  ) {
    this.kept = [...kept];
    // No connection listens to them until the next input takes them: an error
    // (a reset by the client) must not reach the process unhandled.
    for (const k of this.kept) k.socket.on('error', this.onError);
  }

  get size(): number {
    return this.kept.length;
  }

  /**
   * The connections an input with `cfg`, listening at `address`, takes over:
   * all those still open when it admits clients as the input before it did,
   * else none (those are closed).
   */
  takeFor(cfg: ForwardConfig, address: string): KeptSocket[] {
    if (address !== this.address || !isDeepStrictEqual(admission(cfg), admission(this.settings))) {
      if (this.kept.length > 0) this.log.info({ connections: this.kept.length }, 'closing forward connections at the reload: the forward address, TLS or handshake settings changed');
      this.close();
      return [];
    }
    const taken = this.kept.filter((k) => !k.socket.destroyed);
    for (const k of this.kept) k.socket.off('error', this.onError);
    this.kept = [];
    return taken;
  }

  /** Closes those no input took (the forward input is off, or a reload failed twice). */
  close(): void {
    for (const k of this.kept) k.socket.destroy();
    this.kept = [];
  }

  private readonly onError = (err: Error): void => {
    this.log.debug({ err }, 'forward connection error while the inputs restart');
  };
}
