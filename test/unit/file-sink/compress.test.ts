import { existsSync, readFileSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { compressFile, leftovers } from '../../../src/sinks/file/compress.js';
import { nodeFileIo } from '../../../src/sinks/file/io.js';
import { countingIo, removeTempDirs, tempDir } from './helpers.js';

afterAll(removeTempDirs);

const lines = (n: number) => Array.from({ length: n }, (_, i) => JSON.stringify({ message: `line ${i}`, pad: 'x'.repeat(i % 50) }) + '\n').join('');

describe('compressor', () => {
  it('replaces a rotated file with its .gz, synced: the same bytes, the same modification time, no temporary file left', async () => {
    const dir = tempDir();
    const plain = join(dir, '2026-11-22.0000.ndjson');
    const text = lines(20_000);
    writeFileSync(plain, text);
    const mtime = new Date(Date.UTC(2026, 10, 22, 12));
    utimesSync(plain, mtime, mtime);
    const io = countingIo();
    const size = await compressFile(plain, { io });
    // Its directory entry is durable before the plain file goes, whatever the fsync policy.
    expect(io.counts.syncDir).toBe(1);
    expect(readdirSync(dir)).toEqual(['2026-11-22.0000.ndjson.gz']);
    const gz = readFileSync(plain + '.gz');
    expect(size).toBe(gz.length);
    expect(size).toBeLessThan(text.length / 4);
    expect(gunzipSync(gz).toString('utf8')).toBe(text);
    expect(statSync(plain + '.gz').mtimeMs).toBe(mtime.getTime());
  });

  it('stopped part-way, leaves the plain file as it was and no temporary file', async () => {
    const dir = tempDir();
    const plain = join(dir, '2026-11-22.0000.ndjson');
    const text = lines(50_000);
    writeFileSync(plain, text);
    const ac = new AbortController();
    ac.abort();
    await expect(compressFile(plain, { io: nodeFileIo, signal: ac.signal })).rejects.toThrow();
    expect(readdirSync(dir)).toEqual(['2026-11-22.0000.ndjson']);
    expect(readFileSync(plain, 'utf8')).toBe(text);
  });

  it('finds what a crash left: a temporary file, and a plain file whose .gz is complete', async () => {
    const dir = tempDir();
    for (const name of ['2026-11-22.0000.ndjson', '2026-11-22.0000.ndjson.gz', '.2026-11-22.0001.ndjson.gz.tmp', '2026-11-22.0001.ndjson', '2026-11-22.0002.ndjson']) {
      writeFileSync(join(dir, name), '');
    }
    expect((await leftovers(dir)).sort()).toEqual([join(dir, '.2026-11-22.0001.ndjson.gz.tmp'), join(dir, '2026-11-22.0000.ndjson')]);
    expect(existsSync(join(dir, '2026-11-22.0001.ndjson'))).toBe(true);
  });
});
