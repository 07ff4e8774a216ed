import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { EncodedBatch } from '../../../src/collector/encoded.js';
import type { LogEvent } from '../../../src/collector/event.js';
import type { FileSinkConfig } from '../../../src/config/schema.js';
import { ClogsError } from '../../../src/errors.js';
import { eventsOut, sinkErrors } from '../../../src/metrics.js';
import { createFileSink } from '../../../src/sinks/file/index.js';
import { nodeFileIo } from '../../../src/sinks/file/io.js';
import { dayOf, listFilesInOrder, sanitizeName } from '../../../src/sinks/file/layout.js';
import { HOSTILE, captureLog, config, container, countingIo, deferred, event, metric, readStore, removeTempDirs, tempDir } from './helpers.js';

afterAll(removeTempDirs);

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 10, 22, 23, 59, 58);

const messages = (events: unknown[]) => events.map((e) => (e as LogEvent).message);

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]));
}

describe('file sink: start', () => {
  it('syncs the entries of the directories it creates for the store', async () => {
    const root = tempDir();
    const io = countingIo();
    const sink = createFileSink(config(join(root, 'a', 'b')), { log: captureLog().log, io });
    await sink.start();
    expect(io.syncedDirs).toEqual([join(root, 'a'), root]);
    await sink.close();
  });
});

describe('file sink: layout', () => {
  it('writes one directory per container, falling back to id, tag, then input', async () => {
    const dir = tempDir();
    const { log } = captureLog();
    const sink = createFileSink(config(dir), { log });
    await sink.start();
    const web = container('web', 'aaa');
    const noName = container(undefined, 'bbb');
    const before = await metric(eventsOut);
    await sink.write(EncodedBatch.of([
      event('w1', { container: web, stream: 'stdout' }),
      event('i1', { container: noName }),
      event('t1', { tag: 'app.billing' }),
      event('f1'),
      event('w2', { container: web, stream: 'stderr' }),
    ]));
    await sink.write(EncodedBatch.of([event('t2', { tag: 'app.billing' }), event('w3', { container: web })]));
    await sink.close();
    const store = await readStore(dir);
    expect([...store.keys()].sort()).toEqual(['app.billing', 'bbb', 'forward', 'web']);
    expect(messages(store.get('web')!)).toEqual(['w1', 'w2', 'w3']);
    expect(messages(store.get('bbb')!)).toEqual(['i1']);
    expect(messages(store.get('app.billing')!)).toEqual(['t1', 't2']);
    expect(messages(store.get('forward')!)).toEqual(['f1']);
    expect(store.get('web')![1]).toMatchObject({ stream: 'stderr', container: { id: 'aaa', name: 'web' } });
    expect((await metric(eventsOut)) - before).toBe(7);
    const files = await listFilesInOrder(join(dir, 'web'));
    expect(files.map((f) => f.slice(f.lastIndexOf(sep) + 1))).toEqual([`${dayOf(Date.now())}.0000.ndjson`]);
  });

  it('keeps hostile container names and tags inside the directory, each in its own place', async () => {
    const root = tempDir();
    const dir = join(root, 'data');
    const { log } = captureLog();
    const sink = createFileSink(config(dir), { log });
    await sink.start();
    await sink.write(EncodedBatch.of(HOSTILE.map((name, i) => event(`c${i}`, { container: container(name, name === '' ? 'fallback-id' : name) }))));
    await sink.write(EncodedBatch.of(HOSTILE.filter((n) => n !== '').map((name, i) => event(`t${i}`, { tag: `tag:${name}` }))));
    await sink.close();
    expect(readdirSync(root)).toEqual(['data']);
    const files = walk(dir);
    for (const f of files) expect(relative(dir, f).split(sep), f).toHaveLength(2);
    const store = await readStore(dir);
    expect(store.size).toBe(HOSTILE.length + HOSTILE.length - 1);
    for (const [name, events] of store) {
      expect(name).toMatch(/^[A-Za-z0-9_][A-Za-z0-9._~-]*$/);
      expect(events).toHaveLength(1);
    }
    expect(store.get(sanitizeName('../../etc/passwd'))).toHaveLength(1);
    expect(existsSync(join(root, 'etc'))).toBe(false);
  });
});

describe('file sink: rotation', () => {
  it('rotates at rotate_size on line boundaries, and gives an oversized line a file of its own', async () => {
    const dir = tempDir();
    const { log } = captureLog();
    const sink = createFileSink(config(dir, { rotate_size: 1000 }), { log });
    await sink.start();
    const c = container('web');
    const sent: string[] = [];
    for (let b = 0; b < 6; b++) {
      const batch = Array.from({ length: 7 }, (_, i) => `batch ${b} line ${i} ${'x'.repeat((b * 7 + i) % 40)}`);
      if (b === 3) batch.push('huge ' + 'y'.repeat(3000));
      sent.push(...batch);
      await sink.write(EncodedBatch.of(batch.map((m) => event(m, { container: c }))));
    }
    await sink.close();
    const files = await listFilesInOrder(join(dir, 'web'));
    expect(files.length).toBeGreaterThan(5);
    files.forEach((f, i) => {
      expect(f.endsWith(`.${String(i).padStart(4, '0')}.ndjson`)).toBe(true);
      const text = readFileSync(f, 'utf8');
      expect(text.endsWith('\n')).toBe(true);
      if (text.includes('huge ')) expect(text.split('\n')).toHaveLength(2);
      else expect(statSync(f).size).toBeLessThanOrEqual(1000);
    });
    expect(messages((await readStore(dir)).get('web')!)).toEqual(sent);
  });

  it('starts a new file each UTC day of processing, whatever the events\' timestamps', async () => {
    const dir = tempDir();
    const { log } = captureLog();
    let now = T0;
    const sink = createFileSink(config(dir), { log, now: () => now });
    const c = container('web');
    await sink.write(EncodedBatch.of([event('day1 a', { container: c })]));
    now += 1000;
    await sink.write(EncodedBatch.of([event('day1 b', { container: c })]));
    now += 2000;
    // Backfilled: stamped on day 1, processed on day 2.
    await sink.write(EncodedBatch.of([event('day2 a', { container: c, '@timestamp': '2026-11-22T10:00:00.000000000Z' })]));
    await sink.close();
    const day1 = dayOf(T0);
    const day2 = dayOf(T0 + DAY);
    expect(readdirSync(join(dir, 'web')).sort()).toEqual([`${day1}.0000.ndjson`, `${day2}.0000.ndjson`]);
    expect(readFileSync(join(dir, 'web', `${day2}.0000.ndjson`), 'utf8')).toContain('day2 a');

    // A restart on day 2 appends to day 2's file; a clock stepped back to day 1 does too.
    for (const at of [T0 + 5000, T0 - 60_000]) {
      now = at;
      const again = createFileSink(config(dir), { log, now: () => now });
      await again.start();
      await again.write(EncodedBatch.of([event(`restart ${at}`, { container: c })]));
      await again.close();
    }
    expect(readdirSync(join(dir, 'web')).sort()).toEqual([`${day1}.0000.ndjson`, `${day2}.0000.ndjson`]);
    expect(messages((await readStore(dir)).get('web')!)).toEqual(['day1 a', 'day1 b', 'day2 a', `restart ${T0 + 5000}`, `restart ${T0 - 60_000}`]);
  });

  it('keeps appending across days when rotate_daily is off', async () => {
    const dir = tempDir();
    const { log } = captureLog();
    let now = T0;
    const c = container('web');
    const sink = createFileSink(config(dir, { rotate_daily: false }), { log, now: () => now });
    await sink.write(EncodedBatch.of([event('a', { container: c })]));
    now += 3 * DAY;
    await sink.write(EncodedBatch.of([event('b', { container: c })]));
    await sink.close();
    expect(readdirSync(join(dir, 'web'))).toEqual([`${dayOf(T0)}.0000.ndjson`]);
  });

  it('continues the newest file after a restart, or starts the next one when it is full', async () => {
    const dir = tempDir();
    const { log } = captureLog();
    const c = container('web');
    // Distinct lines: the same line again right after a restart is a replay, and dropped.
    const line = () => event('x'.repeat(200), { container: c, stream: 'stdout' });
    let ordinal = 0;
    const next = () => {
      const e = line();
      e.clogs.ordinal = ordinal++;
      return e;
    };
    const first = createFileSink(config(dir, { rotate_size: 10_000 }), { log });
    await first.write(EncodedBatch.of([next(), next()]));
    await first.close();
    const second = createFileSink(config(dir, { rotate_size: 10_000 }), { log });
    await second.start();
    await second.write(EncodedBatch.of([next()]));
    await second.close();
    const files = await listFilesInOrder(join(dir, 'web'));
    expect(files).toHaveLength(1);
    expect(readFileSync(files[0]!, 'utf8').split('\n')).toHaveLength(4);
    const third = createFileSink(config(dir, { rotate_size: statSync(files[0]!).size }), { log });
    await third.write(EncodedBatch.of([next()]));
    await third.close();
    expect(await listFilesInOrder(join(dir, 'web'))).toHaveLength(2);
  });
});

/** A started sink whose file operations are counted, with web's line w0 written deferred. */
async function sinkWithDeferredLine(over: Partial<FileSinkConfig> = {}, maxOpenFiles?: number) {
  const dir = tempDir();
  const { log } = captureLog();
  const io = countingIo();
  const sink = createFileSink(config(dir, over), { log, io, ...(maxOpenFiles === undefined ? {} : { maxOpenFiles }) });
  await sink.start();
  await sink.write(EncodedBatch.of([event('w0', { container: container('web') })]), { deferred: true });
  return { dir, io, sink };
}

/** An fdatasync's EIO, as Node reports it. */
const syncEio = (): Error => Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO', syscall: 'fdatasync' });

/** sinkWithDeferredLine(), and a background sync of w0 on disk until `onDisk` resolves. */
async function heldBackgroundSync(over: Partial<FileSinkConfig> = {}) {
  const { dir, io, sink } = await sinkWithDeferredLine(over);
  const onDisk = deferred();
  io.beforeSyncPath = () => onDisk.promise;
  const background = { done: false, promise: Promise.resolve() };
  background.promise = sink.sync!({ background: true }).then(() => void (background.done = true));
  await vi.waitFor(() => expect(io.counts.syncPath).toBe(1));
  return { dir, io, sink, background, onDisk };
}

describe('file sink: group commit and fsync', () => {
  it('coalesces writes that arrive during a commit into the next commit', async () => {
    const dir = tempDir();
    const { log } = captureLog();
    const io = countingIo();
    const gate = deferred();
    const started = deferred();
    io.beforeWrite = async () => {
      started.resolve();
      await gate.promise;
    };
    const sink = createFileSink(config(dir), { log, io });
    await sink.start();
    const c = container('web');
    const first = sink.write(EncodedBatch.of([event('first', { container: c })]));
    await started.promise;
    const rest = Array.from({ length: 99 }, (_, i) => sink.write(EncodedBatch.of([event(`w${i}`, { container: c })])));
    io.beforeWrite = undefined;
    gate.resolve();
    await Promise.all([first, ...rest]);
    expect(io.counts.writev).toBe(2);
    const same = Array.from({ length: 50 }, (_, i) => sink.write(EncodedBatch.of([event(`s${i}`, { container: c })])));
    await Promise.all(same);
    expect(io.counts.writev).toBe(3);
    await sink.close();
    expect(messages((await readStore(dir)).get('web')!)).toEqual(['first', ...Array.from({ length: 99 }, (_, i) => `w${i}`), ...Array.from({ length: 50 }, (_, i) => `s${i}`)]);
  });

  it('"batch": writes through O_DSYNC and resolves only after the write and the new file\'s directory entry are synced', async () => {
    const dir = tempDir();
    const { log } = captureLog();
    const io = countingIo();
    const gate = deferred();
    io.beforeWrite = () => gate.promise;
    const sink = createFileSink(config(dir), { log, io });
    await sink.start();
    let resolved = false;
    const done = sink.write(EncodedBatch.of([event('durable', { container: container('web') })])).then(() => {
      resolved = true;
      io.events.push('resolved');
    });
    await vi.waitFor(() => expect(io.events).toContain('write:start'));
    await sleep(20);
    expect(resolved).toBe(false);
    gate.resolve();
    await done;
    expect(io.counts.syncWritesOpen).toBe(1);
    // The write returns synced (O_DSYNC); then the new file's entry in web/, and web/ itself in the sink directory.
    expect(io.events).toEqual(['write:start', 'write:done', 'syncDir', 'syncDir', 'resolved']);
    await sink.close();
    // Nothing was left to sync at close.
    expect(io.counts.sync).toBe(0);
  });

  it('"batch", deferred writes: resolve once written, and one sync() makes every file they touched durable', async () => {
    const dir = tempDir();
    const { log } = captureLog();
    const io = countingIo();
    const sink = createFileSink(config(dir), { log, io });
    await sink.start();
    for (let i = 0; i < 3; i++) {
      await sink.write(EncodedBatch.of([event(`w${i}`, { container: container('web') }), event(`d${i}`, { container: container('db') })]), { deferred: true });
    }
    expect(messages((await readStore(dir)).get('web')!)).toEqual(['w0', 'w1', 'w2']);
    // Opened without O_DSYNC and written on the calling thread, and nothing synced yet: not the files, not their new directory entries.
    expect(io.counts.syncWritesOpen).toBe(0);
    expect(io.counts).toMatchObject({ writev: 0, writevNow: 6 });
    expect(io.counts.sync).toBe(0);
    expect(io.counts.syncDir).toBe(0);
    await sink.sync!();
    expect(io.counts.sync).toBe(2);
    expect(io.counts.syncDir).toBe(3);
    // A durable write to a file opened for deferred ones goes through the thread pool and is synced before it resolves.
    await sink.write(EncodedBatch.of([event('w3', { container: container('web') })]));
    expect(io.counts).toMatchObject({ sync: 3, writev: 1, writevNow: 6 });
    await sink.sync!();
    expect(io.counts.sync).toBe(3);
    await sink.close();
  });

  it('"batch", deferred writes: those of one turn of the event loop go out as one commit, one write per file, on this thread', async () => {
    const dir = tempDir();
    const { log } = captureLog();
    const io = countingIo();
    const sink = createFileSink(config(dir), { log, io });
    await sink.start();
    await sink.write(EncodedBatch.of([event('warm', { container: container('web') })]), { deferred: true });
    const before = io.counts.writevNow;
    // As reads of several connections in one poll phase: each write comes from its own callback, with microtasks run between them.
    const writes: Array<Promise<void>> = [];
    for (let i = 0; i < 4; i++) {
      writes.push(sink.write(EncodedBatch.of([event(`w${i}`, { container: container('web') }), event(`d${i}`, { container: container('db') })]), { deferred: true }));
      await new Promise<void>((resolve) => process.nextTick(resolve));
    }
    await Promise.all(writes);
    expect(io.counts.writevNow - before).toBe(2);
    expect(messages((await readStore(dir)).get('web')!)).toEqual(['warm', 'w0', 'w1', 'w2', 'w3']);
    // A large one too: handing it to the thread pool costs the main thread more.
    await sink.write(EncodedBatch.of([event('x'.repeat(200_000), { container: container('web') })]), { deferred: true });
    expect(io.counts.writevNow - before).toBe(3);
    expect(io.counts.writev).toBe(0);
    await sink.close();
  });

  it('"batch", deferred writes: once one waited on the file system on this thread, they go through the thread pool for a while', async () => {
    const dir = tempDir();
    const { log } = captureLog();
    const io = countingIo();
    let now = Date.UTC(2026, 11, 2, 12);
    let stallMs = 0;
    io.writevNow = (fd, bufs) => {
      io.counts.writevNow++;
      now += stallMs;
      return nodeFileIo.writevNow(fd, bufs);
    };
    const sink = createFileSink(config(dir), { log, io, now: () => now });
    await sink.start();
    const write = (text: string) => sink.write(EncodedBatch.of([event(text, { container: container('web') })]), { deferred: true });
    await write('quick');
    stallMs = 50;
    await write('waited');
    stallMs = 0;
    expect(io.counts).toMatchObject({ writevNow: 2, writev: 0 });
    await write('pool 1');
    now += 5_000;
    await write('pool 2');
    expect(io.counts).toMatchObject({ writevNow: 2, writev: 2 });
    now += 5_000;
    await write('here again');
    expect(io.counts).toMatchObject({ writevNow: 3, writev: 2 });
    expect(messages((await readStore(dir)).get('web')!)).toEqual(['quick', 'waited', 'pool 1', 'pool 2', 'here again']);
    await sink.close();
  });

  it('"batch", deferred writes: a failed sync rejects sync() and closes the file, which is reopened on its next write', async () => {
    const { dir, io, sink } = await sinkWithDeferredLine();
    io.beforeSync = () => Promise.reject(syncEio());
    await expect(sink.sync!()).rejects.toThrow(/cannot fsync .*web.*EIO/);
    delete io.beforeSync;
    const opened = io.counts.open;
    await sink.write(EncodedBatch.of([event('w1', { container: container('web') })]), { deferred: true });
    expect(io.counts.open).toBe(opened + 1);
    await sink.sync!();
    await sink.close();
    expect(messages((await readStore(dir)).get('web')!)).toEqual(['w0', 'w1']);
  });

  it('"batch", deferred writes: a background sync holds back no commit, and a sync() asked for after it waits for it', async () => {
    const { dir, io, sink, background, onDisk } = await heldBackgroundSync();
    // Deferred and durable writes alike go on while it is on disk.
    await sink.write(EncodedBatch.of([event('w1', { container: container('web') })]), { deferred: true });
    await sink.write(EncodedBatch.of([event('d0', { container: container('db') })]));
    expect(background.done).toBe(false);
    let syncDone = false;
    const synced = sink.sync!().then(() => (syncDone = true));
    await sleep(50);
    expect(syncDone).toBe(false);
    onDisk.resolve();
    await Promise.all([background.promise, synced]);
    // w1 came after the background sync took web's file: the sync() after it synced the file again.
    expect(io.counts).toMatchObject({ syncPath: 1, sync: 1 });
    await sink.close();
    const store = await readStore(dir);
    expect(messages(store.get('web')!)).toEqual(['w0', 'w1']);
    expect(messages(store.get('db')!)).toEqual(['d0']);
  });

  it('"batch", deferred writes: a file rotated while its background sync is on disk is closed without waiting, and sync() and close() wait for that sync', async () => {
    const { dir, io, sink, background, onDisk } = await heldBackgroundSync({ rotate_size: 300 });
    // Past rotate_size: web's first file is closed, its lines left to the sync under way.
    await sink.write(EncodedBatch.of([event('w1 ' + 'x'.repeat(300), { container: container('web') })]), { deferred: true });
    expect(io.counts.close).toBe(1);
    expect(io.counts.sync).toBe(0);
    let synced = false;
    const sync = sink.sync!().then(() => (synced = true));
    let closed = false;
    const closing = sink.close().then(() => (closed = true));
    await sleep(50);
    expect({ background: background.done, synced, closed }).toEqual({ background: false, synced: false, closed: false });
    onDisk.resolve();
    await Promise.all([background.promise, sync, closing]);
    expect(readdirSync(join(dir, 'web'))).toHaveLength(2);
    expect(messages((await readStore(dir)).get('web')!)).toEqual(['w0', 'w1 ' + 'x'.repeat(300)]);
  });

  it('"batch", deferred writes: a failed background sync rejects, makes the next sync() reject, and its file is closed between commits', async () => {
    const { dir, io, sink } = await sinkWithDeferredLine();
    io.beforeSyncPath = () => Promise.reject(syncEio());
    await expect(sink.sync!({ background: true })).rejects.toThrow(/cannot fsync .*web.*EIO/);
    delete io.beforeSyncPath;
    // Closed by the loop, which no write was using then: left open, its descriptor would report the error again on its next sync.
    await vi.waitFor(() => expect(io.counts.close).toBe(1));
    const opened = io.counts.open;
    await sink.write(EncodedBatch.of([event('w1', { container: container('web') })]), { deferred: true });
    expect(io.counts.open).toBe(opened + 1);
    await expect(sink.sync!()).rejects.toThrow(/cannot fsync .*web.*EIO/);
    await sink.sync!();
    await sink.close();
    expect(messages((await readStore(dir)).get('web')!)).toEqual(['w0', 'w1']);
  });

  it('"batch", deferred writes: a background sync that cannot open a file leaves it to the next sync, and one whose file is gone has nothing to sync', async () => {
    const { dir, io, sink } = await sinkWithDeferredLine();
    io.beforeSyncPath = () => Promise.reject(Object.assign(new Error('EMFILE: too many open files, open'), { code: 'EMFILE', syscall: 'open' }));
    await expect(sink.sync!({ background: true })).rejects.toThrow(/EMFILE/);
    delete io.beforeSyncPath;
    // Not synced, and no failure kept: the next sync() syncs it through its own descriptor.
    await sink.sync!();
    expect(io.counts).toMatchObject({ sync: 1, close: 0 });

    await sink.write(EncodedBatch.of([event('w1', { container: container('web') })]), { deferred: true });
    io.beforeSyncPath = () => Promise.reject(Object.assign(new Error('ENOENT: no such file or directory, open'), { code: 'ENOENT', syscall: 'open' }));
    await sink.sync!({ background: true });
    delete io.beforeSyncPath;
    await sink.sync!();
    expect(io.counts).toMatchObject({ sync: 1, close: 0 });
    await sink.close();
    expect(messages((await readStore(dir)).get('web')!)).toEqual(['w0', 'w1']);
  });

  it('"batch", deferred writes: a file closed to make room whose sync failed makes the next sync() reject', async () => {
    const { io, sink } = await sinkWithDeferredLine({}, 1);
    io.beforeSync = () => Promise.reject(syncEio());
    // Opening db's file closes web's, which is dirty: its sync fails there, where no caller waits.
    await sink.write(EncodedBatch.of([event('d0', { container: container('db') })]), { deferred: true });
    delete io.beforeSync;
    await expect(sink.sync!()).rejects.toThrow(/cannot fsync .*web.*EIO/);
    await sink.sync!();
    await sink.close();
  });

  it('"batch": a sync() asked for while durable writes keep coming waits for one commit at most', async () => {
    const dir = tempDir();
    const { log } = captureLog();
    const io = countingIo();
    const sink = createFileSink(config(dir), { log, io });
    await sink.start();
    let stop = false;
    // Each writer writes again as soon as its write resolved, as a forward connection with one batch in flight does.
    const writers = [0, 1, 2].map(async (w) => {
      for (let n = 0; !stop; n++) await sink.write(EncodedBatch.of([event(`w${w} ${n}`, { container: container('fwd') })]));
    });
    await sink.write(EncodedBatch.of([event('d', { container: container('dock') })]), { deferred: true });
    // Durable writes go through writev, one per commit here (one source); the deferred one went through writevNow.
    const commitsBefore = io.counts.writev;
    let commitsWaited: number | undefined;
    const synced = sink.sync!().then(() => (commitsWaited = io.counts.writev - commitsBefore));
    await vi.waitFor(() => expect(commitsWaited !== undefined || io.counts.writev - commitsBefore >= 50).toBe(true), { timeout: 10_000 });
    stop = true;
    await Promise.all([synced, ...writers]);
    expect(commitsWaited).toBeLessThanOrEqual(1);
    await sink.close();
  });

  it('"interval": syncs on its timer while writes keep coming', async () => {
    const dir = tempDir();
    const { log } = captureLog();
    const io = countingIo();
    const sink = createFileSink(config(dir, { fsync: 'interval' }), { log, io, syncIntervalMs: 20 });
    await sink.start();
    let stop = false;
    const writers = [0, 1, 2].map(async (w) => {
      for (let n = 0; !stop; n++) await sink.write(EncodedBatch.of([event(`w${w} ${n}`, { container: container('fwd') })]));
    });
    try {
      // The ticks' syncs run beside the commits, through descriptors of their own.
      await vi.waitFor(() => expect(io.counts.syncPath).toBeGreaterThanOrEqual(3), { timeout: 3000 });
    } finally {
      stop = true;
      await Promise.all(writers);
    }
    await sink.close();
  });

  it('"interval": resolves after the write and syncs on a timer; "never" does not sync until close', async () => {
    for (const fsync of ['interval', 'never'] as const) {
      const dir = tempDir();
      const { log } = captureLog();
      const io = countingIo();
      const sink = createFileSink(config(dir, { fsync }), { log, io, syncIntervalMs: 30 });
      await sink.write(EncodedBatch.of([event('a', { container: container('web') })]));
      expect(io.counts.sync + io.counts.syncPath).toBe(0);
      if (fsync === 'interval') await vi.waitFor(() => expect(io.counts.syncPath).toBe(1));
      else await sleep(150);
      // Nothing new was written: later ticks have nothing to sync.
      await sleep(100);
      expect(io.counts.syncPath).toBe(fsync === 'interval' ? 1 : 0);
      if (fsync === 'interval') expect(io.counts.syncDir).toBeGreaterThanOrEqual(1);
      await sink.write(EncodedBatch.of([event('b', { container: container('web') })]));
      await sink.close();
      // b is synced by a tick during its write, else by closing, which syncs what is dirty whatever the policy.
      expect(io.counts.sync + io.counts.syncPath).toBe(fsync === 'interval' ? 2 : 1);
      expect(messages((await readStore(dir)).get('web')!)).toEqual(['a', 'b']);
    }
  });

  it('keeps at most maxOpenFiles descriptors open, closing the least recently used', async () => {
    const dir = tempDir();
    const { log } = captureLog();
    const io = countingIo();
    const sink = createFileSink(config(dir), { log, io, maxOpenFiles: 2 });
    const cs = ['a', 'b', 'c', 'd', 'e'].map((n) => container(n));
    for (let round = 0; round < 4; round++) {
      await sink.write(EncodedBatch.of(cs.map((c) => event(`${c.name}${round}`, { container: c }))));
      expect(io.counts.open - io.counts.close).toBeLessThanOrEqual(2);
      await sink.write(EncodedBatch.of([event(`a${round}x`, { container: cs[0]! })]));
      expect(io.counts.open - io.counts.close).toBeLessThanOrEqual(2);
    }
    await sink.close();
    expect(io.counts.open).toBe(io.counts.close);
    const store = await readStore(dir);
    expect(messages(store.get('a')!)).toEqual(['a0', 'a0x', 'a1', 'a1x', 'a2', 'a2x', 'a3', 'a3x']);
    expect(messages(store.get('e')!)).toEqual(['e0', 'e1', 'e2', 'e3']);
    for (const n of ['a', 'b', 'c', 'd', 'e']) expect(readdirSync(join(dir, n))).toHaveLength(1);
  });
});

describe('file sink: everything at once', () => {
  it('keeps every source\'s lines whole and in call order across concurrency, rotation, days, evictions, objects and lines', async () => {
    const dir = tempDir();
    const { log } = captureLog();
    let now = T0;
    const sink = createFileSink(config(dir, { rotate_size: 2000 }), { log, now: () => now, maxOpenFiles: 3 });
    await sink.start();
    let seed = 42;
    const random = (n: number) => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed % n;
    };
    const sources = Array.from({ length: 12 }, (_, i) => (i % 4 === 3 ? { tag: `app.${i}` } : { container: container(`c${i}`) }));
    const expected = new Map<string, string[]>();
    const writes: Promise<void>[] = [];
    for (let w = 0; w < 300; w++) {
      const batch = Array.from({ length: 1 + random(20) }, (_, i) => {
        const src = sources[random(sources.length)]!;
        const name = src.container?.name ?? src.tag!;
        const message = `${name} w${w} e${i} ${'é'.repeat(random(120))}`;
        expected.set(name, [...(expected.get(name) ?? []), message]);
        return event(message, src);
      });
      writes.push(sink.write(EncodedBatch.of(batch)));
      if (random(10) === 0) now += random(3) * 1000;
      if (random(4) === 0) await writes.at(-1);
    }
    await Promise.all(writes);
    await sink.close();
    const store = await readStore(dir);
    expect(new Set(store.keys())).toEqual(new Set(expected.keys()));
    for (const [name, sent] of expected) expect(messages(store.get(name)!)).toEqual(sent);
    for (const f of walk(dir)) expect(statSync(f).size).toBeLessThanOrEqual(2000);
    expect(new Set(walk(dir).map((f) => f.slice(f.lastIndexOf(sep) + 1, f.lastIndexOf(sep) + 11))).size).toBeGreaterThan(1);
  });
});

describe('file sink: crash repair', () => {
  it('cuts a torn last line on start and logs how many bytes it removed', async () => {
    const dir = tempDir();
    const today = dayOf(Date.now());
    mkdirSync(join(dir, 'web'));
    mkdirSync(join(dir, 'api'));
    mkdirSync(join(dir, 'old'));
    const good = JSON.stringify(event('complete')) + '\n';
    const torn = ['{"@timestamp":"2026-11-22T09:', '{"message":"' + 'z'.repeat(200_000), '{"no newline at all"'];
    writeFileSync(join(dir, 'web', `${today}.0000.ndjson`), good + torn[0]);
    writeFileSync(join(dir, 'api', `${today}.0000.ndjson`), good + good + torn[1]);
    writeFileSync(join(dir, 'old', '2020-01-01.0000.ndjson'), torn[2]!);
    const { log, lines } = captureLog();
    const sink = createFileSink(config(dir), { log });
    await sink.start();
    expect(readFileSync(join(dir, 'web', `${today}.0000.ndjson`), 'utf8')).toBe(good);
    expect(readFileSync(join(dir, 'api', `${today}.0000.ndjson`), 'utf8')).toBe(good + good);
    expect(readFileSync(join(dir, 'old', '2020-01-01.0000.ndjson'), 'utf8')).toBe('');
    const warnings = lines.filter((l) => l.msg === 'cut a torn last line left by a crash');
    expect(warnings.map((w) => w.bytes).sort()).toEqual(torn.map((t) => t.length).sort());
    expect(warnings.every((w) => w.level === 40)).toBe(true);
    await sink.write(EncodedBatch.of([event('after', { container: container('web') })]));
    await sink.close();
    expect(messages((await readStore(dir)).get('web')!)).toEqual(['complete', 'after']);
  });

  it('repairs a file it reopens to append to', async () => {
    const dir = tempDir();
    const { log, lines } = captureLog();
    const sink = createFileSink(config(dir), { log });
    await sink.start();
    mkdirSync(join(dir, 'web'));
    const file = join(dir, 'web', `${dayOf(Date.now())}.0000.ndjson`);
    writeFileSync(file, JSON.stringify(event('before')) + '\n{"torn');
    await sink.write(EncodedBatch.of([event('after', { container: container('web') })]));
    await sink.close();
    expect(messages((await readStore(dir)).get('web')!)).toEqual(['before', 'after']);
    expect(lines.find((l) => l.msg === 'cut a torn last line left by a crash')).toMatchObject({ path: file, bytes: '{"torn'.length });
  });
});

describe('file sink: errors and shutdown', () => {
  it('flushes what was handed in on close, then rejects writes with CLOGS_QUEUE_CLOSED', async () => {
    const dir = tempDir();
    const { log } = captureLog();
    const sink = createFileSink(config(dir), { log });
    const pending = [sink.write(EncodedBatch.of([event('a', { container: container('web') })])), sink.write(EncodedBatch.of([event('b', { container: container('web') })]))];
    const closed = sink.close();
    await expect(sink.write(EncodedBatch.of([event('late')]))).rejects.toMatchObject({ code: 'CLOGS_QUEUE_CLOSED' });
    await Promise.all(pending);
    await closed;
    await expect(sink.write(EncodedBatch.of([event('later')]))).rejects.toBeInstanceOf(ClogsError);
    expect(messages((await readStore(dir)).get('web')!)).toEqual(['a', 'b']);
  });

  it('rejects with CLOGS_SINK when the directory cannot be created (its parent is a file), and goes on', async () => {
    const root = tempDir();
    writeFileSync(join(root, 'file'), '');
    const dir = join(root, 'file', 'data');
    const { log, lines } = captureLog();
    const sink = createFileSink(config(dir), { log });
    await expect(sink.start()).rejects.toMatchObject({ code: 'CLOGS_SINK', message: expect.stringContaining('ENOTDIR') });
    const errorsBefore = await metric(sinkErrors);
    const err = await sink.write(EncodedBatch.of([event('x', { container: container('web') })])).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClogsError);
    expect(err).toMatchObject({ code: 'CLOGS_SINK', message: expect.stringMatching(/ENOTDIR.*|.*ENOTDIR/) });
    expect((err as Error).message).toContain(join(dir, 'web'));
    expect((await metric(sinkErrors)) - errorsBefore).toBe(1);
    expect(sink.ready!()).toBe(false);
    expect(lines.some((l) => l.msg === 'file write failed' && l.level === 50)).toBe(true);
    await expect(sink.write(EncodedBatch.of([event('y', { container: container('web') })]))).rejects.toMatchObject({ code: 'CLOGS_SINK' });
    await sink.close();
  });

  it('fails only the writes that touched a broken source', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'blocked'), 'a file where a directory should be');
    const { log } = captureLog();
    const sink = createFileSink(config(dir), { log });
    await sink.start();
    const blocked = sink.write(EncodedBatch.of([event('b', { container: container('blocked') }), event('ok1', { container: container('ok') })]));
    const fine = sink.write(EncodedBatch.of([event('ok2', { container: container('ok') })]));
    await expect(blocked).rejects.toMatchObject({ code: 'CLOGS_SINK' });
    await expect(fine).resolves.toBeUndefined();
    await sink.close();
    expect(messages((await readStore(dir)).get('ok')!)).toEqual(['ok1', 'ok2']);
  });

  // EMFILE (out of descriptors) is not a disk error: the write fails at once
  // instead of waiting. The directory's new entry is still not durable, so
  // the next write there, into a file that now exists, must sync it again.
  const failingDirSync = (fails: (path: string) => boolean) => {
    const io = countingIo();
    const syncDir = io.syncDir;
    const failed: string[] = [];
    io.syncDir = async (path) => {
      if (fails(path)) {
        failed.push(path);
        throw Object.assign(new Error('EMFILE: too many open files, open'), { code: 'EMFILE' });
      }
      return syncDir(path);
    };
    return { io, failed };
  };
  /** The first directory sync fails, the others go through. */
  const firstOnly = () => {
    let failures = 1;
    return () => failures-- > 0;
  };

  it('"batch": a directory whose sync failed is synced before the next durable write there resolves', async () => {
    const dir = tempDir();
    const { log } = captureLog();
    const { io, failed } = failingDirSync(firstOnly());
    const sink = createFileSink(config(dir), { log, io });
    await sink.start();
    await expect(sink.write(EncodedBatch.of([event('first', { container: container('web') })]))).rejects.toMatchObject({ code: 'CLOGS_SINK' });
    expect(failed).toHaveLength(1);
    const synced = io.counts.syncDir;
    // The client sends it again: the file exists now, so nothing new is created.
    await sink.write(EncodedBatch.of([event('first', { container: container('web') })]));
    // web/ and the sink's directory got new entries; the one whose sync failed is synced now.
    expect([dir, join(dir, 'web')]).toContain(failed[0]);
    expect(io.counts.syncDir - synced).toBe(1);
    await sink.close();
  });

  it('"batch": a directory whose sync failed fails only the writes to files below it', async () => {
    const dir = tempDir();
    const { log } = captureLog();
    const { io } = failingDirSync((path) => path === join(dir, 'web'));
    const sink = createFileSink(config(dir), { log, io });
    await sink.start();
    const web = sink.write(EncodedBatch.of([event('w', { container: container('web') })]));
    const db = sink.write(EncodedBatch.of([event('d', { container: container('db') })]));
    await expect(web).rejects.toMatchObject({ code: 'CLOGS_SINK', message: expect.stringContaining('EMFILE') });
    await expect(db).resolves.toBeUndefined();
    await sink.close();
  });

  // A background sync's failed directory is not kept for the next sync() to
  // reject with: that sync() syncs it again and answers for it.
  it.each([
    ['sync() rejects', false],
    ['a background sync rejects', true],
  ])('"batch", deferred writes: a directory whose sync failed: %s, and the next sync() syncs it, resolving when that works', async (_, background) => {
    const dir = tempDir();
    const { log } = captureLog();
    const { io, failed } = failingDirSync(firstOnly());
    const sink = createFileSink(config(dir), { log, io });
    await sink.start();
    await sink.write(EncodedBatch.of([event('w', { container: container('web') })]), { deferred: true });
    await expect(sink.sync!(background ? { background: true } : undefined)).rejects.toMatchObject({ message: expect.stringContaining('EMFILE') });
    const synced = io.counts.syncDir;
    await sink.sync!();
    expect(io.counts.syncDir - synced).toBe(1);
    expect(failed).toHaveLength(1);
    await sink.close();
  });
});
