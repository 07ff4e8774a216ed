import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  MAX_NAME_LENGTH,
  compareFiles,
  dayOf,
  fileName,
  listFilesInOrder,
  listSourceDirs,
  parseFileName,
  sanitizeName,
  sourceDirName,
} from '../../../src/sinks/file/layout.js';
import { HOSTILE, container, event, removeTempDirs, tempDir } from './helpers.js';

afterAll(removeTempDirs);


const SAFE = /^[A-Za-z0-9_][A-Za-z0-9._~-]*$/;

describe('sanitizeName', () => {
  it('makes every hostile name one safe path segment inside the directory', () => {
    const dir = '/srv/clogs/data';
    for (const raw of HOSTILE) {
      const name = sanitizeName(raw);
      expect(name, JSON.stringify(raw)).toMatch(SAFE);
      expect(name.length).toBeLessThanOrEqual(MAX_NAME_LENGTH + 9);
      expect(name).not.toMatch(/\.$/);
      expect(name).not.toMatch(/^(con|prn|aux|nul|com\d|lpt\d)(\.|$)/i);
      const full = resolve(dir, name);
      expect(dirname(full)).toBe(dir);
      expect(basename(full)).toBe(name);
    }
  });

  it('keeps distinct names distinct, the long and the hostile ones included', () => {
    const names = HOSTILE.map(sanitizeName);
    expect(new Set(names).size).toBe(HOSTILE.length);
  });

  it('leaves names Docker allows unchanged and marks every changed one with a hash', () => {
    for (const ok of ['web', 'shop-web-1', 'app_2.blue', 'a1b2c3d4e5f6', 'docker.abc123']) expect(sanitizeName(ok)).toBe(ok);
    for (const raw of HOSTILE) expect(sanitizeName(raw)).toMatch(/~[0-9a-f]{8}$/);
    expect(sanitizeName('../x')).toBe(sanitizeName('../x'));
  });
});

describe('sourceDirName', () => {
  it('uses the container name, then the id, then the tag, then the input', () => {
    expect(sourceDirName(event('m', { container: container('web', 'abc'), tag: 'docker.abc' }))).toBe('web');
    expect(sourceDirName(event('m', { container: container(undefined, 'abc'), tag: 'docker.abc' }))).toBe('abc');
    expect(sourceDirName(event('m', { container: container('', 'abc') }))).toBe('abc');
    expect(sourceDirName(event('m', { container: container(undefined, ''), tag: 'app.billing' }))).toBe('app.billing');
    expect(sourceDirName(event('m', { tag: 'app.billing' }))).toBe('app.billing');
    expect(sourceDirName(event('m'))).toBe('forward');
  });
});

describe('file names', () => {
  it('round-trips and orders by day then number, numerically', () => {
    expect(fileName('2026-11-22', 3)).toBe('2026-11-22.0003.ndjson');
    expect(fileName('2026-11-22', 12345)).toBe('2026-11-22.12345.ndjson');
    expect(parseFileName('2026-11-22.12345.ndjson')).toEqual({ day: '2026-11-22', index: 12345, compressed: false });
    expect(parseFileName('2026-11-22.0003.ndjson.gz')).toEqual({ day: '2026-11-22', index: 3, compressed: true });
    for (const bad of ['2026-11-22.ndjson', 'x.0001.ndjson', '2026-11-22.001.ndjson', '2026-11-22.0001.ndjson.tmp', '.2026-11-22.0001.ndjson.gz.tmp', '2026-11-22.0001.gz'])
      expect(parseFileName(bad)).toBeUndefined();
    const sorted = [
      { day: '2026-11-23', index: 0 },
      { day: '2026-11-22', index: 10000 },
      { day: '2026-11-22', index: 9999 },
    ].sort(compareFiles);
    expect(sorted.map((f) => fileName(f.day, f.index))).toEqual(['2026-11-22.9999.ndjson', '2026-11-22.10000.ndjson', '2026-11-23.0000.ndjson']);
    expect(dayOf(Date.UTC(2026, 10, 22, 23, 59, 59, 999))).toBe('2026-11-22');
  });

  it('lists source directories and their files oldest first, ignoring anything else', async () => {
    const dir = tempDir();
    for (const name of ['web', 'api', '.tmp']) mkdirSync(join(dir, name));
    writeFileSync(join(dir, 'stray.ndjson'), '');
    for (const f of ['2026-11-23.0000.ndjson', '2026-11-22.10000.ndjson', '2026-11-22.9999.ndjson', 'notes.txt']) writeFileSync(join(dir, 'web', f), '');
    mkdirSync(join(dir, 'web', '2026-11-21.0000.ndjson'));
    expect(await listSourceDirs(dir)).toEqual([join(dir, 'api'), join(dir, 'web')]);
    expect(await listFilesInOrder(join(dir, 'web'))).toEqual(
      ['2026-11-22.9999.ndjson', '2026-11-22.10000.ndjson', '2026-11-23.0000.ndjson'].map((f) => join(dir, 'web', f)),
    );
    expect(await listSourceDirs(join(dir, 'missing'))).toEqual([]);
    expect(await listFilesInOrder(join(dir, 'missing'))).toEqual([]);
  });

  it('lists a compressed file in the plain one\'s place, once while both exist', async () => {
    const dir = tempDir();
    const names = ['2026-11-22.0002.ndjson', '2026-11-22.0001.ndjson.gz', '2026-11-22.0001.ndjson', '2026-11-22.0000.ndjson.gz', '.2026-11-22.0001.ndjson.gz.tmp'];
    for (const f of names) writeFileSync(join(dir, f), '');
    expect(await listFilesInOrder(dir)).toEqual(['2026-11-22.0000.ndjson.gz', '2026-11-22.0001.ndjson.gz', '2026-11-22.0002.ndjson'].map((f) => join(dir, f)));
  });
});
