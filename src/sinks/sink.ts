import type { EncodedBatch } from '../collector/encoded.js';

/**
 * What every sink implements.
 *
 * `write` resolves once the batch is durable *for this sink*: on disk and
 * fsync'd (file sink), or appended to the sink's own disk queue (Elasticsearch).
 * Inputs ack forward chunks and advance Docker checkpoints only after every
 * sink's `write` resolved, so a crash never loses what was acknowledged.
 * A sink that cannot take more (queue full, disk full) keeps the promise
 * pending: that is the backpressure inputs feel.
 */
export interface Sink {
  readonly name: string;
  start(): Promise<void>;
  /** The events as their rendered lines (collector/encoded.ts), each rendered once for every sink. */
  write(batch: EncodedBatch): Promise<void>;
  /** Flushes what can be flushed and releases resources; later writes reject. */
  close(): Promise<void>;
  /** For /readyz and metrics: whether the destination is reachable now. */
  ready?(): boolean;
  /** While not ready, why, when the sink can tell (`disk full: ENOSPC on PATH`), for /readyz. */
  notReadyReason?(): string | undefined;
}
