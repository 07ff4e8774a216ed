import { describe, expect, it } from 'vitest';
import { ChunkPool } from '../../src/collector/chunk-pool.js';
import { EncodedBatch } from '../../src/collector/encoded.js';
import { encodeLine } from '../../src/collector/event-json.js';
import type { LogEvent } from '../../src/collector/event.js';

const event = (i: number, bytes: number): LogEvent => ({
  '@timestamp': '2026-11-29T12:00:00.000000000Z',
  message: `${i} ${'x'.repeat(bytes)}`,
  host: { name: 'h' },
  clogs: { input: 'forward', tag: 'app', seq: i, ordinal: 0 },
});

/** Lines whose chunks grow from the first size to several of the largest. */
function fill(batch: EncodedBatch, count: number, from = 0): Buffer[] {
  const lines: Buffer[] = [];
  for (let i = from; i < from + count; i++) {
    const e = event(i, 100 + (i % 7) * 300);
    lines.push(Buffer.from(encodeLine(e)));
    batch.add([e]);
  }
  return lines;
}

const text = (batch: EncodedBatch): string => Buffer.concat([...batch.sources()].flatMap((s) => [...s.chunks()])).toString();

describe('ChunkPool', () => {
  it('keeps the chunks a batch gives back, up to its bound, and lends them to the next batches', () => {
    const pool = new ChunkPool(1024 * 1024);
    const first = new EncodedBatch(pool);
    fill(first, 2000);
    expect(pool.held).toBe(0);
    first.recycle();
    const kept = pool.held;
    expect(kept).toBeGreaterThan(256 * 1024);
    expect(kept).toBeLessThanOrEqual(1024 * 1024);
    // A second recycle gives nothing twice.
    first.recycle();
    expect(pool.held).toBe(kept);

    const second = new EncodedBatch(pool);
    const lines = fill(second, 500, 2000);
    expect(pool.held).toBeLessThan(kept);
    expect(text(second)).toBe(Buffer.concat(lines).toString());
  });

  it('never gives a batch’s chunks to another while the first is not recycled', () => {
    const pool = new ChunkPool(4 * 1024 * 1024);
    const a = new EncodedBatch(pool);
    const linesA = fill(a, 3000);
    const b = new EncodedBatch(pool);
    fill(b, 3000, 3000);
    expect(text(a)).toBe(Buffer.concat(linesA).toString());
  });

  it('keeps only the sizes a line buffer grows through', () => {
    const pool = new ChunkPool(1024 * 1024);
    expect(pool.keeps(2048)).toBe(true);
    expect(pool.keeps(256 * 1024)).toBe(true);
    expect(pool.keeps(3000)).toBe(false);
    pool.give(pool.take(4096));
    expect(pool.held).toBe(4096);
    expect(pool.take(4096).length).toBe(4096);
    expect(pool.held).toBe(0);
  });
});
