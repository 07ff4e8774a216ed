import type { EventEmitter } from 'node:events';
import fluentLogger from 'fluent-logger';
import { afterEach, describe, expect, it } from 'vitest';
import { checkPing, encodeHelo, passwordDigest, sharedKeyDigest, type HandshakeConfig } from '../../../src/collector/forward/handshake.js';
import { decodeValue } from '../../../src/collector/forward/decoder.js';
import { encodeMsgpack } from '../../../src/collector/forward/encode.js';
import { LIMITS, dockerRecord, mp, rawClient, startTestInput, until, type TestInput } from '../../helpers/forward.js';

// Known answers computed independently (Python hashlib.sha512 of the concatenated bytes).
const SALT = '0123456789abcdef0123456789abcdef';
const NONCE = Buffer.from(Array.from({ length: 16 }, (_, i) => i));
const AUTH_SALT = Buffer.from(Array.from({ length: 16 }, (_, i) => 100 + i));
const SHARED_DIGEST =
  '3a680037d3979b4f789647cd22e7e55f2197791eb498799823c424e2213124ed63938d1c422f50e08ec02957ef44df338e46c77e8ea164b0dde6d64e171b30df';
const PASSWORD_DIGEST =
  '9b8f0290fe81bd206f3f3eed02663522e66b0a5da9c796404ec49c02d468ad3f0a73cc2c86018062f8632adb43ee44d72d997a9d98f8cb517eccd342e35967ea';

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
      await until(() => running!.logs.some((l) => l.msg === 'closing forward connection: bad input'), 5000, 'the close log');
      expect(running.logs.find((l) => l.msg === 'closing forward connection: bad input')).toMatchObject({ code: 'CLOGS_AUTH' });
      expect(running.sink.events).toHaveLength(0);
    });
  }

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
});
