/**
 * Torn-line repair. A process killed in the middle of a write (kill -9, OOM)
 * can leave the last line of a file without its "\n". That line's batch was
 * never acknowledged (in "batch" mode the ack waits for write and fsync), so
 * its sender sends it again; the fragment only breaks readers. It is cut off.
 */
import type { Logger } from '../../log.js';
import type { FileIo } from './io.js';
import { filesLeftOpen, listSourceDirs } from './layout.js';

const NEWLINE = 0x0a;
const BLOCK = 64 * 1024;

/**
 * Truncates the file open on `fd` (of `size` bytes) after its last "\n" when
 * it does not end with one. Returns how many bytes it removed.
 */
export async function repairTornTail(io: FileIo, fd: number, size: number): Promise<number> {
  if (size === 0) return 0;
  const buf = Buffer.allocUnsafe(Math.min(BLOCK, size));
  let end = size;
  let keep = 0;
  // Reads backwards block by block: a torn line is usually short, but a line
  // can be as long as the longest record.
  while (end > 0) {
    const start = Math.max(0, end - buf.length);
    const block = buf.subarray(0, await readFully(io, fd, buf.subarray(0, end - start), start));
    if (end === size && (block.length === 0 || block[block.length - 1] === NEWLINE)) return 0;
    const at = block.lastIndexOf(NEWLINE);
    if (at >= 0) {
      keep = start + at + 1;
      break;
    }
    end = start;
  }
  await io.truncate(fd, keep);
  return size - keep;
}

async function readFully(io: FileIo, fd: number, buf: Buffer, position: number): Promise<number> {
  let got = 0;
  while (got < buf.length) {
    const n = await io.read(fd, buf.subarray(got), position + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}

/**
 * Repairs every source directory under `dir` at start, so readers see whole
 * lines even for sources that will never be written again (layout.ts
 * filesLeftOpen: which files a crash can have torn).
 */
export async function repairDirectory(io: FileIo, dir: string, log: Logger, sync: boolean): Promise<void> {
  const unreadable = (path: string, err: NodeJS.ErrnoException): void => log.warn({ dir: path, code: err.code }, 'torn-line check skips a directory it cannot read');
  for (const sourceDir of await listSourceDirs(dir, unreadable)) {
    for (const file of await filesLeftOpen(sourceDir)) {
      try {
        const fd = await io.openExisting(file.path);
        try {
          const removed = await repairTornTail(io, fd, await io.size(fd));
          if (removed > 0) {
            log.warn({ path: file.path, bytes: removed }, 'cut a torn last line left by a crash');
            if (sync) await io.sync(fd);
          }
        } finally {
          await io.close(fd);
        }
      } catch (err) {
        log.error({ err, path: file.path }, 'torn-line check failed');
      }
    }
  }
}
