import { describe, expect, it } from 'vitest';
import { planDeletions, type StoredFile } from '../../../src/sinks/file/retention.js';

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 10, 29);

/** Files of `source`, numbered from 0, each `size` bytes, the k-th last written at `times[k]`; the last is the current one. */
function files(source: string, size: number, times: readonly number[]): StoredFile[] {
  return times.map((mtimeMs, index) => ({
    path: `/store/${source}/2026-11-22.${String(index).padStart(4, '0')}.ndjson`,
    source,
    day: '2026-11-22',
    index,
    size,
    mtimeMs,
    current: index === times.length - 1,
  }));
}

const names = (list: readonly StoredFile[]) => list.map((f) => `${f.source}/${f.index}`);

describe('retention decisions', () => {
  it('deletes nothing without a limit', () => {
    expect(planDeletions(files('web', 100, [NOW - 30 * DAY, NOW - 20 * DAY, NOW]), {}, NOW)).toEqual([]);
  });

  it('max_age: every file last written before the cutoff, never a source\'s current one', () => {
    const store = [...files('web', 10, [NOW - 9 * DAY, NOW - 8 * DAY, NOW - 1 * DAY]), ...files('old', 10, [NOW - 40 * DAY, NOW - 30 * DAY])];
    expect(names(planDeletions(store, { max_age: 7 * DAY }, NOW))).toEqual(['old/0', 'web/0', 'web/1']);
  });

  it('max_total_size: the oldest across the store until the rest fits', () => {
    const store = [...files('web', 100, [NOW - 50, NOW - 30, NOW - 10]), ...files('db', 100, [NOW - 40, NOW - 20, NOW])];
    // 600 bytes, limit 350: three of the four deletable files go, oldest first across sources.
    expect(names(planDeletions(store, { max_total_size: 350 }, NOW))).toEqual(['web/0', 'db/0', 'web/1']);
    expect(planDeletions(store, { max_total_size: 600 }, NOW)).toEqual([]);
  });

  it('max_total_size below the current files: all others go, the current ones stay', () => {
    const store = [...files('web', 100, [NOW - 50, NOW - 30]), ...files('db', 100, [NOW - 40, NOW])];
    expect(names(planDeletions(store, { max_total_size: 10 }, NOW))).toEqual(['web/0', 'db/0']);
  });

  it('max_container_size: each source on its own, then the store limit on what is left', () => {
    const store = [...files('web', 100, [NOW - 60, NOW - 50, NOW - 40, NOW - 30]), ...files('db', 100, [NOW - 100, NOW])];
    // web (400) over 250 loses its two oldest; db (200) fits its limit but the store (400 then) is over 300.
    expect(names(planDeletions(store, { max_container_size: 250 }, NOW))).toEqual(['web/0', 'web/1']);
    expect(names(planDeletions(store, { max_container_size: 250, max_total_size: 300 }, NOW))).toEqual(['db/0', 'web/0', 'web/1']);
  });

  it('counts what max_age already deleted before applying the size limits', () => {
    const store = files('web', 100, [NOW - 10 * DAY, NOW - 2, NOW - 1, NOW]);
    expect(names(planDeletions(store, { max_age: DAY, max_total_size: 300 }, NOW))).toEqual(['web/0']);
  });

  it('orders equal times by source, then day and number', () => {
    const store = [...files('b', 10, [5, 5, NOW]), ...files('a', 10, [5, NOW])];
    expect(names(planDeletions(store, { max_total_size: 0 }, NOW))).toEqual(['a/0', 'b/0', 'b/1']);
  });
});
