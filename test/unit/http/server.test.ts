import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Pipeline } from '../../../src/collector/pipeline.js';
import type { HttpAuthConfig } from '../../../src/config/schema.js';
import type { LogReader } from '../../../src/http/api.js';
import { startHttpServer } from '../../../src/http/server.js';
import { createFileStore } from '../../../src/tail/store-file.js';
import { ClogsError } from '../../../src/errors.js';
import { memoryLogger } from '../../helpers/elasticsearch.js';
import { appendToStore, container, fakeId, makeEvent } from '../../helpers/tail.js';

const SECRET = 'a secret log line';
const TOKEN = 'the-token-0123456789';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** The server on 127.0.0.1, reading a store that holds one line. */
async function serve(auth?: HttpAuthConfig): Promise<{ port: number; lines: Record<string, unknown>[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'clogs-http-server-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  appendToStore(dir, [makeEvent({ container: container(fakeId('aa'), 'web'), sec: 1795341190, seq: 1, message: SECRET, stream: 'stdout' })]);
  const store = createFileStore(dir, () => undefined);
  const reader: LogReader = { store: () => store, containerStates: async () => undefined };
  const { log, lines } = memoryLogger();
  const pipeline = new Pipeline();
  const cfg = auth === undefined ? { enabled: true, listen: { host: '127.0.0.1', port: 0 } } : { enabled: true, listen: { host: '127.0.0.1', port: 0 }, auth };
  const http = await startHttpServer(cfg, { log, pipeline, inputs: () => [], sinks: () => [], reader });
  cleanups.push(() => http.close());
  return { port: Number(http.address.split(':')[1]), lines };
}

/** GET `path` with `host` as the Host header (the connection always goes to 127.0.0.1). */
function get(port: number, path: string, host: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, headers: { ...headers, host } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Writes `text` as is and returns all the server answers until it closes the connection. */
function raw(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (received += chunk));
    socket.on('end', () => resolve(received));
    socket.on('error', reject);
    socket.write(text);
  });
}

describe('HTTP server without http.auth: DNS rebinding', () => {
  it('answers 421, and no log line, to a Host that does not name this machine, on every path', async () => {
    const { port, lines } = await serve();
    for (const path of ['/', '/api/lines', '/api/export', '/api/containers', '/tail', '/healthz', '/readyz', '/metrics', '/nope']) {
      const res = await get(port, path, `attacker.example:${port}`);
      expect(res.status, path).toBe(421);
      expect(res.body).toMatch(/^misdirected request: .*DNS rebinding/);
      expect(res.body).not.toContain(SECRET);
    }
    // Refused before anything else is looked at.
    expect((await raw(port, `POST /api/lines HTTP/1.1\r\nHost: attacker.example\r\nConnection: close\r\n\r\n`)).split('\r\n')[0]).toBe('HTTP/1.1 421 Misdirected Request');
    // Logged once, however many were refused meanwhile.
    const warned = lines.filter((l) => l.msg === 'http request refused: its Host is not a loopback name and http.auth is not set');
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({ level: 40, host: `attacker.example:${port}`, refused: 1 });
    expect(lines.filter((l) => (l.level as number) >= 50)).toEqual([]);
  });

  it('refuses names that only look local', async () => {
    const { port } = await serve();
    for (const host of [
      'attacker.example',
      'localhost.attacker.example',
      '127.0.0.1.attacker.example',
      'attacker.example.',
      'localhost@attacker.example',
      '0.0.0.0',
      '128.0.0.1',
      '[::2]',
      '::1',
      '[::1',
      `127.0.0.1:${port}:${port}`,
    ]) {
      expect((await get(port, '/api/lines', host)).status, host).toBe(421);
    }
  });

  it('serves a loopback name or address, whatever the port', async () => {
    const { port, lines } = await serve();
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, 'localhost', 'LocalHost.', 'web.localhost:8080', '127.8.9.10', '[::ffff:127.0.0.1]:1', '[0:0::1]']) {
      const res = await get(port, '/api/lines', host);
      expect(res.status, host).toBe(200);
      expect(res.body, host).toContain(SECRET);
    }
    expect((await get(port, '/metrics', `127.0.0.1:${port}`)).status).toBe(200);
    expect(lines.filter((l) => (l.level as number) >= 40)).toEqual([]);
  });

  it('serves HTTP/1.0 without a Host (no browser sends that); Node refuses HTTP/1.1 without one', async () => {
    const { port } = await serve();
    expect(await raw(port, 'GET /healthz HTTP/1.0\r\n\r\n')).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nok\n$/);
    expect((await raw(port, 'GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n')).split('\r\n')[0]).toBe('HTTP/1.1 400 Bad Request');
  });
});

describe('HTTP server with http.auth', () => {
  it('serves any Host, by the credentials alone', async () => {
    const { port } = await serve({ token: TOKEN, users: [] });
    const host = `attacker.example:${port}`;
    expect((await get(port, '/api/lines', host)).status).toBe(401);
    const res = await get(port, '/api/lines', host, { authorization: `Bearer ${TOKEN}` });
    expect(res.status).toBe(200);
    expect(res.body).toContain(SECRET);
    expect((await get(port, '/healthz', host)).status).toBe(200);
  });
});

describe('HTTP server API parameters', () => {
  it('answers 400 naming the parameter to a since, until or before it cannot read, logging no error', async () => {
    const { port, lines } = await serve();
    for (const [query, message] of [
      ['since=99999999999w', 'since: expected a time in the years 0000 to 9999, got "99999999999w"'],
      ['until=999999999999', 'until: expected a time in the years 0000 to 9999, got "999999999999"'],
      ['since=2026-02-30', 'since: expected a real date and time'],
      ['before=garbage', 'before: expected a cursor of a page ("next"), got "garbage"'],
      ['before=zzz/1', 'before: expected a cursor of a page ("next"), got "zzz/1"'],
      ['before=2026-11-22T09:53:10Z/host/1', 'before: expected a cursor of a page ("next")'],
      [`container=${'x'.repeat(513)}`, 'container: expected a name, id, service or tag of at most 512 characters, got one of 513'],
      [Array.from({ length: 101 }, (_, i) => `container=c${i}`).join('&'), 'container: expected at most 100 values, got 101'],
    ] as const) {
      const res = await get(port, `/api/lines?${query}`, `127.0.0.1:${port}`);
      expect(res.status, query).toBe(400);
      expect((JSON.parse(res.body) as { error: string }).error).toContain(message);
    }
    expect(lines.filter((l) => (l.level as number) >= 40)).toEqual([]);
  });
});

describe('HTTP server request target', () => {
  it('answers 400 to a target that is not a URL path, logging no error', async () => {
    const { port, lines } = await serve();
    const answer = await raw(port, 'GET //[ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    expect(answer.split('\r\n')[0]).toBe('HTTP/1.1 400 Bad Request');
    expect(answer).toMatch(/\r\n\r\nbad request: the request target is not a URL path\n$/);
    expect(lines.filter((l) => (l.level as number) >= 40)).toEqual([]);
  });
});

describe('HTTP server answers', () => {
  it('tell browsers not to sniff a type, on every path', async () => {
    const { port } = await serve();
    for (const path of ['/', '/ui/app.js', '/api/lines', '/api/lines?limit=0', '/api/containers', '/api/export', '/healthz', '/readyz', '/metrics', '/nope']) {
      const answer = await raw(port, `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
      expect(answer.split('\r\n\r\n')[0]!.toLowerCase(), path).toContain('\r\nx-content-type-options: nosniff');
    }
  });

  it('HEAD /api/export says whether the export would go without reading the store through', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'clogs-http-server-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const events = Array.from({ length: 2000 }, (_, i) => makeEvent({ container: container(fakeId('aa'), 'web'), sec: 1795341190 + i, seq: i + 1, message: `line ${i}`, stream: 'stdout' }));
    appendToStore(dir, events);
    const files = createFileStore(dir, () => undefined);
    let taken = 0;
    const store = {
      ...files,
      open: async (req: Parameters<typeof files.open>[0]) => {
        const reader = await files.open(req);
        return {
          ...reader,
          history: async function* () {
            for await (const e of reader.history()) {
              taken++;
              yield e;
            }
          },
        };
      },
    };
    const http = await startHttpServer({ enabled: true, listen: { host: '127.0.0.1', port: 0 } }, { log: memoryLogger().log, pipeline: new Pipeline(), inputs: () => [], sinks: () => [], reader: { store: () => store, containerStates: async () => undefined } });
    cleanups.push(() => http.close());
    const port = Number(http.address.split(':')[1]);
    const head = await raw(port, 'HEAD /api/export?format=text HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    expect(head.split('\r\n')[0]).toBe('HTTP/1.1 200 OK');
    expect(head).toMatch(/\r\n\r\n$/);
    expect(taken).toBeLessThan(100);
    expect((await raw(port, 'HEAD /api/export?format=xml HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n')).split('\r\n')[0]).toBe('HTTP/1.1 400 Bad Request');
    taken = 0;
    const got = await get(port, '/api/export?format=text', '127.0.0.1');
    expect(got.body.trim().split('\n')).toHaveLength(2000);
    expect(taken).toBe(2000);
  });
});

describe('HTTP server API on a store that does not answer', () => {
  it('answers 502 with the store\'s reason, and logs it once a minute however often the page asks', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'clogs-http-server-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const failing = createFileStore(dir, () => undefined);
    const down = (): never => {
      throw new ClogsError('CLOGS_STORE', 'Elasticsearch at http://es:9200 is not reachable (ConnectionError: connect ECONNREFUSED)');
    };
    const store = { ...failing, stats: async () => down(), open: async () => down() };
    const { log, lines } = memoryLogger();
    const http = await startHttpServer({ enabled: true, listen: { host: '127.0.0.1', port: 0 } }, { log, pipeline: new Pipeline(), inputs: () => [], sinks: () => [], reader: { store: () => store, containerStates: async () => undefined } });
    cleanups.push(() => http.close());
    const port = Number(http.address.split(':')[1]);
    for (const path of ['/api/containers', '/api/lines', '/api/export', '/api/containers']) {
      const res = await get(port, path, '127.0.0.1');
      expect(res.status, path).toBe(502);
      expect(JSON.parse(res.body), path).toEqual({ error: 'Elasticsearch at http://es:9200 is not reachable (ConnectionError: connect ECONNREFUSED)' });
    }
    expect(lines.filter((l) => (l.level as number) >= 40)).toEqual([expect.objectContaining({ level: 40, msg: 'api request failed: the store did not answer', path: '/api/containers', failed: 1 })]);
  });
});
