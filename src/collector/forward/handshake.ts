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
 *
 * A PING's values are bytes, whether sent as str or bin: Fluent Bit's
 * out_forward sends its salt as a str holding 16 random bytes, not UTF-8, so
 * the PING is decoded with every str kept raw and digests are computed over
 * exactly the bytes received.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { encodeMsgpack } from './encode.js';
import { decodeValue } from './decoder.js';
import type { DecodeLimits } from './messages.js';

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

export function sharedKeyDigest(salt: Bytes, hostname: Bytes, nonce: Bytes, sharedKey: string): string {
  return createHash('sha512').update(salt).update(hostname).update(nonce).update(sharedKey).digest('hex');
}

export function passwordDigest(authSalt: Bytes, username: Bytes, password: string): string {
  return createHash('sha512').update(authSalt).update(username).update(password).digest('hex');
}

/** Nonce and auth salt go out as bin: fluent-logger only does user auth when `auth` is a non-empty bin. */
export function encodeHelo(secrets: HandshakeSecrets): Buffer {
  return encodeMsgpack(['HELO', { nonce: secrets.nonce, auth: secrets.authSalt, keepalive: true }]);
}

function refuse(reason: string): PingVerdict {
  return { ok: false, reason, pong: encodeMsgpack(['PONG', false, reason, '', '']) };
}

/** A PING field as its bytes: str and bin alike (a string is taken as UTF-8), nil as empty. */
function bytesOf(v: unknown, nilAsEmpty = false): Buffer | undefined {
  if (Buffer.isBuffer(v)) return v;
  if (typeof v === 'string') return Buffer.from(v, 'utf8');
  return v === null && nilAsEmpty ? Buffer.alloc(0) : undefined;
}

function digestEquals(given: Buffer, expected: string): boolean {
  const b = Buffer.from(expected, 'latin1');
  return given.length === b.length && timingSafeEqual(given, b);
}

const PING = Buffer.from('PING');

/**
 * A PING's six fields are a few hundred bytes. The frame comes before the
 * client proved anything, and decoding builds an object per wire byte (an
 * array of 2 MiB of empty strings took 400 MB of heap): a larger frame is
 * refused unread.
 */
const MAX_PING_BYTES = 64 * 1024;

/** Checks the PING frame `frame`, and builds the PONG. */
export function checkPingFrame(frame: Buffer, limits: DecodeLimits, cfg: HandshakeConfig, secrets: HandshakeSecrets): PingVerdict {
  if (frame.length > MAX_PING_BYTES) return refuse(`expected PING, got a request of ${frame.length} bytes (a PING is at most ${MAX_PING_BYTES})`);
  return checkPing(decodeValue(frame, limits, 'all'), cfg, secrets);
}

/** Checks a PING decoded with str and bin as Buffers (decodeValue's `all`), and builds the PONG. */
export function checkPing(ping: unknown, cfg: HandshakeConfig, secrets: HandshakeSecrets): PingVerdict {
  if (!Array.isArray(ping) || !bytesOf(ping[0])?.equals(PING)) return refuse('expected PING');
  if (ping.length !== 6) return refuse(`PING has ${ping.length} elements, expected 6`);
  const hostname = bytesOf(ping[1]);
  const salt = bytesOf(ping[2]);
  const digest = bytesOf(ping[3]);
  // fluent-logger sends nil for a username it was not given.
  const username = bytesOf(ping[4], true);
  const password = bytesOf(ping[5], true);
  if (hostname === undefined) return refuse('PING client_hostname is not a string');
  if (salt === undefined) return refuse('PING shared_key_salt is not a string');
  if (digest === undefined) return refuse('PING shared_key_hexdigest is not a string');
  if (username === undefined || password === undefined) return refuse('PING username or password is not a string');
  if (hostname.equals(Buffer.from(cfg.selfHostname))) return refuse('same hostname between input and output: invalid configuration');
  if (!digestEquals(digest, sharedKeyDigest(salt, hostname, secrets.nonce, cfg.sharedKey))) return refuse('shared_key mismatch');
  if (cfg.users.length > 0) {
    const user = cfg.users.find((u) => username.equals(Buffer.from(u.username)));
    if (user === undefined || !digestEquals(password, passwordDigest(secrets.authSalt, username, user.password))) {
      return refuse('username/password mismatch');
    }
  }
  const pong = encodeMsgpack(['PONG', true, '', cfg.selfHostname, sharedKeyDigest(salt, cfg.selfHostname, secrets.nonce, cfg.sharedKey)]);
  return { ok: true, pong, clientHostname: hostname.toString('utf8'), username: username.toString('utf8') };
}
