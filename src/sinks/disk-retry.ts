/**
 * Waiting out a full or failing disk. A sink write that fails with ENOSPC,
 * EDQUOT or EIO is not the input's error: the sink keeps what it holds and
 * runs the same operation again with capped exponential backoff, so its write
 * promise stays pending, the inputs' in-flight bounds stop them reading
 * (backpressure reaches the client), and everything goes on once space
 * returns. Other errors (EACCES, EBADF, ...) are not waited out: a retry would
 * not fix them, and the caller fails the write as before.
 *
 * While any operation waits the sink is blocked: `reason()` says why (for
 * /readyz), `clogs_sink_blocked{sink,reason}` is 1, each failed attempt counts
 * in `clogs_sink_write_retries_total{sink,reason}`, and one warn line marks
 * the start and one info line the end (how long, how many retries), never a
 * line per retry.
 */
import type { Logger } from '../log.js';
import { sinkBlocked, sinkWriteRetries } from '../metrics.js';
import { backoffDelay, type BackoffPolicy } from './backoff.js';

const DISK_ERRORS = {
  ENOSPC: 'disk full',
  EDQUOT: 'disk quota exceeded',
  EIO: 'disk I/O error',
} as const;

export type DiskErrorCode = keyof typeof DISK_ERRORS;

/** 100 ms doubling to 5 s: space that returns is used within seconds, a long outage costs one attempt per 5 s. */
export const DISK_BACKOFF: BackoffPolicy = { initialMs: 100, maxMs: 5000 };

/** The code of an error a full or failing disk raises, else undefined. */
export function diskErrorCode(err: unknown): DiskErrorCode | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code !== undefined && Object.hasOwn(DISK_ERRORS, code) ? (code as DiskErrorCode) : undefined;
}

export interface DiskRetryOptions {
  /** The sink's name, the `sink` label. */
  sink: string;
  log: Logger;
  /** @default DISK_BACKOFF */
  backoff?: BackoffPolicy;
}

interface Block {
  code: DiskErrorCode;
  path: string;
  since: number;
  retries: number;
}

export class DiskRetry {
  private readonly backoff: BackoffPolicy;
  /** Operations between their first disk error and their success. */
  private waiting = 0;
  private block: Block | undefined;

  constructor(private readonly opts: DiskRetryOptions) {
    this.backoff = opts.backoff ?? DISK_BACKOFF;
    // Every series from the start, at 0: an alert on them tells a healthy sink from a missing metric.
    for (const reason of Object.keys(DISK_ERRORS)) {
      sinkBlocked.set({ sink: opts.sink, reason }, 0);
      sinkWriteRetries.inc({ sink: opts.sink, reason }, 0);
    }
  }

  /** Why writes wait, while they do: `disk full: ENOSPC on /var/log/clogs/web/2026-11-29.0000.ndjson`. */
  reason(): string | undefined {
    const b = this.block;
    return b === undefined ? undefined : `${DISK_ERRORS[b.code]}: ${b.code} on ${b.path}`;
  }

  /**
   * Runs `op` until it succeeds, waiting out disk errors; any other error is
   * thrown. `op` must be safe to run again after it failed part-way: it
   * leaves the file the way the next attempt expects it, or repairs it first.
   */
  async run<T>(path: string, op: () => Promise<T>): Promise<T> {
    let attempt = 0;
    try {
      for (;;) {
        try {
          return await op();
        } catch (err) {
          const code = diskErrorCode(err);
          if (code === undefined) throw err;
          if (attempt++ === 0) this.waiting++;
          this.failed(code, path, err);
          await new Promise((resolve) => setTimeout(resolve, backoffDelay(attempt, Math.random(), this.backoff)));
        }
      }
    } finally {
      if (attempt > 0 && --this.waiting === 0) this.cleared();
    }
  }

  private failed(code: DiskErrorCode, path: string, err: unknown): void {
    const { sink, log } = this.opts;
    sinkWriteRetries.inc({ sink, reason: code });
    const b = this.block;
    if (b === undefined) {
      this.block = { code, path, since: Date.now(), retries: 1 };
      sinkBlocked.set({ sink, reason: code }, 1);
      log.warn({ code, path, err: (err as Error).message }, `${DISK_ERRORS[code]}: writes wait and are retried, inputs stop reading until the disk takes them again`);
      return;
    }
    b.retries++;
    b.path = path;
    if (b.code !== code) {
      sinkBlocked.set({ sink, reason: b.code }, 0);
      sinkBlocked.set({ sink, reason: code }, 1);
      b.code = code;
    }
  }

  private cleared(): void {
    const b = this.block;
    if (b === undefined) return;
    this.block = undefined;
    sinkBlocked.set({ sink: this.opts.sink, reason: b.code }, 0);
    this.opts.log.info({ code: b.code, path: b.path, blockedMs: Date.now() - b.since, retries: b.retries }, 'the disk takes writes again; what waited is written');
  }
}
