import type { EncodedBatch } from '../collector/encoded.js';

export interface SyncOptions {
  /**
   * A sync no caller acts on when it fails (the forward input's, of writes
   * no ack waited on): its failure stays for the next sync() that is not
   * in the background, whose caller reads again what may have been lost
   * (the Docker input), instead of being taken by this one. A directory
   * that failed is synced again by that sync() instead, which answers for it.
   */
  background?: boolean;
}

export interface WriteOptions {
  /** Resolve once written, leaving durability to a later `sync()` (a sink may make it durable at once). */
  deferred?: boolean;
}

/**
 * What every sink implements.
 *
 * `write` resolves once the batch is durable *for this sink*: on disk and
 * fsync'd (file sink), or appended to the sink's own disk queue (Elasticsearch).
 * A `deferred` write resolves once readers of the sink see the batch (the
 * file sink's lines are in the files, not yet synced); it is durable once a
 * later `sync()` resolves. Inputs ack forward chunks and advance Docker
 * checkpoints only past what is durable in every sink, so a crash never loses
 * what was acknowledged. A sink that cannot take more (queue full, disk full)
 * keeps the promise pending: that is the backpressure inputs feel.
 */
export interface Sink {
  readonly name: string;
  start(): Promise<void>;
  /**
   * The events as their rendered lines (collector/encoded.ts), each rendered
   * once for every sink. The sink reads the batch's chunks only until the
   * promise settles: the input may then reuse them (collector/chunk-pool.ts).
   */
  write(batch: EncodedBatch, opts?: WriteOptions): Promise<void>;
  /**
   * Makes every write resolved so far durable. A sink whose writes are always
   * durable has none.
   */
  sync?(opts?: SyncOptions): Promise<void>;
  /** Flushes what can be flushed and releases resources; later writes reject. */
  close(): Promise<void>;
  /** For /readyz and metrics: whether the destination is reachable now. */
  ready?(): boolean;
  /** While not ready, why, when the sink can tell (`disk full: ENOSPC on PATH`), for /readyz. */
  notReadyReason?(): string | undefined;
}
