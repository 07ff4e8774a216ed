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
/** How far lineAfter looks: a probe of a binary search reads no more. */
const LINE_AFTER_BYTES = 64 * 1024;

/**
 * The complete lines of `path` before byte `end` (Infinity: to its end), in
 * blocks of about one read chunk, the last block first: each block is whole
 * lines in file order, joined by "\n". A scan can test a block at once and
 * split only the blocks that may hold what it looks for. Bytes after the last
 * "\n" before `end` (a line still being written) are in no block.
 */
export async function* readBlocksBackward(path: string, end: number): AsyncGenerator<string> {
  // The start of a line whose end was in the chunk read last.
  let carry: Buffer = Buffer.alloc(0);
  let foundEnd = false;
  for await (const chunk of readContentBackward(path, end)) {
    const buf = carry.length > 0 ? Buffer.concat([chunk, carry]) : chunk;
    let stop = buf.length;
    if (!foundEnd) {
      stop = buf.lastIndexOf(NEWLINE);
      // Every byte read so far belongs to the unfinished last line.
      if (stop === -1) continue;
      foundEnd = true;
    }
    const first = buf.indexOf(NEWLINE);
    if (first !== -1 && first < stop) {
      if (stop > first + 1) yield buf.toString('utf8', first + 1, stop);
      carry = Buffer.from(buf.subarray(0, first));
    } else carry = Buffer.from(buf.subarray(0, stop));
  }
  if (foundEnd && carry.length > 0) yield carry.toString('utf8');
}

/** Complete lines of `path` before byte `end`, last line first (see readBlocksBackward); empty lines are skipped. */
export async function* readLinesBackward(path: string, end: number): AsyncGenerator<string> {
  for await (const block of readBlocksBackward(path, end)) {
    const lines = block.split('\n');
    for (let i = lines.length - 1; i >= 0; i--) if (lines[i] !== '') yield lines[i]!;
  }
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

/**
 * The first complete line starting after byte `from` (past the next "\n") and
 * before `limit`, with its start; undefined when none lies within one chunk.
 */
export async function lineAfter(path: string, from: number, limit: number): Promise<{ line: string; start: number } | undefined> {
  const size = Math.min(LINE_AFTER_BYTES, limit - from);
  if (size <= 0) return undefined;
  const chunks: Buffer[] = [];
  for await (const chunk of readContent(path, from, from + size)) chunks.push(chunk);
  const buf = Buffer.concat(chunks);
  const nl = buf.indexOf(NEWLINE);
  const end = nl === -1 ? -1 : buf.indexOf(NEWLINE, nl + 1);
  if (end === -1) return undefined;
  return { line: buf.toString('utf8', nl + 1, end), start: from + nl + 1 };
}
