/**
 * Who may see the logs: `http.auth` from the config, checked on the page,
 * `/api` and `/tail` (never on /healthz, /readyz, /metrics, which hold no
 * log line).
 *
 * Accepted credentials, each compared in constant time (SHA-256 digests of
 * both sides, so lengths never leak either):
 * - `Authorization: Bearer TOKEN`, for scripts and `clogs tail -f`;
 * - `Authorization: Basic` with a configured user, or any user name and the
 *   token as the password: the browser asks for it by itself and sends it
 *   again with every request of the page, EventSource included;
 * - the `clogs_token` cookie, set when the page is opened as `/?token=TOKEN`
 *   (then redirected to the address without it, so the token does not stay in
 *   the history or get shared with a link).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { HttpAuthConfig } from '../config/schema.js';

export const TOKEN_COOKIE = 'clogs_token';

export interface Authenticator {
  /** True when no credential is configured: every request is let through. */
  readonly open: boolean;
  /** True when the request carries valid credentials, or none are configured. */
  allows(req: IncomingMessage): boolean;
  /** Answers 401 with the challenge that makes a browser ask for a user and password. */
  refuse(res: ServerResponse): void;
  /**
   * `/?token=TOKEN` with the right token: sets the cookie, redirects to the
   * same address without the token, and returns true (the request is answered).
   */
  acceptTokenLink(url: URL, res: ServerResponse): boolean;
}

const digest = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();
const sameSecret = (given: string, expected: Buffer): boolean => timingSafeEqual(digest(given), expected);

export function createAuthenticator(cfg: HttpAuthConfig | undefined): Authenticator {
  const token = cfg?.token === undefined ? undefined : digest(cfg.token);
  const users = (cfg?.users ?? []).map((u) => ({ user: digest(u.username), password: digest(u.password) }));
  const open = token === undefined && users.length === 0;

  const tokenMatches = (given: string): boolean => token !== undefined && sameSecret(given, token);
  const userMatches = (name: string, password: string): boolean => {
    let ok = false;
    // Every name and password is compared, so the time taken does not tell which user exists.
    for (const u of users) {
      const nameOk = sameSecret(name, u.user);
      const passwordOk = sameSecret(password, u.password);
      ok = (nameOk && passwordOk) || ok;
    }
    return ok;
  };

  return {
    open,

    allows(req) {
      if (open) return true;
      const header = req.headers.authorization ?? '';
      const space = header.indexOf(' ');
      const scheme = header.slice(0, space).toLowerCase();
      const value = header.slice(space + 1).trim();
      if (scheme === 'bearer') return tokenMatches(value);
      if (scheme === 'basic') {
        const decoded = Buffer.from(value, 'base64').toString('utf8');
        const colon = decoded.indexOf(':');
        if (colon === -1) return false;
        const password = decoded.slice(colon + 1);
        return userMatches(decoded.slice(0, colon), password) || tokenMatches(password);
      }
      const cookie = cookieValue(req.headers.cookie, TOKEN_COOKIE);
      return cookie !== undefined && tokenMatches(cookie);
    },

    refuse(res) {
      const body = 'authentication required: send the token (Authorization: Bearer, or open /?token=TOKEN) or a user of http.auth.users\n';
      res.writeHead(401, {
        'www-authenticate': 'Basic realm="clogs", charset="UTF-8"',
        'content-type': 'text/plain; charset=utf-8',
        'content-length': Buffer.byteLength(body),
        'cache-control': 'no-store',
      });
      res.end(res.req.method === 'HEAD' ? undefined : body);
    },

    acceptTokenLink(url, res) {
      const given = url.searchParams.get('token');
      if (given === null || !tokenMatches(given)) return false;
      url.searchParams.delete('token');
      res.writeHead(303, {
        location: url.pathname + url.search,
        'set-cookie': `${TOKEN_COOKIE}=${encodeURIComponent(given)}; Path=/; HttpOnly; SameSite=Strict`,
        'cache-control': 'no-store',
      });
      res.end();
      return true;
    },
  };
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === name) {
      try {
        return decodeURIComponent(part.slice(eq + 1).trim());
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}
