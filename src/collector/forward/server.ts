/**
 * The listeners: TCP (or TLS) for requests, and UDP on the same port for the
 * spec's heartbeat (spec v1 "Heartbeat Message": the server answers a UDP
 * packet with one 0x00 byte; Fluentd's out_forward `heartbeat_type udp` uses it).
 */
import { createHash } from 'node:crypto';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { ClogsError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { inputErrors } from '../../metrics.js';
import type { ForwardConfig } from '../../config/schema.js';

const HEARTBEAT_REPLY = Buffer.from([0]);

export interface Listener {
  /** `host:port` actually bound (`[::1]:24224` for IPv6). */
  readonly address: string;
  /** SHA-256 of the certificate, key and CA it serves TLS with (undefined without TLS): what a reload compares (handover.ts). */
  readonly tlsDigest: string | undefined;
  /** Stops accepting TCP connections and closes the UDP socket; open connections are left alone. */
  close(): Promise<void>;
}

export async function listen(cfg: ForwardConfig, log: Logger, onSocket: (socket: Socket) => void): Promise<Listener> {
  const { host, port } = cfg.listen;
  const where = (p: number) => (host.includes(':') ? `[${host}]:${p}` : `${host}:${p}`);
  // Half-open: a client may send its last request and shut its side down; the
  // acks still have to go out.
  const options = { allowHalfOpen: true, pauseOnConnect: false };
  let server: Server;
  let tlsDigest: string | undefined;
  if (cfg.tls) {
    const tlsCfg = cfg.tls;
    const read = (file: string, what: string): Buffer => {
      try {
        return readFileSync(file);
      } catch (err) {
        throw new ClogsError('CLOGS_CONFIG', `forward.tls.${what}: cannot read ${file}: ${(err as Error).message}`, { cause: err });
      }
    };
    const cert = read(tlsCfg.cert, 'cert');
    const key = read(tlsCfg.key, 'key');
    const ca = tlsCfg.ca ? read(tlsCfg.ca, 'ca') : undefined;
    const digest = createHash('sha256');
    for (const part of [cert, key, ca ?? Buffer.alloc(0)]) digest.update(createHash('sha256').update(part).digest());
    tlsDigest = digest.digest('hex');
    server = createTlsServer({
      ...options,
      cert,
      key,
      ...(ca ? { ca, requestCert: true, rejectUnauthorized: true } : {}),
    });
    server.on('secureConnection', onSocket);
    server.on('tlsClientError', (err, socket) => {
      log.warn({ reason: err.message, remote: socket.remoteAddress }, 'closing forward connection: TLS handshake failed');
      inputErrors.inc({ input: 'forward', reason: 'tls' });
    });
  } else {
    server = createServer(options, onSocket);
  }
  server.maxConnections = cfg.max_connections;
  server.on('drop', (d) => {
    log.warn({ remote: d?.remoteAddress, max_connections: cfg.max_connections }, 'refusing forward connection: max_connections reached');
    inputErrors.inc({ input: 'forward', reason: 'connection_limit' });
  });

  // Port 0: the UDP port is bound to whatever TCP got, which can be taken on
  // the UDP side; then both are tried again on a new port.
  for (let attempt = 1; ; attempt++) {
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => reject(listenError(where(port), 'TCP', err)));
      server.listen({ host, port }, () => {
        server.removeAllListeners('error');
        resolve();
      });
    });
    const bound = (server.address() as { port: number }).port;
    let udp: UdpSocket;
    try {
      udp = await bindUdp(host, bound, log);
    } catch (err) {
      await new Promise((resolve) => server.close(resolve));
      if (port === 0 && attempt < 5) continue;
      throw err;
    }
    server.on('error', (err) => log.error({ err }, 'forward listener error'));
    return {
      address: where(bound),
      tlsDigest,
      close: async () => {
        // Open connections are closed by their owners, not waited for here.
        server.close();
        await new Promise<void>((resolve) => udp.close(() => resolve()));
      },
    };
  }
}

function bindUdp(host: string, port: number, log: Logger): Promise<UdpSocket> {
  const udp = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  udp.on('message', (_msg, peer) => {
    udp.send(HEARTBEAT_REPLY, peer.port, peer.address, (err) => {
      if (err) log.debug({ err }, 'could not answer a UDP heartbeat');
    });
  });
  return new Promise((resolve, reject) => {
    udp.once('error', (err: NodeJS.ErrnoException) => reject(listenError(`${host}:${port}`, 'UDP heartbeat', err)));
    udp.bind({ address: host, port }, () => {
      udp.removeAllListeners('error');
      udp.on('error', (err) => log.warn({ err }, 'UDP heartbeat socket error'));
      resolve(udp);
    });
  });
}

function listenError(where: string, what: string, err: NodeJS.ErrnoException): ClogsError {
  const why =
    err.code === 'EADDRINUSE'
      ? 'address in use (another collector or Fluentd on this port? set forward.listen or --forward)'
      : err.code === 'EACCES'
        ? 'permission denied (ports below 1024 need privileges)'
        : err.code === 'EADDRNOTAVAIL'
          ? 'no such local address'
          : err.message;
  return new ClogsError('CLOGS_LISTEN', `cannot listen on ${where}${what === 'TCP' ? '' : ` (${what})`}: ${why}`, { cause: err });
}
