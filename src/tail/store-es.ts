/**
 * Reads events back from Elasticsearch: the data stream `logs-<dataset>-<namespace>`
 * (or the daily indices of `sinks.elasticsearch.index`) the sink writes.
 *
 * Order is the sort (`@timestamp` as date_nanos, then `host.name`, then
 * `clogs.seq`: order.ts), paged with `search_after`. `@timestamp` sort values
 * are asked for as RFC 3339 strings: as numbers, nanoseconds since 1970
 * exceed what a JSON double holds exactly.
 *
 * Follow polls. A document becomes searchable only at the next refresh, and
 * bulk requests in flight together can become visible out of order; lines
 * also arrive late with their original time (the Docker input's backfill
 * holds lines 15 s, a queue retries after an outage). Nothing in a document
 * says when it was indexed, so each poll looks back LATE_WINDOW before the
 * newest line seen and skips the keys it already returned: a line indexed
 * up to LATE_WINDOW after lines newer than it is still shown. Polls fetch
 * only the sort keys, and sources for new keys alone; the part of the window
 * older than FOLLOW_OVERLAP is only counted, and its keys fetched only when
 * the count differs from the keys held for it, i.e. when a late line came.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { errors, Serializer, type Client, type estypes } from '@elastic/elasticsearch';
import type { LogEvent } from '../collector/event.js';
import { parseJson, stringifyJson } from '../collector/json-values.js';
import { formatNanoTime, parseRfc3339 } from '../collector/time.js';
import type { ElasticsearchConfig } from '../config/schema.js';
import { ClogsError } from '../errors.js';
import { resolveTarget } from '../sinks/elasticsearch/bulk.js';
import { createClient, safeUrls } from '../sinks/elasticsearch/client.js';
import { levelsAtLeast } from '../collector/levels.js';
import { matchesFilter, type EventFilter } from './filter.js';
import { compareToKey, formatKey, hasEventKey, parseKey, type StoredEvent } from './order.js';
import { sourceInfoKey, type Selection, type SourceInfo } from './resolve.js';
import { sharedWhileRunning, type ReadRequest, type SourceStats, type Store, type StoreReader, type Warn } from './store.js';
import { shiftTimestamp } from './timespec.js';

const PAGE = 1000;
/** See StoreReader.recentKeys. */
const RECENT_LINES = 1000;
/** Every poll fetches the keys this far back from the newest line seen. */
const FOLLOW_OVERLAP_NS = 5_000_000_000n;
/** How late (behind the newest line seen) a line can be indexed and still be followed; see README. */
const LATE_WINDOW_NS = 120_000_000_000n;
const POLL_MS = 1000;
const MAX_BACKOFF_MS = 10_000;
const NANOS_FORMAT = 'strict_date_optional_time_nanos';

type Query = estypes.QueryDslQueryContainer;
type Hit = estypes.SearchHit<LogEvent>;

/**
 * Responses read with integers as stored: JSON.parse rounds those past 2^53
 * (zerolog's nanosecond times, snowflake ids in `attrs`), which Elasticsearch
 * keeps exactly as longs, and `--json` prints the line as the file store
 * does. Such an integer is read as json-values.ts's IntegerText, written back
 * by stringifyJson().
 */
class ExactSerializer extends Serializer {
  override deserialize<T = unknown>(json: string): T {
    try {
      return parseJson(json) as T;
    } catch (err) {
      throw new errors.DeserializationError((err as Error).message, json);
    }
  }
}

/** The target the sink writes to, as a search expression: the data stream, or every daily index. */
function esTarget(cfg: ElasticsearchConfig): string {
  const target = resolveTarget(cfg);
  return target.kind === 'data_stream' ? target.name : target.pattern.replace(/%[Ymd]/g, '*');
}

function sort(order: 'asc' | 'desc'): estypes.Sort {
  return [{ '@timestamp': { order, format: NANOS_FORMAT } }, { 'host.name': { order, unmapped_type: 'keyword' } }, { 'clogs.seq': { order, unmapped_type: 'long' } }];
}

function selectionQuery(sel: Selection): Query[] {
  switch (sel.kind) {
    case 'all':
      return [];
    case 'id':
      return [{ term: { 'container.id': sel.value } }];
    case 'name':
      if (sel.ids === undefined) return [{ term: { 'container.name': sel.value } }];
      return [{ bool: { should: [{ term: { 'container.name': sel.value } }, { terms: { 'container.id': [...sel.ids] } }], minimum_should_match: 1 } }];
    case 'service': {
      const q: Query[] = [{ term: { 'container.compose.service': sel.value } }];
      if (sel.project !== undefined) q.push({ term: { 'container.compose.project': sel.project } });
      return q;
    }
    case 'tag':
      return [{ bool: { filter: [{ term: { 'clogs.tag': sel.value } }], must_not: [{ exists: { field: 'container.id' } }] } }];
  }
}

/** The filters Elasticsearch can apply itself; the message pattern stays client-side (regexp queries match terms, not lines). */
function filterQuery(f: EventFilter): Query[] {
  const q: Query[] = [];
  if (f.since !== undefined || f.until !== undefined) {
    const range: estypes.QueryDslDateRangeQuery = { format: NANOS_FORMAT };
    if (f.since !== undefined) range.gte = f.since;
    if (f.until !== undefined) range.lt = f.until;
    q.push({ range: { '@timestamp': range } });
  }
  if (f.stream !== undefined) q.push({ term: { stream: f.stream } });
  if (f.minLevel !== undefined) q.push({ terms: { 'log.level': levelsAtLeast(f.minLevel) } });
  return q;
}

/** A sort value or `_source` timestamp as the stored 9-digit form. */
function normalizeTimestamp(value: unknown): string {
  const t = typeof value === 'string' ? parseRfc3339(value) : undefined;
  if (!t) throw new ClogsError('CLOGS_STORE', `Elasticsearch returned a sort value that is not a timestamp: ${JSON.stringify(value)}`);
  return formatNanoTime(t.sec, t.nsec);
}

/** The hit's key (order.ts eventKey) from its sort values, as `sort()` asks for them. */
function keyOfHit(hit: Hit): { key: string; ts: string } {
  const [ts, host, seq] = hit.sort ?? [];
  const stamp = normalizeTimestamp(ts);
  return { key: formatKey(stamp, typeof host === 'string' ? host : '', String(seq)), ts: stamp };
}

function stored(hit: Hit): StoredEvent | undefined {
  const event = hit._source;
  if (!hasEventKey(event)) return undefined;
  return { event, raw: stringifyJson(event) };
}

export function createEsStore(cfg: ElasticsearchConfig, warn: Warn, client: Client = createClient(cfg, { Serializer: ExactSerializer })): Store {
  const index = esTarget(cfg);
  // Without credentials: the URL appears in messages.
  const url = safeUrls(cfg).join(',');

  async function search(query: Query[], order: 'asc' | 'desc', after: estypes.SortResults | undefined, withSource: boolean) {
    for (let attempt = 1; ; attempt++) {
      try {
        return await client.search<LogEvent>({
          index,
          ignore_unavailable: true,
          allow_no_indices: true,
          size: PAGE,
          query: { bool: { filter: query } },
          sort: sort(order),
          track_total_hits: false,
          _source: withSource,
          ...(after ? { search_after: after } : {}),
        });
      } catch (err) {
        if (attempt >= SHARDS_STARTING_TRIES || !noShardAnswered(err)) throw describeError(err, url, index);
        await delay(SHARDS_STARTING_WAIT_MS);
      }
    }
  }

  /** Pages through every hit of a query in sort order. */
  async function* pages(query: Query[], order: 'asc' | 'desc', withSource: boolean, start?: estypes.SortResults): AsyncGenerator<Hit> {
    let after = start;
    for (;;) {
      const res = await search(query, order, after, withSource);
      const hits = res.hits.hits;
      yield* hits;
      if (hits.length < PAGE) return;
      after = hits[hits.length - 1]!.sort;
    }
  }

  const stats = sharedWhileRunning(countAll);

  async function countAll(): Promise<SourceStats[]> {
    const bySource = new Map<string, SourceStats>();
    let after: Record<string, estypes.FieldValue> | undefined;
    for (;;) {
      let res;
      try {
        res = await client.search({
          index,
          ignore_unavailable: true,
          allow_no_indices: true,
          size: 0,
          aggs: {
            sources: {
              composite: {
                size: PAGE,
                sources: [{ id: { terms: { field: 'container.id', missing_bucket: true } } }, { tag: { terms: { field: 'clogs.tag', missing_bucket: true } } }],
                ...(after ? { after } : {}),
              },
              aggs: {
                first: { min: { field: '@timestamp', format: NANOS_FORMAT } },
                last: { max: { field: '@timestamp', format: NANOS_FORMAT } },
                streams: { terms: { field: 'stream', size: 10 } },
                meta: { top_hits: { size: 1, sort: sort('desc'), _source: { includes: ['container', 'clogs', '@timestamp', 'message'] } } },
              },
            },
          },
        });
      } catch (err) {
        throw describeError(err, url, index);
      }
      const agg = res.aggregations?.sources as estypes.AggregationsCompositeAggregate | undefined;
      const buckets = (agg?.buckets ?? []) as unknown as CompositeBucket[];
      for (const b of buckets) mergeBucket(bySource, b);
      if (buckets.length < PAGE || !agg?.after_key) break;
      after = agg.after_key as Record<string, estypes.FieldValue>;
    }
    return [...bySource.values()];
  }

  return {
    kind: 'es',
    sourcesComplete: true,
    description: `Elasticsearch ${index} at ${url}`,

    async sources() {
      return (await stats()).map((s) => s.info);
    },

    stats,

    async open(req) {
      const base = [...selectionQuery(req.selection), ...(req.queryString === undefined ? [] : [queryStringQuery(req.queryString)])];
      const narrowed = [...base, ...filterQuery(req.filter)];
      // The moment the reader opens: the newest key now, and the keys before
      // it within the late window, which a poll would deliver again; of those,
      // the ones within the follow overlap (at least RECENT_LINES) are the
      // recent keys the live stream may deliver again.
      const known = new Map<string, string>();
      const recent: string[] = [];
      let startKey: string | undefined;
      let startTs: string | undefined;
      for await (const hit of pages(narrowed, 'desc', false)) {
        const { key, ts } = keyOfHit(hit);
        if (startTs === undefined) {
          startKey = key;
          startTs = ts;
        }
        const inOverlap = ts >= shiftTimestamp(startTs, -FOLLOW_OVERLAP_NS) || recent.length < RECENT_LINES;
        if (!inOverlap && ts < shiftTimestamp(startTs, -LATE_WINDOW_NS)) break;
        if (inOverlap) recent.push(key);
        known.set(key, ts);
      }
      const reader: StoreReader = {
        recentKeys: async () => recent,
        history: () => history(req, narrowed, startKey),
        follow: (signal) => follow(req, narrowed, startTs, known, signal),
      };
      return reader;
    },

    close: () => client.close(),
  };

  async function* history(req: ReadRequest, query: Query[], startKey: string | undefined): AsyncGenerator<StoredEvent> {
    const upTo = startKey === undefined ? undefined : parseKey(startKey);
    if (upTo === undefined || req.limit <= 0) return;
    const notAfterStart = (e: StoredEvent) => compareToKey(e.event, upTo) <= 0;
    if (req.limit === Infinity) {
      for await (const hit of pages(query, 'asc', true)) {
        const e = stored(hit);
        if (!e) continue;
        if (!notAfterStart(e)) return;
        if (matchesFilter(req.filter, e.event)) yield e;
      }
      return;
    }
    const before = req.before === undefined ? undefined : parseKey(req.before);
    // search_after takes the sort values of the last hit seen: the cursor's, as the sort renders them.
    const start = before === undefined ? undefined : [before.ts, before.host, before.seq];
    const found: StoredEvent[] = [];
    for await (const hit of pages(query, 'desc', true, start)) {
      const e = stored(hit);
      if (!e || !notAfterStart(e) || !matchesFilter(req.filter, e.event)) continue;
      found.push(e);
      if (found.length >= req.limit) break;
    }
    yield* found.reverse();
  }

  async function* follow(
    req: ReadRequest,
    query: Query[],
    startTs: string | undefined,
    known: Map<string, string>,
    signal: AbortSignal,
  ): AsyncGenerator<StoredEvent> {
    let newest = startTs;
    let failing = false;
    let backoff = POLL_MS;
    while (!signal.aborted) {
      try {
        const low = newest === undefined ? req.filter.since : await lookBack(query, newest, known);
        const window = low === undefined ? query : [...query, { range: { '@timestamp': { gte: low, format: NANOS_FORMAT } } }];
        let fresh: Hit[] = [];
        for await (const hit of pages(window, 'asc', false)) {
          const { key, ts } = keyOfHit(hit);
          if (known.has(key)) continue;
          known.set(key, ts);
          fresh.push(hit);
          if (newest === undefined || ts > newest) newest = ts;
          // Sources a page at a time: after an outage a poll can find very many new lines.
          if (fresh.length === PAGE) {
            for (const e of await fetchSources(fresh)) if (matchesFilter(req.filter, e.event)) yield e;
            fresh = [];
          }
        }
        for (const e of await fetchSources(fresh)) if (matchesFilter(req.filter, e.event)) yield e;
        if (newest !== undefined) {
          const floor = shiftTimestamp(newest, -LATE_WINDOW_NS);
          for (const [key, ts] of known) if (ts < floor) known.delete(key);
        }
        if (failing) warn(`${url}: Elasticsearch answers again; following`);
        failing = false;
        backoff = POLL_MS;
      } catch (err) {
        if (!failing) warn(`${(err as Error).message}; retrying`);
        failing = true;
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      }
      await sleep(failing ? backoff : POLL_MS, signal);
    }
  }

  /**
   * Where a poll starts: FOLLOW_OVERLAP before the newest line seen, or
   * LATE_WINDOW before it when Elasticsearch holds more lines between the two
   * than the keys known there (a line came late).
   */
  async function lookBack(query: Query[], newest: string, known: ReadonlyMap<string, string>): Promise<string> {
    const low = shiftTimestamp(newest, -LATE_WINDOW_NS);
    const mid = shiftTimestamp(newest, -FOLLOW_OVERLAP_NS);
    let held = 0;
    for (const ts of known.values()) if (ts >= low && ts < mid) held++;
    let res;
    try {
      res = await client.count({
        index,
        ignore_unavailable: true,
        allow_no_indices: true,
        query: { bool: { filter: [...query, { range: { '@timestamp': { gte: low, lt: mid, format: NANOS_FORMAT } } }] } },
      });
    } catch (err) {
      throw describeError(err, url, index);
    }
    return res.count === held ? mid : low;
  }

  async function fetchSources(hits: readonly Hit[]): Promise<StoredEvent[]> {
    if (hits.length === 0) return [];
    let res;
    try {
      res = await client.mget<LogEvent>({ docs: hits.map((h) => ({ _index: h._index, _id: h._id! })) });
    } catch (err) {
      throw describeError(err, url, index);
    }
    const out: StoredEvent[] = [];
    for (const doc of res.docs) {
      if (!('found' in doc) || !doc.found || !doc._source) continue;
      const e = stored(doc as Hit);
      if (e) out.push(e);
    }
    return out;
  }
}

interface CompositeBucket {
  key: { id: string | null; tag: string | null };
  doc_count: number;
  first: { value_as_string?: string };
  last: { value_as_string?: string };
  streams: { buckets: { key: string; doc_count: number }[] };
  meta: { hits: { hits: { _source?: Partial<LogEvent> }[] } };
}

function mergeBucket(bySource: Map<string, SourceStats>, b: CompositeBucket): void {
  const source = b.meta.hits.hits[0]?._source;
  const c = source?.container;
  const info: SourceInfo = {};
  if (c?.id !== undefined) info.id = c.id;
  if (c?.name !== undefined) info.name = c.name;
  if (c?.image?.name !== undefined) info.image = c.image.name;
  if (c?.compose?.project !== undefined) info.project = c.compose.project;
  if (c?.compose?.service !== undefined) info.service = c.compose.service;
  if (c?.id === undefined && b.key.tag !== null) info.tag = b.key.tag;
  const key = sourceInfoKey({ id: b.key.id ?? undefined, tag: b.key.tag ?? undefined });
  const stdout = b.streams.buckets.find((s) => s.key === 'stdout')?.doc_count ?? 0;
  const stderr = b.streams.buckets.find((s) => s.key === 'stderr')?.doc_count ?? 0;
  const first = b.first.value_as_string ? normalizeTimestamp(b.first.value_as_string) : '';
  const last = b.last.value_as_string ? normalizeTimestamp(b.last.value_as_string) : '';
  const prev = bySource.get(key);
  if (!prev) {
    bySource.set(key, { info, first, last, stdout, stderr, other: b.doc_count - stdout - stderr });
    return;
  }
  // One container under two tags: two buckets, one source.
  if (last > prev.last) prev.info = info;
  prev.first = prev.first < first ? prev.first : first;
  prev.last = prev.last > last ? prev.last : last;
  prev.stdout += stdout;
  prev.stderr += stderr;
  prev.other += b.doc_count - stdout - stderr;
}

/** AND, OR, NOT, &&, ||, !, or a word's leading + or -: the query says how its words combine. */
const QUERY_OPERATOR = /\b(?:AND|OR|NOT)\b|&&|\|\||!|(?:^|[\s(])[+-]/;

/**
 * A query without operators needs all its words in the line (`err-2`: `err`
 * and `2`), closer to a file store's substring search than query_string's
 * default, any of them, which found every line holding either. With one,
 * Elasticsearch's own reading stands: the AND default would change what
 * `error OR warning timeout` means.
 */
function queryStringQuery(text: string): Query {
  return { query_string: { query: text, default_field: 'message', ...(QUERY_OPERATOR.test(text) ? {} : { default_operator: 'AND' as const }) } };
}

/** What Elasticsearch answers for a query string it cannot read (`message:(`, a stray `/`): the reader's to fix. */
const QUERY_ERRORS = new Set(['query_shard_exception', 'parse_exception']);

/**
 * A data stream's first index answers searches with 503 "all shards failed"
 * until its primary shard has started, a fraction of a second after the
 * sink's first line made it: the page then said "Search failed" for a
 * search that works a moment later. Asked again for up to about 2 s; a
 * cluster whose shards stay down still fails, that much later.
 */
const SHARDS_STARTING_TRIES = 5;
const SHARDS_STARTING_WAIT_MS = 500;

/** Whether Elasticsearch answered that no shard could take the search (503, all shards failed). */
function noShardAnswered(err: unknown): boolean {
  const e = err as { meta?: { statusCode?: number; body?: { error?: { type?: string } } } };
  return e.meta?.statusCode === 503 && e.meta.body?.error?.type === 'search_phase_execution_exception';
}

/**
 * What Elasticsearch said, in words: a query string it refused (HTTP 400,
 * QUERY_ERRORS) is the reader's to fix (CLOGS_TAIL); anything else (no
 * answer, a failure, refused credentials, an index mapped without clogs's
 * template) is the store's (CLOGS_STORE), which the API answers with 502
 * rather than blaming the request.
 */
function describeError(err: unknown, url: string, index: string): ClogsError {
  const e = err as { meta?: { statusCode?: number; body?: { error?: { type?: string; reason?: string; root_cause?: Array<{ type?: string; reason?: string }> } } }; message?: string; name?: string };
  const status = e.meta?.statusCode;
  const error = e.meta?.body?.error;
  // The first root cause says what was wrong; the top level of a search's error only "all shards failed".
  const reason = error?.root_cause?.[0]?.reason ?? error?.reason ?? e.message ?? String(err);
  if (status === 401 || status === 403) {
    return new ClogsError('CLOGS_STORE', `Elasticsearch at ${url} refused the credentials (HTTP ${status}): set sinks.elasticsearch.username/password or api_key`);
  }
  if (!status) return new ClogsError('CLOGS_STORE', `Elasticsearch at ${url} is not reachable (${e.name ?? 'error'}: ${reason})`, { cause: err });
  const query = status === 400 && (QUERY_ERRORS.has(error?.type ?? '') || QUERY_ERRORS.has(error?.root_cause?.[0]?.type ?? ''));
  return new ClogsError(query ? 'CLOGS_TAIL' : 'CLOGS_STORE', `Elasticsearch ${index} at ${url}: HTTP ${status}: ${reason}`, { cause: err });
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
