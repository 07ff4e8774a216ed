import { readFileSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { DeadLetterFile, type Rejected } from '../../../src/sinks/elasticsearch/dead-letter.js';
import { tempDir } from '../../helpers/services.js';

type Write = (real: FileHandle, data: Buffer, offset: number, length: number) => Promise<{ bytesWritten: number }>;

/** Replaces the writes of files opened from now on, while set. */
const faults = vi.hoisted(() => ({ write: undefined as Write | undefined }));

vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  const open = async (...args: Parameters<typeof real.open>): Promise<FileHandle> => {
    const fh = await real.open(...args);
    return new Proxy(fh, {
      get(target, prop) {
        if (prop === 'write' && faults.write) {
          return (data: Buffer | string, offset?: number, length?: number) => {
            const buf = typeof data === 'string' ? Buffer.from(data) : data;
            const from = typeof data === 'string' ? 0 : (offset ?? 0);
            return faults.write!(target, buf, from, typeof data === 'string' ? buf.length : (length ?? buf.length - from));
          };
        }
        const v = Reflect.get(target, prop) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
  };
  return { ...real, open, default: { ...real, open } };
});

function rejected(n: number, from = 0): Rejected[] {
  return Array.from({ length: n }, (_, k) => ({
    entry: Buffer.from(`{"create":{"_index":"logs-t-default","_id":"id${from + k}"}}\n{"message":"line ${from + k}","container":{"name":"web"}}\n`),
    status: 400,
    error: { type: 'document_parsing_exception', reason: 'x' },
  }));
}

/** What the dead-letter file holds, one parsed line each: every line must be whole JSON. */
const lines = (path: string): { _id: string }[] =>
  readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as { _id: string });

describe('DeadLetterFile', () => {
  it('completes a short write that was not an error', async () => {
    const path = join(tempDir('dl'), 'dead-letter.ndjson');
    const file = new DeadLetterFile(path);
    faults.write = (real, buf, offset, length) => real.write(buf, offset, Math.min(length, 50));
    try {
      expect(await file.write(rejected(3))).toEqual(['web', 'web', 'web']);
    } finally {
      faults.write = undefined;
    }
    await file.close();
    expect(lines(path).map((l) => l._id)).toEqual(['id0', 'id1', 'id2']);
  });

  it('fails a write the disk cut short, leaving no part of it, and appends whole lines again once it can', async () => {
    const path = join(tempDir('dl'), 'dead-letter.ndjson');
    const file = new DeadLetterFile(path);
    await file.write(rejected(1));
    const before = readFileSync(path);
    let calls = 0;
    // The file size limit (ulimit -f) reached part-way: a short count, then EFBIG.
    faults.write = (real, buf, offset, length) =>
      calls++ === 0 ? real.write(buf, offset, length >> 1) : Promise.reject(Object.assign(new Error('EFBIG: file too large, write'), { code: 'EFBIG' }));
    try {
      await expect(file.write(rejected(2, 1))).rejects.toMatchObject({ code: 'EFBIG' });
    } finally {
      faults.write = undefined;
    }
    expect(readFileSync(path)).toEqual(before);
    await file.write(rejected(2, 1));
    await file.close();
    expect(lines(path).map((l) => l._id)).toEqual(['id0', 'id1', 'id2']);
  });
});
