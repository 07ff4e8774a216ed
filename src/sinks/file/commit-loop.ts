/**
 * The file sink's commit loop: group commit of NDJSON lines into per-source
 * files. One loop does every file operation, so no descriptor is closed under
 * a write or sync in flight:
 *
 *   add(lines) ──▶ next group (per source: lines, callers)
 *                    │ taken whole when the loop is free
 *   loop: open/rotate ─▶ per source, in parallel: writev(2) (─▶ fdatasync)
 *         ─▶ fsync the directories that got a new entry ─▶ settle the callers
 *
 * Writes that arrive while a commit is on disk join the next group, so N
 * concurrent writers cost one sync per touched file per commit, not N.
 * A deferred write (the Docker input's, a forward write no ack waits on)
 * settles once written; its files are opened without O_DSYNC and `sync()`
 * later syncs every file written since, so a durable point costs one
 * fdatasync per dirty file however many writes came before it. A sync no
 * caller waits on to go on (a background one, the "interval" tick) runs
 * beside the commits, on descriptors of its own (io.ts syncPath).
 * fsync policy: "batch" settles a write only after its lines are durable
 * (forward acks depend on it): files are opened with O_DSYNC, so each
 * writev(2) returns synced, with no fdatasync after it. Measured (forward
 * benchmark, paired runs): 377-404k records/s against 304-357k with
 * writev then fdatasync, since each step of a commit is a thread-pool round
 * trip that waits for the busy main thread. "interval" settles after
 * writev(2) and syncs every second; "never" leaves it to the OS. The sink's
 * close() syncs in every policy.
 * A full or failing disk (ENOSPC, EDQUOT, EIO) fails no write: the loop
 * keeps the group, cuts a file back to its last whole line, and retries the
 * open, write or directory sync with backoff (disk-retry.ts) until the disk
 * takes it, so the write promises stay pending and the inputs stop reading.
 * Not so an fdatasync of lines written without O_DSYNC: once it failed, the
 * kernel may have dropped them, and a retry would succeed on nothing. The
 * writes waiting on it fail, and so does the next sync() (syncEntry).
 * Any other error rejects (CLOGS_SINK) the writes that touched a source
 * whose open, write or sync failed; their lines that reached other sources
 * stay, so a sender's retry can duplicate them: delivery is at least once.
 *
 * Memory bound: the loop has no queue of its own. It holds the encoded lines
 * of the writes whose promises are pending, in two groups at most (the one on
 * disk and the one filling), in chunks taking at most twice the lines' JSON
 * size plus 256 KiB per source of the group (line-buffer.ts). Callers that
 * await the write before handing in more, as the inputs do, bound it at about
 * 2 × (writers in flight) × (their batch's JSON size). While the disk is
 * behind, the promises stay pending and the inputs stop reading.
 */
import { join, sep } from 'node:path';
import type { EncodedSource } from '../../collector/encoded.js';
import { LineBuffer } from '../../collector/line-buffer.js';
import type { FileSinkConfig } from '../../config/schema.js';
import { ClogsError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { bytesOut, eventsOut, sinkErrors } from '../../metrics.js';
import { diskErrorCode, type DiskRetry } from '../disk-retry.js';
import type { FileTable, OpenFile } from './files.js';
import type { FileIo } from './io.js';
import { dayOf } from './layout.js';
import { appendRotating } from './rotation.js';

export interface CommitLoopOptions {
  /** The store's root directory. */
  dir: string;
  fsync: FileSinkConfig['fsync'];
  /** 0: no size rotation. */
  rotateSize: number;
  /** Most files open at once: a commit writes at most this many sources at a time. */
  maxOpen: number;
  /** Period of the "interval" fsync policy, ms. */
  syncIntervalMs: number;
  files: FileTable;
  io: FileIo;
  disk: DiskRetry;
  log: Logger;
  /** Wall clock in ms: the processing day that names new files, and how long a write on this thread took. */
  now: () => number;
}

interface Caller {
  resolve(): void;
  reject(err: Error): void;
  error?: Error;
}

interface SyncWaiter {
  resolve(): void;
  reject(err: Error): void;
  /** See SyncOptions.background (sinks/sink.ts). */
  background: boolean;
}

/** One source's share of a commit. */
interface Entry {
  readonly source: string;
  readonly lines: LineBuffer;
  events: number;
  bytes: number;
  readonly callers: Caller[];
  lastCaller?: Caller;
  /** A caller wants these lines durable when it settles. */
  durable: boolean;
  file?: OpenFile;
  error?: Error;
}

interface Group {
  readonly entries: Map<string, Entry>;
  readonly callers: Caller[];
}

/** A background sync not started yet: later ones join it. */
interface QueuedSync {
  readonly waiters: SyncWaiter[];
  due: boolean;
}

const NEWLINE = 0x0a;
const ERROR_LOG_INTERVAL_MS = 5000;
/**
 * A deferred write on the calling thread that took this long waited on the
 * file system (a copy of a few MiB into the page cache takes a few ms);
 * deferred writes then go through the thread pool for INLINE_PAUSE_MS.
 */
const INLINE_STALL_MS = 20;
const INLINE_PAUSE_MS = 10_000;

/** Whether `path` is `dir` or lies below it. */
const isWithin = (path: string, dir: string): boolean => path === dir || path.startsWith(dir.endsWith(sep) ? dir : dir + sep);
const newGroup = (): Group => ({ entries: new Map(), callers: [] });
/** Whether a write of the group waits to be durable, not only written. */
const waitsDurable = (group: Group): boolean => [...group.entries.values()].some((e) => e.durable);

export class CommitLoop {
  private readonly eventsOut = eventsOut.labels({ sink: 'file' });
  private readonly bytesOut = bytesOut.labels({ sink: 'file' });
  private readonly errors = sinkErrors.labels({ sink: 'file' });

  private next = newGroup();
  private running = false;
  private drained: Promise<void> = Promise.resolve();
  private startup: Promise<void> = Promise.resolve();
  private syncDue = false;
  private syncWaiters: SyncWaiter[] = [];
  /** The background syncs under way and queued, in order (see syncNow). */
  private background: Promise<void> = Promise.resolve();
  private queued: QueuedSync | undefined;
  /** Their directory syncs, which a commit's own waits for (see syncDirs). */
  private backgroundDirs: Promise<unknown> = Promise.resolve();
  /** Files whose background sync failed: closed by the loop between commits (see syncAll). */
  private readonly failedInBackground: OpenFile[] = [];
  private readonly timer: NodeJS.Timeout | undefined;
  private lastErrorLog = 0;
  private suppressedErrors = 0;
  /** Until when deferred writes go through the thread pool (see writeAll). */
  private poolWritesUntil = 0;
  private ok = true;

  constructor(private readonly opts: CommitLoopOptions) {
    // At 0 from the start (disk-retry.ts says why).
    this.errors.inc(0);
    if (opts.fsync === 'interval') {
      this.timer = setInterval(() => {
        this.syncDue = true;
        this.kick();
      }, opts.syncIntervalMs);
      this.timer.unref();
    }
  }

  /** Whether the last commit or interval sync succeeded everywhere. */
  get healthy(): boolean {
    return this.ok;
  }

  /** Commits wait for `startup` (the directory created and repaired), whether it succeeds or not. */
  holdUntil(startup: Promise<void>): void {
    this.startup = startup;
  }

  /**
   * Adds the lines of these sources, `dirs[i]` naming the directory of
   * `sources[i]`, to the next commit; resolves once they are written (and,
   * unless `deferred`, durable, with fsync "batch").
   */
  add(sources: readonly EncodedSource[], dirs: readonly string[], deferred = false): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const caller: Caller = { resolve, reject };
      const group = this.next;
      group.callers.push(caller);
      sources.forEach((s, i) => {
        const entry = this.entryFor(group, dirs[i]!, caller);
        if (!deferred) entry.durable = true;
        s.appendBytesTo(entry.lines);
        entry.events += s.count;
      });
      this.kick();
    });
  }

  /**
   * Resolves once every write settled so far is durable (fsync "batch"; the
   * other policies keep their own schedule). A file whose sync fails is
   * closed and the promise rejects: its unsynced lines may be lost, so what
   * was written since the last durable point must be written again. A
   * `background` sync's failure is also kept for the next sync that is not.
   */
  sync(background = false): Promise<void> {
    if (this.opts.fsync !== 'batch') return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.syncWaiters.push({ resolve, reject, background });
      this.kick();
    });
  }

  stopSyncTimer(): void {
    clearInterval(this.timer);
  }

  /** Resolves once no commit or sync is running or due. */
  async idle(): Promise<void> {
    for (let background = this.background; ; background = this.background) {
      while (this.running) await this.drained;
      await background;
      if (!this.running && background === this.background) return;
    }
  }

  private entryFor(group: Group, source: string, caller: Caller): Entry {
    let entry = group.entries.get(source);
    if (entry === undefined) {
      entry = { source, lines: new LineBuffer(), events: 0, bytes: 0, callers: [], durable: false };
      group.entries.set(source, entry);
    }
    if (entry.lastCaller !== caller) {
      entry.callers.push(caller);
      entry.lastCaller = caller;
    }
    return entry;
  }

  private kick(): void {
    if (this.running) return;
    this.running = true;
    this.drained = this.drain();
  }

  private async drain(): Promise<void> {
    // Also lets writes made in the same tick join the first commit.
    await this.startup.catch(() => undefined);
    for (;;) {
      if (this.failedInBackground.length > 0) await this.closeFailed();
      if (this.next.callers.length > 0) {
        // Deferred writes go to the page cache on this thread, so their
        // commit would end before the next read: one commit, and one writev
        // per file, for each read of each connection. Written after this turn
        // of the event loop instead, the group holds every read of the turn.
        // Measured (1M Message-mode records from 20 containers): 104,000
        // writevs of 4.8 KB took 0.52 s of the main thread; 4,400 of 110 KB,
        // 0.20 s.
        if (!waitsDurable(this.next)) await new Promise(setImmediate);
        const group = this.next;
        this.next = newGroup();
        try {
          await this.commit(group);
        } catch (err) {
          // Not a disk error (commit turns those into rejections per source): a bug. The loop goes on.
          this.opts.log.error({ err }, 'file sink commit failed');
          const error = new ClogsError('CLOGS_SINK', `file sink: commit failed: ${(err as Error).message}`, { cause: err });
          for (const caller of group.callers) caller.reject(error);
        }
      }
      // A sync asked for meanwhile goes before the next group, so it waits
      // for one commit at most: writers that await each write and write
      // again refill `next` before the loop looks, and a sync that waited
      // for an empty `next` waited as long as they kept writing.
      if (this.syncWaiters.length > 0 || this.syncDue) await this.syncNow();
      else if (this.next.callers.length === 0 && this.failedInBackground.length === 0) {
        // Cleared in the same synchronous step as the emptiness checks, so a
        // write or sync arriving afterwards starts a new loop.
        this.running = false;
        return;
      }
    }
  }

  /**
   * Syncs for the waiters and the interval tick pending now. When no waiter
   * goes on only after it (the forward input's sync of lines no ack waited
   * on, the "interval" tick), the sync runs in the background and the loop
   * goes on with the next commits: measured (1M Message-mode records from 20
   * containers), the loop stood still for the 60-80 ms of each second's
   * fdatasyncs, and the inputs with it.
   */
  private async syncNow(): Promise<void> {
    const waiters = this.syncWaiters;
    this.syncWaiters = [];
    const due = this.syncDue;
    this.syncDue = false;
    if (waiters.every((w) => w.background)) {
      this.syncInBackground(waiters, due);
      return;
    }
    // What a background sync under way marked clean is durable once it
    // ends, or its failure is kept (FileTable.syncFailed) for this one.
    await this.background;
    this.settle(waiters, await this.syncAll(true, false));
  }

  private syncInBackground(waiters: SyncWaiter[], due: boolean): void {
    if (this.queued !== undefined) {
      this.queued.waiters.push(...waiters);
      this.queued.due ||= due;
      return;
    }
    const next: QueuedSync = { waiters, due };
    this.queued = next;
    this.background = this.background.then(async () => {
      this.queued = undefined;
      let err: unknown;
      try {
        err = await this.syncAll(next.due, true);
      } catch (bug) {
        this.opts.log.error({ err: bug }, 'file sink background sync failed');
        err = bug;
      }
      this.settle(next.waiters, err);
      // Its failed files are the loop's to close.
      if (this.failedInBackground.length > 0) this.kick();
    });
  }

  /**
   * Closes the files whose background sync failed, between commits: their
   * sources are opened anew on their next write. Left open, the descriptor
   * would report the same writeback error again on its own next sync (an
   * acked write's, a rotation's), failing writes and syncs that lost nothing.
   */
  private async closeFailed(): Promise<void> {
    for (const file of this.failedInBackground.splice(0)) await this.opts.files.discardIfOpen(file);
  }

  private settle(waiters: readonly SyncWaiter[], err: unknown): void {
    if (err === undefined) for (const w of waiters) w.resolve();
    else {
      const error = new ClogsError('CLOGS_SINK', `file sink: cannot fsync ${(err as { path?: string }).path ?? 'a directory'}: ${(err as Error).message}`, { cause: err });
      for (const w of waiters) w.reject(error);
    }
  }

  private async commit(group: Group): Promise<void> {
    const { dir, files, disk, maxOpen, fsync } = this.opts;
    const today = dayOf(this.opts.now());
    const entries = [...group.entries.values()];
    // Slices of at most maxOpen sources, each written and synced before the
    // next may evict its files.
    for (let i = 0; i < entries.length; i += maxOpen) {
      const slice = entries.slice(i, i + maxOpen);
      const pinned = new Set(slice.map((e) => e.source));
      for (const entry of slice) {
        try {
          entry.file = await disk.run(join(dir, entry.source), () => files.acquire(entry.source, today, pinned, entry.durable));
        } catch (err) {
          this.fail(entry, err, 'open a file in', join(dir, entry.source));
        }
      }
      // Each file is synced as soon as its own write is done, while others are still writing.
      await Promise.all(
        slice.map(async (entry) => {
          if (entry.file === undefined) return;
          await this.writeEntry(entry, entry.file, today);
          if (fsync === 'batch' && entry.durable) await this.syncEntry(entry);
        }),
      );
      if (fsync === 'batch' && slice.some((e) => e.durable)) await this.syncDirs(slice);
    }
    let failed = false;
    for (const entry of entries) {
      if (entry.error !== undefined) {
        failed = true;
        continue;
      }
      this.eventsOut.inc(entry.events);
      this.bytesOut.inc(entry.bytes);
    }
    this.ok = !failed;
    for (const caller of group.callers) {
      if (caller.error !== undefined) caller.reject(caller.error);
      else caller.resolve();
    }
  }

  /** Appends an entry's lines, rotating by size on line boundaries. */
  private async writeEntry(entry: Entry, first: OpenFile, today: string): Promise<void> {
    entry.bytes = entry.lines.bytes;
    let file = first;
    let written: OpenFile | undefined;
    try {
      await appendRotating(entry.lines.take(), first, this.opts.rotateSize, {
        write: (f, bufs) => {
          written = f;
          return this.writeAll(f, bufs, !entry.durable && !f.syncWrites && this.opts.now() >= this.poolWritesUntil);
        },
        rotate: async (f) => {
          // This entry's callers wait on the lines it put in `f`: synced here, where a failure is theirs, not as rotate() closes it.
          if (written === f && this.opts.fsync === 'batch' && entry.durable) {
            await this.syncEntry(entry);
            if (entry.error !== undefined) throw entry.error;
          }
          return (file = entry.file = await this.opts.disk.run(f.path, () => this.opts.files.rotate(f, today)));
        },
      });
    } catch (err) {
      this.fail(entry, err, 'write', file.path);
    }
  }

  /**
   * writev(2) until everything is written. A write that fails part-way leaves
   * a torn line: it is cut off so readers never see it. On a full or failing
   * disk the write is retried from that line once the file is cut back to
   * it, which also drops what an O_DSYNC write that failed its sync (EIO)
   * may have appended without saying so: the file's real end is not known
   * then, the last whole line this process wrote is.
   * `onThisThread`: a deferred write to a file without O_DSYNC only copies
   * into the page cache. Measured: a small one costs 6-11 µs of CPU on the
   * calling thread against 20-31 µs through the thread pool (handing over,
   * waking, the callback). A large one costs the main thread more through
   * the pool than on it: waking a pool thread lets the kernel run that
   * thread in the main thread's place. 1M Message-mode records, about 4,800
   * writes of 100 KB: 0.62-0.78 s inside the async writev calls against
   * 0.27-0.41 s for the copies on the main thread, which spent 0.92 s
   * waiting for a core against 0.41-0.77 s (2026-12-02).
   * While the kernel writes back what came before, though, a write into the
   * page cache can wait on the file system, and on the main thread that
   * stalls every input: once one took INLINE_STALL_MS, deferred writes go
   * through the pool for a while.
   */
  private async writeAll(file: OpenFile, bufs: Buffer[], onThisThread: boolean): Promise<void> {
    let i = 0;
    let off = 0;
    let cut = false;
    await this.opts.disk.run(file.path, async () => {
      if (cut) {
        await this.cutBack(file);
        cut = false;
      }
      try {
        while (i < bufs.length) {
          const rest = off === 0 ? bufs.slice(i) : [bufs[i]!.subarray(off), ...bufs.slice(i + 1)];
          const n = onThisThread ? this.writeNow(file.fd, rest) : await this.opts.io.writev(file.fd, rest);
          if (n <= 0) throw new Error(`writev wrote ${n} bytes`);
          file.size += n;
          if (!file.syncWrites) file.dirty = true;
          let left = n;
          while (i < bufs.length && left >= bufs[i]!.length - off) {
            left -= bufs[i]!.length - off;
            i++;
            off = 0;
          }
          off += left;
        }
      } catch (err) {
        // Every buffer holds whole lines: the torn part is the current buffer's bytes since its last "\n".
        const torn = off > 0 ? off - (bufs[i]!.lastIndexOf(NEWLINE, off - 1) + 1) : 0;
        off -= torn;
        file.size -= torn;
        if (diskErrorCode(err) !== undefined) {
          // Cut now, so the file ends in a whole line while the disk is full;
          // if the cut fails too, the next attempt starts with it.
          cut = true;
          await this.cutBack(file).then(
            () => (cut = false),
            () => undefined,
          );
        } else if (torn > 0) {
          try {
            await this.cutBack(file);
          } catch {
            // Deferred lines written into it before wait for a sync() that will not see it once closed.
            if (file.dirty && !file.syncWrites) await this.opts.io.sync(file.fd).catch((syncErr: unknown) => this.opts.files.syncFailed(file.path, syncErr));
            await this.opts.files.discard(file);
          }
        }
        throw err;
      }
    });
  }

  /** A write on this thread, timed: one that waited on the file system sends the next ones through the pool (see writeAll). */
  private writeNow(fd: number, bufs: Buffer[]): number {
    const start = this.opts.now();
    try {
      return this.opts.io.writevNow(fd, bufs);
    } finally {
      const end = this.opts.now();
      if (end - start >= INLINE_STALL_MS) this.poolWritesUntil = end + INLINE_PAUSE_MS;
    }
  }

  /** Truncates `file` to the size this process wrote; O_DSYNC does not cover a truncation, so it is synced with the next entry sync. */
  private async cutBack(file: OpenFile): Promise<void> {
    await this.opts.io.truncate(file.fd, file.size);
    file.dirty = true;
  }

  /** "batch": the entry's lines are durable before its callers settle. */
  private async syncEntry(entry: Entry): Promise<void> {
    const file = entry.file;
    // A failed entry's file may already be closed (its descriptor number reused).
    if (file === undefined || entry.error !== undefined || !file.dirty) return;
    const sync = () => this.opts.io.sync(file.fd);
    try {
      // With O_DSYNC the lines are durable already: what this sync adds (a
      // truncation's new size) is safe to sync again after a failed attempt.
      // Without, it covers lines only in the page cache, which a failed
      // fdatasync may have dropped while marking them clean, so that a
      // retry succeeds on nothing: the lines are failed instead.
      await (file.syncWrites ? this.opts.disk.run(file.path, sync) : sync());
      file.dirty = false;
    } catch (err) {
      this.fail(entry, err, 'fsync', file.path);
      // Deferred writes' lines since the last sync may be in the file too.
      if (!file.syncWrites) this.opts.files.syncFailed(file.path, err);
      await this.opts.files.discard(file);
    }
  }

  /** "batch": so are the directory entries of files and directories the slice created. */
  private async syncDirs(slice: readonly Entry[]): Promise<void> {
    // A background sync may have taken some of them: a failed one is back in
    // the list once it ends. One that started meanwhile is waited for too,
    // and the list taken in the same step as the last check.
    let background: Promise<unknown>;
    do {
      background = this.backgroundDirs;
      await background;
    } while (background !== this.backgroundDirs);
    await Promise.all(
      this.opts.files.takeDirsToSync().map(async (dir) => {
        try {
          await this.opts.disk.run(dir, () => this.opts.io.syncDir(dir));
        } catch (err) {
          this.opts.files.dirSyncFailed(dir, err);
          // The lines of other directories are as durable as they were.
          for (const entry of slice) if (isWithin(join(this.opts.dir, entry.source), dir)) this.fail(entry, err, 'fsync the directory', dir);
        }
      }),
    );
  }

  /**
   * Everything written since the last sync ("interval": each tick; "batch":
   * `sync()`); returns the first error. Unless `taken`, a file's failure is
   * also kept for the next sync that takes it (a background sync's: see
   * SyncOptions.background); a directory's is not, see below.
   * `inBackground`: commits go on meanwhile (syncBeside).
   */
  private async syncAll(taken: boolean, inBackground: boolean): Promise<unknown> {
    const { files, io } = this.opts;
    const closeFailure = taken ? files.takeCloseFailure() : undefined;
    const failed = (path: string, err: unknown): never => {
      if (!taken) files.syncFailed(path, err);
      throw Object.assign(err as Error, { path });
    };
    // A directory whose sync failed is back in the list, so the next sync of
    // directories (a commit's, or the next sync()) does it again and answers
    // for it: kept as a failure too, it would fail that sync() even after a
    // retry succeeded, and the Docker input would read its lines again.
    const dirs = files.takeDirsToSync().map((dir) =>
      io.syncDir(dir).catch((err: unknown) => {
        files.dirSyncFailed(dir, err);
        throw Object.assign(err as Error, { path: dir });
      }),
    );
    if (inBackground) this.backgroundDirs = Promise.allSettled(dirs);
    const results = await Promise.allSettled([
      ...files.dirtyFiles().map(async (file) => {
        if (inBackground) return this.syncBeside(file, failed);
        try {
          await io.sync(file.fd);
          file.dirty = false;
        } catch (err) {
          await files.discard(file);
          failed(file.path, err);
        }
      }),
      ...dirs,
      ...(closeFailure === undefined ? [] : [Promise.reject(closeFailure)]),
    ]);
    let first: unknown;
    for (const r of results) {
      if (r.status === 'rejected') {
        this.errors.inc();
        this.ok = false;
        this.logError(r.reason, 'file sync failed');
        first ??= r.reason;
      }
    }
    return first;
  }

  /**
   * A background sync of `file`: commits go on meanwhile and may write to,
   * rotate or close it, so it is synced through a descriptor of its own, and
   * marked clean first: a write made meanwhile leaves it dirty for the next
   * sync. If the sync fails, the loop closes the file between commits
   * (closeFailed). A file that could not be opened was not synced, and is
   * dirty again, unless it is gone: a rotated file compressed (its `.gz`
   * synced first) or deleted by retention has nothing left to sync.
   */
  private async syncBeside(file: OpenFile, failed: (path: string, err: unknown) => never): Promise<void> {
    file.dirty = false;
    try {
      await this.opts.io.syncPath(file.path);
    } catch (err) {
      const { code, syscall } = err as NodeJS.ErrnoException;
      if (syscall === 'open' && code === 'ENOENT') return;
      if (syscall === 'open') {
        file.dirty = true;
        throw err;
      }
      this.failedInBackground.push(file);
      failed(file.path, err);
    }
  }

  private fail(entry: Entry, err: unknown, op: string, path: string): void {
    if (entry.error !== undefined) return;
    const error = new ClogsError('CLOGS_SINK', `file sink: cannot ${op} ${path}: ${(err as Error).message}`, { cause: err });
    entry.error = error;
    for (const caller of entry.callers) caller.error ??= error;
    this.errors.inc();
    this.logError(err, 'file write failed', { path, events: entry.events });
  }

  // A full disk fails every commit until space returns: one line per interval.
  private logError(err: unknown, msg: string, fields: Record<string, unknown> = {}): void {
    const now = Date.now();
    if (now - this.lastErrorLog < ERROR_LOG_INTERVAL_MS) {
      this.suppressedErrors++;
      return;
    }
    this.opts.log.error({ err, ...fields, suppressed: this.suppressedErrors }, msg);
    this.lastErrorLog = now;
    this.suppressedErrors = 0;
  }
}
