import type { EventEmitter } from 'node:events';
import fluentLogger from 'fluent-logger';
import { afterEach, describe, expect, it } from 'vitest';
import { checkPing, encodeHelo, passwordDigest, sharedKeyDigest, type HandshakeConfig } from '../../../src/collector/forward/handshake.js';
import { decodeValue } from '../../../src/collector/forward/decoder.js';
import { encodeMsgpack } from '../../../src/collector/forward/encode.js';
import { LIMITS, dockerRecord, mp, rawClient, startTestInput, type TestInput } from '../../helpers/forward.js';
import { until } from '../../helpers/until.js';

// Known answers computed independently (Python hashlib.sha512 of the concatenated bytes).
const SALT = '0123456789abcdef0123456789abcdef';
const NONCE = Buffer.from(Array.from({ length: 16 }, (_, i) => i));
const AUTH_SALT = Buffer.from(Array.from({ length: 16 }, (_, i) => 100 + i));
const SHARED_DIGEST =
  '3a680037d3979b4f789647cd22e7e55f2197791eb498799823c424e2213124ed63938d1c422f50e08ec02957ef44df338e46c77e8ea164b0dde6d64e171b30df';
const PASSWORD_DIGEST =
  '9b8f0290fe81bd206f3f3eed02663522e66b0a5da9c796404ec49c02d468ad3f0a73cc2c86018062f8632adb43ee44d72d997a9d98f8cb517eccd342e35967ea';

// Fluent Bit's out_forward: 16 random bytes sent as a msgpack str; these are not UTF-8.
const RAW_SALT = Buffer.from([0xff, 0xfe, 0x80, 0xc3, 0x28, 0xa0, 0xa1, 0xe2, 0x28, 0xa1, 0xf0, 0x90, 0x28, 0xbc, 0x00, 0x7f]);
const RAW_SALT_DIGEST =
  'ee8687460309fa3ef3cc4e858b7d8350f16fd93493642c8bb4c7fba18780bb923f0314860ef22bcf4cf0eb21222239f80c5d391d48e31cc92e77320df949a75c';
const RAW_SALT_PONG_DIGEST =
  '422900281a01ef65223bd980179f336c09f02873277eeb2b95cdce1a43888beadc5e23b3ffb46aba8be5bb3c9dc3cb176e1de57d587fdbc7afe66a82f8c634af';
/** A PING as Fluent Bit encodes it: every field a str, the salt raw bytes. */
const rawSaltPing = (digest = RAW_SALT_DIGEST): Buffer =>
  mp.arr(mp.str('PING'), mp.str('fluent-bit.test'), mp.str(RAW_SALT), mp.str(digest), mp.str(''), mp.str(''));

const cfg: HandshakeConfig = { sharedKey: 'secret', selfHostname: 'clogs.example', users: [] };
const secrets = { nonce: NONCE, authSalt: AUTH_SALT };
const ping = (over: Partial<Record<number, unknown>> = {}): unknown[] => {
  const p: unknown[] = ['PING', 'client.example', SALT, SHARED_DIGEST, '', ''];
  for (const [i, v] of Object.entries(over)) p[Number(i)] = v;
  return p;
};

describe('handshake digests and PING checks', () => {
  it('computes the spec digests over the raw bytes', () => {
    expect(sharedKeyDigest(SALT, 'client.example', NONCE, 'secret')).toBe(SHARED_DIGEST);
    expect(sharedKeyDigest(Buffer.from(SALT), 'client.example', NONCE, 'secret')).toBe(SHARED_DIGEST);
    expect(passwordDigest(AUTH_SALT, 'alice', 'pw')).toBe(PASSWORD_DIGEST);
  });

  it('sends HELO with the nonce and auth salt as bin', () => {
    expect(decodeValue(encodeHelo(secrets), LIMITS)).toEqual(['HELO', { nonce: NONCE, auth: AUTH_SALT, keepalive: true }]);
  });

  it('accepts a good PING and answers PONG with the server-side digest', () => {
    const v = checkPing(ping(), cfg, secrets);
    expect(v.ok).toBe(true);
    expect(decodeValue(v.pong, LIMITS)).toEqual(['PONG', true, '', 'clogs.example', sharedKeyDigest(SALT, 'clogs.example', NONCE, 'secret')]);
  });

  it('accepts a salt sent as bin', () => {
    expect(checkPing(ping({ 2: Buffer.from(SALT) }), cfg, secrets).ok).toBe(true);
  });

  it('accepts a salt of 16 non-UTF-8 bytes sent as str (Fluent Bit), digests over the bytes received', () => {
    const decoded = decodeValue(rawSaltPing(), LIMITS, 'all');
    expect((decoded as unknown[])[2]).toEqual(RAW_SALT);
    const v = checkPing(decoded, cfg, secrets);
    expect(v.ok).toBe(true);
    expect(v.ok && v.clientHostname).toBe('fluent-bit.test');
    expect(decodeValue(v.pong, LIMITS)).toEqual(['PONG', true, '', 'clogs.example', RAW_SALT_PONG_DIGEST]);
    // The same salt as bin: the same bytes, the same answer.
    const asBin = mp.arr(mp.str('PING'), mp.str('fluent-bit.test'), mp.bin(RAW_SALT), mp.str(RAW_SALT_DIGEST), mp.str(''), mp.str(''));
    expect(checkPing(decodeValue(asBin, LIMITS, 'all'), cfg, secrets).ok).toBe(true);
    expect(checkPing(decodeValue(rawSaltPing('00'.repeat(64)), LIMITS, 'all'), cfg, secrets)).toMatchObject({ ok: false, reason: 'shared_key mismatch' });
  });

  it('checks user auth over the raw bytes of a non-UTF-8 username sent as str', () => {
    const name = Buffer.from([0x61, 0xe9]); // "a" then Latin-1 "é": not UTF-8
    const withUsers = { ...cfg, users: [{ username: name.toString('latin1'), password: 'pw' }] };
    const ping = mp.arr(mp.str('PING'), mp.str('c'), mp.str(RAW_SALT), mp.str(sharedKeyDigest(RAW_SALT, 'c', NONCE, 'secret')), mp.str(name), mp.str(''));
    // The configured name is UTF-8 text: its bytes differ from the client's Latin-1 bytes.
    expect(checkPing(decodeValue(ping, LIMITS, 'all'), withUsers, secrets)).toMatchObject({ ok: false, reason: 'username/password mismatch' });
    const utf8Name = Buffer.from('a\u00e9');
    const good = mp.arr(
      mp.str('PING'), mp.str('c'), mp.str(RAW_SALT), mp.str(sharedKeyDigest(RAW_SALT, 'c', NONCE, 'secret')),
      mp.str(utf8Name), mp.str(passwordDigest(AUTH_SALT, utf8Name, 'pw')),
    );
    const v = checkPing(decodeValue(good, LIMITS, 'all'), { ...cfg, users: [{ username: 'a\u00e9', password: 'pw' }] }, secrets);
    expect(v).toMatchObject({ ok: true, username: 'a\u00e9' });
  });

  it.each([
    ['a wrong digest', ping({ 3: '00'.repeat(64) }), 'shared_key mismatch'],
    ['a wrong hostname for the digest', ping({ 1: 'other.example' }), 'shared_key mismatch'],
    ['the server\'s own hostname', ping({ 1: 'clogs.example' }), 'same hostname'],
    ['5 elements', ping().slice(0, 5), 'PING has 5 elements'],
    ['not a PING', ['PONG'], 'expected PING'],
    ['a number as hostname', ping({ 1: 7 }), 'client_hostname'],
  ])('refuses %s with PONG false and a reason', (_what, p, reason) => {
    const v = checkPing(p, cfg, secrets);
    expect(v.ok).toBe(false);
    const pong = decodeValue(v.pong, LIMITS) as unknown[];
    expect(pong[0]).toBe('PONG');
    expect(pong[1]).toBe(false);
    expect(pong[2]).toContain(reason);
    expect(pong.slice(3)).toEqual(['', '']);
  });

  it('checks users when configured', () => {
    const withUsers = { ...cfg, users: [{ username: 'alice', password: 'pw' }] };
    expect(checkPing(ping({ 4: 'alice', 5: PASSWORD_DIGEST }), withUsers, secrets).ok).toBe(true);
    const wrong = checkPing(ping({ 4: 'alice', 5: passwordDigest(AUTH_SALT, 'alice', 'nope') }), withUsers, secrets);
    expect(wrong.ok === false && wrong.reason).toBe('username/password mismatch');
    expect(checkPing(ping({ 4: 'bob', 5: PASSWORD_DIGEST }), withUsers, secrets).ok).toBe(false);
    expect(checkPing(ping(), withUsers, secrets).ok).toBe(false);
  });
});

const quiet = { info: () => undefined, error: () => undefined };
let running: TestInput | undefined;
afterEach(async () => {
  await running?.stop();
  running = undefined;
});

function secureSender(port: number, security: Omit<fluentLogger.Security, 'clientHostname'>) {
  const options: fluentLogger.Options & { enableReconnect: boolean } = {
    host: '127.0.0.1',
    port,
    requireAckResponse: true,
    enableReconnect: false,
    internalLogger: quiet,
    security: { clientHostname: 'client.example', ...security },
  };
  return fluentLogger.createFluentSender<Record<string, unknown>>('secure', options);
}

describe('handshake with fluent-logger as the client', () => {
  it('lets a client with the shared key in, and its records through', async () => {
    running = await startTestInput({ shared_key: 'secret', self_hostname: 'clogs.example' });
    const s = secureSender(running.port, { sharedKey: 'secret' });
    await new Promise<void>((resolve, reject) => s.emit('a', { msg: 'secured' }, (err) => (err ? reject(err) : resolve())));
    expect(running.sink.events.map((e) => e.message)).toEqual(['secured']);
    s.end(undefined as unknown as string, undefined as unknown as Record<string, unknown>, () => undefined);
  });

  it('checks username and password', async () => {
    running = await startTestInput({ shared_key: 'secret', self_hostname: 'clogs.example', users: [{ username: 'alice', password: 'pw' }] });
    const s = secureSender(running.port, { sharedKey: 'secret', username: 'alice', password: 'pw' });
    await new Promise<void>((resolve, reject) => s.emit('a', { msg: 'user ok' }, (err) => (err ? reject(err) : resolve())));
    expect(running.sink.events.map((e) => e.message)).toEqual(['user ok']);
    s.end(undefined as unknown as string, undefined as unknown as Record<string, unknown>, () => undefined);
  });

  for (const [what, security, reason] of [
    ['a wrong shared key', { sharedKey: 'wrong' }, 'shared_key mismatch'],
    ['a wrong password', { sharedKey: 'secret', username: 'alice', password: 'nope' }, 'username/password mismatch'],
  ] as const) {
    it(`refuses ${what}: PONG false, closed, nothing written`, async () => {
      running = await startTestInput({ shared_key: 'secret', self_hostname: 'clogs.example', users: [{ username: 'alice', password: 'pw' }] });
      const s = secureSender(running.port, security);
      const error = new Promise<Error>((resolve) => (s as unknown as EventEmitter).on('error', resolve));
      s.emit('a', { msg: 'refused' });
      expect((await error).message).toContain(reason);
      await until('the close log', () => running!.logs.some((l) => l.msg === 'closing forward connection: bad input'), 5000);
      expect(running.logs.find((l) => l.msg === 'closing forward connection: bad input')).toMatchObject({ code: 'CLOGS_AUTH' });
      expect(running.sink.events).toHaveLength(0);
    });
  }

  it('lets in a raw client whose salt is 16 non-UTF-8 bytes sent as str, as Fluent Bit does', async () => {
    running = await startTestInput({ shared_key: 'secret', self_hostname: 'clogs.example' });
    const c = await rawClient(running.port);
    const [helo] = (await c.waitReplies(1)) as Array<[string, { nonce: Buffer }]>;
    const nonce = helo![1].nonce;
    const digest = sharedKeyDigest(RAW_SALT, 'fluent-bit.test', nonce, 'secret');
    await c.send(mp.arr(mp.str('PING'), mp.str('fluent-bit.test'), mp.str(RAW_SALT), mp.str(digest), mp.str(''), mp.str('')));
    const replies = await c.waitReplies(2);
    expect(replies[1]).toEqual(['PONG', true, '', 'clogs.example', sharedKeyDigest(RAW_SALT, 'clogs.example', nonce, 'secret')]);
    await c.send(mp.arr(mp.str('t'), mp.int32(1), dockerRecord('after a raw salt'), encodeMsgpack({ chunk: 'k1' })));
    expect((await c.waitReplies(3))[2]).toEqual({ ack: 'k1' });
    expect(running.sink.events.map((e) => e.message)).toEqual(['after a raw salt']);
    c.socket.end();
  });

  it('refuses a client that skips the handshake', async () => {
    running = await startTestInput({ shared_key: 'secret' });
    const c = await rawClient(running.port);
    await c.send(mp.arr(mp.str('t'), mp.int32(1), dockerRecord('sneaky'), encodeMsgpack({ chunk: 'x' })));
    await c.closed;
    const [helo, pong] = c.replies() as unknown[][];
    expect(helo![0]).toBe('HELO');
    expect(pong).toEqual(['PONG', false, 'expected PING', '', '']);
    expect(running.sink.events).toHaveLength(0);
  });

  it('refuses a first frame larger than any PING unread: decoding it would build an object per byte', async () => {
    running = await startTestInput({ shared_key: 'secret' });
    const c = await rawClient(running.port);
    // An array of 1 MiB empty strings: 1 MiB on the wire, hundreds of MB as objects.
    const n = 1 << 20;
    const head = Buffer.from([0xdd, 0, 0, 0, 0]);
    head.writeUInt32BE(n, 1);
    await c.send(Buffer.concat([head, Buffer.alloc(n, 0xa0)]));
    await c.closed;
    const [, pong] = c.replies() as unknown[][];
    expect(pong).toEqual(['PONG', false, `expected PING, got a request of ${n + 5} bytes (a PING is at most 65536)`, '', '']);
  });
});
