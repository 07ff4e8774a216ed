import { mkdtempSync, unlinkSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { completeLinesEnd, firstLine, lastLine, readLinesBackward, readLinesForward } from '../../../src/tail/lines.js';

const dir = mkdtempSync(join(tmpdir(), 'clogs-lines-'));

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

describe('lines', () => {
  // Lines longer than the 64 KiB read chunk, with multi-byte characters on the chunk edges.
  const lines = Array.from({ length: 50 }, (_, i) => `${i}:` + 'é€😀x'.repeat(1000 + i * 397));
  const text = lines.join('\n') + '\n';
  const size = Buffer.byteLength(text);

  it('reads backwards from the end, last line first, across chunks', async () => {
    const path = file('a.ndjson', text);
    expect(await collect(readLinesBackward(path, size))).toEqual([...lines].reverse());
  });

  it('reads forwards with the offset after each line', async () => {
    const path = file('b.ndjson', text);
    const got = await collect(readLinesForward(path, 0, size));
    expect(got.map((g) => g.line)).toEqual(lines);
    expect(got[got.length - 1]!.next).toBe(size);
    const second = await collect(readLinesForward(path, got[0]!.next, size));
    expect(second[0]!.line).toBe(lines[1]);
  });

  it('never returns a line still being written (no "\\n" yet)', async () => {
    const path = file('c.ndjson', 'one\ntwo\nthr');
    expect(await collect(readLinesBackward(path, 11))).toEqual(['two', 'one']);
    expect((await collect(readLinesForward(path, 0, 11))).map((g) => g.line)).toEqual(['one', 'two']);
    expect(await completeLinesEnd(path, 11)).toBe(8);
    expect(await lastLine(path, 11)).toBe('two');
    expect(await firstLine(path, 11)).toBe('one');
    const partial = file('d.ndjson', 'no newline yet');
    expect(await completeLinesEnd(partial, 14)).toBe(0);
    expect(await firstLine(partial, 14)).toBeUndefined();
  });

  it('skips empty lines', async () => {
    const path = file('e.ndjson', 'a\n\nb\n');
    expect(await collect(readLinesBackward(path, 5))).toEqual(['b', 'a']);
  });

  it('reads a .gz as if plain, forwards from an offset and backwards across several decompression windows', async () => {
    // About 10 MiB of content: the backward read decompresses it in windows of 4 MiB.
    const many = Array.from({ length: 100_000 }, (_, i) => `{"n":${i},"pad":"${'p'.repeat(i % 150)}"}`);
    const body = many.join('\n') + '\n';
    const plain = file('big.ndjson', body);
    const gz = file('big.ndjson.gz', '');
    writeFileSync(gz, gzipSync(body));
    unlinkSync(plain);
    expect(await collect(readLinesBackward(gz, Infinity))).toEqual([...many].reverse());
    const forward = await collect(readLinesForward(gz, 0, Infinity));
    expect(forward.map((g) => g.line)).toEqual(many);
    // An offset into the plain file is the same line in its .gz, read under either name.
    const from = forward[49_999]!.next;
    expect((await collect(readLinesForward(plain, from, Buffer.byteLength(body)))).map((g) => g.line)).toEqual(many.slice(50_000));
    expect(await completeLinesEnd(gz, Infinity)).toBe(Infinity);
    expect(await lastLine(gz, Infinity)).toBe(many.at(-1));
    expect(await firstLine(plain, Infinity)).toBe(many[0]);
  });

  it('reads a file deleted meanwhile (by retention) as empty', async () => {
    const gone = join(dir, 'gone.ndjson');
    expect(await collect(readLinesBackward(gone, 100))).toEqual([]);
    expect(await collect(readLinesForward(gone, 0, 100))).toEqual([]);
    expect(await collect(readLinesForward(gone + '.gz', 0, Infinity))).toEqual([]);
  });
});
