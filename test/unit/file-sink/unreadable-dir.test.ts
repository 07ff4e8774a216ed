/**
 * A directory under the store that the collector's user may not read: a
 * volume's `lost+found` at the sink directory's root (root's, mode 0700),
 * met by a collector that does not run as root. The test runs as `nobody`
 * (its effective user and group, given back after), on the real file
 * system: the sink starts, writes, compresses and keeps retention, and a
 * reader lists and reads every other source, each saying once what it skipped.
 */
import { EncodedBatch } from '../../../src/collector/encoded.js';
import { chownSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { LogEvent } from '../../../src/collector/event.js';
import { createFileSink } from '../../../src/sinks/file/index.js';
import { readPage } from '../../../src/tail/page.js';
import { createFileStore } from '../../../src/tail/store-file.js';
import { until } from '../../helpers/until.js';
import { captureLog, config, container, event, removeTempDirs, tempDir } from './helpers.js';

afterAll(removeTempDirs);

const NOBODY = 65534;
const WEB = container('web', 'aaa');

/** Runs `body` as nobody; the test process is root (CI and the set-up run as root). */
async function asNobody<T>(body: () => Promise<T>): Promise<T> {
  if (process.geteuid?.() !== 0) throw new Error('this test changes its effective user: run it as root, as npm test does');
  try {
    process.setegid!(NOBODY);
    process.seteuid!(NOBODY);
    return await body();
  } finally {
    process.seteuid!(0);
    process.setegid!(0);
  }
}

describe('file store with a directory its user may not read', () => {
  it('writes, compresses and reads every other source, saying once what it skipped', async () => {
    const dir = tempDir();
    chownSync(dir, NOBODY, NOBODY);
    const lostFound = join(dir, 'lost+found');
    mkdirSync(lostFound, { mode: 0o700 });
    writeFileSync(join(lostFound, '2026-11-22.0000.ndjson'), 'not ours\n');

    const sent: string[] = [];
    const { log, lines } = captureLog();
    const warned: string[] = [];
    const read = await asNobody(async () => {
      const sink = createFileSink(config(dir, { rotate_size: 4096, compress: true }), { log });
      try {
        await sink.start();
        for (let b = 0; b < 10; b++) {
          const batch = Array.from({ length: 20 }, (_, i) => event(`web ${b * 20 + i} ${'x'.repeat(40)}`, { container: WEB }));
          sent.push(...batch.map((e) => e.message));
          await sink.write(EncodedBatch.of(batch));
        }
        await until('rotated files compressed', () => readdirSync(join(dir, 'web')).filter((f) => f.endsWith('.ndjson')).length === 1, 30_000);
      } finally {
        await sink.close();
      }

      const store = createFileStore(dir, (message) => warned.push(message));
      const stats = await store.stats();
      const page = await readPage(store, { containers: [], filter: {} }, 1000);
      await readPage(store, { containers: [], filter: {} }, 1000);
      return { stats, page };
    });

    expect(read.stats.map((s) => s.info.name)).toEqual(['web']);
    expect(read.page.events.map((e) => (JSON.parse(e.raw) as LogEvent).message)).toEqual(sent);
    expect(warned).toEqual([`${lostFound}: skipped a directory that cannot be read (EACCES)`]);
    expect(lines.filter((l) => l.msg === 'torn-line check skips a directory it cannot read')).toEqual([expect.objectContaining({ level: 40, dir: lostFound, code: 'EACCES' })]);
    expect(lines.filter((l) => l.msg === 'file store maintenance skips a directory it cannot read')).toEqual([expect.objectContaining({ level: 40, dir: lostFound, code: 'EACCES' })]);
    expect(lines.filter((l) => (l.level as number) >= 50)).toEqual([]);
  });
});

