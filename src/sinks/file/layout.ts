/**
 * Where the file sink puts events, written once so the sink and `clogs tail`
 * read the same rules.
 *
 *   <dir>/<source>/<YYYY-MM-DD>.<NNNN>.ndjson
 *
 * - `<source>`: the container name, else the container id, else the forward
 *   tag, else the input name, made safe by `sanitizeName`. A name that needed
 *   no change is used as it is; every changed name ends in `~` and 8 hex digits
 *   of a hash of the original, and `~` is never kept from an original, so two
 *   distinct sources never share a directory (short of a hash collision).
 *   A container recreated under the same name shares its directory: every
 *   line carries `container.id`, so readers can tell the two apart.
 * - `<YYYY-MM-DD>`: the UTC day the sink created the file (its processing
 *   date, not the events' timestamps: backfilled old lines go to today's file).
 * - `<NNNN>`: the file's number within that day, from 0000, wider past 9999.
 * - A file the sink rotated away from may be compressed (compress.ts):
 *   `<YYYY-MM-DD>.<NNNN>.ndjson.gz` holds exactly the bytes the plain file
 *   held, so an offset into one is the same line in the other. The `.gz`
 *   appears whole (renamed from a temporary name) before the plain file is
 *   removed; while both exist they are one file, read as the `.gz`.
 *
 * What a reader may rely on:
 * - Order: files of a source sort by (day, number), numerically, never as
 *   plain strings; `listFilesInOrder` does it. Within a file, lines are in the
 *   order the sink received them. A new file's name never sorts before an
 *   existing one, even if the clock steps back.
 * - Only the newest file of a source grows. Once a later file exists, earlier
 *   files never change (short of a crash repair, see below), except to be
 *   compressed or deleted by retention (retention.ts). The newest file of a
 *   source is never compressed; retention deletes it only once it is of an
 *   earlier day than today and closed, so the source's next file sorts after it.
 * - Every line is one complete JSON object ending in "\n". While the sink is
 *   writing, the newest file can end in a line without its "\n" yet: a reader
 *   that follows the file must hold that tail back until the "\n" arrives.
 *   After a crash, the sink cuts such a torn tail off when it starts, so a file
 *   only ever loses an incomplete last line, never a complete one.
 */
import { createHash } from 'node:crypto';
import { opendir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { LogEvent } from '../../collector/event.js';
import { eventSourceName } from '../../collector/source.js';
import { isMissing } from '../../errors.js';

export const FILE_SUFFIX = '.ndjson';
/** Appended to a rotated file's name once it is gzipped. */
export const GZIP_SUFFIX = '.gz';

/** Longest `<source>` kept before cutting; the hash makes it at most 109 bytes. */
export const MAX_NAME_LENGTH = 100;

/** The directory name (one path segment) of the event's source. */
export function sourceDirName(event: LogEvent): string {
  return sanitizeName(eventSourceName(event));
}

// Docker's own alphabet for container names ([a-zA-Z0-9][a-zA-Z0-9_.-]+): names
// Docker allows pass unchanged; anything else (/, \, NUL, control characters,
// spaces, Windows-reserved <>:"|?*, non-ASCII, and `~`, the hash marker) becomes `_`.
const UNSAFE_CHAR = /[^A-Za-z0-9._-]/g;
// A leading `.` makes `.`, `..` and hidden entries; a leading `-` reads as an
// option to shell tools; Windows drops trailing dots.
const UNSAFE_START = /^[.-]+/;
const UNSAFE_END = /\.+$/;
// Device names Windows reserves in any case and with any extension (CON, CON.txt).
const WINDOWS_DEVICE = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\.|$)/i;
const HASH_CHARS = 8;

/**
 * Makes `raw` a safe single path segment: never empty, never `.` or `..`, no
 * separator, no control character, at most MAX_NAME_LENGTH + 9 ASCII bytes.
 */
export function sanitizeName(raw: string): string {
  let s = raw
    .replace(UNSAFE_CHAR, '_')
    .replace(UNSAFE_START, (m) => '_'.repeat(m.length))
    .replace(UNSAFE_END, (m) => '_'.repeat(m.length));
  if (WINDOWS_DEVICE.test(s)) s = `_${s}`;
  if (s === '') s = '_';
  if (s === raw && s.length <= MAX_NAME_LENGTH) return s;
  if (s.length > MAX_NAME_LENGTH) s = s.slice(0, MAX_NAME_LENGTH);
  // UTF-16 keeps lone surrogates apart, which UTF-8 would fold into U+FFFD.
  const hash = createHash('sha256').update(raw, 'utf16le').digest('hex').slice(0, HASH_CHARS);
  return `${s}~${hash}`;
}

/** The UTC day of a time in milliseconds, `YYYY-MM-DD`. */
export function dayOf(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

export function fileName(day: string, index: number): string {
  return `${day}.${String(index).padStart(4, '0')}${FILE_SUFFIX}`;
}

const FILE_NAME = /^(\d{4}-\d{2}-\d{2})\.(\d{4,})\.ndjson(\.gz)?$/;

export interface LayoutFile {
  /** File name, `2026-11-22.0003.ndjson` or `2026-11-22.0003.ndjson.gz`. */
  name: string;
  path: string;
  day: string;
  index: number;
  /** Gzipped: its content is the plain file's, decompressed. */
  compressed: boolean;
}

/** `{ day, index, compressed }` of a sink file name, undefined for any other name. */
export function parseFileName(name: string): { day: string; index: number; compressed: boolean } | undefined {
  const m = FILE_NAME.exec(name);
  return m ? { day: m[1]!, index: Number(m[2]), compressed: m[3] !== undefined } : undefined;
}

/** Whether a path names a gzipped store file. */
export function isCompressed(path: string): boolean {
  return path.endsWith(FILE_SUFFIX + GZIP_SUFFIX);
}

/** Orders files oldest first: by day, then by number. */
export function compareFiles(a: { day: string; index: number }, b: { day: string; index: number }): number {
  return a.day < b.day ? -1 : a.day > b.day ? 1 : a.index - b.index;
}

/**
 * The source directories under the sink directory (full paths, by name); []
 * when it does not exist. A directory this process may not read is passed
 * over, and told to `unreadable`: a volume's `lost+found` at the sink
 * directory's root, another user's directory, is no source of this store's,
 * and must not stop the sink's upkeep or a reader's listing of every other.
 */
export async function listSourceDirs(dir: string, unreadable?: (dir: string, err: NodeJS.ErrnoException) => void): Promise<string[]> {
  const entries = await readdirOrEmpty(dir);
  const paths = entries
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort()
    .map((name) => join(dir, name));
  const dirs: string[] = [];
  // One at a time: a store of many sources would take as many descriptors at once.
  for (const path of paths) if (await mayRead(path, unreadable)) dirs.push(path);
  return dirs;
}

/**
 * Every sink file name in a source directory, oldest first, a file's plain
 * name right before its `.gz` while both exist (a compression not finished).
 */
export async function listLayoutEntries(sourceDir: string): Promise<LayoutFile[]> {
  const files: LayoutFile[] = [];
  for (const e of await readdirOrEmpty(sourceDir)) {
    const parsed = e.isFile() ? parseFileName(e.name) : undefined;
    if (parsed) files.push({ name: e.name, path: join(sourceDir, e.name), ...parsed });
  }
  return files.sort((a, b) => compareFiles(a, b) || Number(a.compressed) - Number(b.compressed));
}

/** A source directory's sink files with their day and number, oldest first, one entry per file (its `.gz` once there is one). */
export async function listLayoutFiles(sourceDir: string): Promise<LayoutFile[]> {
  const entries = await listLayoutEntries(sourceDir);
  return entries.filter((f, i) => {
    const next = entries[i + 1];
    return next === undefined || compareFiles(f, next) !== 0;
  });
}

/**
 * The files of a source a process that died may have left unfinished (a
 * torn last line, lines not synced): only a source's newest file is ever
 * appended to, and the one before it counts too, for a crash right after a
 * rotation created its successor. Not a compressed one: it was complete,
 * and synced, before it was compressed.
 */
export async function filesLeftOpen(sourceDir: string): Promise<LayoutFile[]> {
  return (await listLayoutFiles(sourceDir)).slice(-2).filter((f) => !f.compressed);
}

/** A source directory's files (full paths), oldest first; the last one is the one that grows. */
export async function listFilesInOrder(sourceDir: string): Promise<string[]> {
  return (await listLayoutFiles(sourceDir)).map((f) => f.path);
}

/**
 * Whether this process may list `dir`, by opening it: access(2) would answer
 * for the real user, not the effective one the reads run as.
 */
async function mayRead(dir: string, unreadable?: (dir: string, err: NodeJS.ErrnoException) => void): Promise<boolean> {
  try {
    await (await opendir(dir)).close();
    return true;
  } catch (err) {
    if (isMissing(err)) return false;
    const code = (err as NodeJS.ErrnoException).code;
    // Anything else (EMFILE, EIO) is no answer about the directory: the listing fails, as its read would.
    if (code !== 'EACCES' && code !== 'EPERM') throw err;
    unreadable?.(dir, err as NodeJS.ErrnoException);
    return false;
  }
}

async function readdirOrEmpty(dir: string) {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch (err) {
    if (isMissing(err)) return [];
    throw err;
  }
}
