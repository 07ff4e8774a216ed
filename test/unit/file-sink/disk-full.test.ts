/**
 * The file sink on a full or failing disk: writes wait and are retried, the
 * files never keep a torn line or a line twice, and the sink says why it is
 * not ready, once. The disk is the real one; its failures are injected
 * through FileIo the way the kernel reports them.
 */
import { EncodedBatch } from '../../../src/collector/encoded.js';
import { readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import type { LogEvent } from '../../../src/collector/event.js';
import { sinkBlocked, sinkWriteRetries } from '../../../src/metrics.js';
import { createFileSink } from '../../../src/sinks/file/index.js';
import { nodeFileIo } from '../../../src/sinks/file/io.js';
import { listFilesInOrder } from '../../../src/sinks/file/layout.js';
import { captureLog, config, container, countingIo, event, readStore, removeTempDirs, tempDir } from './helpers.js';

afterAll(removeTempDirs);

const BACKOFF = { initialMs: 5, maxMs: 20 };
const messages = (events: unknown[]) => events.map((e) => (e as LogEvent).message);
const diskError = (code: string): Error => Object.assign(new Error(`${code}: injected, write`), { code });

async function gauge(reason: string): Promise<number> {
  return (await sinkBlocked.get()).values.find((v) => v.labels.sink === 'file' && v.labels.reason === reason)?.value ?? 0;
}
async function retries(reason: string): Promise<number> {
  return (await sinkWriteRetries.get()).values.find((v) => v.labels.sink === 'file' && v.labels.reason === reason)?.value ?? 0;
}

/** Tracks whether a promise settled, without awaiting it. */
function track(p: Promise<void>): { settled: () => boolean; promise: Promise<void> } {
  let settled = false;
  const promise = p.finally(() => (settled = true));
  return { settled: () => settled, promise };
}

describe('file sink: a full disk', () => {
  it('holds a write through ENOSPC after a partial write, cut back to whole lines, and writes it once when space returns', async () => {
    const dir = tempDir();
    const { log, lines } = captureLog();
    const io = countingIo();
    const sink = createFileSink(config(dir), { log, io, diskBackoff: BACKOFF });
    await sink.start();
    const c = container('web');
    await sink.write(EncodedBatch.of([event('before', { container: c })]));
    const retriesBefore = await retries('ENOSPC');
    let full = true;
    let partial = true;
    io.writevOverride = async (fd, bufs) => {
      if (!full) return nodeFileIo.writev(fd, bufs);
      if (partial) {
        partial = false;
        // Part of the data reaches the disk, cutting a line in the middle: the kernel reports the short count.
        const all = Buffer.concat(bufs);
        return nodeFileIo.writev(fd, [all.subarray(0, Math.floor(all.length / 2) + 3)]);
      }
      throw diskError('ENOSPC');
    };
    const first = track(sink.write(EncodedBatch.of(Array.from({ length: 10 }, (_, i) => event(`held ${i} ${'p'.repeat(50)}`, { container: c })))));
    await vi.waitFor(async () => expect(await retries('ENOSPC')).toBeGreaterThanOrEqual(retriesBefore + 3));
    // Writes that come meanwhile queue behind it.
    const second = track(sink.write(EncodedBatch.of([event('meanwhile', { container: c })])));
    await vi.waitFor(async () => expect(await retries('ENOSPC')).toBeGreaterThanOrEqual(retriesBefore + 6));

    expect(first.settled()).toBe(false);
    expect(second.settled()).toBe(false);
    expect(sink.ready!()).toBe(false);
    expect(sink.notReadyReason!()).toBe(`disk full: ENOSPC on ${join(dir, 'web', (await listFilesInOrder(join(dir, 'web')))[0]!.split('/').pop()!)}`);
    expect(await gauge('ENOSPC')).toBe(1);
    const file = (await listFilesInOrder(join(dir, 'web')))[0]!;
    // Cut back to the last whole line while the disk is full.
    expect(readFileSync(file, 'utf8')).toMatch(/"before".*\n(.*"held \d .*\n)*$/);

    full = false;
    await Promise.all([first.promise, second.promise]);
    expect(sink.ready!()).toBe(true);
    expect(sink.notReadyReason!()).toBeUndefined();
    expect(await gauge('ENOSPC')).toBe(0);
    await sink.close();
    expect(messages((await readStore(dir)).get('web')!)).toEqual([
      'before',
      ...Array.from({ length: 10 }, (_, i) => `held ${i} ${'p'.repeat(50)}`),
      'meanwhile',
    ]);
    const warns = lines.filter((l) => l.level === 40 && l.code === 'ENOSPC');
    expect(warns).toHaveLength(1);
    expect(warns[0]).toMatchObject({ path: file, msg: expect.stringContaining('disk full') });
    const infos = lines.filter((l) => l.msg === 'the disk takes writes again; what waited is written');
    expect(infos).toHaveLength(1);
    expect(infos[0]).toMatchObject({ code: 'ENOSPC', blockedMs: expect.any(Number), retries: expect.any(Number) });
    expect(infos[0]!.retries as number).toBeGreaterThanOrEqual(6);
    // No error lines: nothing failed.
    expect(lines.filter((l) => (l.level as number) >= 50)).toEqual([]);
  });

  it('drops what a write that failed with EIO appended without saying so, and writes each line once', async () => {
    const dir = tempDir();
    const { log } = captureLog();
    const io = countingIo();
    const sink = createFileSink(config(dir), { log, io, diskBackoff: BACKOFF });
    await sink.start();
    const c = container('web');
    await sink.write(EncodedBatch.of([event('before', { container: c })]));
    let failures = 2;
    io.writevOverride = async (fd, bufs) => {
      const n = await nodeFileIo.writev(fd, bufs);
      // O_DSYNC: the bytes went into the file, then its sync failed; the call reports only the error.
      if (failures-- > 0) throw diskError('EIO');
      return n;
    };
    // The cut is synced after the write succeeds; that sync fails once too.
    let syncFailures = 1;
    io.beforeSync = async () => {
      if (syncFailures-- > 0) throw diskError('EIO');
    };
    await sink.write(EncodedBatch.of([event('one', { container: c }), event('two', { container: c })]));
    expect(io.counts.writev).toBe(4);
    expect(syncFailures).toBe(-1);
    await sink.close();
    expect(messages((await readStore(dir)).get('web')!)).toEqual(['before', 'one', 'two']);
  });

  it('retries opening and rotating files without closing a descriptor twice', async () => {
    const dir = tempDir();
    const { log } = captureLog();
    const io = countingIo();
    let failOpens = 0;
    let failDirSyncs = 0;
    const openAppend = io.openAppend;
    const syncDir = io.syncDir;
    io.openAppend = async (path, syncWrites) => {
      if (failOpens > 0) {
        failOpens--;
        throw diskError('ENOSPC');
      }
      return openAppend(path, syncWrites);
    };
    io.syncDir = async (path) => {
      if (failDirSyncs > 0) {
        failDirSyncs--;
        throw diskError('EIO');
      }
      return syncDir(path);
    };
    const sink = createFileSink(config(dir, { rotate_size: 600 }), { log, io, diskBackoff: BACKOFF });
    await sink.start();
    failOpens = 3;
    failDirSyncs = 2;
    const c = container('web');
    const sent = Array.from({ length: 12 }, (_, i) => `line ${i} ${'r'.repeat(100)}`);
    await sink.write(EncodedBatch.of(sent.slice(0, 6).map((m) => event(m, { container: c }))));
    failOpens = 2;
    await sink.write(EncodedBatch.of(sent.slice(6).map((m) => event(m, { container: c }))));
    await sink.close();
    expect(failOpens).toBe(0);
    expect(failDirSyncs).toBe(0);
    expect((await listFilesInOrder(join(dir, 'web'))).length).toBeGreaterThan(2);
    expect(messages((await readStore(dir)).get('web')!)).toEqual(sent);
    expect(io.counts.close).toBe(io.counts.open);
  });

  it('does not wait out other errors: EACCES still fails the write', async () => {
    const dir = tempDir();
    const { log } = captureLog();
    const io = countingIo();
    const sink = createFileSink(config(dir), { log, io, diskBackoff: BACKOFF });
    await sink.start();
    io.writevOverride = async () => {
      throw diskError('EACCES');
    };
    await expect(sink.write(EncodedBatch.of([event('x', { container: container('web') })]))).rejects.toMatchObject({ code: 'CLOGS_SINK', message: expect.stringContaining('EACCES') });
    expect(sink.ready!()).toBe(false);
    expect(sink.notReadyReason!()).toBeUndefined();
    io.writevOverride = undefined;
    await sink.write(EncodedBatch.of([event('y', { container: container('web') })]));
    expect(sink.ready!()).toBe(true);
    await sink.close();
    expect(messages((await readStore(dir)).get('web')!)).toEqual(['y']);
  });
});

describe('file sink: a torn write it cannot cut back', () => {
  it('syncs the deferred lines of the file it closes, which no later sync() would see', async () => {
    const dir = tempDir();
    const io = countingIo();
    const web = container('web');
    const sink = createFileSink(config(dir), { log: captureLog().log, io, diskBackoff: BACKOFF });
    await sink.start();
    await sink.write(EncodedBatch.of([event('w0', { container: web })]), { deferred: true });
    const before = io.counts.sync;
    let calls = 0;
    io.writevNow = (fd, bufs) => {
      if (calls++ === 0) return writeSync(fd, bufs[0]!.subarray(0, 10));
      throw Object.assign(new Error('EFBIG: file too large, write'), { code: 'EFBIG' });
    };
    io.truncate = async () => {
      throw Object.assign(new Error('EPERM: operation not permitted, ftruncate'), { code: 'EPERM' });
    };
    await expect(sink.write(EncodedBatch.of([event('w1', { container: web })]), { deferred: true })).rejects.toThrow('EFBIG');
    expect(io.counts.sync - before).toBe(1);
    io.writevNow = nodeFileIo.writevNow;
    io.truncate = nodeFileIo.truncate;
    await sink.sync!();
    await sink.close();
  });
});

describe('file sink: a failed fdatasync of lines written without O_DSYNC', () => {
  const web = container('web');
  /** Makes the next `n` file syncs fail with EIO; returns how many were attempted. */
  function failSyncs(io: ReturnType<typeof countingIo>, n: number): () => number {
    let attempts = 0;
    io.beforeSync = async () => {
      attempts++;
      if (n-- > 0) throw diskError('EIO');
    };
    return () => attempts;
  }

  it('fails the durable write it covered instead of retrying it, and the next sync()', async () => {
    const dir = tempDir();
    const { log } = captureLog();
    const io = countingIo();
    const sink = createFileSink(config(dir), { log, io, diskBackoff: BACKOFF });
    await sink.start();
    // A deferred write opens web's file without O_DSYNC.
    await sink.write(EncodedBatch.of([event('w0', { container: web })]), { deferred: true });
    const attempts = failSyncs(io, 1);
    await expect(sink.write(EncodedBatch.of([event('w1', { container: web })]))).rejects.toMatchObject({ code: 'CLOGS_SINK', message: expect.stringMatching(/cannot fsync .*web.*EIO/) });
    expect(attempts()).toBe(1);
    // w0 was in the same pages.
    await expect(sink.sync!()).rejects.toThrow(/cannot fsync .*web.*EIO/);
    await sink.write(EncodedBatch.of([event('w2', { container: web })]));
    await sink.sync!();
    await sink.close();
  });

  it('fails a durable write whose file was synced as it rotated inside the write', async () => {
    const dir = tempDir();
    const { log } = captureLog();
    const io = countingIo();
    const sink = createFileSink(config(dir, { rotate_size: 600 }), { log, io, diskBackoff: BACKOFF });
    await sink.start();
    await sink.write(EncodedBatch.of([event('w0', { container: web })]), { deferred: true });
    failSyncs(io, 1);
    const write = sink.write(EncodedBatch.of(Array.from({ length: 4 }, (_, i) => event(`d${i}`, { container: web }))));
    await expect(write).rejects.toMatchObject({ code: 'CLOGS_SINK', message: expect.stringMatching(/cannot fsync .*web.*0000\.ndjson.*EIO/) });
    await expect(sink.sync!()).rejects.toThrow(/EIO/);
    await sink.close();
  });

  it('fails the next sync(), not the write, when a file of deferred writes fails its sync as the write rotates it', async () => {
    for (const deferred of [true, false]) {
      const dir = tempDir();
      const { log } = captureLog();
      const io = countingIo();
      const sink = createFileSink(config(dir, { rotate_size: 600 }), { log, io, diskBackoff: BACKOFF });
      await sink.start();
      await sink.write(EncodedBatch.of([event('w0', { container: web }), event('w1', { container: web })]), { deferred: true });
      const attempts = failSyncs(io, 1);
      // Does not fit: the file is synced and closed, and the line goes to the next one.
      await sink.write(EncodedBatch.of([event('w2', { container: web })]), { deferred });
      expect(attempts(), `deferred: ${deferred}`).toBe(deferred ? 1 : 2);
      expect(await listFilesInOrder(join(dir, 'web'))).toHaveLength(2);
      await expect(sink.sync!()).rejects.toThrow(/cannot fsync .*web.*0000\.ndjson.*EIO/);
      await sink.sync!();
      await sink.close();
    }
  });
});
