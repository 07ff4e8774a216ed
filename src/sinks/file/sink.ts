/**
 * The file sink: NDJSON lines into per-source files, appended as the
 * renderer wrote them. The replay guard and the commit loop see lines only.
 * The jobs behind it live apart: which directory a source's lines go to
 * (source-dirs.ts), dropping a batch replayed after a crash (replay.ts), the
 * group commit with its fsync policy, disk retries and memory bound
 * (commit-loop.ts), rotation by size (rotation.ts), the open files and
 * rotation to new files (files.ts), compression and retention in the
 * background (maintenance.ts).
 */
import type { EncodedBatch } from '../../collector/encoded.js';
import type { FileSinkConfig } from '../../config/schema.js';
import { ClogsError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { DiskRetry } from '../disk-retry.js';
import type { BackoffPolicy } from '../backoff.js';
import type { Sink, SyncOptions, WriteOptions } from '../sink.js';
import { CommitLoop } from './commit-loop.js';
import { FileTable } from './files.js';
import { nodeFileIo, parentsOfCreated, type FileIo } from './io.js';
import { dayOf } from './layout.js';
import { StoreMaintenance } from './maintenance.js';
import { repairDirectory } from './repair.js';
import { ReplayGuard } from './replay.js';
import { SourceDirs } from './source-dirs.js';

export interface FileSinkDeps {
  log: Logger;
  /** Wall clock in ms: the processing day that names new files, and how long a write on the main thread took. @default Date.now */
  now?: () => number;
  io?: FileIo;
  /** Most files open at once; the least recently used is closed first. @default 128 */
  maxOpenFiles?: number;
  /** Period of the "interval" fsync policy, ms. @default 1000 */
  syncIntervalMs?: number;
  /** Retries on a full disk; tests shorten them. @default DISK_BACKOFF */
  diskBackoff?: BackoffPolicy;
}

export class FileSink implements Sink {
  readonly name = 'file';
  private readonly log: Logger;
  private readonly io: FileIo;
  private readonly files: FileTable;
  private readonly disk: DiskRetry;
  private readonly loop: CommitLoop;
  private readonly dirs = new SourceDirs();
  private startup: Promise<void> = Promise.resolve();
  private closing: Promise<void> | undefined;

  private readonly replay: ReplayGuard;
  /** Compression and retention of rotated files, in the background. */
  private readonly maintenance: StoreMaintenance;
  /** Writes waiting for a source's file tail to be read; later writes queue behind them to keep order. */
  private gate: Promise<void> = Promise.resolve();
  private gated = 0;

  constructor(
    private readonly cfg: FileSinkConfig,
    deps: FileSinkDeps,
  ) {
    // The collector may have bound the component already; a second binding would repeat the key.
    this.log = 'component' in deps.log.bindings() ? deps.log : deps.log.child({ component: 'file-sink' });
    this.io = deps.io ?? nodeFileIo;
    const now = deps.now ?? Date.now;
    const maxOpen = deps.maxOpenFiles ?? 128;
    this.replay = new ReplayGuard(cfg.dir, (source, err) => this.log.warn({ err, source }, 'cannot read a file tail to drop a replayed batch'));
    this.disk = new DiskRetry({ sink: 'file', log: this.log, ...(deps.diskBackoff ? { backoff: deps.diskBackoff } : {}) });
    this.maintenance = new StoreMaintenance({
      dir: cfg.dir,
      io: this.io,
      log: this.log,
      compress: cfg.compress,
      retention: cfg.retention,
      today: () => dayOf(now()),
      whileClosed: (source, remove) => this.files.whileClosed(source, remove),
    });
    this.files = new FileTable({
      dir: cfg.dir,
      io: this.io,
      log: this.log,
      maxOpen,
      rotateSize: cfg.rotate_size,
      rotateDaily: cfg.rotate_daily,
      durable: cfg.fsync !== 'never',
      syncWrites: cfg.fsync === 'batch',
      onRotate: () => this.maintenance.poke(),
    });
    this.loop = new CommitLoop({
      dir: cfg.dir,
      fsync: cfg.fsync,
      rotateSize: cfg.rotate_size,
      maxOpen,
      syncIntervalMs: deps.syncIntervalMs ?? 1000,
      files: this.files,
      io: this.io,
      disk: this.disk,
      log: this.log,
      now,
    });
  }

  /** Creates the directory and repairs torn lines a crash left. */
  start(): Promise<void> {
    this.startup = (async () => {
      let created: string | undefined;
      try {
        created = await this.io.mkdirp(this.cfg.dir);
      } catch (err) {
        throw new ClogsError('CLOGS_SINK', `file sink: cannot create the directory ${this.cfg.dir}: ${(err as Error).message}`, { cause: err });
      }
      // The store's own entry: a power loss would take it, and every file in it, with it.
      if (created !== undefined && this.cfg.fsync !== 'never') for (const parent of parentsOfCreated(this.cfg.dir, created)) await this.io.syncDir(parent);
      await repairDirectory(this.io, this.cfg.dir, this.log, this.cfg.fsync !== 'never');
      this.maintenance.start();
      this.log.info({ dir: this.cfg.dir, fsync: this.cfg.fsync }, 'file sink started');
    })();
    this.loop.holdUntil(this.startup);
    return this.startup;
  }

  ready(): boolean {
    return this.loop.healthy && this.disk.reason() === undefined;
  }

  notReadyReason(): string | undefined {
    return this.disk.reason();
  }

  write(batch: EncodedBatch, opts?: WriteOptions): Promise<void> {
    const deferred = opts?.deferred === true;
    if (this.closing !== undefined) return Promise.reject(new ClogsError('CLOGS_QUEUE_CLOSED', 'file sink: closed, write refused'));
    const sources = [...batch.sources()].filter((s) => s.count > 0);
    if (sources.length === 0) return Promise.resolve();
    const dirs = sources.map((s) => this.dirs.dirOf(s.container, s.name));
    if (this.gated === 0 && !this.replay.mayReplay(dirs)) return this.loop.add(sources, dirs, deferred);
    return this.afterReplayCheck(batch, deferred);
  }

  /** Every write settled so far durable (fsync "batch"; commit-loop.ts). */
  sync(opts?: SyncOptions): Promise<void> {
    if (this.closing !== undefined) return this.closing;
    return this.loop.sync(opts?.background === true);
  }

  /**
   * Queues the batch without the lines a restart replayed (replay.ts),
   * keeping the order of writes: those behind it wait until it is queued.
   */
  private afterReplayCheck(batch: EncodedBatch, deferred: boolean): Promise<void> {
    this.gated++;
    let durable: Promise<void> = Promise.resolve();
    // The gate opens once this write is queued, not once it is durable, so
    // writes behind it still share commits.
    const queued = this.gate
      .then(() => this.replay.drop(batch, (s) => this.dirs.dirOf(s.container, s.name)))
      .then(async ({ kept, dropped, replayed }) => {
        if (dropped > 0) this.log.info({ dropped }, 'dropped a batch already written before a restart');
        for (const source of replayed) await this.files.syncLeftBehind(source);
        const sources = [...kept.sources()].filter((s) => s.count > 0);
        if (sources.length > 0) durable = this.loop.add(sources, sources.map((s) => this.dirs.dirOf(s.container, s.name)), deferred);
      })
      .finally(() => this.gated--);
    this.gate = queued.catch(() => undefined);
    return queued.then(() => durable);
  }

  /** Writes and syncs what was handed in, closes the files; later writes reject. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.loop.stopSyncTimer();
      await this.startup.catch(() => undefined);
      await this.gate;
      await this.loop.idle();
      await this.files.closeAll();
      await this.maintenance.stop();
      this.log.info({ dir: this.cfg.dir }, 'file sink closed');
    })();
    return this.closing;
  }
}
