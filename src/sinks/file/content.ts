/**
 * The content of a store file, plain or gzipped, read the same way: offsets
 * are always into the plain content (layout.ts: a `.gz` holds the plain
 * file's bytes), so a reader that read part of a file goes on in its `.gz`.
 *
 * A reader given a plain file's path that the compressor replaced meanwhile
 * reads the `.gz` instead; a file retention deleted meanwhile reads as empty. Random access into a `.gz` costs decompressing
 * from its start: forwards that is one pass; backwards (`tail -n`) it is one
 * pass for the last window and one more per earlier window (BACKWARD_WINDOW),
 * so reading a whole rotated file backwards costs a few passes over it, and
 * memory stays at one window.
 */
import { open, stat, type FileHandle } from 'node:fs/promises';
import { pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { GZIP_SUFFIX, isCompressed } from './layout.js';
import { isMissing } from '../../errors.js';

const CHUNK_BYTES = 64 * 1024;
/** Plain content held at once when a `.gz` is read backwards. */
const BACKWARD_WINDOW = 4 * 1024 * 1024;


/**
 * How far a reader may read: the size of a plain file, Infinity for a `.gz`
 * (complete by construction); undefined when the file is gone (deleted).
 */
export async function contentEnd(path: string): Promise<number | undefined> {
  try {
    const size = (await stat(path)).size;
    return isCompressed(path) ? Infinity : size;
  } catch (err) {
    if (!isMissing(err)) throw err;
  }
  if (isCompressed(path)) return undefined;
  return (await contentEnd(path + GZIP_SUFFIX)) === undefined ? undefined : Infinity;
}

/** The file open for reading, undefined when it is gone. */
async function openIfThere(path: string): Promise<FileHandle | undefined> {
  try {
    return await open(path, 'r');
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
}

/** The plain file open for reading, or undefined when only its `.gz` is left (compressed meanwhile), or nothing. */
const openPlain = (path: string): Promise<FileHandle | undefined> => (isCompressed(path) ? Promise.resolve(undefined) : openIfThere(path));

const gzipPath = (path: string): string => (isCompressed(path) ? path : path + GZIP_SUFFIX);

/** The content in [start, end), in chunks, first to last. */
export async function* readContent(path: string, start: number, end: number): AsyncGenerator<Buffer> {
  const fh = await openPlain(path);
  if (fh === undefined) {
    yield* gunzipRange(gzipPath(path), start, end);
    return;
  }
  try {
    let pos = start;
    while (pos < end) {
      const size = Math.min(CHUNK_BYTES, end - pos);
      const chunk = Buffer.allocUnsafe(size);
      const { bytesRead } = await fh.read(chunk, 0, size, pos);
      if (bytesRead === 0) return;
      pos += bytesRead;
      yield chunk.subarray(0, bytesRead);
    }
  } finally {
    await fh.close();
  }
}

/** The content before `end` (Infinity: all of it) in chunks, last to first, each chunk's bytes in file order. */
export async function* readContentBackward(path: string, end: number): AsyncGenerator<Buffer> {
  const fh = await openPlain(path);
  if (fh === undefined) {
    yield* gunzipBackward(gzipPath(path), end);
    return;
  }
  try {
    let pos = end === Infinity ? (await fh.stat()).size : end;
    while (pos > 0) {
      const size = Math.min(CHUNK_BYTES, pos);
      pos -= size;
      const chunk = Buffer.allocUnsafe(size);
      const { bytesRead } = await fh.read(chunk, 0, size, pos);
      yield chunk.subarray(0, bytesRead);
    }
  } finally {
    await fh.close();
  }
}

/**
 * The last `max` bytes of the content (all of it when shorter), and whether
 * that is all of it. A `.gz` is decompressed in one pass holding `max`
 * bytes; readContentBackward would hold one window but decompress once more
 * per earlier window.
 */
export async function readContentTail(path: string, max: number): Promise<{ tail: Buffer; whole: boolean }> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  let whole = true;
  const fh = await openPlain(path);
  if (fh === undefined) {
    for await (const chunk of gunzipRange(gzipPath(path), 0, Infinity)) {
      chunks.push(chunk);
      bytes += chunk.length;
      while (bytes - chunks[0]!.length >= max) {
        bytes -= chunks.shift()!.length;
        whole = false;
      }
    }
  } else {
    try {
      let pos = (await fh.stat()).size;
      while (pos > 0 && bytes < max) {
        const size = Math.min(CHUNK_BYTES, pos);
        pos -= size;
        const chunk = Buffer.allocUnsafe(size);
        const { bytesRead } = await fh.read(chunk, 0, size, pos);
        chunks.unshift(chunk.subarray(0, bytesRead));
        bytes += bytesRead;
      }
      whole = pos === 0;
    } finally {
      await fh.close();
    }
  }
  const all = Buffer.concat(chunks);
  return all.length > max ? { tail: all.subarray(all.length - max), whole: false } : { tail: all, whole };
}

/** The plain content of a `.gz` in [start, end), decompressed as a stream. */
async function* gunzipRange(path: string, start: number, end: number): AsyncGenerator<Buffer> {
  const fh = await openIfThere(path);
  if (fh === undefined) return;
  const gunzip = createGunzip();
  // pipeline closes the file when the reader stops early (destroying gunzip) or fails.
  pipeline(fh.createReadStream(), gunzip, () => undefined);
  let pos = 0;
  for await (const chunk of gunzip as AsyncIterable<Buffer>) {
    const from = Math.max(0, start - pos);
    const to = Math.min(chunk.length, end - pos);
    pos += chunk.length;
    if (to > from) yield chunk.subarray(from, to);
    if (pos >= end) return;
  }
}

/**
 * A `.gz` backwards in windows: the first pass finds where the content ends
 * and keeps its last window; each earlier window is one more pass.
 */
async function* gunzipBackward(path: string, end: number): AsyncGenerator<Buffer> {
  let tail: Buffer[] = [];
  let tailBytes = 0;
  let total = 0;
  for await (const chunk of gunzipRange(path, 0, end)) {
    tail.push(chunk);
    tailBytes += chunk.length;
    total += chunk.length;
    while (tailBytes - tail[0]!.length >= BACKWARD_WINDOW) tailBytes -= tail.shift()!.length;
  }
  let pos = total - tailBytes;
  yield Buffer.concat(tail);
  tail = [];
  while (pos > 0) {
    const from = Math.max(0, pos - BACKWARD_WINDOW);
    const window: Buffer[] = [];
    for await (const chunk of gunzipRange(path, from, pos)) window.push(chunk);
    yield Buffer.concat(window);
    pos = from;
  }
}
