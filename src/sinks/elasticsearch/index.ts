/**
 * The Elasticsearch sink: events → disk queue (durable on `write()`) →
 * bulk sender → a data stream `logs-<dataset>-<namespace>` or a daily index.
 *
 *   write(lines) ─► BulkEncoder ─► DiskQueue.append (fsync) ─► resolves: input may ack
 *                                        │
 *                    Sender ◄── read ────┘  … release() once Elasticsearch has them
 *
 * Files: bulk (NDJSON), document-id (the deterministic _id), queue (segments + cursor),
 * sender (the bulk loop), retry (pure verdicts), template, dead-letter,
 * client (auth, TLS, log-safe errors). docs/elasticsearch.md explains the
 * delivery guarantees to users.
 */
import { join } from 'node:path';
import type { EncodedBatch } from '../../collector/encoded.js';
import type { ElasticsearchConfig } from '../../config/schema.js';
import { ClogsError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { queueBytes, queueDepth } from '../../metrics.js';
import type { Sink } from '../sink.js';
import { BulkEncoder, resolveTarget, type Target } from './bulk.js';
import { createClient, safeUrls } from './client.js';
import { DeadLetterFile } from './dead-letter.js';
import { DiskQueue } from './queue.js';
import { SINK, Sender } from './sender.js';
import type { BackoffPolicy } from '../backoff.js';

/** How long close() keeps sending before it leaves the rest queued for the next start. */
export const CLOSE_GRACE_MS = 1500;

export interface ElasticsearchSinkDeps {
  log: Logger;
  stateDir: string;
  /** Tests shorten the backoff; the default is 100 ms doubling to 30 s. */
  backoff?: BackoffPolicy;
}

export function createElasticsearchSink(cfg: ElasticsearchConfig, deps: ElasticsearchSinkDeps): Sink {
  return new ElasticsearchSink(cfg, deps);
}

class ElasticsearchSink implements Sink {
  readonly name = SINK;
  private readonly log: Logger;
  private readonly target: Target;
  private readonly encoder: BulkEncoder;
  private readonly dir: string;
  private readonly deadLetter: DeadLetterFile;
  private client: ReturnType<typeof createClient> | undefined;
  private queue: DiskQueue | undefined;
  private sender: Sender | undefined;
  private state: 'new' | 'starting' | 'running' | 'closed' = 'new';

  constructor(
    private readonly cfg: ElasticsearchConfig,
    private readonly deps: ElasticsearchSinkDeps,
  ) {
    // The collector hands over a child logger already bound to this sink.
    this.log = deps.log;
    // A bad index pattern is a config error now, not a dead letter per document later.
    this.target = resolveTarget(cfg);
    this.encoder = new BulkEncoder(this.target);
    this.dir = join(deps.stateDir, 'elasticsearch');
    this.deadLetter = new DeadLetterFile(cfg.dead_letter ?? join(this.dir, 'dead-letter.ndjson'));
  }

  async start(): Promise<void> {
    if (this.state !== 'new') throw new ClogsError('CLOGS_SINK', 'the elasticsearch sink was already started');
    this.state = 'starting';
    const client = createClient(this.cfg);
    try {
      this.queue = await DiskQueue.open({
        dir: join(this.dir, 'queue'),
        maxBytes: this.cfg.queue_max_size,
        log: this.log,
        sink: SINK,
        onChange: (events, bytes) => {
          queueDepth.set({ sink: SINK }, events);
          queueBytes.set({ sink: SINK }, bytes);
        },
      });
    } catch (err) {
      await client.close();
      throw err;
    }
    const urls = safeUrls(this.cfg);
    this.sender = new Sender({
      client,
      queue: this.queue,
      deadLetter: this.deadLetter,
      target: this.target,
      log: this.log,
      urls,
      batchEvents: this.cfg.batch_events,
      batchBytes: this.cfg.batch_size,
      flushIntervalMs: this.cfg.flush_interval,
      inFlight: this.cfg.in_flight,
      ...(this.deps.backoff ? { backoff: this.deps.backoff } : {}),
    });
    this.client = client;
    this.sender.start();
    this.state = 'running';
    this.log.info(
      { urls, target: this.target.kind === 'data_stream' ? this.target.name : this.target.pattern, queued: this.queue.depth.events },
      'elasticsearch sink started',
    );
  }

  async write(batch: EncodedBatch): Promise<void> {
    if (this.state !== 'running' || !this.queue) {
      throw new ClogsError('CLOGS_QUEUE_CLOSED', `the elasticsearch sink is ${this.state === 'closed' ? 'closed' : 'not started'}`);
    }
    const count = batch.count;
    if (count === 0) return;
    const queue = this.queue;
    await queue.append(this.encoder.encode(batch, (size) => queue.payload(size)), count);
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    const wasRunning = this.state === 'running';
    this.state = 'closed';
    if (!wasRunning) return;
    await this.sender!.stop(CLOSE_GRACE_MS);
    const left = this.queue!.depth.events;
    await this.queue!.close();
    await this.deadLetter.close();
    await this.client!.close();
    if (left > 0) this.log.info({ events: left }, 'elasticsearch sink closed; undelivered events stay queued for the next start');
    else this.log.info('elasticsearch sink closed');
  }

  ready(): boolean {
    return (this.sender?.ready() ?? false) && this.queue?.blockedReason() === undefined;
  }

  notReadyReason(): string | undefined {
    return this.queue?.blockedReason() ?? this.sender?.notReadyReason();
  }
}
