/**
 * Keeps the file store's size in the background, off the write path: after
 * each rotation and every `retention.check_interval`, one pass lists the
 * store, deletes what `max_age` retires (retention.ts), gzips the rotated
 * files still plain (compress.ts), one file at a time, oldest first, and
 * only then deletes what the size limits decide. Those are limits on the
 * store as kept on disk: measured before compression, plain files that
 * waited for it counted ten times their size, and retention deleted lines
 * that would have fit (a walkthrough: 10 of 14 files gone from a folder whose
 * files came to a quarter of its limit once compressed).
 *
 * Compression never touches a source's newest file, the only one the sink
 * writes or reopens, so it needs no lock with the write loop: a file is
 * closed for good before the sink creates the one after it (files.ts).
 * Retention may delete a newest file of an earlier day (retention.ts); it
 * does so through `whileClosed`, which the sink's file table grants only
 * while the source has no file open, and which opening the source waits for.
 */
import { stat, unlink } from 'node:fs/promises';
import { basename } from 'node:path';
import type { RetentionConfig } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import { bytesDeleted, filesCompressed, filesDeleted, storeBytes } from '../../metrics.js';
import { compressFile, leftovers } from './compress.js';
import type { FileIo } from './io.js';
import { GZIP_SUFFIX, listLayoutFiles, listSourceDirs } from './layout.js';
import { hasLimits, planDeletions, type RetentionPolicy, type StoredFile } from './retention.js';
import { isMissing } from '../../errors.js';

export interface MaintenanceOptions {
  dir: string;
  io: FileIo;
  log: Logger;
  compress: boolean;
  retention: RetentionConfig;
  /** The sink's UTC day, `YYYY-MM-DD`: a newest file of an earlier day is no longer current. */
  today: () => string;
  /** Runs the deletion of a source's newest file only while the sink has none of its files open; false when it did not run. */
  whileClosed: (source: string, remove: () => Promise<void>) => Promise<boolean>;
}

interface ScannedFile extends StoredFile {
  compressed: boolean;
  /** The newest file of its source (current, or of an earlier day). */
  newest: boolean;
}


export class StoreMaintenance {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopping = false;
  /** Leftovers of a compression a crash interrupted are cleared by the first pass. */
  private cleared = false;
  private readonly abort = new AbortController();
  /** Directories told about once: a pass every check_interval would say it again. */
  private readonly unreadable = new Set<string>();

  constructor(private readonly opts: MaintenanceOptions) {}

  start(): void {
    this.timer = setInterval(() => this.poke(), this.opts.retention.check_interval);
    this.timer.unref();
    this.poke();
  }

  /** Asks for a pass (a file was rotated): one runs at a time, and one more after it if asked meanwhile. */
  poke(): void {
    if (this.stopping) return;
    this.again = true;
    this.running ??= this.loop();
  }

  /** Stops a compression in progress (its plain file stays, for the next start) and waits for the pass to end. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.timer);
    this.abort.abort();
    await this.running;
  }

  private async loop(): Promise<void> {
    while (this.again && !this.stopping) {
      this.again = false;
      try {
        await this.pass();
      } catch (err) {
        if (!this.stopping) this.opts.log.warn({ err }, 'file store maintenance failed; next check retries');
      }
    }
    this.running = undefined;
  }

  private async pass(): Promise<void> {
    const dirs = await listSourceDirs(this.opts.dir, (dir, err) => {
      if (this.unreadable.has(dir)) return;
      this.unreadable.add(dir);
      this.opts.log.warn({ dir, code: err.code }, 'file store maintenance skips a directory it cannot read');
    });
    if (!this.cleared) {
      await this.clearLeftovers(dirs);
      this.cleared = true;
    }
    let files = await scan(dirs, this.opts.today());
    const { max_age, max_container_size, max_total_size } = this.opts.retention;
    const retire = async (policy: RetentionPolicy): Promise<void> => {
      if (!hasLimits(policy)) return;
      const doomed = new Set(await this.delete(planDeletions(files, policy, Date.now())));
      files = files.filter((f) => !doomed.has(f));
    };
    // Files past max_age go before they are compressed for nothing.
    await retire({ max_age });
    let failed: unknown;
    if (this.opts.compress) {
      try {
        for (const f of files) {
          if (this.stopping) break;
          if (f.compressed || f.newest) continue;
          f.size = await compressFile(f.path, { io: this.opts.io, signal: this.abort.signal });
          // The size limits below delete what is on disk now: the .gz.
          f.path += GZIP_SUFFIX;
          f.compressed = true;
          filesCompressed.inc();
        }
      } catch (err) {
        failed = err;
      }
    }
    // Also when compression failed: on a full disk the size limits are what
    // gives space back, on plain sizes. A stop part-way weighs them at the next start.
    if (!this.stopping) await retire({ max_container_size, max_total_size });
    storeBytes.set(files.reduce((sum, f) => sum + f.size, 0));
    if (failed !== undefined) throw failed;
  }

  /** Deletes the files, one log line for all; returns those it deleted (or found gone). */
  private async delete(doomed: readonly ScannedFile[]): Promise<ScannedFile[]> {
    const done: ScannedFile[] = [];
    let bytes = 0;
    for (const f of doomed) {
      let deleted = false;
      const remove = async (): Promise<void> => {
        try {
          await unlink(f.path);
          bytes += f.size;
          filesDeleted.inc();
          bytesDeleted.inc(f.size);
          deleted = true;
        } catch (err) {
          if (isMissing(err)) deleted = true;
          else this.opts.log.warn({ err, path: f.path }, 'retention cannot delete a file');
        }
      };
      // A newest file the sink opened since the scan is kept: it is current again.
      if (f.newest) await this.opts.whileClosed(f.source, remove);
      else await remove();
      if (deleted) done.push(f);
    }
    if (done.length > 0) this.opts.log.info({ files: done.length, bytes, oldest: done[0]!.path, newest: done.at(-1)!.path }, 'retention deleted the oldest files');
    return done;
  }

  private async clearLeftovers(dirs: readonly string[]): Promise<void> {
    const removed: string[] = [];
    for (const dir of dirs) {
      for (const path of await leftovers(dir)) {
        await unlink(path).catch((err: unknown) => {
          if (!isMissing(err)) throw err;
        });
        removed.push(path);
      }
    }
    if (removed.length > 0) this.opts.log.info({ files: removed }, 'removed what interrupted compressions left');
  }
}

/** Every file of the store with its size and last write, oldest first within each source. */
async function scan(dirs: readonly string[], today: string): Promise<ScannedFile[]> {
  const out: ScannedFile[] = [];
  for (const dir of dirs) {
    const files = await listLayoutFiles(dir);
    for (const [i, f] of files.entries()) {
      try {
        const st = await stat(f.path);
        const newest = i === files.length - 1;
        const current = newest && f.day >= today;
        out.push({ path: f.path, source: basename(dir), day: f.day, index: f.index, size: st.size, mtimeMs: st.mtimeMs, newest, current, compressed: f.compressed });
      } catch (err) {
        if (!isMissing(err)) throw err;
      }
    }
  }
  return out;
}
