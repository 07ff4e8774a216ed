/**
 * History a page at a time, for the web page: the lines of one or several
 * sources (or of all), or the matches of a search, newest page first. Each
 * page ends where the next one begins: its cursor is the key of its oldest
 * line, and the stores read only what lies before it (see ReadRequest.before).
 */
import { searchText, type EventFilter } from './filter.js';
import { compareStored, eventKey, mergeOrdered, type StoredEvent } from './order.js';
import { resolveInStore, sourceInfoKey, sourceOfEvent, type Resolved } from './resolve.js';
import type { ReadRequest, Store } from './store.js';

export interface LinesQuery {
  /** Container ids or id prefixes, names, compose services or tags; empty: every source. */
  containers: readonly string[];
  filter: EventFilter;
  /**
   * Search: on Elasticsearch a query string (`boom`, `stream:stderr AND
   * container.name:web-1`); on files a substring of the message, any case.
   */
  search?: string;
}

export interface Page {
  /** Oldest first. */
  events: StoredEvent[];
  /** The cursor of the page before this one; undefined when nothing older matches. */
  next: string | undefined;
}

/** The newest `limit` matching lines before the cursor (all of them when `before` is undefined). */
export async function readPage(store: Store, query: LinesQuery, limit: number, before?: string): Promise<Page> {
  const requests = await requestsFor(store, query, limit);
  const pages = await Promise.all(
    requests.map(async (req) => {
      const reader = await store.open(before === undefined ? req : { ...req, before });
      const events: StoredEvent[] = [];
      for await (const e of reader.history()) events.push(e);
      return events;
    }),
  );
  // Selections can overlap (a service and one of its replicas, a name and its
  // id): an event two of them read is kept once. Each request returns its own
  // newest `limit`, so the newest `limit` of the union are all among them.
  const merged = (requests.length > 1 ? distinctEvents(pages.flat()) : pages.flat()).sort(compareStored);
  const events = merged.slice(Math.max(0, merged.length - limit));
  // A source that filled its page may hold more; one that did not has nothing older.
  const more = merged.length > limit || pages.some((p) => p.length >= limit);
  return { events, next: more && events.length > 0 ? eventKey(events[0]!.event) : undefined };
}

/** Every matching line, oldest first: the sources read forwards and merged. */
export async function* readAll(store: Store, query: LinesQuery): AsyncGenerator<StoredEvent> {
  const requests = await requestsFor(store, query, Infinity);
  const readers = await Promise.all(requests.map((req) => store.open(req)));
  const merged = mergeOrdered(readers.map((r) => r.history()));
  if (requests.length === 1) return yield* merged;
  // Overlapping selections (see readPage): the copies of one event come out of
  // the merge together, or near each other where a file is slightly out of
  // order, so remembering the last SEEN_KEYS keys drops them in bounded memory.
  const seen = new Set<string>();
  for await (const e of merged) {
    const key = sourceEventKey(e);
    if (seen.has(key)) continue;
    seen.add(key);
    if (seen.size > SEEN_KEYS) seen.delete(seen.values().next().value as string);
    yield e;
  }
}

/** Keys remembered to drop the repeats of overlapping selections in an export. */
const SEEN_KEYS = 65_536;

/** An event's identity across sources: its key, and its source too, should a clock stepped back have made a collector repeat a seq. */
function sourceEventKey(e: StoredEvent): string {
  return `${eventKey(e.event)}\0${sourceInfoKey(sourceOfEvent(e.event))}`;
}

function distinctEvents(events: readonly StoredEvent[]): StoredEvent[] {
  const seen = new Set<string>();
  return events.filter((e) => {
    const key = sourceEventKey(e);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** One read request per source asked for: each resolves on its own, as `clogs tail` would. */
async function requestsFor(store: Store, query: LinesQuery, limit: number): Promise<ReadRequest[]> {
  const resolved: Resolved[] =
    query.containers.length === 0
      ? [{ selection: { kind: 'all' }, matched: [] }]
      : await Promise.all([...new Set(query.containers)].map((c) => resolveInStore(store, c)));
  // The same selection asked twice (`web` and `/web`, two prefixes of one id)
  // is read once; selections that differ but overlap are deduplicated by
  // event when merged (readPage, readAll).
  const distinct = [...new Map(resolved.map((r) => [JSON.stringify(r.selection), r])).values()];
  return distinct.map((r) => {
    const req: ReadRequest = { selection: r.selection, matched: r.matched, filter: { ...query.filter }, limit };
    if (query.search !== undefined && query.search !== '') {
      if (store.kind === 'es') req.queryString = query.search;
      else searchText(req.filter, query.search, true);
    }
    return req;
  });
}
