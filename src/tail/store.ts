/**
 * What `clogs tail`, `ps` and `search` need from a store of collected events;
 * the file sink's directory (store-file.ts) and Elasticsearch (store-es.ts)
 * both provide it.
 */
import type { EventFilter } from './filter.js';
import type { StoredEvent } from './order.js';
import type { Selection, SourceInfo } from './resolve.js';

export interface SourceStats {
  info: SourceInfo;
  /** `@timestamp` of the source's first and last line. */
  first: string;
  last: string;
  stdout: number;
  stderr: number;
  /** Lines without a stream (records from a forward client). */
  other: number;
}

export interface ReadRequest {
  selection: Selection;
  /** The sources resolution found; a store may use them to narrow its reads. */
  matched: readonly SourceInfo[];
  filter: EventFilter;
  /**
   * `clogs search` on Elasticsearch: a query_string query. The file store
   * never gets one; the command turns the query into `filter.pattern` instead.
   */
  queryString?: string;
  /** The last `limit` matching events; Infinity for all of them. */
  limit: number;
  /**
   * Only events before this key (`@timestamp/host/seq`, exclusive): the cursor of
   * history read a page at a time, going backwards. Only with a finite limit.
   */
  before?: string;
}

/**
 * A read that starts at one moment: `history` returns what was stored before
 * it, `follow` what is stored after it, so together they miss and repeat
 * nothing.
 */
export interface StoreReader {
  /**
   * Keys (`@timestamp/host/seq`) of the newest lines of the selection when the
   * reader opened, a bounded number of them: the lines a live stream opened
   * just before may deliver again, printed or not by `history`.
   */
  recentKeys(): Promise<readonly string[]>;
  /** Matching events stored before the reader opened, oldest first. */
  history(): AsyncIterable<StoredEvent>;
  /** Matching events stored since, in arrival order, until `signal` aborts. */
  follow(signal: AbortSignal): AsyncIterable<StoredEvent>;
}

export interface Store {
  readonly kind: 'file' | 'es';
  /** Whether `sources()` knows every source; when not, `stats()` does, at the cost of a full read. */
  readonly sourcesComplete: boolean;
  /** For messages: `file store ./data`, `Elasticsearch logs-clogs-default at http://...`. */
  readonly description: string;
  /** The sources in the store, found cheaply (for resolving `<id>`). */
  sources(): Promise<SourceInfo[]>;
  /** Every source with its line counts; may read the whole store. Asked for while a count runs, shares that count. */
  stats(): Promise<SourceStats[]>;
  open(req: ReadRequest): Promise<StoreReader>;
  close(): Promise<void>;
}

/** How a store reports what it skipped (unreadable lines, a node that went away) without stopping. */
export type Warn = (message: string) => void;

/**
 * `count` run once at a time: a call while one runs gets that one's result
 * (Store.stats()). For a file store, two counts at once would each add a
 * grown file's new lines to its cached count; for Elasticsearch, each page
 * asking would run its own aggregation.
 */
export function sharedWhileRunning<T>(count: () => Promise<T>): () => Promise<T> {
  let running: Promise<T> | undefined;
  return () => (running ??= count().finally(() => (running = undefined)));
}
