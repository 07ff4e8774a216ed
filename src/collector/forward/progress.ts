/**
 * How far the slices of an acked-mode request got, so that its resend after a
 * crash does not write them twice.
 *
 * A request rendered in several slices is acked after its last one; a crash
 * between slices leaves the first ones written and the client resending the
 * whole request, byte for byte. Once a slice is durable, the number of
 * records written so far is stored in `<state>/forward-progress/<hash of the
 * chunk key>` (written aside, fsync'd, renamed); a resend with the same key
 * renders those records again without writing them, so split lines, ordinals
 * and the records after them come out as the first time, and goes on from
 * there. What was durable but not recorded yet is at the end of the file
 * sink's files, where its replay guard drops it; Elasticsearch drops it by
 * `_id`. The guard reads only the last 16 MiB of a file, so a connection
 * counts a slice's bytes as in flight until its progress is stored here, not
 * only until it is durable: what is durable and not recorded then stays below
 * its share of rendered bytes in flight (render-budget.ts).
 *
 * A record is deleted when its request is acked; records no resend claimed
 * are deleted at start once older than MAX_AGE_MS.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../log.js';
import { removeIfPresent, replaceFile } from '../../state-files.js';

const MAX_AGE_MS = 24 * 3600 * 1000;

export class RequestProgress {
  /** Chunk key → records written, as loaded or recorded. */
  private readonly written = new Map<string, number>();
  /** Per key, its last file operation: they run in call order. */
  private readonly chains = new Map<string, Promise<void>>();

  constructor(
    private readonly dir: string,
    private readonly log: Logger,
  ) {}

  async load(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const now = Date.now();
    for (const name of await readdir(this.dir)) {
      const path = join(this.dir, name);
      try {
        const stored = JSON.parse(await readFile(path, 'utf8')) as { key: string; records: number };
        if (name.endsWith('.tmp') || now - (await stat(path)).mtimeMs > MAX_AGE_MS) throw new Error('stale');
        this.written.set(stored.key, stored.records);
      } catch {
        await unlink(path).catch(() => undefined);
      }
    }
    if (this.written.size > 0) this.log.info({ requests: this.written.size }, 'loaded the progress of partly written requests');
  }

  /** Records of the request with this chunk key already written, by this process or before a crash. */
  resumeAt(key: string): number {
    return this.written.get(key) ?? 0;
  }

  /**
   * Stores that the first `records` records of the request are durable;
   * resolves once that is on disk (or could not be stored, which is logged).
   */
  record(key: string, records: number): Promise<void> {
    // A batch handed out while a resend was still skipping its written records claims fewer.
    if (records <= (this.written.get(key) ?? 0)) return this.chains.get(key) ?? Promise.resolve();
    this.written.set(key, records);
    return this.then(key, () => replaceFile(this.path(key), JSON.stringify({ key, records }), true));
  }

  /** The request is acked: its record goes. */
  forget(key: string): void {
    if (!this.written.delete(key)) return;
    void this.then(key, () => removeIfPresent(this.path(key)));
  }

  private then(key: string, op: () => Promise<void>): Promise<void> {
    const next = (this.chains.get(key) ?? Promise.resolve())
      .then(op)
      .catch((err: unknown) => this.log.warn({ err }, 'could not store the progress of a partly written request'));
    this.chains.set(key, next);
    void next.then(() => {
      if (this.chains.get(key) === next) this.chains.delete(key);
    });
    return next;
  }

  private path(key: string): string {
    return join(this.dir, createHash('sha256').update(key, 'latin1').digest('hex').slice(0, 40));
  }
}
