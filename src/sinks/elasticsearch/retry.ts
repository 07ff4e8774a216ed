/**
 * What to do with a bulk response: pure verdicts, no I/O, so every rule is
 * unit-tested on its own (after Vector's `src/sinks/elasticsearch/retry.rs`).
 *
 * Nothing here ever drops data: a document leaves the queue only as accepted
 * (2xx), already there (409 on `create` with a deterministic `_id`), or
 * rejected for good and written to the dead-letter file. Everything that may
 * be the cluster's or the configuration's fault (down, overloaded,
 * credentials, a missing index) is retried with backoff, and the data stays queued.
 */
import type { BackoffPolicy } from '../backoff.js';

/** How one `_bulk` request ended, as the sender saw it. */
export type RequestOutcome =
  | { kind: 'response'; status: number; body?: unknown }
  | { kind: 'connection'; message: string }
  | { kind: 'timeout'; message: string }
  | { kind: 'not_elasticsearch'; message: string };

/** Why a whole request is sent again; each reason gets its own log message. */
export type RetryReason =
  | 'connection'
  | 'timeout'
  | 'throttled'
  | 'server'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'index_missing'
  | 'not_elasticsearch'
  | 'refused'
  | 'unexpected';

export type RequestVerdict =
  /** 2xx: the items say what happened to each document. */
  | { action: 'items' }
  /** Send the same documents again after a backoff. */
  | { action: 'retry'; reason: RetryReason }
  /**
   * The request as a whole was refused for a document in it (413 too large,
   * a 400 parsing its bytes): halve it to isolate the document at fault; a
   * single document is rejected for good.
   */
  | { action: 'split' };

/**
 * The errors of a whole `_bulk` request that come from a document's bytes
 * (or an action line's: "Malformed action/metadata line", an
 * illegal_argument_exception as many others are). Any other 400 answers
 * every request alike (an 8.x node refusing the
 * `compatible-with=9` media type, a parameter the cluster does not know, a
 * proxy's page): split down to single documents, it dead-lettered the whole
 * queue. Those are retried, as credentials are.
 */
const DOCUMENT_ERRORS = new Set([
  'x_content_parse_exception',
  'parse_exception',
  'json_parse_exception',
  'json_e_o_f_exception',
  'not_x_content_exception',
  'document_parsing_exception',
  'mapper_parsing_exception',
]);

export function requestVerdict(outcome: RequestOutcome): RequestVerdict {
  switch (outcome.kind) {
    case 'connection':
      return { action: 'retry', reason: 'connection' };
    case 'timeout':
      return { action: 'retry', reason: 'timeout' };
    case 'not_elasticsearch':
      return { action: 'retry', reason: 'not_elasticsearch' };
    case 'response':
      break;
  }
  const status = outcome.status;
  if (status >= 200 && status < 300) return { action: 'items' };
  if (status === 429) return { action: 'retry', reason: 'throttled' };
  if (status >= 500) return { action: 'retry', reason: 'server' };
  if (status === 401) return { action: 'retry', reason: 'unauthorized' };
  if (status === 403) return { action: 'retry', reason: 'forbidden' };
  // A proxy in front of the cluster, or a path prefix missing from the URL.
  if (status === 404) return { action: 'retry', reason: 'not_found' };
  if (status === 413) return { action: 'split' };
  if (status === 400) return refusedForContent(outcome.body) ? { action: 'split' } : { action: 'retry', reason: 'refused' };
  return { action: 'retry', reason: 'unexpected' };
}

function refusedForContent(body: unknown): boolean {
  const error = (body as { error?: { type?: unknown; reason?: unknown; root_cause?: { type?: unknown; reason?: unknown }[] } } | undefined)?.error;
  if (typeof error !== 'object' || error === null) return false;
  const cause = error.root_cause?.[0] ?? error;
  if (typeof cause.type !== 'string') return false;
  return DOCUMENT_ERRORS.has(cause.type) || (cause.type === 'illegal_argument_exception' && typeof cause.reason === 'string' && cause.reason.startsWith('Malformed action/metadata line'));
}

export type ItemVerdict =
  | 'accepted'
  /** 409 on `create`: the document with this `_id` is already indexed. */
  | 'duplicate'
  | 'retry'
  | 'dead_letter';

/**
 * An item's own index closed to writes (an old daily index under ILM, a
 * write block): 403 `cluster_block_exception`. Retried, it would hold its
 * batch and the queue behind it for ever; the flood-stage disk block comes
 * as a 429 and is retried.
 */
const CLOSED_INDEX = 'cluster_block_exception';

export function itemVerdict(status: number, error?: unknown): ItemVerdict {
  if (status >= 200 && status < 300) return 'accepted';
  if (status === 409) return 'duplicate';
  if (status === 403 && (error as { type?: unknown } | undefined)?.type === CLOSED_INDEX) return 'dead_letter';
  if (status === 429 || status >= 500) return 'retry';
  // Not the document's fault: credentials, privileges, or an index that
  // cannot be auto-created (action.auto_create_index). Fixing the cluster
  // or the config lets these through.
  if (status === 401 || status === 403 || status === 404 || status === 408) return 'retry';
  return 'dead_letter';
}

/** Why items of a 2xx response are sent again, for the log. */
export function itemRetryReason(status: number): RetryReason {
  if (status === 429) return 'throttled';
  if (status >= 500) return 'server';
  if (status === 401) return 'unauthorized';
  if (status === 403) return 'forbidden';
  if (status === 404) return 'index_missing';
  return 'timeout';
}

/** One `items[]` element of a `_bulk` response, reduced by `filter_path`. */
export interface BulkItemResult {
  status: number;
  error?: unknown;
}

const ALL_ACCEPTED = Buffer.from('{"errors":false,"items":[');
/** What Elasticsearch answers for each document created, with FILTER_PATH (sender.ts). */
const CREATED = Buffer.from('{"create":{"status":201}}');
const ITEMS_END = Buffer.from(']}');
const ACCEPTED: BulkItemResult = { status: 201 };

/**
 * The item results of a 2xx bulk response, from its bytes. `errors: false`
 * means every item was accepted (a 409 is an error), and each such item is
 * CREATED: such a response is only checked to be that many of them, by its
 * length and its ends, and parsed in full otherwise, which is when some item
 * failed: a 5000-item answer, parsed, cost more than its request. Counting
 * the items with a search for each cost 130 ns a document (profile of bench
 * forward es, 2026-12-01).
 */
export function bulkResponseItems(raw: Buffer, sent: number): BulkItemResult[] | undefined {
  // The items, comma-separated, between the two ends.
  const whole = ALL_ACCEPTED.length + sent * (CREATED.length + 1) - 1 + ITEMS_END.length;
  const itemsEnd = whole - ITEMS_END.length;
  if (
    sent > 0 &&
    raw.length === whole &&
    holdsAt(raw, ALL_ACCEPTED, 0) &&
    holdsAt(raw, CREATED, ALL_ACCEPTED.length) &&
    holdsAt(raw, CREATED, itemsEnd - CREATED.length) &&
    holdsAt(raw, ITEMS_END, itemsEnd)
  ) {
    return new Array<BulkItemResult>(sent).fill(ACCEPTED);
  }
  return bulkItems(responseBody(raw), sent);
}

/** A response body as JSON, else as text (a proxy's page): what errorReason() reads. */
export function responseBody(raw: Buffer): unknown {
  const text = raw.toString('utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** Whether `token` is at `at` of `buf`, which is long enough to hold it there. */
function holdsAt(buf: Buffer, token: Buffer, at: number): boolean {
  return buf.compare(token, 0, token.length, at, at + token.length) === 0;
}

/**
 * The item results of a bulk response body, in request order, or undefined
 * when the body does not have one result per document sent (a proxy's reply,
 * a truncated body): the sender then treats the request as failed.
 */
export function bulkItems(body: unknown, sent: number): BulkItemResult[] | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const { errors, items } = body as { errors?: unknown; items?: unknown };
  // A filter_path without the items leaves only `errors`.
  if (errors === false && items === undefined) return new Array<BulkItemResult>(sent).fill(ACCEPTED);
  if (!Array.isArray(items) || items.length !== sent) return undefined;
  const out: BulkItemResult[] = [];
  for (const item of items) {
    const op = typeof item === 'object' && item !== null ? (Object.values(item)[0] as { status?: unknown; error?: unknown } | undefined) : undefined;
    if (!op || typeof op.status !== 'number') return undefined;
    out.push(op.error === undefined ? { status: op.status } : { status: op.status, error: op.error });
  }
  return out;
}

/** The sender's backoff: 100 ms doubling to 30 s. */
export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 100, maxMs: 30_000 };
