/**
 * The bulk loop: disk queue → `_bulk` requests → release or retry.
 *
 *   queue.read() ──► batch ──► deliver() ── 2xx ──► items: accepted / 409 ──► queue.release()
 *        ▲  (≤ inFlight at once)   │                        429, 5xx ──► backoff, resend those
 *        │                         │                        400 ──► dead-letter file
 *        └─ by size, count, or     └─ connection, timeout, 429, 5xx, 401/403 ──► backoff, resend all
 *           flushInterval              400/413 for the whole request ──► split in halves
 *           (a failed read: backoff, not ready, read again)
 *
 * `client.bulk` is called directly rather than through the client's bulk
 * helper, which keeps documents only in memory, retries only item-level 429
 * with a fixed wait, and aborts the whole run on one failed request. A batch
 * stays in the queue, and keeps its in-flight slot, until every document in
 * it is accepted, known to be there, or dead-lettered; so an outage blocks
 * at most `inFlight` batches in memory and the rest waits on disk.
 */
import type { Client } from '@elastic/elasticsearch';
import type { Logger } from '../../log.js';
import { bytesOut, deadLettered, eventsOut, sinkErrors, sinkRetries } from '../../metrics.js';
import type { Target } from './bulk.js';
import { errorReason, outcomeOf } from './client.js';
import type { DeadLetterFile, Rejected } from './dead-letter.js';
import type { BulkEntries } from './entries.js';
import type { DiskQueue, QueueBatch } from './queue.js';
import { backoffDelay, type BackoffPolicy } from '../backoff.js';
import { bulkResponseItems, DEFAULT_BACKOFF, itemRetryReason, itemVerdict, requestVerdict, responseBody, type BulkItemResult, type RequestOutcome, type RetryReason } from './retry.js';
import { ensureTemplate, templateName } from './template.js';

export const SINK = 'elasticsearch';
const LABELS = { sink: SINK } as const;

/** Per-item results without the bodies of the successful ones: a 5000-item response shrinks tenfold. */
const FILTER_PATH = 'errors,items.*.status,items.*.error';

/** While a failure lasts, it is logged again at most this often. */
const REPEAT_LOG_MS = 30_000;

/**
 * Refusals of the index template that are asked again: credentials, a timeout
 * and overload can change. Any other 4xx answers the same every time.
 */
const TEMPLATE_RETRIED = new Set([401, 408, 429]);

const FAILURE_MESSAGES: Record<RetryReason, string> = {
  connection: 'cannot reach elasticsearch; events stay queued and are retried',
  timeout: 'elasticsearch did not answer in time; events stay queued and are retried',
  throttled: 'elasticsearch is overloaded (429); backing off, events stay queued',
  server: 'elasticsearch answered with a server error; events stay queued and are retried',
  unauthorized:
    'elasticsearch rejected the credentials (401): check sinks.elasticsearch.username/password or api_key; events stay queued and are retried',
  forbidden:
    'elasticsearch refused the request (403): the user lacks privileges (create_doc and auto_configure on the target, manage_index_templates for the template); events stay queued and are retried',
  not_found: 'elasticsearch answered 404 (a proxy, or a path missing from sinks.elasticsearch.url); events stay queued and are retried',
  index_missing:
    'elasticsearch cannot create the target data stream or index (404): allow its auto-creation (action.auto_create_index) or create it; events stay queued and are retried',
  not_elasticsearch: 'the server at sinks.elasticsearch.url is not Elasticsearch; events stay queued and are retried',
  refused:
    'elasticsearch refused the bulk request as a whole (400), not for a document in it: check that sinks.elasticsearch.url leads to Elasticsearch 9, not an older version or a proxy that changes requests; events stay queued and are retried',
  unexpected: 'elasticsearch gave an unexpected answer; events stay queued and are retried',
};

export interface SenderOptions {
  client: Client;
  queue: DiskQueue;
  deadLetter: DeadLetterFile;
  target: Target;
  log: Logger;
  /** Node URLs without credentials, for log lines. */
  urls: string[];
  batchEvents: number;
  batchBytes: number;
  flushIntervalMs: number;
  inFlight: number;
  backoff?: BackoffPolicy;
}

/** A bulk response larger than this is not read (no Elasticsearch answer to 5000 documents comes near it). */
const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

/** `items`: a 2xx response's results, one per document sent, or undefined when it has not one per document. */
type SendResult = (RequestOutcome & { bytes: number; items?: BulkItemResult[] | undefined }) | 'aborted';

export class Sender {
  private readonly opts: SenderOptions;
  private readonly log: Logger;
  private readonly backoff: BackoffPolicy;
  /** Aborted at the end of close(): in-flight requests and backoff waits end at once. */
  private readonly abort = new AbortController();
  private readonly active = new Set<Promise<void>>();
  private draining = false;
  private running: Promise<void> | undefined;
  private ok = false;
  private failure: { reason: RetryReason; since: number; loggedAt: number; count: number } | undefined;
  /** While the queue cannot be read: why, for /readyz. */
  private readFailure: { reason: string; loggedAt: number; count: number } | undefined;

  constructor(opts: SenderOptions) {
    this.opts = opts;
    this.log = opts.log;
    this.backoff = opts.backoff ?? DEFAULT_BACKOFF;
    // At 0 from the start (disk-retry.ts says why).
    for (const counter of [sinkErrors, sinkRetries, deadLettered]) counter.inc(LABELS, 0);
  }

  start(): void {
    this.running = this.run();
  }

  /** Whether the last request reached Elasticsearch and was accepted, and the queue can be read. */
  ready(): boolean {
    return this.ok && this.readFailure === undefined;
  }

  /** While the queue cannot be read, why: `cannot read the elasticsearch queue: EIO: …`. */
  notReadyReason(): string | undefined {
    return this.readFailure?.reason;
  }

  /**
   * Sends what is queued without waiting for full batches, for at most
   * `graceMs`; then abandons what is still in flight (it stays queued).
   */
  async stop(graceMs: number): Promise<void> {
    this.draining = true;
    this.wake();
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
    });
    await Promise.race([this.idle(), expired]);
    clearTimeout(timer);
    this.abort.abort();
    this.wake();
    await this.idle();
  }

  private async idle(): Promise<void> {
    await this.running;
    while (this.active.size > 0) await Promise.allSettled([...this.active]);
  }

  private async run(): Promise<void> {
    if (!(await this.installTemplate())) return;
    const { queue, inFlight } = this.opts;
    while (!this.abort.signal.aborted) {
      while (this.active.size >= inFlight) await Promise.race(this.active);
      const batch = await this.nextBatch();
      if (!batch) break;
      const delivery: Promise<void> = this.deliverUntilDone(batch).finally(() => this.active.delete(delivery));
      this.active.add(delivery);
      if (queue.unread().events === 0 && this.draining) break;
    }
  }

  /** Waits until a batch is due: full by events or bytes, flush_interval old, or draining. */
  private async nextBatch(): Promise<QueueBatch | undefined> {
    const { queue, batchEvents, batchBytes, flushIntervalMs } = this.opts;
    for (;;) {
      if (this.abort.signal.aborted) return undefined;
      const unread = queue.unread();
      if (unread.events === 0) {
        if (this.draining) return undefined;
        await queue.waitForData();
        continue;
      }
      const due = unread.since + flushIntervalMs;
      const now = Date.now();
      if (unread.events >= batchEvents || unread.bytes >= batchBytes || this.draining || now >= due) {
        const batch = await this.read();
        // None, with none unread left: what was unread was damaged and skipped. Wait for more, as when empty.
        if (batch || queue.unread().events > 0) return batch;
        continue;
      }
      await queue.waitForData(due - now);
    }
  }

  /**
   * The next batch from the queue, or undefined when there is none or the
   * sender is stopped. A failed read (EIO, EMFILE) is tried again after a
   * backoff: the events stay on disk, and the sink is not ready meanwhile.
   */
  private async read(): Promise<QueueBatch | undefined> {
    const { queue, batchEvents, batchBytes } = this.opts;
    for (;;) {
      try {
        const batch = await queue.read(batchEvents, batchBytes);
        if (this.readFailure) {
          this.log.info({ failures: this.readFailure.count }, 'the elasticsearch queue can be read again');
          this.readFailure = undefined;
        }
        return batch;
      } catch (err) {
        const message = (err as Error).message;
        const now = Date.now();
        const f = (this.readFailure ??= { reason: '', loggedAt: 0, count: 0 });
        f.reason = `cannot read the elasticsearch queue: ${message}`;
        f.count++;
        if (now - f.loggedAt >= REPEAT_LOG_MS) {
          f.loggedAt = now;
          this.log.error({ err: message, failures: f.count, queued: queue.depth.events }, 'cannot read the elasticsearch queue; retrying');
        }
        if (!(await this.sleep(backoffDelay(f.count, Math.random(), this.backoff)))) return undefined;
      }
    }
  }

  /**
   * Delivers a batch, starting over after a failure that is not
   * Elasticsearch's answer (the dead-letter file cannot be written): what
   * already arrived answers 409 the second time.
   */
  private async deliverUntilDone(batch: QueueBatch): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.deliver(batch);
        return;
      } catch (err) {
        sinkErrors.inc(LABELS);
        this.log.error({ err: (err as Error).message, events: batch.entries.length }, 'elasticsearch delivery failed; the batch stays queued and is sent again');
        if (!(await this.sleep(backoffDelay(attempt, Math.random(), this.backoff)))) return;
      }
    }
  }

  private async deliver(batch: QueueBatch): Promise<void> {
    // Groups of entries still to send; a split or a partial retry replaces the head.
    const work: BulkEntries[] = [batch.entries];
    let attempt = 0;
    while (work.length > 0) {
      const items = work[0]!;
      const result = await this.send(items);
      if (result === 'aborted') return;
      const verdict = requestVerdict(result);
      if (verdict.action === 'retry') {
        this.failed(verdict.reason, result);
        sinkRetries.inc(LABELS);
        if (!(await this.sleep(backoffDelay(++attempt, Math.random(), this.backoff)))) return;
        continue;
      }
      if (verdict.action === 'split') {
        work.shift();
        if (items.length > 1) {
          const half = Math.ceil(items.length / 2);
          work.unshift(items.slice(0, half), items.slice(half, items.length));
        } else {
          const status = result.kind === 'response' ? result.status : 0;
          const body = result.kind === 'response' ? result.body : undefined;
          await this.reject([{ entry: items.entry(0), status, error: (body as { error?: unknown } | undefined)?.error ?? body }]);
        }
        continue;
      }
      const results = result.kind === 'response' ? result.items : undefined;
      if (!results) {
        this.failed('unexpected', result);
        sinkRetries.inc(LABELS);
        if (!(await this.sleep(backoffDelay(++attempt, Math.random(), this.backoff)))) return;
        continue;
      }
      this.succeeded();
      bytesOut.inc(LABELS, result.bytes);
      const retry: number[] = [];
      const rejected: Rejected[] = [];
      let delivered = 0;
      let retryItem: { status: number; error?: unknown } | undefined;
      for (let i = 0; i < results.length; i++) {
        const r = results[i]!;
        switch (itemVerdict(r.status, r.error)) {
          case 'accepted':
          case 'duplicate':
            delivered++;
            break;
          case 'retry':
            retry.push(i);
            retryItem = r;
            break;
          case 'dead_letter':
            rejected.push({ entry: items.entry(i), status: r.status, error: r.error });
            break;
        }
      }
      eventsOut.inc(LABELS, delivered);
      if (rejected.length > 0) await this.reject(rejected);
      work.shift();
      if (retry.length > 0) {
        work.unshift(items.pick(retry));
        sinkRetries.inc(LABELS, retry.length);
        this.failed(itemRetryReason(retryItem!.status), { kind: 'response', status: retryItem!.status, body: { error: retryItem!.error } });
        if (!(await this.sleep(backoffDelay(++attempt, Math.random(), this.backoff)))) return;
      } else attempt = 0;
    }
    this.opts.queue.release(batch);
  }

  private async send(items: BulkEntries): Promise<SendResult> {
    const body = items.body;
    try {
      const res = await this.opts.client.bulk(
        // The queue holds finished NDJSON; the transport sends a Buffer body as it is (shouldSerialize).
        { operations: body as never, filter_path: FILTER_PATH, include_source_on_error: false },
        // The answer's bytes, not the transport's parse of them: most answers need no parse (bulkResponseItems).
        { signal: this.abort.signal, asStream: true, meta: true },
      );
      const status = res.statusCode ?? 0;
      const raw = await readAll(res.body as unknown as AsyncIterable<Buffer>, MAX_RESPONSE_BYTES);
      if (status >= 200 && status < 300) return { kind: 'response', status, bytes: body.length, items: raw && bulkResponseItems(raw, items.length) };
      return { kind: 'response', status, body: raw && responseBody(raw), bytes: body.length };
    } catch (err) {
      if (this.abort.signal.aborted) return 'aborted';
      return { ...outcomeOf(err), bytes: body.length };
    }
  }

  /** Writes documents rejected for good to the dead-letter file; only then may their batch leave the queue. */
  private async reject(rejected: Rejected[]): Promise<void> {
    const sources = await this.opts.deadLetter.write(rejected);
    // Not a label of the count: clients choose tags, so one series per source would grow without bound.
    deadLettered.inc(LABELS, rejected.length);
    const first = rejected[0]!;
    this.log.warn(
      { documents: rejected.length, sources: [...new Set(sources)], status: first.status, reason: errorReason({ error: first.error }), file: this.opts.deadLetter.path },
      'elasticsearch rejected documents for good; written to the dead-letter file',
    );
  }

  /** Installs the index template before the first document; false if closed first. */
  private async installTemplate(): Promise<boolean> {
    const { client, target } = this.opts;
    let attempt = 0;
    while (!this.abort.signal.aborted) {
      try {
        const result = await ensureTemplate(client, target, this.abort.signal);
        this.succeeded();
        this.log.info({ template: templateName(target), result }, 'index template checked');
        return true;
      } catch (err) {
        if (this.abort.signal.aborted) return false;
        const outcome = outcomeOf(err);
        if (outcome.kind === 'response' && outcome.status === 403) {
          // Users who may write but not manage templates are common; their admin installs it.
          this.log.warn({ template: templateName(target) }, 'not allowed to install the index template (403); assuming it is managed elsewhere');
          return true;
        }
        if (outcome.kind === 'response' && outcome.status >= 400 && outcome.status < 500 && !TEMPLATE_RETRIED.has(outcome.status)) {
          // Asked again, Elasticsearch refuses again (a 400 for another template of the same priority
          // whose index patterns overlap): waiting for it would send no document ever.
          this.log.warn(
            { template: templateName(target), status: outcome.status, reason: errorReason(outcome.body) },
            'elasticsearch refused the index template; documents are sent without it, mapped by whatever other templates match: resolve the conflict (a template of the same priority with overlapping index patterns) and restart clogs',
          );
          return true;
        }
        const verdict = requestVerdict(outcome);
        this.failed(verdict.action === 'retry' ? verdict.reason : 'unexpected', outcome);
        if (!(await this.sleep(backoffDelay(++attempt, Math.random(), this.backoff)))) return false;
      }
    }
    return false;
  }

  private failed(reason: RetryReason, outcome: RequestOutcome): void {
    this.ok = false;
    sinkErrors.inc(LABELS);
    const now = Date.now();
    const f = this.failure;
    if (f && f.reason === reason && now - f.loggedAt < REPEAT_LOG_MS) {
      f.count++;
      return;
    }
    const detail =
      outcome.kind === 'response' ? { status: outcome.status, reason: errorReason(outcome.body) } : { error: outcome.message };
    this.log.error(
      { ...detail, urls: this.opts.urls, queued: this.opts.queue.depth.events, failures: (f?.count ?? 0) + 1, since: new Date(f?.since ?? now).toISOString() },
      FAILURE_MESSAGES[reason],
    );
    this.failure = { reason, since: f?.since ?? now, loggedAt: now, count: 0 };
  }

  private succeeded(): void {
    this.ok = true;
    if (this.failure) {
      this.log.info({ urls: this.opts.urls, downMs: Date.now() - this.failure.since }, 'elasticsearch accepts requests again');
      this.failure = undefined;
    }
  }

  /** Resolves true after `ms`, or false at once when the sender is stopped for good. */
  private sleep(ms: number): Promise<boolean> {
    const signal = this.abort.signal;
    if (signal.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve(!signal.aborted);
      };
      const timer = setTimeout(done, Math.max(0, ms));
      signal.addEventListener('abort', done, { once: true });
    });
  }

  /** Ends the loop's wait for data, so it sees a drain or abort. */
  private wake(): void {
    this.opts.queue.wakeReaders();
  }
}

/** A response body's bytes, or undefined past `limit` (the rest is not read). */
async function readAll(body: AsyncIterable<Buffer>, limit: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > limit) return undefined;
    chunks.push(chunk);
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
}
