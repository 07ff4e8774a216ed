/**
 * History a page at a time, for the web page: the lines of one or several
 * sources (or of all), or the matches of a search, newest page first. Each
 * page ends where the next one begins: its cursor is the key of its oldest
 * line, and the stores read only what lies before it (see ReadRequest.before).
 */
import { searchText, type EventFilter } from './filter.js';
import { compareStored, eventKey, mergeOrdered, type StoredEvent } from './order.js';
import { resolveInStore, type Resolved } from './resolve.js';
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
  const merged = pages.flat().sort(compareStored);
  const events = merged.slice(Math.max(0, merged.length - limit));
  // A source that filled its page may hold more; one that did not has nothing older.
  const more = merged.length > limit || pages.some((p) => p.length >= limit);
  return { events, next: more && events.length > 0 ? eventKey(events[0]!.event) : undefined };
}

/** Every matching line, oldest first: the sources read forwards and merged. */
export async function* readAll(store: Store, query: LinesQuery): AsyncGenerator<StoredEvent> {
  const requests = await requestsFor(store, query, Infinity);
  const readers = await Promise.all(requests.map((req) => store.open(req)));
  yield* mergeOrdered(readers.map((r) => r.history()));
}

/** One read request per source asked for: each resolves on its own, as `clogs tail` would. */
async function requestsFor(store: Store, query: LinesQuery, limit: number): Promise<ReadRequest[]> {
  const resolved: Resolved[] =
    query.containers.length === 0
      ? [{ selection: { kind: 'all' }, matched: [] }]
      : await Promise.all([...new Set(query.containers)].map((c) => resolveInStore(store, c)));
  // Two names for one source (its name and its id) read it once.
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
