import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import pino from 'pino';
import type { ContainerMeta, LogEvent } from '../../../src/collector/event.js';
import type { FileSinkConfig } from '../../../src/config/schema.js';
import { nodeFileIo, type FileIo } from '../../../src/sinks/file/io.js';
import { listFilesInOrder, listSourceDirs } from '../../../src/sinks/file/layout.js';
import { eventsOut, sinkErrors } from '../../../src/metrics.js';

const made: string[] = [];

export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'clogs-file-sink-'));
  made.push(dir);
  return dir;
}

export function removeTempDirs(): void {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
}

export function config(dir: string, over: Partial<FileSinkConfig> = {}): FileSinkConfig {
  return { enabled: true, dir, rotate_size: 100 * 1024 * 1024, rotate_daily: true, fsync: 'batch', compress: false, retention: { check_interval: 30_000 }, ...over };
}

/** A pino logger whose lines land in `lines`. */
export function captureLog() {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, lines };
}

export function container(name: string | undefined, id = 'c0ffee' + (name ?? 'anon'), extra: Partial<ContainerMeta> = {}): ContainerMeta {
  return { ...(id ? { id } : {}), ...(name !== undefined ? { name } : {}), image: { name: 'busybox:latest' }, ...extra };
}

let seq = 1_795_000_000_000_000;
export function event(message: string, over: Partial<LogEvent> & { tag?: string } = {}): LogEvent {
  const { tag, ...rest } = over;
  return {
    '@timestamp': '2026-11-22T09:53:10.526990943Z',
    message,
    host: { name: 'test-host' },
    clogs: { input: 'forward', seq: seq++, ordinal: 0, ...(tag !== undefined ? { tag } : {}) },
    ...rest,
  };
}

/** Every line under a sink directory: per source directory name, the parsed events in file order. */
export async function readStore(dir: string): Promise<Map<string, unknown[]>> {
  const out = new Map<string, unknown[]>();
  for (const sourceDir of await listSourceDirs(dir)) {
    const events: unknown[] = [];
    for (const file of await listFilesInOrder(sourceDir)) {
      const text = file.endsWith('.gz') ? gunzipSync(readFileSync(file)).toString('utf8') : readFileSync(file, 'utf8');
      if (text !== '' && !text.endsWith('\n')) throw new Error(`${file} ends with a torn line`);
      for (const line of text.split('\n').slice(0, -1)) events.push(JSON.parse(line));
    }
    out.set(sourceDir.slice(dir.length + 1), events);
  }
  return out;
}

export interface CountingIo extends FileIo {
  /** `writevNow`: the deferred writes made on the calling thread (no hooks: they cannot wait). */
  /** `syncPath`: the background syncs' (through a descriptor of their own), not in `sync`. */
  counts: { sync: number; syncPath: number; syncDir: number; open: number; syncWritesOpen: number; close: number; writev: number; writevNow: number };
  /** Called before each file sync; may delay it. */
  beforeSync?: (fd: number) => Promise<void>;
  /** Called before each background file sync; may delay it. */
  beforeSyncPath?: (path: string) => Promise<void>;
  /** Called before each write; may delay it. */
  beforeWrite?: (fd: number) => Promise<void>;
  /** Replaces writev when set. */
  writevOverride?: (fd: number, bufs: Buffer[]) => Promise<number>;
  events: string[];
  /** The directories synced, in order. */
  syncedDirs: string[];
}

/** The real file system, counted, with hooks to delay syncs and break writes. */
export function countingIo(): CountingIo {
  const io: CountingIo = {
    ...nodeFileIo,
    counts: { sync: 0, syncPath: 0, syncDir: 0, open: 0, syncWritesOpen: 0, close: 0, writev: 0, writevNow: 0 },
    events: [],
    syncedDirs: [],
    openAppend: async (path, syncWrites) => {
      io.counts.open++;
      if (syncWrites) io.counts.syncWritesOpen++;
      return nodeFileIo.openAppend(path, syncWrites);
    },
    close: async (fd) => {
      io.counts.close++;
      return nodeFileIo.close(fd);
    },
    writev: async (fd, bufs) => {
      io.counts.writev++;
      io.events.push('write:start');
      if (io.beforeWrite) await io.beforeWrite(fd);
      const n = await (io.writevOverride ? io.writevOverride(fd, bufs) : nodeFileIo.writev(fd, bufs));
      io.events.push('write:done');
      return n;
    },
    writevNow: (fd, bufs) => {
      io.counts.writevNow++;
      return nodeFileIo.writevNow(fd, bufs);
    },
    sync: async (fd) => {
      io.counts.sync++;
      io.events.push('sync:start');
      if (io.beforeSync) await io.beforeSync(fd);
      await nodeFileIo.sync(fd);
      io.events.push('sync:done');
    },
    syncPath: async (path) => {
      io.counts.syncPath++;
      io.events.push('syncPath:start');
      if (io.beforeSyncPath) await io.beforeSyncPath(path);
      await nodeFileIo.syncPath(path);
      io.events.push('syncPath:done');
    },
    syncDir: async (path) => {
      io.counts.syncDir++;
      io.events.push('syncDir');
      io.syncedDirs.push(path);
      return nodeFileIo.syncDir(path);
    },
  };
  return io;
}

export async function metric(counter: typeof eventsOut | typeof sinkErrors): Promise<number> {
  return (await counter.get()).values.find((v) => v.labels.sink === 'file')?.value ?? 0;
}

export function deferred<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** Container names and tags meant to escape or break the directory. */
export const HOSTILE = [
  '..',
  '.',
  '../../etc/passwd',
  '../',
  '/',
  '/abs/path',
  'a/../../b',
  'a\\..\\..\\b',
  '..\\windows',
  'nul\u0000byte',
  '\u0000',
  'esc\u001b[31mred',
  'tab\tnew\nline\rret',
  '\u007f',
  '.hidden',
  '...',
  '-rf',
  'trailing.',
  'CON',
  'con.txt',
  'Aux',
  'LPT1',
  'COM9.log',
  'a:b*c?d"e<f>g|h',
  ' spaced name ',
  'emoji😀',
  'lone\ud800',
  'lone\ud801',
  'tilde~12345678',
  'x'.repeat(5000),
  'x'.repeat(4999) + 'y',
  'y'.repeat(101),
  '',
];
