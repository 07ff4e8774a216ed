import type { IncomingMessage, ServerResponse } from 'node:http';
import { describe, expect, it } from 'vitest';
import { createAuthenticator, TOKEN_COOKIE } from '../../../src/http/auth.js';
import { liveAuthorization } from '../../../src/tail/live.js';

const TOKEN = 'the-token-0123456789';
const request = (headers: Record<string, string>): IncomingMessage => ({ headers }) as unknown as IncomingMessage;
const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

function response(): ServerResponse & { status?: number; headers?: Record<string, string> } {
  const res = {
    req: { method: 'GET' },
    writeHead(status: number, headers: Record<string, string>) {
      res.status = status;
      res.headers = headers;
    },
    end() {},
  } as unknown as ServerResponse & { status?: number; headers?: Record<string, string> };
  return res;
}

describe('http.auth', () => {
  it('lets everything through when nothing is configured (loopback)', () => {
    expect(createAuthenticator(undefined).allows(request({}))).toBe(true);
  });

  it('takes the token as Bearer, as a Basic password with any user, or from the cookie', () => {
    const auth = createAuthenticator({ token: TOKEN, users: [] });
    expect(auth.allows(request({}))).toBe(false);
    expect(auth.allows(request({ authorization: `Bearer ${TOKEN}` }))).toBe(true);
    expect(auth.allows(request({ authorization: `bearer ${TOKEN}` }))).toBe(true);
    expect(auth.allows(request({ authorization: `Bearer ${TOKEN}x` }))).toBe(false);
    expect(auth.allows(request({ authorization: 'Bearer ' }))).toBe(false);
    expect(auth.allows(request({ authorization: basic('anyone', TOKEN) }))).toBe(true);
    expect(auth.allows(request({ authorization: basic(TOKEN, 'x') }))).toBe(false);
    expect(auth.allows(request({ cookie: `a=b; ${TOKEN_COOKIE}=${encodeURIComponent(TOKEN)}` }))).toBe(true);
    expect(auth.allows(request({ cookie: `${TOKEN_COOKIE}=nope` }))).toBe(false);
    expect(auth.allows(request({ cookie: `${TOKEN_COOKIE}=%E0%A4%A` }))).toBe(false);
  });

  it('takes a configured user and password, and nothing else', () => {
    const auth = createAuthenticator({ users: [{ username: 'ops', password: 'pw1' }, { username: 'dev', password: 'pw2' }] });
    expect(auth.allows(request({ authorization: basic('ops', 'pw1') }))).toBe(true);
    expect(auth.allows(request({ authorization: basic('dev', 'pw2') }))).toBe(true);
    expect(auth.allows(request({ authorization: basic('ops', 'pw2') }))).toBe(false);
    expect(auth.allows(request({ authorization: basic('ops', '') }))).toBe(false);
    expect(auth.allows(request({ authorization: 'Basic bm9jb2xvbg==' }))).toBe(false);
    expect(auth.allows(request({ authorization: 'Bearer pw1' }))).toBe(false);
  });

  it('accepts what clogs tail -f sends from the same config', () => {
    for (const cfg of [{ token: TOKEN, users: [] }, { users: [{ username: 'ops', password: 'pw1' }] }]) {
      const authorization = liveAuthorization(cfg)!;
      expect(createAuthenticator(cfg).allows(request({ authorization }))).toBe(true);
    }
    expect(liveAuthorization(undefined)).toBeUndefined();
  });

  it('answers 401 with a Basic challenge, so a browser asks for it', () => {
    const res = response();
    createAuthenticator({ token: TOKEN, users: [] }).refuse(res);
    expect(res.status).toBe(401);
    expect(res.headers?.['www-authenticate']).toBe('Basic realm="clogs", charset="UTF-8"');
  });

  it('turns /?token= into a cookie and an address without the token', () => {
    const auth = createAuthenticator({ token: TOKEN, users: [] });
    const res = response();
    expect(auth.acceptTokenLink(new URL(`http://h/?container=web&token=${TOKEN}`), res)).toBe(true);
    expect(res.status).toBe(303);
    expect(res.headers?.location).toBe('/?container=web');
    expect(res.headers?.['set-cookie']).toBe(`${TOKEN_COOKIE}=${TOKEN}; Path=/; HttpOnly; SameSite=Strict`);
    expect(auth.acceptTokenLink(new URL('http://h/?token=wrong'), response())).toBe(false);
    expect(auth.acceptTokenLink(new URL('http://h/'), response())).toBe(false);
  });
});
