/**
 * Gzips a rotated store file next to itself (layout.ts: `<name>.ndjson.gz`,
 * the same bytes). Crash-safe in any order of events: the `.gz` is written
 * under a temporary name, made durable, renamed, and only then is the plain
 * file removed, so at every moment one complete copy has a layout name.
 * Always synced, whatever the sink's fsync policy: the plain file was on
 * disk, and compression, off the write path, must never lose it.
 * What a crash leaves (a temporary file; a plain file next to its `.gz`) is
 * what `leftovers` finds, for the sink to remove at start.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { open, readdir, rename, stat, unlink, utimes } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import type { FileIo } from './io.js';
import { compareFiles, GZIP_SUFFIX, listLayoutEntries } from './layout.js';

const TEMP_SUFFIX = '.tmp';
const FILE_MODE = 0o640;

export interface CompressOptions {
  io: FileIo;
  /** Stops a compression at shutdown; the plain file stays and is compressed at next start. */
  signal?: AbortSignal;
}

/** The temporary name a compression writes to; no layout name, so readers never see it. */
function tempPath(path: string): string {
  return join(dirname(path), `.${basename(path)}${GZIP_SUFFIX}${TEMP_SUFFIX}`);
}

/**
 * Compresses the closed plain file at `path` into `<path>.gz` and removes
 * the plain file. The `.gz` keeps the plain file's modification time, which
 * retention orders and ages files by. Returns the `.gz`'s size.
 */
export async function compressFile(path: string, opts: CompressOptions): Promise<number> {
  const temp = tempPath(path);
  const gz = path + GZIP_SUFFIX;
  const before = await stat(path);
  try {
    const options = opts.signal ? { signal: opts.signal } : {};
    await pipeline(createReadStream(path), createGzip(), createWriteStream(temp, { mode: FILE_MODE }), options);
    const fh = await open(temp, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await utimes(temp, before.atime, before.mtime);
    await rename(temp, gz);
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    throw err;
  }
  await opts.io.syncDir(dirname(path));
  await unlink(path);
  return (await stat(gz)).size;
}

/** What an interrupted compression left in a source directory: temporary files, and plain files whose `.gz` is complete. */
export async function leftovers(sourceDir: string): Promise<string[]> {
  const found = (await readdir(sourceDir)).filter((n) => n.startsWith('.') && n.endsWith(GZIP_SUFFIX + TEMP_SUFFIX)).map((n) => join(sourceDir, n));
  const entries = await listLayoutEntries(sourceDir);
  entries.forEach((f, i) => {
    const next = entries[i + 1];
    if (!f.compressed && next?.compressed && compareFiles(f, next) === 0) found.push(f.path);
  });
  return found;
}
