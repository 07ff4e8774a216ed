import { appendFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { EncodedBatch } from '../../../src/collector/encoded.js';
import type { LogEvent } from '../../../src/collector/event.js';
import { createFileSink } from '../../../src/sinks/file/index.js';
import { listFilesInOrder } from '../../../src/sinks/file/layout.js';
import { captureLog, config, container, countingIo, event, readStore, removeTempDirs, tempDir } from './helpers.js';

afterEach(removeTempDirs);

const web = container('web');
const line = (message: string, ordinal: number, stream: 'stdout' | 'stderr' = 'stdout') => {
  const e = event(message, { container: web, stream });
  e.clogs.ordinal = ordinal;
  return e;
};
/** What a sink of an earlier run wrote (and closed) before the restart. */
async function writtenBefore(dir: string, events: LogEvent[]): Promise<void> {
  const first = createFileSink(config(dir), { log: captureLog().log });
  await first.start();
  await first.write(EncodedBatch.of(events));
  await first.close();
}

/** The lines as the sink writes them. */
const rendered = (events: LogEvent[]): Buffer => Buffer.concat([...EncodedBatch.of(events).sources()].flatMap((s) => [...s.chunks()]));

describe('file sink: a batch written again after a crash', () => {
  it('is dropped when it is already at the end of the file, and what follows is kept', async () => {
    const dir = tempDir();
    await writtenBefore(dir, [line('a', 0), line('b', 1), line('c', 2), line('e1', 0, 'stderr')]);

    // The input never saw the write resolve, so it sends the last batch again.
    const { log, lines } = captureLog();
    const second = createFileSink(config(dir), { log });
    await second.start();
    await second.write(EncodedBatch.of([line('b', 1), line('c', 2), line('e1', 0, 'stderr'), line('d', 3), line('e2', 1, 'stderr')]));
    await second.close();

    const stored = (await readStore(dir)).get('web')!.map((e) => (e as { message: string }).message);
    expect(stored).toEqual(['a', 'b', 'c', 'e1', 'd', 'e2']);
    expect(lines.some((l) => l.msg === 'dropped a batch already written before a restart' && l.dropped === 3)).toBe(true);
  });

  it('syncs the lines it finds, and their entries, before a batch of them counts as durable: their writer may have died before syncing them', async () => {
    const dir = tempDir();
    await writtenBefore(dir, [line('a', 0), line('b', 1)]);

    const io = countingIo();
    const second = createFileSink(config(dir), { log: captureLog().log, io });
    await second.start();
    const before = { ...io.counts };
    await second.write(EncodedBatch.of([line('a', 0), line('b', 1)]));
    // The newest file, the source's directory and the store's.
    expect([io.counts.sync - before.sync, io.counts.syncDir - before.syncDir]).toEqual([1, 2]);
    await second.close();
    expect((await readStore(dir)).get('web')!.map((e) => (e as { message: string }).message)).toEqual(['a', 'b']);
  });

  it('syncs the store\'s directory once for the lines it finds of several sources', async () => {
    const dir = tempDir();
    const db = container('db');
    await writtenBefore(dir, [line('a', 0), event('db a', { container: db })]);

    const io = countingIo();
    const second = createFileSink(config(dir), { log: captureLog().log, io });
    await second.start();
    await Promise.all([second.write(EncodedBatch.of([line('a', 0)])), second.write(EncodedBatch.of([event('db a', { container: db })]))]);
    expect(io.syncedDirs.filter((p) => p === dir)).toHaveLength(1);
    await second.close();
  });

  it('syncs a file an earlier process wrote, and its entries, with its first write', async () => {
    const dir = tempDir();
    await writtenBefore(dir, [line('a', 0), event('db 1', { container: container('db') })]);

    const io = countingIo();
    const second = createFileSink(config(dir), { log: captureLog().log, io });
    await second.start();
    const before = { ...io.counts };
    await second.write(EncodedBatch.of([line('b', 1)]));
    // The write is O_DSYNC: only the earlier process's lines need the sync.
    expect([io.counts.sync - before.sync, io.counts.syncDir - before.syncDir]).toEqual([1, 2]);
    await second.write(EncodedBatch.of([line('c', 2)]));
    expect([io.counts.sync - before.sync, io.counts.syncDir - before.syncDir]).toEqual([1, 2]);
    // Another source an earlier process wrote: its file, its directory and the store's, with the commit that opens it.
    await second.write(EncodedBatch.of([event('d', { container: container('db') })]));
    expect([io.counts.sync - before.sync, io.counts.syncDir - before.syncDir]).toEqual([2, 4]);
    await second.close();
  });

  it('stops dropping once a stream sent something new: a repeated line later is a new line', async () => {
    const dir = tempDir();
    await writtenBefore(dir, [line('same', 0)]);

    const second = createFileSink(config(dir), { log: captureLog().log });
    await second.start();
    await second.write(EncodedBatch.of([line('new', 1)]));
    await second.write(EncodedBatch.of([line('same', 0)]));
    await second.close();
    const stored = (await readStore(dir)).get('web')!.map((e) => (e as { message: string }).message);
    expect(stored).toEqual(['same', 'new', 'same']);
  });

  it('checks lines an input rendered too', async () => {
    const dir = tempDir();
    await writtenBefore(dir, [line('a', 0), line('b', 1)]);

    const second = createFileSink(config(dir), { log: captureLog().log });
    await second.start();
    await second.write(EncodedBatch.of([line('b', 1), line('c', 2)]));
    await second.write(EncodedBatch.of([line('b', 1)]));
    await second.close();
    const stored = (await readStore(dir)).get('web')!.map((e) => (e as { message: string }).message);
    expect(stored).toEqual(['a', 'b', 'c', 'b']);
  });

  it('writes the lines byte for byte as the renderer wrote them, also when it compared them with a tail', async () => {
    const dir = tempDir();
    await writtenBefore(dir, [line('a', 0)]);
    const second = createFileSink(config(dir), { log: captureLog().log });
    await second.start();
    const batch = EncodedBatch.of([line('a', 0), line('b "q" é', 1)]);
    const rendered = Buffer.concat([...batch.sources()].flatMap((s) => [...s.chunks()])).toString();
    await second.write(batch);
    await second.close();
    const stored = readFileSync(join(dir, 'web', readdirSync(join(dir, 'web'))[0]!), 'utf8').split('\n');
    // `a` was a replay and is there once; `b` is the line the renderer wrote.
    expect(stored).toHaveLength(3);
    expect(stored[1]! + '\n').toBe(rendered.slice(rendered.indexOf('\n') + 1));
  });

  it('keeps a different line with the same timestamp and ordinal', async () => {
    const dir = tempDir();
    await writtenBefore(dir, [line('before the crash', 0)]);

    const second = createFileSink(config(dir), { log: captureLog().log });
    await second.start();
    await second.write(EncodedBatch.of([line('after the restart', 0)]));
    await second.close();
    const stored = (await readStore(dir)).get('web')!.map((e) => (e as { message: string }).message);
    expect(stored).toEqual(['before the crash', 'after the restart']);
  });

  it('keeps the order of concurrent writes while a tail is read', async () => {
    const dir = tempDir();
    const sink = createFileSink(config(dir), { log: captureLog().log });
    await sink.start();
    await Promise.all(Array.from({ length: 20 }, (_, i) => sink.write(EncodedBatch.of([line(`m${i}`, i)]))));
    await sink.close();
    const stored = (await readStore(dir)).get('web')!.map((e) => (e as { message: string }).message);
    expect(stored).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`));
  });
  it('goes on dropping across batches while every line so far was a replay', async () => {
    const dir = tempDir();
    await writtenBefore(dir, [line('a', 0), line('b', 1), line('c', 2), line('d', 3)]);

    const second = createFileSink(config(dir), { log: captureLog().log });
    await second.start();
    await second.write(EncodedBatch.of([line('a', 0), line('b', 1)]));
    await second.write(EncodedBatch.of([line('c', 2), line('d', 3), line('e', 4)]));
    await second.close();
    const stored = (await readStore(dir)).get('web')!.map((e) => (e as { message: string }).message);
    expect(stored).toEqual(['a', 'b', 'c', 'd', 'e']);
  });

  it('looks at each source of a batch on its own', async () => {
    const dir = tempDir();
    const db = container('db');
    await writtenBefore(dir, [line('a', 0), event('x', { container: db, stream: 'stdout' })]);

    const second = createFileSink(config(dir), { log: captureLog().log });
    await second.start();
    const y = event('y', { container: db, stream: 'stdout' });
    y.clogs.ordinal = 1;
    await second.write(EncodedBatch.of([line('a', 0), y, line('b', 1)]));
    await second.close();
    const store = await readStore(dir);
    expect(store.get('web')!.map((e) => (e as { message: string }).message)).toEqual(['a', 'b']);
    expect(store.get('db')!.map((e) => (e as { message: string }).message)).toEqual(['x', 'y']);
  });

  it('recognises a line an older release wrote with its fields in another order', async () => {
    const dir = tempDir();
    await writtenBefore(dir, [line('a', 0)]);
    const file = join(dir, 'web', readdirSync(join(dir, 'web'))[0]!);
    const b = line('b "q" é', 1);
    // The same event, keys in another order, non-ASCII escaped.
    const older = { clogs: b.clogs, stream: b.stream, container: b.container, host: b.host, message: b.message, '@timestamp': b['@timestamp'] };
    appendFileSync(file, JSON.stringify(older).replace('é', '\\u00e9') + '\n');

    const second = createFileSink(config(dir), { log: captureLog().log });
    await second.start();
    await second.write(EncodedBatch.of([line('b "q" é', 1), line('c', 2)]));
    await second.close();
    const stored = (await readStore(dir)).get('web')!.map((e) => (e as { message: string }).message);
    expect(stored).toEqual(['a', 'b "q" é', 'c']);
  });
  it('is dropped when it begins in an earlier file: the sink rotated by size inside the batch', async () => {
    const dir = tempDir();
    const cfg = config(dir, { rotate_size: 600 });
    const batch = () => EncodedBatch.of([line('a', 0), line('b', 1), line('c', 2), line('d', 3)]);
    const first = createFileSink(cfg, { log: captureLog().log });
    await first.start();
    await first.write(batch());
    await first.close();
    const files = await listFilesInOrder(join(dir, 'web'));
    expect(files.length).toBeGreaterThan(1);

    const { log, lines } = captureLog();
    const second = createFileSink(cfg, { log });
    await second.start();
    await second.write(batch());
    await second.write(EncodedBatch.of([line('e', 4)]));
    await second.close();
    const stored = (await readStore(dir)).get('web')!.map((e) => (e as { message: string }).message);
    expect(stored).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(lines.some((l) => l.msg === 'dropped a batch already written before a restart' && l.dropped === 4)).toBe(true);
  });

  it('is dropped when it is all in a compressed earlier file: a new day\'s file was created just before the crash', async () => {
    const dir = tempDir();
    const web = join(dir, 'web');
    mkdirSync(web);
    writeFileSync(join(web, '2026-11-22.0000.ndjson.gz'), gzipSync(rendered([line('a', 0), line('b', 1), line('c', 2)])));
    writeFileSync(join(web, '2026-11-23.0000.ndjson'), '');
    const second = createFileSink(config(dir, { rotate_daily: false }), { log: captureLog().log });
    await second.start();
    await second.write(EncodedBatch.of([line('b', 1), line('c', 2), line('d', 3)]));
    await second.close();
    const stored = (await readStore(dir)).get('web')!.map((e) => (e as { message: string }).message);
    expect(stored).toEqual(['a', 'b', 'c', 'd']);
  });

  it('reads no earlier file once the batch\'s first line is found in the newest one', async () => {
    const dir = tempDir();
    const web = join(dir, 'web');
    mkdirSync(web);
    // Not gzip: reading it would fail, and a failed read keeps the whole batch.
    writeFileSync(join(web, '2026-11-22.0000.ndjson.gz'), 'not gzip');
    writeFileSync(join(web, '2026-11-22.0001.ndjson'), rendered([line('a', 0), line('b', 1)]));
    const { log, lines } = captureLog();
    const second = createFileSink(config(dir, { rotate_daily: false }), { log });
    await second.start();
    await second.write(EncodedBatch.of([line('a', 0), line('b', 1), line('c', 2)]));
    await second.close();
    expect(lines.filter((l) => l.msg === 'cannot read a file tail to drop a replayed batch')).toEqual([]);
    const newest = readFileSync(join(web, '2026-11-22.0001.ndjson'), 'utf8').split('\n').slice(0, -1);
    expect(newest.map((l) => (JSON.parse(l) as LogEvent).message)).toEqual(['a', 'b', 'c']);
  });
});
