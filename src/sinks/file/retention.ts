/**
 * Which store files retention deletes: a pure decision over a listing, so
 * the rules are tested without a disk.
 *
 * - A source's newest file of today is never deleted: it is the one the
 *   sink writes or may reopen to append to, and the sink's next file for the
 *   source would get a name sorting before it (a follower would miss it).
 *   A newest file of an earlier day (a container gone quiet) may go: the
 *   source's next file is today's, so it sorts after; the sink checks the
 *   file is not open as it deletes it (files.ts).
 * - Oldest first, by the time of a file's last write (a rotated file keeps
 *   it when compressed), ties by source and name.
 * - `max_age` deletes every file last written before now - max_age; then
 *   `max_container_size` the oldest of each source over its limit; then
 *   `max_total_size` the oldest of the store over its limit.
 */
import type { RetentionConfig } from '../../config/schema.js';
import { compareFiles } from './layout.js';

export interface StoredFile {
  path: string;
  /** The source directory's name. */
  source: string;
  day: string;
  index: number;
  /** On disk (compressed size for a `.gz`). */
  size: number;
  /** Last write, ms since the epoch. */
  mtimeMs: number;
  /** The newest file of its source, created today: kept whatever the limits. */
  current: boolean;
}

export type RetentionPolicy = Pick<RetentionConfig, 'max_age' | 'max_total_size' | 'max_container_size'>;

/** Whether any limit is set: without one nothing is ever deleted. */
export function hasLimits(policy: RetentionPolicy): boolean {
  return policy.max_age !== undefined || policy.max_total_size !== undefined || policy.max_container_size !== undefined;
}

function oldestFirst(a: StoredFile, b: StoredFile): number {
  return a.mtimeMs - b.mtimeMs || (a.source < b.source ? -1 : a.source > b.source ? 1 : compareFiles(a, b));
}

/** The files to delete, oldest first. */
export function planDeletions<F extends StoredFile>(files: readonly F[], policy: RetentionPolicy, nowMs: number): F[] {
  const candidates = files.filter((f) => !f.current).sort(oldestFirst);
  const doomed = new Set<F>();
  if (policy.max_age !== undefined) {
    const cutoff = nowMs - policy.max_age;
    for (const f of candidates) if (f.mtimeMs < cutoff) doomed.add(f);
  }
  const kept = (f: F): boolean => !doomed.has(f);
  if (policy.max_container_size !== undefined) {
    const limit = policy.max_container_size;
    const perSource = new Map<string, number>();
    for (const f of files.filter(kept)) perSource.set(f.source, (perSource.get(f.source) ?? 0) + f.size);
    for (const f of candidates.filter(kept)) {
      const total = perSource.get(f.source)!;
      if (total <= limit) continue;
      doomed.add(f);
      perSource.set(f.source, total - f.size);
    }
  }
  if (policy.max_total_size !== undefined) {
    let total = files.filter(kept).reduce((sum, f) => sum + f.size, 0);
    for (const f of candidates.filter(kept)) {
      if (total <= policy.max_total_size) break;
      doomed.add(f);
      total -= f.size;
    }
  }
  return candidates.filter((f) => doomed.has(f));
}
