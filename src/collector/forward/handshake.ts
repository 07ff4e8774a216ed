/**
 * The security handshake (spec v1 "Handshake Messages"), server side, as pure
 * functions: the connection sends HELO, reads one PING, answers PONG.
 *
 *   HELO  ["HELO", {nonce, auth, keepalive}]                      server → client
 *   PING  ["PING", client_hostname, shared_key_salt,
 *          sha512_hex(salt + client_hostname + nonce + shared_key),
 *          username, sha512_hex(auth_salt + username + password)] client → server
 *   PONG  ["PONG", ok, reason, server_hostname,
 *          sha512_hex(salt + server_hostname + nonce + shared_key)] server → client
 *
 * `+` is byte concatenation of the raw values (Fluentd's in_forward
 * `check_ping`, out_forward's handshake_protocol.rb); digests are lowercase hex.
 * On failure the server answers `["PONG", false, reason, "", ""]` and closes.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { encodeMsgpack } from './encode.js';

export interface HandshakeConfig {
  sharedKey: string;
  /** Sent in PONG; a client refuses a server with its own hostname. */
  selfHostname: string;
  /** When non-empty, clients must present one of these. */
  users: ReadonlyArray<{ username: string; password: string }>;
}

/** What one connection's server side chose: the nonce and the user-auth salt ("" when users are off). */
export interface HandshakeSecrets {
  nonce: Buffer;
  authSalt: Buffer;
}

export type PingVerdict =
  | { ok: true; pong: Buffer; clientHostname: string; username: string }
  | { ok: false; pong: Buffer; reason: string };

type Bytes = string | Buffer;

export function sharedKeyDigest(salt: Bytes, hostname: string, nonce: Bytes, sharedKey: string): string {
  return createHash('sha512').update(salt).update(hostname).update(nonce).update(sharedKey).digest('hex');
}

export function passwordDigest(authSalt: Bytes, username: string, password: string): string {
  return createHash('sha512').update(authSalt).update(username).update(password).digest('hex');
}

/** Nonce and auth salt go out as bin: fluent-logger only does user auth when `auth` is a non-empty bin. */
export function encodeHelo(secrets: HandshakeSecrets): Buffer {
  return encodeMsgpack(['HELO', { nonce: secrets.nonce, auth: secrets.authSalt, keepalive: true }]);
}

function refuse(reason: string): PingVerdict {
  return { ok: false, reason, pong: encodeMsgpack(['PONG', false, reason, '', '']) };
}

function digestEquals(given: string, expected: string): boolean {
  const a = Buffer.from(given, 'latin1');
  const b = Buffer.from(expected, 'latin1');
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Checks a decoded PING (bin values as Buffers) and builds the PONG. */
export function checkPing(ping: unknown, cfg: HandshakeConfig, secrets: HandshakeSecrets): PingVerdict {
  if (!Array.isArray(ping) || ping[0] !== 'PING') return refuse('expected PING');
  if (ping.length !== 6) return refuse(`PING has ${ping.length} elements, expected 6`);
  const [, hostname, salt, digest] = ping as unknown[];
  // fluent-logger sends nil for a username it was not given.
  const username = ping[4] ?? '';
  const password = ping[5] ?? '';
  if (typeof hostname !== 'string') return refuse('PING client_hostname is not a string');
  if (typeof salt !== 'string' && !Buffer.isBuffer(salt)) return refuse('PING shared_key_salt is not a string');
  if (typeof digest !== 'string') return refuse('PING shared_key_hexdigest is not a string');
  if (typeof username !== 'string' || typeof password !== 'string') return refuse('PING username or password is not a string');
  if (hostname === cfg.selfHostname) return refuse('same hostname between input and output: invalid configuration');
  if (!digestEquals(digest, sharedKeyDigest(salt, hostname, secrets.nonce, cfg.sharedKey))) return refuse('shared_key mismatch');
  if (cfg.users.length > 0) {
    const user = cfg.users.find((u) => u.username === username);
    if (user === undefined || !digestEquals(password, passwordDigest(secrets.authSalt, user.username, user.password))) {
      return refuse('username/password mismatch');
    }
  }
  const pong = encodeMsgpack(['PONG', true, '', cfg.selfHostname, sharedKeyDigest(salt, cfg.selfHostname, secrets.nonce, cfg.sharedKey)]);
  return { ok: true, pong, clientHostname: hostname, username };
}
