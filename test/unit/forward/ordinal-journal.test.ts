/**
 * The forward input's ordinal journal (forward/ordinal-journal.ts) on its
 * own: what a restart takes back from it after a crash, a damaged or torn
 * file, an earlier version's file, and the rewrite that keeps it small.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { CapturedCounts, OrdinalCount } from '../../../src/collector/normalize.js';
import { COMPACT_BYTES, MAX_REQUESTS, OrdinalJournal, segmentKey } from '../../../src/collector/forward/ordinal-journal.js';
import { captureLogger } from '../../helpers/forward.js';

const at = (second: number): string => `2026-12-02T10:00:${String(second).padStart(2, '0')}.000000000Z`;
const count = (source: string, second: number, n: number, stream: 'stdout' | 'stderr' = 'stdout'): OrdinalCount => ({ source, stream, timestamp: at(second), count: n });

/** Counts as a Normalizer would hand them: set by the test between record() calls. */
class FakeCounts {
  changed: OrdinalCount[] = [];
  captured: CapturedCounts[] = [];
  all: OrdinalCount[] = [];
  changedOrdinals(): OrdinalCount[] {
    const out = this.changed;
    this.changed = [];
    return out;
  }
  ordinalCounts(): OrdinalCount[] {
    return this.all;
  }
  capturedCounts(): CapturedCounts[] {
    const out = this.captured;
    this.captured = [];
    return out;
  }
}

async function opened(dir: string, counts = new FakeCounts(), now: () => number = Date.now): Promise<{ journal: OrdinalJournal; counts: FakeCounts; loaded: OrdinalCount[]; logs: Array<Record<string, unknown>> }> {
  const { log, logs } = captureLogger();
  const journal = new OrdinalJournal(dir, counts, log, now);
  const loaded = await journal.load();
  counts.all = loaded;
  await journal.open();
  return { journal, counts, loaded, logs };
}

describe('the ordinal journal', () => {
  it('gives a restart after a crash the last count of each source and stream, and what each request found', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'clogs-ordjournal-'));
    const { journal, counts } = await opened(dir);
    counts.changed = [count('web', 1, 2), count('web', 1, 1, 'stderr')];
    counts.captured = [{ key: segmentKey('k1', 0), counts: [count('web', 1, 0)] }];
    journal.rendered('k1', 3);
    journal.record();
    counts.changed = [count('web', 1, 3)];
    counts.captured = [{ key: segmentKey('k2', 0), counts: [count('web', 1, 2)] }];
    journal.rendered('k2', 1);
    journal.record();
    // Rendered, never written: not journaled.
    journal.rendered('k2', 5);
    await journal.sync();
    // The crash: nothing closes the journal.

    const again = await opened(dir);
    expect(again.loaded).toEqual([count('web', 1, 3), count('web', 1, 1, 'stderr')]);
    expect(again.journal.countsBefore('k1')).toMatchObject({ segments: [{ from: 0, counts: [count('web', 1, 0)] }], records: 3 });
    expect(again.journal.countsBefore('k2')).toMatchObject({ segments: [{ from: 0, counts: [count('web', 1, 2)] }], records: 1 });
    expect(again.journal.countsBefore('k3')).toBeUndefined();
  });

  it('keeps the first count a request found for each source and stream, as it renders in several turns', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'clogs-ordjournal-'));
    const { journal, counts } = await opened(dir);
    counts.captured = [{ key: segmentKey('k', 0), counts: [count('web', 1, 0)] }];
    journal.rendered('k', 10_000);
    journal.record();
    counts.captured = [{ key: segmentKey('k', 0), counts: [count('web', 1, 5), count('db', 1, 0)] }];
    journal.rendered('k', 20_000);
    journal.record();
    expect(journal.countsBefore('k')?.segments[0]?.counts).toEqual([count('web', 1, 0), count('db', 1, 0)]);
    const again = await opened(dir);
    expect(again.journal.countsBefore('k')?.segments[0]?.counts).toEqual([count('web', 1, 0), count('db', 1, 0)]);
    expect(again.journal.countsBefore('k')?.records).toBe(20_000);
  });

  it('skips a torn last line and damaged lines, and says so for the damaged', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'clogs-ordjournal-'));
    const file = join(dir, 'forward-ordinals.ndjson');
    writeFileSync(file, `${JSON.stringify([count('web', 1, 2)])}\nnot json\n${JSON.stringify([{ source: 'web' }])}\n${JSON.stringify([count('web', 1, 9)]).slice(0, 20)}`);
    const { loaded, logs } = await opened(dir);
    expect(loaded).toEqual([count('web', 1, 2)]);
    expect(logs.filter((l) => l.msg === 'skipped damaged lines of the ordinal journal').map((l) => l.lines)).toEqual([2]);
  });

  it('takes the counts an earlier version saved at its stop, then removes that file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'clogs-ordjournal-'));
    const legacy = join(dir, 'forward-ordinals.json');
    writeFileSync(legacy, JSON.stringify({ ordinals: [count('web', 1, 4)] }));
    const { loaded } = await opened(dir);
    expect(loaded).toEqual([count('web', 1, 4)]);
    expect(existsSync(legacy)).toBe(false);
    expect((await opened(dir)).loaded).toEqual([count('web', 1, 4)]);
  });

  it('is rewritten once large with the counts and the requests it must keep, losing no line appended meanwhile', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'clogs-ordjournal-'));
    let now = 1_000_000;
    const { journal, counts } = await opened(dir, new FakeCounts(), () => now);
    counts.captured = [{ key: segmentKey('old', 0), counts: [count('web', 1, 0)] }];
    journal.record();
    now += 10 * 60_000;
    counts.captured = [{ key: segmentKey('young', 0), counts: [count('web', 1, 1)] }];
    journal.record();
    // Lines enough to pass COMPACT_BYTES, each a count of a source of its own.
    const perLine = Buffer.byteLength(JSON.stringify([count('source-0000', 1, 1)])) + 1;
    const lines = Math.ceil(COMPACT_BYTES / perLine) + 1;
    for (let i = 0; i < lines; i++) {
      counts.changed = [count(`source-${i}`, 1, 1)];
      counts.all = [count('web', 1, 7)];
      journal.record();
    }
    // Appended while the rewrite is under way.
    counts.changed = [count('late', 1, 3)];
    journal.record();
    await journal.sync();
    // The lines appended after the rewrite began follow the counts it kept.
    const file = join(dir, 'forward-ordinals.ndjson');
    expect(readFileSync(file).length).toBeLessThan(COMPACT_BYTES / 16);

    const again = await opened(dir);
    expect(again.loaded).toContainEqual(count('web', 1, 7));
    expect(again.loaded).toContainEqual(count('late', 1, 3));
    expect(again.loaded.length).toBeLessThan(lines / 16);
    expect(again.journal.countsBefore('young')?.segments[0]?.counts).toEqual([count('web', 1, 1)]);
    expect(again.journal.countsBefore('old')).toBeUndefined();
  });

  it('is rewritten again only once it has grown by as much again, however much it keeps', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'clogs-ordjournal-'));
    const { journal, counts } = await opened(dir);
    const file = join(dir, 'forward-ordinals.ndjson');
    // More remembered requests than COMPACT_BYTES: every rewrite keeps them all.
    const key = (i: number): string => `0badcafe${Buffer.from(String(i).padStart(16, '0')).toString('base64')}`;
    for (let i = 0; i < MAX_REQUESTS; i++) {
      counts.captured = [{ key: segmentKey(key(i), 0), counts: [count('web', 1, i)] }];
      journal.record();
      if (i % 1000 === 0) await journal.sync();
    }
    await journal.sync();
    const inode = statSync(file).ino;
    for (let i = 0; i < 20; i++) {
      counts.changed = [count('web', 2, i + 1)];
      journal.record();
      await journal.sync();
    }
    expect(statSync(file).ino).toBe(inode);
  });

  it(`keeps at most ${MAX_REQUESTS} requests, forgetting the oldest`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'clogs-ordjournal-'));
    const { journal, counts } = await opened(dir);
    counts.captured = Array.from({ length: MAX_REQUESTS + 1 }, (_, i) => ({ key: segmentKey(`k${i}`, 0), counts: [count('web', 1, i)] }));
    journal.record();
    expect(journal.countsBefore('k0')).toBeUndefined();
    expect(journal.countsBefore('k1')?.segments[0]?.counts).toEqual([count('web', 1, 1)]);
    expect(journal.countsBefore(`k${MAX_REQUESTS}`)?.segments[0]?.counts).toEqual([count('web', 1, MAX_REQUESTS)]);
  });

  it('keeps no later segment of a request it forgot: a copy after it counts the request afresh, not half of it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'clogs-ordjournal-'));
    const { journal, counts } = await opened(dir);
    counts.captured = [{ key: segmentKey('A', 0), counts: [count('web', 1, 0)] }];
    journal.rendered('A', 5);
    journal.record();
    // As many other requests: A is forgotten while its second copy writes.
    counts.captured = Array.from({ length: MAX_REQUESTS }, (_, i) => ({ key: segmentKey(`o${i}`, 0), counts: [count('web', 1, 100 + i)] }));
    journal.record();
    counts.captured = [{ key: segmentKey('A', 5), counts: [count('web', 1, 50_000)] }];
    journal.rendered('A', 10);
    journal.record();
    await journal.sync();
    expect(journal.countsBefore('A')).toBeUndefined();
    expect((await opened(dir)).journal.countsBefore('A')).toBeUndefined();
  });

  it('that cannot be written at start, is tried again later with everything counted meanwhile', async () => {
    const parent = mkdtempSync(join(tmpdir(), 'clogs-ordjournal-'));
    const dir = join(parent, 'state');
    let now = 1_000_000;
    const { log, logs } = captureLogger();
    const counts = new FakeCounts();
    const journal = new OrdinalJournal(dir, counts, log, () => now);
    // No directory yet: the file cannot be made, and the input starts all the same.
    await journal.open();
    expect(logs.some((l) => l.msg === "could not write the ordinal journal; after a crash, identical lines of one second may take stored lines' identities")).toBe(true);
    mkdirSync(dir);
    counts.changed = [count('web', 1, 1)];
    counts.all = [count('web', 1, 1)];
    journal.record();
    await journal.sync();
    expect(existsSync(join(dir, 'forward-ordinals.ndjson'))).toBe(false);
    now += 10_000;
    counts.changed = [count('web', 1, 2)];
    counts.all = [count('web', 1, 2)];
    counts.captured = [{ key: segmentKey('k', 0), counts: [count('web', 1, 1)] }];
    journal.record();
    await journal.sync();
    const again = await opened(dir);
    expect(again.loaded).toEqual([count('web', 1, 2)]);
    expect(again.journal.countsBefore('k')?.segments[0]?.counts).toEqual([count('web', 1, 1)]);
  });

  it('is rewritten with the counts alone at a stop, and read back at the next start', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'clogs-ordjournal-'));
    const { journal, counts } = await opened(dir);
    counts.changed = [count('web', 1, 2)];
    journal.record();
    counts.all = [count('web', 1, 2), count('db', 2, 1)];
    await journal.close();
    expect((await opened(dir)).loaded).toEqual([count('web', 1, 2), count('db', 2, 1)]);
  });
});
