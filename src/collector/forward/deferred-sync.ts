/**
 * Requests no ack waits on (Message mode as Docker's driver sends it by
 * default, any request without a `chunk`) are written deferred: into the
 * files' page cache, where readers and a restarted collector find them
 * even after kill -9, and synced together at most SYNC_DELAY_MS later, as
 * the Docker input's lines are. Nothing tells such a client what was
 * synced, so a sync per batch bought it nothing but an fdatasync of every
 * container's file per commit: 19 % of the event loop in Message mode at
 * full speed (profiled), and a disk kept busy by a quiet host. A request
 * with a chunk still waits for its own sync before its ack.
 */
import type { Logger } from '../../log.js';
import type { Pipeline } from '../pipeline.js';
import type { OrdinalJournal } from './ordinal-journal.js';

export const SYNC_DELAY_MS = 1000;

export class DeferredSync {
  private timer: NodeJS.Timeout | undefined;
  private syncing: Promise<void> = Promise.resolve();

  constructor(
    private readonly pipeline: Pipeline,
    /** Synced first: what survives a power cut of the lines, their ordinals' journal has counted too. */
    private readonly ordinals: Pick<OrdinalJournal, 'sync'>,
    private readonly log: Logger,
    private readonly delayMs = SYNC_DELAY_MS,
  ) {}

  /** A deferred write resolved: its lines are synced within the delay. */
  written(): void {
    if (this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.sync();
    }, this.delayMs);
    this.timer.unref();
  }

  /** Syncs what is written but not synced yet, now; for a stop or a reload, whose sinks may stay. */
  async flush(): Promise<void> {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
      await this.sync();
    }
    await this.syncing;
  }

  private sync(): Promise<void> {
    this.syncing = this.syncing.then(() =>
      this.ordinals.sync().then(() => this.pipeline.sync({ background: true })).catch((err: unknown) =>
        // The sink has logged which file, and keeps the failure for the Docker
        // input's next sync; the lines of requests without acks written since
        // the last sync may be lost.
        this.log.error({ err }, 'could not sync lines of forward requests without acks'),
      ),
    );
    return this.syncing;
  }
}
