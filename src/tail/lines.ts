/**
 * Lines of an NDJSON file, read in bounded chunks: forwards for scans, and
 * backwards from the end for `-n N`, so the last lines of a large store cost
 * a few reads rather than the whole file. A gzipped rotated file reads the
 * same (content.ts), at the cost of decompressing it.
 *
 * Lines are cut at the "\n" byte, which never occurs inside a multi-byte
 * UTF-8 character, so each line decodes on its own.
 */
import { readContent, readContentBackward } from '../sinks/file/content.js';

const NEWLINE = 0x0a;

/**
 * Complete lines of `path` before byte `end` (Infinity: to its end), last line
 * first. Bytes after the last "\n" before `end` (a line still being written)
 * are not returned.
 */
export async function* readLinesBackward(path: string, end: number): AsyncGenerator<string> {
  // Bytes of the line that started before the chunk read last.
  let carry: Buffer = Buffer.alloc(0);
  let seenNewline = false;
  for await (const chunk of readContentBackward(path, end)) {
    let buf = carry.length > 0 ? Buffer.concat([chunk, carry]) : chunk;
    let stop = buf.length;
    for (let i = buf.length - 1; i >= 0; i--) {
      if (buf[i] !== NEWLINE) continue;
      // The bytes after the last newline are an unfinished line: skip them.
      if (seenNewline && stop > i + 1) yield buf.toString('utf8', i + 1, stop);
      seenNewline = true;
      stop = i;
    }
    buf = buf.subarray(0, stop);
    carry = seenNewline ? Buffer.from(buf) : Buffer.alloc(0);
  }
  if (seenNewline && carry.length > 0) yield carry.toString('utf8');
}

/** Complete lines of `path` in [start, end), first line first, each with the offset after its "\n". */
export async function* readLinesForward(path: string, start: number, end: number): AsyncGenerator<{ line: string; next: number }> {
  let pos = start;
  let carry: Buffer = Buffer.alloc(0);
  for await (const chunk of readContent(path, start, end)) {
    const buf = carry.length > 0 ? Buffer.concat([carry, chunk]) : chunk;
    const bufStart = pos - carry.length;
    pos += chunk.length;
    let from = 0;
    for (let i = buf.indexOf(NEWLINE); i !== -1; i = buf.indexOf(NEWLINE, from)) {
      if (i > from) yield { line: buf.toString('utf8', from, i), next: bufStart + i + 1 };
      from = i + 1;
    }
    carry = Buffer.from(buf.subarray(from));
  }
}

/**
 * The offset just after the last "\n" before `end` (0 when there is none):
 * where the complete lines of a file still being written end. A compressed
 * file holds complete lines only: its `end` (Infinity) stays.
 */
export async function completeLinesEnd(path: string, end: number): Promise<number> {
  if (end === Infinity) return end;
  let pos = end;
  for await (const chunk of readContentBackward(path, end)) {
    pos -= chunk.length;
    const i = chunk.lastIndexOf(NEWLINE);
    if (i !== -1) return pos + i + 1;
  }
  return 0;
}

/** The first complete line of a file, if it has one. */
export async function firstLine(path: string, end: number): Promise<string | undefined> {
  for await (const { line } of readLinesForward(path, 0, end)) return line;
  return undefined;
}

/** The last complete line before `end`, if there is one. */
export async function lastLine(path: string, end: number): Promise<string | undefined> {
  for await (const line of readLinesBackward(path, end)) return line;
  return undefined;
}
