/**
 * The JSON API behind the web page, on top of the store readers of src/tail:
 *
 *   GET /api/containers  the sources seen, as `clogs ps -o json` rows
 *   GET /api/lines       one page of history or search matches, newest page
 *                        first: {"events":[...oldest first], "next": cursor|null}
 *   GET /api/export      every matching line as a download (format=ndjson|text)
 *
 * Lines take `container` (repeatable), `q` (search), `stream`, `level`
 * (minimum), `since` and `until` (as `clogs tail` takes them: `10m`, RFC
 * 3339, a date); `/api/lines` also `before` (the cursor) and `limit`.
 */
import type { ServerResponse } from 'node:http';
import { ClogsError } from '../errors.js';
import type { Logger } from '../log.js';
import { parseLevel, parseStream, type EventFilter } from '../tail/filter.js';
import { createFormatter } from '../tail/format.js';
import { parseKey } from '../tail/order.js';
import { readAll, readPage, type LinesQuery } from '../tail/page.js';
import { psRows, type PsRow } from '../tail/ps.js';
import type { Store } from '../tail/store.js';
import { parseTimeSpec } from '../tail/timespec.js';
import { containerParams } from './container-params.js';

/** What the API reads; handed over by the composition root. */
export interface LogReader {
  /** The store the sinks write, read back; undefined when there is none to read. */
  store(): Store | undefined;
  /** Docker's container states by id; undefined when no engine answers. */
  containerStates(): Promise<Map<string, string> | undefined>;
}

export interface Api {
  /** Answers a request under /api/; false when the path is not one of the API's. */
  handle(path: string, url: URL, res: ServerResponse): Promise<boolean>;
}

const DEFAULT_PAGE = 200;
/** How `q` found the lines of a store, for the page to mark what matched. */
const SEARCH_MATCH: Record<Store['kind'], string> = { es: 'query_string', file: 'substring' };

/** A store that does not answer is logged this often at most. */
const STORE_FAILED_LOG_INTERVAL_MS = 60_000;
const MAX_PAGE = 2000;

export function createApi(reader: LogReader, log: Logger): Api {
  let storeFailedLoggedAt = -Infinity;
  /** Failed since the last line logged about it: the page asks every few seconds while the store is down. */
  let storeFailedUnlogged = 0;
  const storeFailed = (err: unknown, path: string): void => {
    storeFailedUnlogged++;
    const now = Date.now();
    if (now - storeFailedLoggedAt < STORE_FAILED_LOG_INTERVAL_MS) return;
    log.warn({ err, path, failed: storeFailedUnlogged }, 'api request failed: the store did not answer');
    storeFailedLoggedAt = now;
    storeFailedUnlogged = 0;
  };

  async function containers(store: Store, res: ServerResponse): Promise<void> {
    const [counted, states] = await Promise.all([store.stats(), reader.containerStates()]);
    const rows: PsRow[] = psRows(counted, states);
    json(res, 200, { store: store.description, containers: rows });
  }

  async function lines(store: Store, url: URL, res: ServerResponse): Promise<void> {
    const query = linesQuery(url.searchParams);
    const limit = pageSize(url.searchParams.get('limit'));
    const before = url.searchParams.get('before') || undefined;
    // A cursor that names no line would read the newest page again, as if it were the first.
    if (before !== undefined && parseKey(before) === undefined) throw new ClogsError('CLOGS_TAIL', `before: expected a cursor of a page ("next"), got ${JSON.stringify(before)}`);
    const page = await readPage(store, query, limit, before);
    // The stored lines are JSON already: joined, not parsed and written again.
    const body = `{"next":${JSON.stringify(page.next ?? null)},"search":"${SEARCH_MATCH[store.kind]}","events":[${page.events.map((e) => e.raw).join(',')}]}\n`;
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
    res.end(body);
  }

  async function exportLines(store: Store, url: URL, res: ServerResponse): Promise<void> {
    const query = linesQuery(url.searchParams);
    const format = url.searchParams.get('format') ?? 'ndjson';
    if (format !== 'ndjson' && format !== 'text') throw new ClogsError('CLOGS_TAIL', `format: expected "ndjson" or "text", got ${JSON.stringify(format)}`);
    const render = createFormatter({ mode: format === 'ndjson' ? 'json' : 'text', timestamps: true, color: false, prefix: true });
    const events = readAll(store, query);
    // The first line is read before the headers go out, so a bad request still gets its 400.
    let next = await events.next();
    const name = `clogs-${new Date().toISOString().replace(/[:.]/g, '-')}.${format === 'ndjson' ? 'ndjson' : 'log'}`;
    res.writeHead(200, {
      'content-type': format === 'ndjson' ? 'application/x-ndjson; charset=utf-8' : 'text/plain; charset=utf-8',
      'content-disposition': `attachment; filename="${name}"`,
      'cache-control': 'no-store',
    });
    // HEAD: the headers say whether the export would go; reading the rest would be for nothing.
    if (res.req.method === 'HEAD') next = { done: true, value: undefined };
    try {
      while (!next.done && !res.destroyed) {
        if (!res.write(render(next.value))) await drainedOrClosed(res);
        next = await events.next();
      }
    } finally {
      await events.return(undefined);
    }
    res.end();
  }

  return {
    async handle(path, url, res) {
      const route = ROUTES[path];
      if (route === undefined) return false;
      const store = reader.store();
      if (!store) {
        json(res, 503, { error: 'no store to read: enable sinks.file or configure sinks.elasticsearch' });
        return true;
      }
      try {
        if (route === 'containers') await containers(store, res);
        else if (route === 'lines') await lines(store, url, res);
        else await exportLines(store, url, res);
      } catch (err) {
        const status = errorStatus(err);
        if (status === 502) storeFailed(err, path);
        else if (status === 500) log.error({ err, path }, 'api request failed');
        if (res.headersSent) res.destroy();
        else json(res, status, { error: status === 500 ? `internal error: ${(err as Error).message}` : (err as Error).message });
      }
      return true;
    },
  };
}

/**
 * Bad parameters, an unknown container, a query Elasticsearch refuses: the
 * request's (400); Elasticsearch unreachable, failing or refusing the
 * collector's credentials: the store behind the API's (502), which the page
 * shows as such. Either says why in words the page can show.
 */
function errorStatus(err: unknown): 400 | 502 | 500 {
  if (!(err instanceof ClogsError)) return 500;
  return err.code === 'CLOGS_STORE' ? 502 : err.code === 'CLOGS_TAIL' ? 400 : 500;
}

const ROUTES: Record<string, 'containers' | 'lines' | 'export'> = {
  '/api/containers': 'containers',
  '/api/lines': 'lines',
  '/api/export': 'export',
};

function linesQuery(params: URLSearchParams): LinesQuery {
  const filter: EventFilter = {};
  const now = Date.now();
  const text = (name: string): string | undefined => {
    const v = params.get(name);
    return v === null || v.trim() === '' ? undefined : v.trim();
  };
  const since = text('since');
  const until = text('until');
  const stream = text('stream');
  const level = text('level');
  if (since !== undefined) filter.since = parseTimeSpec('since', since, now);
  if (until !== undefined) filter.until = parseTimeSpec('until', until, now);
  if (stream !== undefined) filter.stream = parseStream(stream, 'stream');
  if (level !== undefined) filter.minLevel = parseLevel(level, 'level');
  const query: LinesQuery = { containers: containerParams(params), filter };
  const search = text('q');
  if (search !== undefined) query.search = search;
  return query;
}

function pageSize(text: string | null): number {
  if (text === null || text === '') return DEFAULT_PAGE;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > MAX_PAGE) throw new ClogsError('CLOGS_TAIL', `limit: expected a whole number from 1 to ${MAX_PAGE}, got ${JSON.stringify(text)}`);
  return n;
}

function json(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value) + '\n';
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

function drainedOrClosed(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}
