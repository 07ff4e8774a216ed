/**
 * The web page's own files (`web/` in the repository, copied to `dist/web/`
 * by `npm run build`), served by the collector itself: nothing is fetched
 * from anywhere else, and the Content-Security-Policy says so to the browser,
 * so even a log line that slipped through as markup could run no script.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';

/** From src/http/ (tests) and from dist/src/http/ (the build) alike. */
const WEB_DIR = new URL('../../web/', import.meta.url);

const FILES: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/ui/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/ui/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
};

const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'referrer-policy': 'no-referrer',
};

interface Loaded {
  body: Buffer;
  etag: string;
}

export interface WebFiles {
  /** Whether `path` is one of the page's files. */
  has(path: string): boolean;
  serve(path: string, req: IncomingMessage, res: ServerResponse): Promise<void>;
}

export function createWebFiles(): WebFiles {
  // Read once, on first use: a few kilobytes that never change while the process runs.
  const cache = new Map<string, Promise<Loaded>>();
  const load = (file: string): Promise<Loaded> => {
    let p = cache.get(file);
    if (!p) {
      p = readFile(new URL(file, WEB_DIR)).then((body) => ({ body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` }));
      p.catch(() => cache.delete(file));
      cache.set(file, p);
    }
    return p;
  };

  return {
    has: (path) => path in FILES,
    async serve(path, req, res) {
      const entry = FILES[path]!;
      let loaded: Loaded;
      try {
        loaded = await load(entry.file);
      } catch {
        const body = `the web page's files are missing (${entry.file} under ${WEB_DIR.pathname}): build with "npm run build"\n`;
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
        res.end(body);
        return;
      }
      const headers = { ...SECURITY_HEADERS, etag: loaded.etag, 'cache-control': 'no-cache' };
      if (req.headers['if-none-match'] === loaded.etag) {
        res.writeHead(304, headers);
        res.end();
        return;
      }
      res.writeHead(200, { ...headers, 'content-type': entry.type, 'content-length': loaded.body.length });
      res.end(req.method === 'HEAD' ? undefined : loaded.body);
    },
  };
}
