import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { readContentTail } from '../../../src/sinks/file/content.js';
import { removeTempDirs, tempDir } from './helpers.js';

afterAll(removeTempDirs);

describe('readContentTail', () => {
  // Larger than a read chunk and than a gunzip chunk, so the tail is cut inside one.
  const content = Buffer.from(Array.from({ length: 20_000 }, (_, i) => `line ${i}\n`).join(''));

  it('gives the same last bytes of a plain file and of its .gz, and says whether they are all of it', async () => {
    const dir = tempDir();
    const plain = join(dir, '2026-11-22.0000.ndjson');
    writeFileSync(plain, content);
    writeFileSync(join(dir, '2026-11-22.0001.ndjson.gz'), gzipSync(content));
    for (const path of [plain, join(dir, '2026-11-22.0001.ndjson.gz'), join(dir, '2026-11-22.0001.ndjson')]) {
      for (const max of [1, 100_000, content.length - 1]) {
        const { tail, whole } = await readContentTail(path, max);
        expect(whole, `${path} ${max}`).toBe(false);
        expect(tail.equals(content.subarray(content.length - max)), `${path} ${max}`).toBe(true);
      }
      for (const max of [content.length, content.length + 1]) {
        const { tail, whole } = await readContentTail(path, max);
        expect(whole, `${path} ${max}`).toBe(true);
        expect(tail.equals(content), `${path} ${max}`).toBe(true);
      }
    }
  });

  it('reads a file that is gone as empty', async () => {
    const dir = tempDir();
    expect(await readContentTail(join(dir, '2026-11-22.0000.ndjson'), 10)).toEqual({ tail: Buffer.alloc(0), whole: true });
  });
});
