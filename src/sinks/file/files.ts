/**
 * The sink's open files: one current file per source, at most `maxOpen` open
 * at once (least recently used closed first), opened, rotated and created by
 * the rules of layout.ts.
 */
import { join } from 'node:path';
import type { Logger } from '../../log.js';
import { parentsOfCreated, type FileIo } from './io.js';
import { fileName, filesLeftOpen, listLayoutFiles } from './layout.js';
import { repairTornTail } from './repair.js';

export interface OpenFile {
  readonly source: string;
  readonly path: string;
  readonly day: string;
  readonly index: number;
  readonly fd: number;
  /** Bytes in the file, as this process wrote them. */
  size: number;
  /** Written since its last sync. */
  dirty: boolean;
  /** Opened with O_DSYNC: a write that returned is durable, and leaves the file clean. */
  readonly syncWrites: boolean;
}

export interface FileTableOptions {
  dir: string;
  io: FileIo;
  log: Logger;
  maxOpen: number;
  /** 0: no size rotation. */
  rotateSize: number;
  rotateDaily: boolean;
  /** Whether files are synced before they are closed, and created entries recorded for a directory sync. */
  durable: boolean;
  /**
   * Whether files whose first writes must be durable are opened with O_DSYNC
   * (io.ts). A source written with deferred durability (the Docker input) is
   * opened without: its writes only reach the page cache, and a sync makes
   * them durable later, for all of them at once.
   */
  syncWrites: boolean;
  /**
   * Called once a new file follows an earlier one of its source, which is
   * closed for good. Not for a source's first file: there is nothing new to
   * compress or delete then, and a host starting hundreds of containers
   * would scan the whole store once per container.
   */
  onRotate?: () => void;
}

export class FileTable {
  /** Iteration order is recency: the first entry is the least recently used. */
  private readonly open = new Map<string, OpenFile>();
  private readonly dirsToSync = new Set<string>();
  /**
   * A sync that failed where no sync() waited for it: as a dirty file was
   * closed (to make room, or rotated), as a durable write's sync covered
   * deferred writes' lines too, or in a background sync. Those lines were written but may not be
   * durable, and the next sync must say so. One is enough to fail it; later
   * ones are logged only.
   */
  private closeFailure: Error | undefined;
  /** Sources being opened or rotated: their newest file may be about to be appended to or closed. */
  private readonly opening = new Set<string>();
  /** Sources whose newest file retention is deleting: opening waits for it. */
  private readonly deleting = new Map<string, Promise<void>>();
  /**
   * Sources this process opened or synced: their files and directory
   * entries are durable or its own to sync. Those of any other were left by
   * an earlier process, which may have died before syncing them.
   */
  private readonly ours = new Set<string>();
  /** The store's directory synced for the lines syncLeftBehind() finds (once is enough), under way or done. */
  private rootSync: Promise<void> | undefined;

  constructor(private readonly opts: FileTableOptions) {}

  /**
   * The file `source`'s next lines go to on `today`, opened (evicting a file
   * not in `pinned` if the table is full) or rotated to a new day as needed.
   * `durable`: whether the writes that open it must be durable when they
   * return (O_DSYNC under `syncWrites`). A file opened either way takes both
   * kinds of write: a durable write to a file without O_DSYNC leaves it dirty,
   * for the commit loop to sync.
   */
  async acquire(source: string, today: string, pinned: ReadonlySet<string>, durable = true): Promise<OpenFile> {
    const current = this.open.get(source);
    if (current !== undefined) {
      this.open.delete(source);
      this.open.set(source, current);
      return this.opts.rotateDaily && current.day < today ? this.rotate(current, today) : current;
    }
    this.opening.add(source);
    try {
      await this.deleting.get(source);
      await this.makeRoom(pinned);
      const file = await this.openSource(source, today, this.opts.syncWrites && durable);
      this.open.set(source, file);
      return file;
    } finally {
      this.opening.delete(source);
    }
  }

  /**
   * Runs `remove` (retention deleting the source's newest file) unless the
   * source has a file open or being opened; opening the source waits until
   * it is done, so the sink never appends to a file being deleted. Returns
   * whether it ran. `remove` must not reject.
   */
  async whileClosed(source: string, remove: () => Promise<void>): Promise<boolean> {
    if (this.open.has(source) || this.opening.has(source)) return false;
    const run = remove();
    this.deleting.set(source, run);
    try {
      await run;
    } finally {
      this.deleting.delete(source);
    }
    return true;
  }

  /**
   * Syncs (when durable) and closes `file`, and opens its successor in its
   * place; a failed sync fails the next sync(). Safe to call again after it
   * failed: a file already released is not closed twice (its descriptor
   * number may be another file's by then).
   */
  async rotate(file: OpenFile, today: string): Promise<OpenFile> {
    this.opening.add(file.source);
    try {
      if (this.open.get(file.source) === file) {
        this.open.delete(file.source);
        // Not thrown: a retry of the rotation would find the file released, and the failure lost.
        await this.retire(file);
      }
      const day = today > file.day ? today : file.day;
      const next = await this.create(file.source, day, day === file.day ? file.index + 1 : 0, file.syncWrites, true);
      this.open.set(file.source, next);
      return next;
    } finally {
      this.opening.delete(file.source);
    }
  }

  /**
   * A restart found lines of `source` already in its files (replay.ts), and
   * they are not written again: the process that wrote them may have died
   * before syncing them, so its newest files and their entries are synced
   * before those lines count as durable.
   */
  async syncLeftBehind(source: string): Promise<void> {
    if (!this.opts.durable || this.ours.has(source)) return;
    const { io } = this.opts;
    const dirPath = join(this.opts.dir, source);
    for (const file of await filesLeftOpen(dirPath)) await this.syncExisting(file.path);
    await io.syncDir(dirPath);
    await (this.rootSync ??= io.syncDir(this.opts.dir).catch((err: unknown) => {
      this.rootSync = undefined;
      throw err;
    }));
    this.ours.add(source);
  }

  /** Closes a file after a failed write or sync; its source is reopened (and repaired) on next use. */
  async discard(file: OpenFile): Promise<void> {
    if (this.open.get(file.source) === file) this.open.delete(file.source);
    await this.opts.io.close(file.fd).catch((err: unknown) => this.opts.log.warn({ err, path: file.path }, 'file close failed'));
  }

  /** discard(), unless `file` was closed since (rotated, or to make room): its descriptor's number may be another file's by now. */
  async discardIfOpen(file: OpenFile): Promise<void> {
    if (this.open.get(file.source) === file) await this.discard(file);
  }

  dirtyFiles(): OpenFile[] {
    return [...this.open.values()].filter((f) => f.dirty);
  }

  /** Makes the next sync fail: a sync of `file` failed, and lines no caller waits on now may be lost with it. */
  syncFailed(path: string, err: unknown): void {
    this.closeFailure ??= Object.assign(err as Error, { path });
  }

  /** The first syncFailed() since the last call. */
  takeCloseFailure(): Error | undefined {
    const err = this.closeFailure;
    this.closeFailure = undefined;
    return err;
  }

  /**
   * `dir`'s sync failed: its new entries are still not durable, so the next
   * sync takes it again. Not when it is gone (ENOENT): nothing in it can be
   * made durable any more, and the failure was reported once.
   */
  dirSyncFailed(dir: string, err: unknown): void {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.dirsToSync.add(dir);
  }

  /** Directories that got a new entry since the last call, or whose sync failed since, to sync before acking. */
  takeDirsToSync(): string[] {
    const dirs = [...this.dirsToSync];
    this.dirsToSync.clear();
    return dirs;
  }

  /** Syncs what is dirty (whatever the policy: this is shutdown) and closes everything. */
  async closeAll(): Promise<void> {
    const files = [...this.open.values()];
    this.open.clear();
    await Promise.all(
      files.map(async (f) => {
        if (f.dirty) await this.syncQuietly(f);
        await this.discard(f);
      }),
    );
    await Promise.all(
      this.takeDirsToSync().map((d) => this.opts.io.syncDir(d).catch((err: unknown) => this.opts.log.error({ err, dir: d }, 'directory sync failed'))),
    );
  }

  private async makeRoom(pinned: ReadonlySet<string>): Promise<void> {
    for (const [source, file] of this.open) {
      if (this.open.size < this.opts.maxOpen) return;
      if (pinned.has(source)) continue;
      this.open.delete(source);
      await this.retire(file);
    }
  }

  /** Releases a file no caller waits on: a failed sync is the next sync's failure. */
  private async retire(file: OpenFile): Promise<void> {
    await this.release(file).catch((err: unknown) => {
      this.opts.log.error({ err, path: file.path }, 'file sync failed before close');
      this.syncFailed(file.path, err);
    });
  }

  private async release(file: OpenFile): Promise<void> {
    try {
      if (file.dirty && this.opts.durable) {
        await this.opts.io.sync(file.fd);
        file.dirty = false;
      }
    } finally {
      await this.discard(file);
    }
  }

  private async syncExisting(path: string): Promise<void> {
    const { io } = this.opts;
    const fd = await io.openExisting(path);
    try {
      await io.sync(fd);
    } finally {
      await io.close(fd);
    }
  }

  private async syncQuietly(file: OpenFile): Promise<void> {
    try {
      await this.opts.io.sync(file.fd);
      file.dirty = false;
    } catch (err) {
      this.opts.log.error({ err, path: file.path }, 'file sync failed');
    }
  }

  /** Reopens the source's newest file when it may still grow, else starts the next one. */
  private async openSource(source: string, today: string, syncWrites: boolean): Promise<OpenFile> {
    const dirPath = join(this.opts.dir, source);
    const created = await this.opts.io.mkdirp(dirPath);
    // Left by an earlier process: the entries of the source's directory and newest file, and its lines, are synced with the first commit.
    const leftBehind = this.opts.durable && !this.ours.has(source);
    this.ours.add(source);
    if (created !== undefined && this.opts.durable) {
      for (const parent of parentsOfCreated(dirPath, created)) this.dirsToSync.add(parent);
    } else if (leftBehind) {
      // Synced with the next commit, once for every source it opens.
      this.dirsToSync.add(this.opts.dir);
      this.dirsToSync.add(dirPath);
    }
    const last = (await listLayoutFiles(dirPath)).at(-1);
    if (last === undefined) return this.create(source, today, 0, syncWrites, false);
    // A file of a later day than today (the clock stepped back) is kept, so no
    // new name sorts before it.
    // A compressed file is never appended to.
    if (!last.compressed && (!this.opts.rotateDaily || last.day >= today)) {
      const file = await this.openFile(source, last.path, last.day, last.index, syncWrites);
      if (leftBehind) file.dirty = true;
      if (this.opts.rotateSize === 0 || file.size < this.opts.rotateSize) return file;
      await this.release(file);
    } else if (leftBehind && !last.compressed) {
      await this.syncExisting(last.path);
    }
    const day = today > last.day ? today : last.day;
    return this.create(source, day, day === last.day ? last.index + 1 : 0, syncWrites, true);
  }

  /** `follows`: an earlier file of the source exists. */
  private async create(source: string, day: string, index: number, syncWrites: boolean, follows: boolean): Promise<OpenFile> {
    const dirPath = join(this.opts.dir, source);
    const file = await this.openFile(source, join(dirPath, fileName(day, index)), day, index, syncWrites);
    if (this.opts.durable) this.dirsToSync.add(dirPath);
    if (follows) this.opts.onRotate?.();
    return file;
  }

  /** Opens for appending, cutting a torn last line left by a crash. */
  private async openFile(source: string, path: string, day: string, index: number, syncWrites: boolean): Promise<OpenFile> {
    const { io, log } = this.opts;
    const fd = await io.openAppend(path, syncWrites);
    try {
      let size = await io.size(fd);
      const removed = await repairTornTail(io, fd, size);
      if (removed > 0) {
        log.warn({ path, bytes: removed }, 'cut a torn last line left by a crash');
        size -= removed;
      }
      // A repair truncated: that is not a write O_DSYNC makes durable.
      return { source, path, day, index, fd, size, dirty: removed > 0, syncWrites };
    } catch (err) {
      await io.close(fd).catch(() => undefined);
      throw err;
    }
  }
}
