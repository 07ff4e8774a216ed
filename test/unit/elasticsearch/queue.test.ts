import { appendFileSync, cpSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { sinkWriteRetries } from '../../../src/metrics.js';
import type { BulkEntries } from '../../../src/sinks/elasticsearch/entries.js';
import { DiskQueue, type QueueOptions } from '../../../src/sinks/elasticsearch/queue.js';
import { memoryLogger } from '../../helpers/elasticsearch.js';
import { tempDir } from '../../helpers/services.js';

/** `n` fake queue entries (two lines each), numbered from `from`. */
function entries(n: number, from = 0, pad = 0): Buffer {
  let s = '';
  for (let i = from; i < from + n; i++) s += `{"create":{"_id":"${i}"}}\n{"n":${i}${pad ? `,"pad":"${'x'.repeat(pad)}"` : ''}}\n`;
  return Buffer.from(s);
}

/** The entries' numbers, each read from the entry as the sender would take it out of the batch. */
const numbers = (entries: BulkEntries): number[] =>
  Array.from({ length: entries.length }, (_, i) => Number(/^\{"create":\{"_id":"(\d+)"\}\}\n\{"n":\d+[^\n]*\}\n$/.exec(entries.entry(i).toString())![1]));

function opts(dir: string, over: Partial<QueueOptions> = {}): QueueOptions {
  return { dir, maxBytes: 1024 * 1024, log: memoryLogger().log, ...over };
}

async function drain(q: DiskQueue, max = 1000): Promise<number[]> {
  const out: number[] = [];
  for (;;) {
    const b = await q.read(max, 1 << 30);
    if (!b) return out;
    out.push(...numbers(b.entries));
    q.release(b);
  }
}

const segments = (dir: string): string[] => readdirSync(dir).filter((f) => f.endsWith('.seg'));

const diskError = (code: string): Error => Object.assign(new Error(`${code}: injected`), { code });

interface Faults {
  /** Replaces a segment's positional writev; `real` writes for it. */
  writev?: (real: FileHandle, bufs: Buffer[], position: number) => Promise<{ bytesWritten: number; buffers: Buffer[] }>;
  datasync?: (real: FileHandle) => Promise<void>;
}

/** Opens segments for real, with their writes and syncs going through `faults` when set. */
function faultySegments(faults: Faults): (path: string) => Promise<FileHandle> {
  return async (path) => {
    const real = await open(path, 'w');
    return new Proxy(real, {
      get(target, prop) {
        if (prop === 'writev' && faults.writev) return (bufs: Buffer[], position: number) => faults.writev!(target, bufs, position);
        if (prop === 'datasync' && faults.datasync) return () => faults.datasync!(target);
        const v = Reflect.get(target, prop) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
  };
}

/** Where each record of a segment file starts, by its headers' lengths. */
function recordOffsets(seg: Buffer): number[] {
  const out: number[] = [];
  for (let at = 0; at < seg.length; at += 16 + seg.readUInt32LE(at + 4)) out.push(at);
  return out;
}

/** The queue directory as a `kill -9` would leave it now: a copy, opened while the original stays open. */
function crashed(dir: string): string {
  const copy = tempDir('q');
  cpSync(dir, copy, { recursive: true });
  return copy;
}

const cursorFile = (dir: string): { segment: number; offset: number; skip: number } => JSON.parse(readFileSync(join(dir, 'cursor.json'), 'utf8'));

const gapLines = (lines: Record<string, unknown>[]): Record<string, unknown>[] => lines.filter((l) => String(l.msg).startsWith('queue segment has a damaged stretch'));

async function queueRetries(reason: string): Promise<number> {
  return (await sinkWriteRetries.get()).values.find((v) => v.labels.sink === 'elasticsearch' && v.labels.reason === reason)?.value ?? 0;
}

describe('DiskQueue', () => {
  it('releases its directory when it fails to open, so that it opens once the cause is gone', async () => {
    const dir = tempDir('q');
    const q = await DiskQueue.open(opts(dir));
    await q.append(entries(1), 1);
    await q.close();
    rmSync(join(dir, 'cursor.json'), { force: true });
    // A directory where the cursor goes: its write fails, as with EIO or a full disk.
    mkdirSync(join(dir, 'cursor.json'));
    await expect(DiskQueue.open(opts(dir))).rejects.toThrow();
    rmSync(join(dir, 'cursor.json'), { recursive: true });
    const again = await DiskQueue.open(opts(dir));
    expect(await drain(again)).toEqual([0]);
    await again.close();
  });

  it('reads back what was appended, in order, across records', async () => {
    const q = await DiskQueue.open(opts(tempDir('q')));
    await q.append(entries(3), 3);
    await q.append(entries(2, 3), 2);
    expect(q.depth.events).toBe(5);
    expect(q.unread().events).toBe(5);
    const b = (await q.read(4, 1 << 30))!;
    expect(numbers(b.entries)).toEqual([0, 1, 2, 3]);
    expect(q.unread().events).toBe(1);
    q.release(b);
    expect(q.depth.events).toBe(1);
    expect(await drain(q)).toEqual([4]);
    expect(q.depth).toEqual({ events: 0, bytes: 0 });
    expect(await q.read(10, 1 << 30)).toBeUndefined();
    await q.close();
  });

  it('limits a batch by bytes but always returns at least one event', async () => {
    const q = await DiskQueue.open(opts(tempDir('q')));
    await q.append(entries(5, 0, 100), 5);
    const one = (await q.read(100, 10))!;
    expect(one.entries).toHaveLength(1);
    const two = (await q.read(100, one.bytes * 2 + 1))!;
    expect(two.entries).toHaveLength(2);
    await q.close();
  });

  it('replays everything not released after a restart, from the middle of a record', async () => {
    const dir = tempDir('q');
    let q = await DiskQueue.open(opts(dir));
    await q.append(entries(10), 10);
    await q.append(entries(5, 10), 5);
    const b = (await q.read(4, 1 << 30))!;
    q.release(b);
    await q.read(3, 1 << 30); // read but never released: must come back
    await q.close();

    q = await DiskQueue.open(opts(dir));
    expect(q.depth.events).toBe(11);
    expect(q.depth.bytes).toBe(entries(6, 4).length + entries(5, 10).length);
    expect(await drain(q, 3)).toEqual([4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
    await q.close();
    q = await DiskQueue.open(opts(dir));
    expect(q.depth.events).toBe(0);
    await q.close();
  });

  it('moves the cursor only over the delivered prefix when batches finish out of order', async () => {
    const dir = tempDir('q');
    let q = await DiskQueue.open(opts(dir));
    await q.append(entries(6), 6);
    const first = (await q.read(2, 1 << 30))!;
    const second = (await q.read(2, 1 << 30))!;
    q.release(second);
    expect(q.depth.events).toBe(4);
    await q.close();
    q = await DiskQueue.open(opts(dir));
    // `first` was never released, so the restart replays it and everything after.
    expect(await drain(q)).toEqual([0, 1, 2, 3, 4, 5]);
    await q.close();
    expect(numbers(first.entries)).toEqual([0, 1]);
  });

  it('rolls segments and deletes the ones behind the cursor', async () => {
    const dir = tempDir('q');
    const q = await DiskQueue.open(opts(dir, { segmentBytes: 2048 }));
    for (let i = 0; i < 20; i++) await q.append(entries(10, i * 10), 10);
    expect(segments(dir).length).toBeGreaterThan(2);
    const got = await drain(q, 7);
    expect(got).toEqual(Array.from({ length: 200 }, (_, i) => i));
    await q.close();
    // Only the last (write) segment may remain.
    expect(segments(dir).length).toBeLessThanOrEqual(2);
  });

  it('starts a new segment per start and leaves no empty ones behind', async () => {
    const dir = tempDir('q');
    for (let i = 0; i < 4; i++) await (await DiskQueue.open(opts(dir))).close();
    expect(segments(dir).length).toBe(1);
  });

  it('cuts off a torn tail left by a crash in the middle of an append', async () => {
    const dir = tempDir('q');
    const mem = memoryLogger();
    let q = await DiskQueue.open(opts(dir));
    await q.append(entries(3), 3);
    await q.close();
    const seg = join(dir, segments(dir).sort().at(-1)!);
    const good = statSync(seg).size;
    const rec = readFileSync(seg);
    appendFileSync(seg, rec.subarray(0, 20)); // a header and the start of a payload
    q = await DiskQueue.open(opts(dir, { log: mem.log }));
    expect(statSync(seg).size).toBe(good);
    expect(mem.lines.some((l) => String(l.msg).startsWith('queue segment ends in an incomplete record'))).toBe(true);
    await q.append(entries(1, 3), 1);
    expect(await drain(q)).toEqual([0, 1, 2, 3]);
    await q.close();
  });

  it('skips a record whose checksum fails, with an error, and goes on', async () => {
    const dir = tempDir('q');
    const mem = memoryLogger();
    let q = await DiskQueue.open(opts(dir));
    await q.append(entries(2), 2);
    await q.append(entries(2, 2), 2);
    await q.close();
    const seg = join(dir, segments(dir).sort()[0]!);
    const bytes = readFileSync(seg);
    bytes[20] = bytes[20]! ^ 0xff; // inside the first record's payload
    writeFileSync(seg, bytes);
    q = await DiskQueue.open(opts(dir, { log: mem.log }));
    expect(await drain(q)).toEqual([2, 3]);
    expect(mem.lines.some((l) => String(l.msg).startsWith('queue record fails its checksum') && l.events === 2)).toBe(true);
    expect(q.depth.events).toBe(0);
    await q.close();
  });

  it('hands over records just committed from memory, without reading them back', async () => {
    const dir = tempDir('q');
    const q = await DiskQueue.open(opts(dir));
    await q.append(entries(3), 3);
    await q.append(entries(3, 3), 3);
    // Garbage on disk: only the copies kept in memory can give these back.
    const seg = join(dir, segments(dir).sort()[0]!);
    writeFileSync(seg, Buffer.alloc(statSync(seg).size, 0x20));
    const first = await q.read(2, 1 << 30);
    expect(numbers(first!.entries)).toEqual([0, 1]);
    expect(await drain(q)).toEqual([2, 3, 4, 5]);
    q.release(first!);
    await q.close();
  });

  it('reads from disk what did not fit in memory, in order with what did', async () => {
    const dir = tempDir('q');
    const q = await DiskQueue.open(opts(dir, { maxBytes: 64 * 1024 * 1024 }));
    // Twelve records of about 1 MiB: more than the queue keeps in memory (RECENT_BYTES).
    for (let r = 0; r < 12; r++) await q.append(entries(4, r * 4, 256 * 1024), 4);
    expect(await drain(q, 3)).toEqual(Array.from({ length: 48 }, (_, i) => i));
    expect(q.depth.events).toBe(0);
    await q.close();
  });

  it('keeps the bytes of a batch in flight while later ones are read from disk, and reuses a released batch\'s body', async () => {
    const dir = tempDir('q');
    const q = await DiskQueue.open(opts(dir, { maxBytes: 64 * 1024 * 1024 }));
    // More than the queue keeps in memory, in records larger than one read-ahead chunk and smaller.
    for (let r = 0; r < 12; r++) await q.append(entries(4, r * 4, r % 2 === 0 ? 400 * 1024 : 40 * 1024), 4);
    const maxBytes = 2 * 1024 * 1024;
    const held = (await q.read(1000, maxBytes))!;
    const heldBytes = Buffer.from(held.entries.body);
    const seen = numbers(held.entries);
    const bodies = new Set<ArrayBufferLike>();
    for (;;) {
      const b = await q.read(1000, maxBytes);
      if (!b) break;
      seen.push(...numbers(b.entries));
      bodies.add(b.entries.body.buffer);
      q.release(b);
    }
    expect(seen).toEqual(Array.from({ length: 48 }, (_, i) => i));
    expect(held.entries.body.equals(heldBytes)).toBe(true);
    expect(bodies.size).toBeLessThan(3);
    q.release(held);
    await q.close();
  });

  it('lends payload memory and takes it back only once its record is committed and read', async () => {
    const dir = tempDir('q');
    const q = await DiskQueue.open(opts(dir, { maxBytes: 64 * 1024 * 1024 }));
    const lines = entries(300, 0, 300);
    const first = q.payload(lines.length);
    lines.copy(first);
    await q.append(first, 300);
    // Committed, not read yet: its memory is not lent again.
    const more = entries(300, 300, 300);
    const second = q.payload(more.length);
    expect(second.buffer).not.toBe(first.buffer);
    more.copy(second);
    await q.append(second, 300);
    const b = (await q.read(300, 1 << 30))!;
    expect(numbers(b.entries)).toEqual(Array.from({ length: 300 }, (_, i) => i));
    // Read whole into the batch's body: the memory comes back, and the batch keeps its bytes.
    const third = q.payload(lines.length);
    expect(third.buffer).toBe(first.buffer);
    third.fill(0x20);
    expect(numbers(b.entries)).toEqual(Array.from({ length: 300 }, (_, i) => i));
    q.release(b);
    expect(await drain(q)).toEqual(Array.from({ length: 300 }, (_, i) => 300 + i));
    await q.close();
  });

  it('replays from the oldest segment when the cursor file is lost or garbage', async () => {
    const dir = tempDir('q');
    let q = await DiskQueue.open(opts(dir));
    await q.append(entries(4), 4);
    const b = (await q.read(2, 1 << 30))!;
    q.release(b);
    await q.close();
    writeFileSync(join(dir, 'cursor.json'), '{"segment":1,"offset":7,"skip":0}');
    q = await DiskQueue.open(opts(dir));
    expect(await drain(q)).toEqual([0, 1, 2, 3]);
    await q.close();
  });

  it('makes append wait while full, admits it after a release, and rejects waiters on close', async () => {
    const one = entries(10, 0, 50);
    const q = await DiskQueue.open(opts(tempDir('q'), { maxBytes: one.length * 2 + 100 }));
    await q.append(one, 10);
    await q.append(entries(10, 10, 50), 10);
    let admitted = false;
    const third = q.append(entries(10, 20, 50), 10).then(() => {
      admitted = true;
    });
    await new Promise((r) => setTimeout(r, 100));
    expect(admitted).toBe(false);
    const b = (await q.read(10, 1 << 30))!;
    q.release(b);
    await third;
    expect(admitted).toBe(true);
    const fourth = expect(q.append(entries(10, 30, 50), 10)).rejects.toMatchObject({ code: 'CLOGS_QUEUE_CLOSED' });
    await q.close();
    await fourth;
    await expect(q.append(entries(1), 1)).rejects.toMatchObject({ code: 'CLOGS_QUEUE_CLOSED' });
  });

  it('lets one append larger than the bound into an empty queue', async () => {
    const q = await DiskQueue.open(opts(tempDir('q'), { maxBytes: 10 }));
    await q.append(entries(5), 5);
    expect(q.depth.events).toBe(5);
    await q.close();
  });

  it('commits concurrent appends together, each resolving once durable', async () => {
    const q = await DiskQueue.open(opts(tempDir('q')));
    await Promise.all(Array.from({ length: 50 }, (_, i) => q.append(entries(2, i * 2), 2)));
    expect(q.depth.events).toBe(100);
    expect((await drain(q)).sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    await q.close();
  });

  it('refuses a directory another open queue holds', async () => {
    const dir = tempDir('q');
    const q = await DiskQueue.open(opts(dir));
    await expect(DiskQueue.open(opts(dir))).rejects.toMatchObject({ code: 'CLOGS_SINK' });
    await q.close();
    await (await DiskQueue.open(opts(dir))).close();
  });

  it('wakes a reader waiting for data on append', async () => {
    const q = await DiskQueue.open(opts(tempDir('q')));
    const waiting = q.waitForData();
    await q.append(entries(1), 1);
    await waiting;
    expect(q.unread().events).toBe(1);
    await q.waitForData(10); // times out quietly
    await q.close();
  });

  it('holds an append through ENOSPC after a short write, leaves no torn record, and commits it once when space returns', async () => {
    const dir = tempDir('q');
    const mem = memoryLogger();
    const faults: Faults = {};
    const q = await DiskQueue.open(opts(dir, { log: mem.log, diskBackoff: { initialMs: 5, maxMs: 20 }, openSegment: faultySegments(faults) }));
    await q.append(entries(3), 3);
    const seg = join(dir, segments(dir).sort().at(-1)!);
    const committed = statSync(seg).size;
    let short = true;
    faults.writev = async (real, bufs, position) => {
      if (short) {
        short = false;
        // Half of the group reaches the file: the kernel reports the short count.
        const all = Buffer.concat(bufs);
        return real.writev([all.subarray(0, all.length >> 1)], position);
      }
      throw diskError('ENOSPC');
    };
    const before = await queueRetries('ENOSPC');
    let settled = false;
    const held = q.append(entries(5, 3), 5).finally(() => (settled = true));
    await vi.waitFor(async () => expect(await queueRetries('ENOSPC')).toBeGreaterThanOrEqual(before + 4));
    expect(settled).toBe(false);
    expect(q.blockedReason()).toBe(`disk full: ENOSPC on ${dir}`);
    // Cut back to the committed records while the disk is full.
    expect(statSync(seg).size).toBe(committed);
    faults.writev = undefined;
    await held;
    expect(q.blockedReason()).toBeUndefined();
    expect(mem.lines.filter((l) => l.code === 'ENOSPC' && l.level === 40)).toHaveLength(1);
    expect(mem.lines.filter((l) => l.msg === 'the disk takes writes again; what waited is written')).toHaveLength(1);
    await q.close();
    const again = await DiskQueue.open(opts(dir, { log: mem.log }));
    expect(await drain(again)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(mem.lines.filter((l) => (l.level as number) >= 50)).toEqual([]);
    await again.close();
  });

  it('completes a short write that was not an error', async () => {
    const dir = tempDir('q');
    const faults: Faults = {};
    const q = await DiskQueue.open(opts(dir, { openSegment: faultySegments(faults) }));
    faults.writev = (real, bufs, position) => real.writev([Buffer.concat(bufs).subarray(0, 7)], position);
    await q.append(entries(4), 4);
    faults.writev = undefined;
    await q.close();
    const again = await DiskQueue.open(opts(dir));
    expect(await drain(again)).toEqual([0, 1, 2, 3]);
    await again.close();
  });

  it('writes a group again after its datasync failed with EIO, once', async () => {
    const dir = tempDir('q');
    const faults: Faults = {};
    const q = await DiskQueue.open(opts(dir, { diskBackoff: { initialMs: 5, maxMs: 20 }, openSegment: faultySegments(faults) }));
    let failures = 2;
    let writes = 0;
    faults.writev = (real, bufs, position) => {
      writes++;
      return real.writev(bufs, position);
    };
    faults.datasync = async (real) => {
      if (failures-- > 0) throw diskError('EIO');
      await real.datasync();
    };
    await q.append(entries(3), 3);
    expect(writes).toBe(3);
    await q.append(entries(2, 3), 2);
    await q.close();
    const again = await DiskQueue.open(opts(dir));
    expect(await drain(again)).toEqual([0, 1, 2, 3, 4]);
    await again.close();
  });

  it('still rejects an append on an error a retry would not fix', async () => {
    const faults: Faults = {};
    const q = await DiskQueue.open(opts(tempDir('q'), { openSegment: faultySegments(faults) }));
    faults.writev = () => Promise.reject(diskError('EBADF'));
    await expect(q.append(entries(1), 1)).rejects.toMatchObject({ code: 'CLOGS_SINK', message: expect.stringContaining('EBADF') });
    expect(q.depth.events).toBe(0);
    faults.writev = undefined;
    await q.append(entries(1, 1), 1);
    expect(await drain(q)).toEqual([1]);
    await q.close();
  });

  it('keeps acknowledged records after a start found the cursor\'s segment empty and later starts used that number again', async () => {
    const dir = tempDir('q');
    // A backlog, delivered by the next run: the cursor stays on that run's empty write segment.
    let q = await DiskQueue.open(opts(dir));
    await q.append(entries(2), 2);
    await q.close();
    q = await DiskQueue.open(opts(dir));
    expect(await drain(q)).toEqual([0, 1]);
    await q.close();
    // That segment is deleted as empty: the cursor on disk must already name where delivery resumes.
    q = await DiskQueue.open(opts(dir));
    const cursor = cursorFile(dir);
    expect(segments(dir)).toEqual([`${String(cursor.segment).padStart(16, '0')}.seg`]);
    // Elasticsearch is down; what is acknowledged survives two kill -9.
    await q.append(entries(2, 10), 2);
    const first = crashed(dir);
    await q.close();
    q = await DiskQueue.open(opts(first));
    await q.append(entries(2, 20), 2);
    const second = crashed(first);
    await q.close();
    q = await DiskQueue.open(opts(second));
    expect(await drain(q)).toEqual([10, 11, 20, 21]);
    await q.close();
  });

  it('numbers new segments past the one the cursor file names, even when that one is gone', async () => {
    const dir = tempDir('q');
    writeFileSync(join(dir, 'cursor.json'), '{"segment":7,"offset":0,"skip":0}');
    const q = await DiskQueue.open(opts(dir));
    expect(segments(dir)).toEqual(['0000000000000008.seg']);
    expect(cursorFile(dir)).toEqual({ segment: 8, offset: 0, skip: 0 });
    await q.close();
  });

  it('keeps the intact records after one whose length is damaged, in the last segment, and logs the gap', async () => {
    const dir = tempDir('q');
    const mem = memoryLogger();
    let q = await DiskQueue.open(opts(dir));
    for (let r = 0; r < 3; r++) await q.append(entries(3, r * 3), 3);
    await q.close();
    const seg = join(dir, segments(dir)[0]!);
    const bytes = readFileSync(seg);
    const [, second, third] = recordOffsets(bytes);
    bytes.writeUInt32LE(bytes.readUInt32LE(second! + 4) + 7, second! + 4);
    writeFileSync(seg, bytes);
    q = await DiskQueue.open(opts(dir, { log: mem.log }));
    expect(q.depth.events).toBe(6);
    expect(await drain(q)).toEqual([0, 1, 2, 6, 7, 8]);
    expect(q.depth).toEqual({ events: 0, bytes: 0 });
    expect(statSync(seg).size).toBe(bytes.length);
    expect(gapLines(mem.lines)).toMatchObject([{ segment: 1, from: second, to: third }]);
    expect(mem.lines.filter((l) => String(l.msg).includes('never acknowledged'))).toEqual([]);
    await q.close();
  });

  it('goes on after a damaged header in the middle of an earlier segment, and does not cut that segment', async () => {
    const dir = tempDir('q');
    const mem = memoryLogger();
    const record = entries(2).length + 16;
    let q = await DiskQueue.open(opts(dir, { segmentBytes: 3 * record }));
    for (let r = 0; r < 5; r++) await q.append(entries(2, r * 2), 2);
    await q.close();
    expect(segments(dir)).toHaveLength(2);
    const seg = join(dir, segments(dir)[0]!);
    const bytes = readFileSync(seg);
    const [, second, third] = recordOffsets(bytes);
    bytes.writeUInt32LE(0, second!); // its magic
    writeFileSync(seg, bytes);
    q = await DiskQueue.open(opts(dir, { log: mem.log }));
    expect(statSync(seg).size).toBe(bytes.length);
    expect(await drain(q)).toEqual([0, 1, 4, 5, 6, 7, 8, 9]);
    expect(q.depth).toEqual({ events: 0, bytes: 0 });
    expect(gapLines(mem.lines)).toMatchObject([{ segment: 1, from: second, to: third }]);
    await q.close();
  });

  it('skips damage at the end of an earlier segment without cutting it: only the last segment can end torn', async () => {
    const dir = tempDir('q');
    const mem = memoryLogger();
    const record = entries(2).length + 16;
    let q = await DiskQueue.open(opts(dir, { segmentBytes: 3 * record }));
    for (let r = 0; r < 5; r++) await q.append(entries(2, r * 2), 2);
    await q.close();
    const seg = join(dir, segments(dir)[0]!);
    const bytes = readFileSync(seg);
    const last = recordOffsets(bytes).at(-1)!;
    bytes.writeUInt32LE(0xffffff, last + 4); // a length past the segment's end
    writeFileSync(seg, bytes);
    q = await DiskQueue.open(opts(dir, { log: mem.log }));
    expect(statSync(seg).size).toBe(bytes.length);
    expect(await drain(q)).toEqual([0, 1, 2, 3, 6, 7, 8, 9]);
    expect(q.depth).toEqual({ events: 0, bytes: 0 });
    expect(gapLines(mem.lines)).toMatchObject([{ segment: 1, from: last, to: bytes.length }]);
    expect(mem.lines.filter((l) => String(l.msg).includes('never acknowledged'))).toEqual([]);
    await q.close();
  });

  it('takes a record\'s events from its payload when the header counts them wrong', async () => {
    const dir = tempDir('q');
    const mem = memoryLogger();
    let q = await DiskQueue.open(opts(dir));
    await q.append(entries(2), 2);
    await q.append(entries(3, 2), 3);
    await q.append(entries(1, 5), 1);
    await q.close();
    const seg = join(dir, segments(dir)[0]!);
    const bytes = readFileSync(seg);
    const [first, second] = recordOffsets(bytes);
    bytes.writeUInt32LE(3, first! + 8);
    bytes.writeUInt32LE(2, second! + 8);
    writeFileSync(seg, bytes);
    q = await DiskQueue.open(opts(dir, { log: mem.log }));
    expect(await drain(q)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(q.depth).toEqual({ events: 0, bytes: 0 });
    expect(q.unread().events).toBe(0);
    expect(mem.lines.filter((l) => String(l.msg).startsWith('queue record header miscounts its events'))).toMatchObject([
      { offset: first, header: 3, events: 2 },
      { offset: second, header: 2, events: 3 },
    ]);
    await q.close();
  });

  it('starts when the record the cursor is in the middle of is damaged, and skips it', async () => {
    const dir = tempDir('q');
    const mem = memoryLogger();
    let q = await DiskQueue.open(opts(dir));
    await q.append(entries(4), 4);
    await q.append(entries(2, 4), 2);
    q.release((await q.read(2, 1 << 30))!);
    await q.close();
    expect(cursorFile(dir).skip).toBe(2);
    const seg = join(dir, segments(dir)[0]!);
    const bytes = readFileSync(seg);
    const [first, second] = recordOffsets(bytes);
    for (let i = first! + 16; i < second!; i++) if (bytes[i] === 10) bytes[i] = 0x20; // no entry ends in its payload
    writeFileSync(seg, bytes);
    q = await DiskQueue.open(opts(dir, { log: mem.log }));
    expect(q.depth.events).toBe(4);
    expect(await drain(q)).toEqual([4, 5]);
    expect(q.depth).toEqual({ events: 0, bytes: 0 });
    expect(mem.lines.some((l) => String(l.msg).startsWith('queue record fails its checksum') && l.events === 2)).toBe(true);
    await q.close();
  });

  it('goes on past a header damaged after it was written in this run, and corrects its counts', async () => {
    const dir = tempDir('q');
    const mem = memoryLogger();
    const q = await DiskQueue.open(opts(dir, { log: mem.log, maxBytes: 64 * 1024 * 1024, segmentBytes: 64 * 1024 * 1024 }));
    // More than the queue keeps in memory: the last records are read back from disk.
    for (let r = 0; r < 12; r++) await q.append(entries(4, r * 4, 256 * 1024), 4);
    const seg = join(dir, segments(dir)[0]!);
    const fh = await open(seg, 'r+');
    const offsets = recordOffsets(readFileSync(seg));
    const length = Buffer.alloc(4);
    length.writeUInt32LE(0x7fffffff);
    await fh.write(length, 0, 4, offsets[10]! + 4);
    await fh.close();
    expect(await drain(q, 3)).toEqual(Array.from({ length: 48 }, (_, i) => i).filter((n) => n < 40 || n >= 44));
    expect(q.depth).toEqual({ events: 0, bytes: 0 });
    expect(q.unread().events).toBe(0);
    expect(gapLines(mem.lines)).toMatchObject([{ segment: 1, from: offsets[10], to: offsets[11] }]);
    expect(mem.lines.filter((l) => l.msg === 'queue events lost in a damaged stretch are taken off its counts')).toMatchObject([{ events: 4 }]);
    await q.close();
  });
});

