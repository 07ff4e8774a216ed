/**
 * The file-system calls the sink makes, on raw descriptors (no FileHandle:
 * one object and a GC finalizer less per open file), as promises. The sink
 * takes them as an object so tests can count fsyncs or make a write fail the
 * way a full disk does.
 */
import * as fs from 'node:fs';
import { dirname } from 'node:path';

/** The directories a mkdirp(path) that created `created` added an entry to: each new directory's parent. */
export function parentsOfCreated(path: string, created: string): string[] {
  const out: string[] = [];
  for (let d = path; dirname(d) !== d; d = dirname(d)) {
    out.push(dirname(d));
    if (d === created) break;
  }
  return out;
}

export interface FileIo {
  /** Creates `path` and missing parents; returns the first directory it created, if any. */
  mkdirp(path: string): Promise<string | undefined>;
  /**
   * Opens for reading and appending, creating the file when missing. With
   * `syncWrites` (O_DSYNC) each write returns once its data is durable: what
   * an fdatasync after it would do, in the same system call.
   */
  openAppend(path: string, syncWrites: boolean): Promise<number>;
  /** Opens an existing file for reading and writing (for repairs only). */
  openExisting(path: string): Promise<number>;
  size(fd: number): Promise<number>;
  read(fd: number, buf: Buffer, position: number): Promise<number>;
  /** One writev(2) at the end of the file: it may write fewer bytes than asked. */
  writev(fd: number, bufs: Buffer[]): Promise<number>;
  /** The same on the calling thread: for a file without O_DSYNC, where it only copies into the page cache. */
  writevNow(fd: number, bufs: Buffer[]): number;
  /** Makes the file's data durable. */
  sync(fd: number): Promise<void>;
  /**
   * The same through a descriptor of its own, opened for it: for a sync that
   * runs while the file's descriptor may be written to, rotated or closed.
   */
  syncPath(path: string): Promise<void>;
  /** Makes a directory's entries (a created file or directory) durable. */
  syncDir(path: string): Promise<void>;
  truncate(fd: number, length: number): Promise<void>;
  close(fd: number): Promise<void>;
}

const FILE_MODE = 0o640;
/** 'a+' */
const APPEND = fs.constants.O_RDWR | fs.constants.O_APPEND | fs.constants.O_CREAT;
const DIR_MODE = 0o750;

function call<T>(fn: (cb: (err: NodeJS.ErrnoException | null, value: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value))));
}

/** Opens `path` read-only (enough for Linux to sync it), syncs it with `sync`, closes it. */
async function syncOpened(path: string, sync: (fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => void): Promise<void> {
  const fd = await call<number>((cb) => fs.open(path, 'r', cb));
  try {
    await call<void>((cb) => sync(fd, (err) => cb(err, undefined)));
  } finally {
    await call<void>((cb) => fs.close(fd, (err) => cb(err, undefined)));
  }
}

export const nodeFileIo: FileIo = {
  mkdirp: (path) => call((cb) => fs.mkdir(path, { recursive: true, mode: DIR_MODE }, cb)),
  openAppend: (path, syncWrites) => call((cb) => fs.open(path, syncWrites ? APPEND | fs.constants.O_DSYNC : APPEND, FILE_MODE, cb)),
  openExisting: (path) => call((cb) => fs.open(path, 'r+', cb)),
  size: (fd) => call<fs.Stats>((cb) => fs.fstat(fd, cb)).then((st) => st.size),
  read: (fd, buf, position) => call((cb) => fs.read(fd, buf, 0, buf.length, position, cb)),
  writev: (fd, bufs) => call((cb) => fs.writev(fd, bufs, cb)),
  writevNow: (fd, bufs) => fs.writevSync(fd, bufs),
  // fdatasync: appending changes the size, which it does write; it skips
  // mtime-only metadata updates, which nothing here needs after a crash.
  sync: (fd) => call<void>((cb) => fs.fdatasync(fd, (err) => cb(err, undefined))),
  syncPath: (path) => syncOpened(path, fs.fdatasync),
  syncDir: (path) => syncOpened(path, fs.fsync),
  truncate: (fd, length) => call<void>((cb) => fs.ftruncate(fd, length, (err) => cb(err, undefined))),
  close: (fd) => call<void>((cb) => fs.close(fd, (err) => cb(err, undefined))),
};
