import { describe, expect, it } from 'vitest';
import type { OpenFile } from '../../../src/sinks/file/files.js';
import { appendRotating } from '../../../src/sinks/file/rotation.js';

function file(index: number, size = 0): OpenFile {
  return { source: 'web', path: `web/${index}`, day: '2026-01-01', index, fd: index, size, dirty: false, syncWrites: true };
}

/** Runs appendRotating on fake files, returning what each file ends up holding and how many writes it took. */
async function append(chunks: string[], limit: number, startSize = 0): Promise<Array<{ text: string; writes: number }>> {
  const files = [{ text: '', writes: 0 }];
  await appendRotating(
    chunks.map((c) => Buffer.from(c)),
    file(0, startSize),
    limit,
    {
      write: async (f, bufs) => {
        files[f.index]!.text += Buffer.concat(bufs).toString();
        files[f.index]!.writes++;
        f.size += Buffer.concat(bufs).length;
      },
      rotate: async (f) => {
        files.push({ text: '', writes: 0 });
        return file(f.index + 1);
      },
    },
  );
  return files;
}

describe('rotation by size', () => {
  it('without a limit, writes every chunk to the first file in one writev', async () => {
    expect(await append(['a\nb\n', 'c\n'], 0)).toEqual([{ text: 'a\nb\nc\n', writes: 1 }]);
  });

  it('cuts on line boundaries so no file passes the limit', async () => {
    expect(await append(['aaa\nbbb\n', 'ccc\nddd\n'], 8)).toEqual([
      { text: 'aaa\nbbb\n', writes: 1 },
      { text: 'ccc\nddd\n', writes: 1 },
    ]);
    expect(await append(['aa\nbb\ncc\n'], 7)).toEqual([
      { text: 'aa\nbb\n', writes: 1 },
      { text: 'cc\n', writes: 1 },
    ]);
  });

  it('counts what the file already holds', async () => {
    expect(await append(['aa\nbb\n'], 8, 5)).toEqual([
      { text: 'aa\n', writes: 1 },
      { text: 'bb\n', writes: 1 },
    ]);
  });

  it('gives a line longer than the limit a file of its own', async () => {
    expect(await append(['a\n', 'long line\n', 'b\n'], 4)).toEqual([
      { text: 'a\n', writes: 1 },
      { text: 'long line\n', writes: 1 },
      { text: 'b\n', writes: 1 },
    ]);
  });
});
