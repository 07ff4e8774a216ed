/**
 * The collector's own HTTP endpoint (node:http, no framework):
 *
 *   GET /          the web page (web-files.ts), with /ui/app.js and /ui/style.css
 *   GET /api/...   the JSON API the page reads (api.ts)
 *   GET /tail      server-sent events of the live stream (see sse.ts)
 *   GET /healthz   200 while the process serves requests (liveness)
 *   GET /readyz    200 when every input and sink is ready, else 503 with which is not
 *   GET /metrics   Prometheus text format, from the shared registry
 *
 * Bound to 127.0.0.1 by default: the page and /tail show every container's
 * output. With `http.auth` (required off loopback) they need credentials
 * (auth.ts); the health and metrics paths hold no log line and stay open.
 * Without it, every path answers only requests whose Host names this machine
 * (see namesThisMachine), against DNS rebinding.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { BlockList, isIP, type AddressInfo } from 'node:net';
import type { HttpConfig } from '../config/schema.js';
import type { Pipeline } from '../collector/pipeline.js';
import type { RunningInput } from '../collector/input.js';
import type { Sink } from '../sinks/sink.js';
import type { Logger } from '../log.js';
import { ClogsError } from '../errors.js';
import { registry } from '../metrics.js';
import { createApi, type LogReader } from './api.js';
import { createAuthenticator } from './auth.js';
import { createTailStreams } from './sse.js';
import { createWebFiles } from './web-files.js';
import { parseTailQuery, tailFilter, type TailFilter } from './tail-filter.js';

/** 127.0.0.0/8 and ::1, also when written as IPv4-mapped IPv6. */
const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** A Host header: `name`, `name:port`, `[v6]` or `[v6]:port`. */
const HOST_HEADER = /^(?:\[([0-9a-f:.]+)\]|([^:[\]]+))(?::\d*)?$/i;

/** A rebinding page can ask in a loop: its refusals are logged this often at most. */
const MISDIRECTED_LOG_INTERVAL_MS = 60_000;

export interface HttpDeps {
  log: Logger;
  pipeline: Pipeline;
  /** The running inputs, or why none run right now (the collector starting, reloading them, stopping). */
  inputs: () => readonly RunningInput[] | string;
  /** Read on every /readyz: a config reload replaces the sinks. */
  sinks: () => readonly Sink[];
  /** The store the page and /api read. */
  reader: LogReader;
}

export interface RunningHttpServer {
  /** `127.0.0.1:24280`, with the port actually bound when 0 was asked. */
  address: string;
  close(): Promise<void>;
}

export async function startHttpServer(cfg: HttpConfig, deps: HttpDeps): Promise<RunningHttpServer> {
  const { log } = deps;
  const tails = createTailStreams(deps.pipeline, log);
  const auth = createAuthenticator(cfg.auth);
  const api = createApi(deps.reader, log);
  const web = createWebFiles();

  const server = createServer((req, res) => {
    // Every answer, not only the page's files: a log line in an API answer or
    // an export is never to be taken for markup or script by a browser.
    res.setHeader('x-content-type-options', 'nosniff');
    handle(req, res).catch((err: unknown) => {
      log.error({ err, url: req.url }, 'http request failed');
      if (!res.headersSent) reply(res, 500, 'text/plain; charset=utf-8', 'internal error\n');
      else res.destroy();
    });
  });
  server.on('clientError', (err, socket) => {
    log.debug({ err: err.message }, 'http client error');
    socket.destroy();
  });

  let misdirectedLoggedAt = -Infinity;
  /** Refused since the last line logged about it, so a quiet log still tells how many. */
  let misdirectedUnlogged = 0;
  /**
   * Without http.auth, a page served under a name its owner re-pointed at
   * 127.0.0.1 is same-origin with this server in the browser, and could read
   * every log line: such a Host gets 421 on every path.
   */
  function refuseMisdirected(req: IncomingMessage, res: ServerResponse): void {
    misdirectedUnlogged++;
    const now = Date.now();
    if (now - misdirectedLoggedAt >= MISDIRECTED_LOG_INTERVAL_MS) {
      log.warn({ host: req.headers.host, refused: misdirectedUnlogged }, 'http request refused: its Host is not a loopback name and http.auth is not set');
      misdirectedLoggedAt = now;
      misdirectedUnlogged = 0;
    }
    reply(
      res,
      421,
      'text/plain; charset=utf-8',
      'misdirected request: without http.auth, clogs answers only a Host that names this machine (localhost, 127.0.0.1, [::1]), so that no other site can read the logs through DNS rebinding\n',
    );
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (auth.open && !namesThisMachine(req.headers.host, cfg.listen.host)) {
      refuseMisdirected(req, res);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      reply(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
      return;
    }
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://clogs');
    } catch {
      log.debug({ url: req.url }, 'http request refused: its target is not a URL path');
      reply(res, 400, 'text/plain; charset=utf-8', 'bad request: the request target is not a URL path\n');
      return;
    }
    const path = url.pathname;
    if (web.has(path) || path.startsWith('/api/') || path === '/tail') {
      if (path === '/' && auth.acceptTokenLink(url, res)) return;
      if (!auth.allows(req)) {
        auth.refuse(res);
        return;
      }
      if (web.has(path)) {
        await web.serve(path, req, res);
        return;
      }
      if (await api.handle(path, url, res)) return;
    }
    switch (path) {
      case '/healthz':
        reply(res, 200, 'text/plain; charset=utf-8', 'ok\n');
        return;
      case '/readyz': {
        const body = readiness(deps.inputs(), deps.sinks());
        reply(res, body.ready ? 200 : 503, 'application/json', JSON.stringify(body) + '\n');
        return;
      }
      case '/metrics':
        reply(res, 200, registry.contentType, await registry.metrics());
        return;
      case '/tail': {
        if (req.method === 'HEAD') {
          reply(res, 200, 'text/event-stream; charset=utf-8', '');
          return;
        }
        const query = parseTailQuery(url.searchParams);
        if (typeof query === 'string') {
          reply(res, 400, 'text/plain; charset=utf-8', query + '\n');
          return;
        }
        let filter: TailFilter;
        try {
          filter = await tailFilter(query, deps.reader.store(), log);
        } catch (err) {
          if (!(err instanceof ClogsError && err.code === 'CLOGS_TAIL')) throw err;
          reply(res, 400, 'text/plain; charset=utf-8', err.message + '\n');
          return;
        }
        // Gone while the store was asked: nothing would unsubscribe it.
        if (req.socket.destroyed) return;
        tails.serve(req, res, filter);
        return;
      }
      default:
        reply(res, 404, 'text/plain; charset=utf-8', 'not found: try /, /tail, /healthz, /readyz or /metrics\n');
    }
  }

  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      reject(
        new ClogsError('CLOGS_LISTEN', `http: cannot listen on ${cfg.listen.host}:${cfg.listen.port} (${err.code ?? err.message}); set http.listen or --http`, {
          cause: err,
        }),
      );
    };
    server.once('error', onError);
    server.listen(cfg.listen.port, cfg.listen.host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  server.on('error', (err) => log.error({ err }, 'http server error'));

  const bound = server.address() as AddressInfo;
  const address = bound.family === 'IPv6' ? `[${bound.address}]:${bound.port}` : `${bound.address}:${bound.port}`;
  log.debug({ address }, 'http listening');

  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        tails.closeAll();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/**
 * Whether a Host header names this machine: a loopback name or address, or
 * the host clogs listens on. The port is not compared, so an SSH port forward
 * to another local port still works.
 *
 * A request without a Host is let through: Node refuses HTTP/1.1 without one,
 * and a browser, the only client a rebinding page can drive, always sends the
 * name it resolved; what sends none is a local program that reaches the port
 * anyway.
 */
function namesThisMachine(header: string | undefined, listenHost: string): boolean {
  if (header === undefined || header === '') return true;
  const m = HOST_HEADER.exec(header);
  if (!m) return false;
  const host = (m[1] ?? m[2]!).toLowerCase().replace(/\.$/, '');
  if (host === listenHost.toLowerCase() || host === 'localhost' || host.endsWith('.localhost')) return true;
  const family = isIP(host);
  return family !== 0 && LOOPBACK.check(host, family === 4 ? 'ipv4' : 'ipv6');
}

interface Readiness {
  ready: boolean;
  inputs: Record<string, boolean>;
  sinks: Record<string, boolean>;
  /** What keeps the collector unready, e.g. `["sink elasticsearch", "sink file: disk full: ENOSPC on PATH"]`. */
  not_ready: string[];
}

function readiness(inputs: readonly RunningInput[] | string, sinks: readonly Sink[]): Readiness {
  const body: Readiness = { ready: true, inputs: {}, sinks: {}, not_ready: [] };
  if (typeof inputs === 'string') body.not_ready.push(inputs);
  else {
    for (const input of inputs) {
      const ok = input.ready();
      body.inputs[input.name] = ok;
      if (!ok) body.not_ready.push(`input ${input.name}`);
    }
  }
  for (const sink of sinks) {
    const ok = sink.ready?.() !== false;
    body.sinks[sink.name] = ok;
    if (ok) continue;
    const why = sink.notReadyReason?.();
    body.not_ready.push(why === undefined ? `sink ${sink.name}` : `sink ${sink.name}: ${why}`);
  }
  body.ready = body.not_ready.length === 0;
  return body;
}

function reply(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}
