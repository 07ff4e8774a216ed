/**
 * Compression and retention through the real file sink on the real file
 * system: the store it leaves, the metrics, the log.
 */
import { EncodedBatch } from '../../../src/collector/encoded.js';
import { mkdirSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import type { LogEvent } from '../../../src/collector/event.js';
import { bytesDeleted, filesDeleted, storeBytes } from '../../../src/metrics.js';
import { FileTable } from '../../../src/sinks/file/files.js';
import { createFileSink } from '../../../src/sinks/file/index.js';
import { nodeFileIo } from '../../../src/sinks/file/io.js';
import { until } from '../../helpers/until.js';
import { captureLog, config, container, deferred, event, readStore, removeTempDirs, tempDir } from './helpers.js';

afterAll(removeTempDirs);

const WEB = container('web', 'aaa');
const DB = container('db', 'bbb');
const messages = (events: unknown[]) => events.map((e) => (e as LogEvent).message);
const names = (dir: string) => readdirSync(dir).sort();
const counter = async (c: typeof filesDeleted | typeof storeBytes) => (await c.get()).values[0]?.value ?? 0;

/** Bytes of every file under the store. */
function storeSize(dir: string): number {
  let total = 0;
  for (const source of readdirSync(dir)) for (const f of readdirSync(join(dir, source))) total += statSync(join(dir, source, f)).size;
  return total;
}

/** Whether every source's files but its newest are compressed. */
function allRotatedCompressed(dir: string): boolean {
  return readdirSync(dir).every((source) => names(join(dir, source)).filter((f) => f.endsWith('.ndjson')).length <= 1);
}

describe('file sink: compression of rotated files', () => {
  it('gzips every rotated file, never the one being written, and the store reads the same', async () => {
    const dir = tempDir();
    const { log } = captureLog();
    const sink = createFileSink(config(dir, { rotate_size: 4096, compress: true }), { log });
    await sink.start();
    const sent: string[] = [];
    for (let b = 0; b < 20; b++) {
      const batch = Array.from({ length: 20 }, (_, i) => event(`web ${b * 20 + i} ${'x'.repeat(40)}`, { container: WEB }));
      sent.push(...batch.map((e) => e.message));
      await sink.write(EncodedBatch.of(batch));
    }
    await until('rotated files compressed', () => allRotatedCompressed(dir), 30_000);
    const files = names(join(dir, 'web'));
    expect(files.length).toBeGreaterThan(5);
    expect(files.at(-1)).toMatch(/\.ndjson$/);
    expect(files.slice(0, -1).every((f) => f.endsWith('.ndjson.gz'))).toBe(true);
    // Writing goes on in the plain newest file, after the compressed ones.
    await sink.write(EncodedBatch.of([event('after', { container: WEB })]));
    sent.push('after');
    await sink.close();
    expect(messages((await readStore(dir)).get('web')!)).toEqual(sent);
  });

  it('at start, finishes what a crash interrupted and compresses closed files, then appends to the newest, replay guard and all', async () => {
    const dir = tempDir();
    const web = join(dir, 'web');
    mkdirSync(web);
    const line = (m: string) => JSON.stringify(event(m, { container: WEB })) + '\n';
    // 0: compressed, its plain file not yet removed; 1: a temporary file left mid-compression; 2: closed, plain; 3: newest.
    writeFileSync(join(web, '2026-11-22.0000.ndjson'), line('a'));
    writeFileSync(join(web, '2026-11-22.0000.ndjson.gz'), gzipSync(line('a')));
    writeFileSync(join(web, '.2026-11-22.0001.ndjson.gz.tmp'), 'half');
    writeFileSync(join(web, '2026-11-22.0001.ndjson'), line('b'));
    writeFileSync(join(web, '2026-11-22.0002.ndjson'), line('c'));
    writeFileSync(join(web, '2026-11-22.0003.ndjson'), line('d'));
    const { log, lines } = captureLog();
    const sink = createFileSink(config(dir, { compress: true, rotate_daily: false }), { log });
    await sink.start();
    await until('the store repaired', () => names(web).length === 4 && allRotatedCompressed(dir), 30_000);
    expect(names(web)).toEqual(['2026-11-22.0000.ndjson.gz', '2026-11-22.0001.ndjson.gz', '2026-11-22.0002.ndjson.gz', '2026-11-22.0003.ndjson']);
    // An input's retry after the crash: 'd' again (dropped by the replay guard), then a new line.
    await sink.write(EncodedBatch.of([event('d', { container: WEB }), event('e', { container: WEB })]));
    await sink.close();
    expect(messages((await readStore(dir)).get('web')!)).toEqual(['a', 'b', 'c', 'd', 'e']);
    const cleared = lines.filter((l) => l.msg === 'removed what interrupted compressions left');
    expect(cleared).toHaveLength(1);
    expect((cleared[0]!.files as string[]).sort()).toEqual([join(web, '.2026-11-22.0001.ndjson.gz.tmp'), join(web, '2026-11-22.0000.ndjson')]);
  });

  it('never appends to a newest file found compressed, and still drops a batch replayed into it', async () => {
    const dir = tempDir();
    const web = join(dir, 'web');
    mkdirSync(web);
    const first = [event('a', { container: WEB }), event('b', { container: WEB })];
    writeFileSync(join(web, '2026-11-22.0000.ndjson.gz'), gzipSync(first.map((e) => JSON.stringify(e) + '\n').join('')));
    const { log } = captureLog();
    const sink = createFileSink(config(dir, { compress: true, rotate_daily: false }), { log });
    await sink.start();
    // An input's retry after a crash: the same events, then a new one.
    await sink.write(EncodedBatch.of([...first, event('c', { container: WEB })]));
    await sink.close();
    const after = names(web);
    expect(after).toHaveLength(2);
    expect(after[0]).toBe('2026-11-22.0000.ndjson.gz');
    expect(after[1]).toMatch(/^\d{4}-\d{2}-\d{2}\.0001\.ndjson$|^\d{4}-\d{2}-\d{2}\.0000\.ndjson$/);
    expect(messages((await readStore(dir)).get('web')!)).toEqual(['a', 'b', 'c']);
  });
});

describe('file sink: retention', () => {
  it('keeps a store driven past max_total_size under it, deleting the oldest files first, never a newest one', async () => {
    const dir = tempDir();
    const { log, lines } = captureLog();
    const limit = 256 * 1024;
    const sink = createFileSink(config(dir, { rotate_size: 64 * 1024, compress: true, retention: { max_total_size: limit, check_interval: 30_000 } }), { log });
    const deletedBefore = await counter(filesDeleted);
    const bytesBefore = await counter(bytesDeleted);
    await sink.start();
    const sent = new Map<string, string[]>([['web', []], ['db', []]]);
    // Random-ish text compresses about 2:1, so about 4 MiB of lines is well past the limit even compressed.
    let seed = 1;
    const noise = () => Array.from({ length: 200 }, () => ((seed = (seed * 48271) % 2147483647) % 36).toString(36)).join('');
    for (let b = 0; b < 80; b++) {
      for (const [meta, name] of [[WEB, 'web'], [DB, 'db']] as const) {
        const batch = Array.from({ length: 100 }, (_, i) => event(`${name} ${b * 100 + i} ${noise()}`, { container: meta }));
        sent.get(name)!.push(...batch.map((e) => e.message));
        await sink.write(EncodedBatch.of(batch));
      }
    }
    await until('the store under its limit', () => allRotatedCompressed(dir) && storeSize(dir) <= limit, 60_000);
    await sink.close();
    expect(storeSize(dir)).toBeLessThanOrEqual(limit);
    expect(await counter(storeBytes)).toBeLessThanOrEqual(limit);
    const store = await readStore(dir);
    for (const [name, all] of sent) {
      // What is left is the newest part of what was written, in order, up to the last line.
      const kept = messages(store.get(name)!);
      expect(kept.length).toBeGreaterThan(0);
      expect(kept).toEqual(all.slice(all.length - kept.length));
    }
    const deleted = (await counter(filesDeleted)) - deletedBefore;
    expect(deleted).toBeGreaterThan(10);
    expect((await counter(bytesDeleted)) - bytesBefore).toBeGreaterThan(limit);
    const logged = lines.filter((l) => l.msg === 'retention deleted the oldest files');
    expect(logged.length).toBeGreaterThan(0);
    expect(logged.reduce((n, l) => n + (l.files as number), 0)).toBe(deleted);
  });

  it('weighs plain files waiting for compression at their compressed size: nothing that fits is deleted', async () => {
    const dir = tempDir();
    const { log, lines } = captureLog();
    // Plain rotated files, as a store written with compress off, then started with it on and a limit.
    const plain = createFileSink(config(dir, { rotate_size: 64 * 1024 }), { log });
    await plain.start();
    const sent: string[] = [];
    for (let b = 0; b < 40; b++) {
      const batch = Array.from({ length: 100 }, (_, i) => event(`web ${b * 100 + i} ${'the same words again and again '.repeat(4)}`, { container: WEB }));
      sent.push(...batch.map((e) => e.message));
      await plain.write(EncodedBatch.of(batch));
    }
    await plain.close();
    const limit = 256 * 1024;
    expect(storeSize(dir)).toBeGreaterThan(4 * limit);
    const sink = createFileSink(config(dir, { rotate_size: 64 * 1024, compress: true, retention: { max_container_size: limit, check_interval: 30_000 } }), { log });
    await sink.start();
    await until('rotated files compressed', () => allRotatedCompressed(dir), 30_000);
    await sink.close();
    expect(storeSize(dir)).toBeLessThanOrEqual(limit);
    expect(lines.filter((l) => l.msg === 'retention deleted the oldest files')).toEqual([]);
    expect(messages((await readStore(dir)).get('web')!)).toEqual(sent);
  });

  it('still applies the size limits when compression fails, as on a full disk', async () => {
    const dir = tempDir();
    const { log, lines } = captureLog();
    const plain = createFileSink(config(dir, { rotate_size: 16 * 1024 }), { log });
    await plain.start();
    for (let b = 0; b < 20; b++) await plain.write(EncodedBatch.of(Array.from({ length: 50 }, (_, i) => event(`web ${b * 50 + i} ${'x'.repeat(300)}`, { container: WEB }))));
    await plain.close();
    const limit = 64 * 1024;
    // Each compression fails once its .gz is written, before the plain file goes (syncing the directory).
    const io = { ...nodeFileIo, syncDir: async () => Promise.reject(Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' })) };
    const sink = createFileSink(config(dir, { rotate_size: 16 * 1024, compress: true, retention: { max_container_size: limit, check_interval: 30_000 } }), { log, io });
    await sink.start();
    await until('the maintenance failure logged', () => lines.some((l) => l.msg === 'file store maintenance failed; next check retries'), 30_000);
    await sink.close();
    expect(lines.filter((l) => l.msg === 'retention deleted the oldest files').length).toBeGreaterThan(0);
    const plainLeft = names(join(dir, 'web')).filter((f) => f.endsWith('.ndjson'));
    const plainBytes = plainLeft.reduce((n, f) => n + statSync(join(dir, 'web', f)).size, 0);
    expect(plainBytes).toBeLessThanOrEqual(limit + 16 * 1024);
  });

  it('deletes files older than max_age, keeping each source\'s newest', async () => {
    const dir = tempDir();
    const { log } = captureLog();
    const sink = createFileSink(config(dir, { rotate_size: 1024, retention: { max_age: 3_600_000, check_interval: 30_000 } }), { log });
    await sink.start();
    for (let b = 0; b < 5; b++) await sink.write(EncodedBatch.of(Array.from({ length: 10 }, (_, i) => event(`old ${b}.${i} ${'x'.repeat(100)}`, { container: WEB }))));
    await sink.close();
    const web = join(dir, 'web');
    const before = names(web);
    expect(before.length).toBeGreaterThan(3);
    const twoHoursAgo = new Date(Date.now() - 7_200_000);
    for (const f of before) utimesSync(join(web, f), twoHoursAgo, twoHoursAgo);
    const again = createFileSink(config(dir, { rotate_size: 1024, retention: { max_age: 3_600_000, check_interval: 30_000 } }), { log });
    await again.start();
    await until('old files deleted', () => names(web).length === 1, 30_000);
    await again.close();
    expect(names(web)).toEqual([before.at(-1)]);
  });

  it('deletes the newest file of a source quiet since an earlier day, and the source\'s next file sorts after it', async () => {
    const dir = tempDir();
    const { log } = captureLog();
    const yesterday = Date.now() - 86_400_000;
    const retention = { max_age: 3_600_000, check_interval: 30_000 };
    const before = createFileSink(config(dir, { retention }), { log, now: () => yesterday });
    await before.start();
    await before.write(EncodedBatch.of([event('quiet', { container: DB }), event('busy', { container: WEB })]));
    await before.close();
    const twoHoursAgo = new Date(Date.now() - 7_200_000);
    for (const source of ['db', 'web']) for (const f of names(join(dir, source))) utimesSync(join(dir, source, f), twoHoursAgo, twoHoursAgo);
    const sink = createFileSink(config(dir, { retention }), { log });
    await sink.start();
    // web writes again at once: its file of yesterday is open, or replaced by today's, never written after deletion.
    await sink.write(EncodedBatch.of([event('today', { container: WEB })]));
    await until('the quiet source\'s file deleted', () => names(join(dir, 'db')).length === 0, 30_000);
    await sink.write(EncodedBatch.of([event('back', { container: DB })]));
    await sink.close();
    const store = await readStore(dir);
    expect(messages(store.get('db')!)).toEqual(['back']);
    expect(names(join(dir, 'db'))).toEqual([expect.stringMatching(new RegExp(`^${new Date().toISOString().slice(0, 10)}\\.0000\\.ndjson$`))]);
    expect(messages(store.get('web')!).at(-1)).toBe('today');
  });
});

describe('file table: retention of a newest file', () => {
  it('refuses while the source is open, and opening waits for a deletion under way', async () => {
    const dir = tempDir();
    const { log } = captureLog();
    const table = new FileTable({ dir, io: nodeFileIo, log, maxOpen: 4, rotateSize: 0, rotateDaily: true, durable: false, syncWrites: false });
    const file = await table.acquire('web', '2026-11-22', new Set());
    expect(await table.whileClosed('web', async () => undefined)).toBe(false);
    await table.closeAll();
    const gate = deferred();
    const order: string[] = [];
    const deletion = table.whileClosed('web', async () => {
      await gate.promise;
      await unlink(file.path);
      order.push('deleted');
    });
    const reopened = table.acquire('web', '2026-11-23', new Set()).then((f) => {
      order.push('opened');
      return f;
    });
    await new Promise((r) => setTimeout(r, 50));
    expect(order).toEqual([]);
    gate.resolve();
    expect(await deletion).toBe(true);
    expect((await reopened).path).toBe(join(dir, 'web', '2026-11-23.0000.ndjson'));
    expect(order).toEqual(['deleted', 'opened']);
    await table.closeAll();
  });
});

describe('file table: what asks for a maintenance pass', () => {
  it('a file that follows an earlier one of its source, not a source\'s first file', async () => {
    const dir = tempDir();
    const { log } = captureLog();
    let rotations = 0;
    const table = new FileTable({ dir, io: nodeFileIo, log, maxOpen: 4, rotateSize: 0, rotateDaily: true, durable: false, syncWrites: false, onRotate: () => rotations++ });
    await table.acquire('web', '2026-11-22', new Set());
    await table.acquire('api', '2026-11-22', new Set());
    expect(rotations).toBe(0);
    await table.closeAll();
    await table.acquire('web', '2026-11-22', new Set());
    expect(rotations).toBe(0);
    await table.closeAll();
    await table.acquire('web', '2026-11-23', new Set());
    expect(rotations).toBe(1);
    await table.closeAll();
  });
});
