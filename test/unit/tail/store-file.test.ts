import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { LogEvent } from '../../../src/collector/event.js';
import { compressFile } from '../../../src/sinks/file/compress.js';
import { nodeFileIo } from '../../../src/sinks/file/io.js';
import { fileName, sourceDirName } from '../../../src/sinks/file/layout.js';
import { searchText, type EventFilter } from '../../../src/tail/filter.js';
import { compareStored, mergeOrdered, type StoredEvent } from '../../../src/tail/order.js';
import { resolveInStore, type Selection } from '../../../src/tail/resolve.js';
import { createFileStore, MERGE_WINDOW } from '../../../src/tail/store-file.js';
import { appendToStore, container, fakeId, makeEvent } from '../../helpers/tail.js';

const T0 = 1795341190;
const WEB = container(fakeId('aa'), 'web', { compose: { project: 'shop', service: 'web' } });
const WEB2 = container(fakeId('ab'), 'web-2', { compose: { project: 'shop', service: 'web' } });
const DB = container(fakeId('bb'), 'db');
const OLD_DB = container(fakeId('cc'), 'db');

async function collect(it: AsyncIterable<StoredEvent>, max = Infinity): Promise<string[]> {
  const out: string[] = [];
  for await (const e of it) {
    out.push(e.event.message);
    if (out.length >= max) break;
  }
  return out;
}

function newStore(): { dir: string; warnings: string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'clogs-store-'));
  dirs.push(dir);
  return { dir, warnings: [] };
}
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function read(dir: string, selection: Selection, filter: EventFilter = {}, limit = Infinity) {
  const warnings: string[] = [];
  const store = createFileStore(dir, (m) => warnings.push(m));
  const open = async () => {
    const matched = (await store.sources()).filter((s) =>
      selection.kind === 'id' ? s.id === selection.value : selection.kind === 'service' ? s.service === selection.value : false,
    );
    return store.open({ selection, matched, filter, limit });
  };
  return { store, warnings, open };
}

/** web: 30 lines over 3 files, stdout/stderr interleaved with one stderr line 1 ns out of order. */
function seed(dir: string): void {
  let seq = 100;
  for (let file = 0; file < 3; file++) {
    const events: LogEvent[] = [];
    for (let i = 0; i < 10; i++) {
      const n = file * 10 + i;
      events.push(makeEvent({ container: WEB, sec: T0 + n, seq: seq++, message: `web ${n}`, stream: n % 3 === 0 ? 'stderr' : 'stdout', level: n % 5 === 0 ? 'error' : 'info' }));
    }
    appendToStore(dir, events, file);
  }
  // Written after "web 29" but stamped earlier: the reader must sort it into place.
  appendToStore(dir, [makeEvent({ container: WEB, sec: T0 + 28, nsec: 500, seq: seq++, message: 'web 28.5', stream: 'stderr' })], 2);
  appendToStore(dir, [
    makeEvent({ container: OLD_DB, sec: T0, seq: 1, message: 'old db 0', stream: 'stdout' }),
    makeEvent({ container: OLD_DB, sec: T0 + 1, seq: 2, message: 'old db 1', stream: 'stdout' }),
    makeEvent({ container: DB, sec: T0 + 2, seq: 3, message: 'db 2', stream: 'stdout' }),
  ]);
  appendToStore(dir, [makeEvent({ tag: 'app.pay', sec: T0 + 5, seq: 7, message: 'pay 5' })]);
}

describe('file store: history', () => {
  it('-n N: the last N lines in time order, across rotated files', async () => {
    const { dir } = newStore();
    seed(dir);
    const r = read(dir, { kind: 'name', value: 'web' }, {}, 4);
    expect(await collect((await r.open()).history())).toEqual(['web 27', 'web 28', 'web 28.5', 'web 29']);
  });

  it('-n N larger than the store: every line', async () => {
    const { dir } = newStore();
    seed(dir);
    const r = read(dir, { kind: 'name', value: 'web' }, {}, 1000);
    const all = await collect((await r.open()).history());
    expect(all).toHaveLength(31);
    expect(all[0]).toBe('web 0');
  });

  it('time window, stream, level and grep filters', async () => {
    const { dir } = newStore();
    seed(dir);
    const since = new Date((T0 + 10) * 1000).toISOString().replace('Z', '000000Z');
    const until = new Date((T0 + 20) * 1000).toISOString().replace('Z', '000000Z');
    const window = read(dir, { kind: 'name', value: 'web' }, { since, until });
    expect(await collect((await window.open()).history())).toEqual(Array.from({ length: 10 }, (_, i) => `web ${10 + i}`));
    const stderr = read(dir, { kind: 'name', value: 'web' }, { stream: 'stderr' }, 3);
    expect(await collect((await stderr.open()).history())).toEqual(['web 24', 'web 27', 'web 28.5']);
    const errors = read(dir, { kind: 'name', value: 'web' }, { minLevel: 50 });
    expect(await collect((await errors.open()).history())).toEqual(['web 0', 'web 5', 'web 10', 'web 15', 'web 20', 'web 25']);
    const grep = read(dir, { kind: 'name', value: 'web' }, { pattern: /^web 1\d$/ }, 2);
    expect(await collect((await grep.open()).history())).toEqual(['web 18', 'web 19']);
  });

  it('tells apart two containers that shared a name (and a directory) by id', async () => {
    const { dir } = newStore();
    seed(dir);
    const old = read(dir, { kind: 'id', value: OLD_DB.id! });
    expect(await collect((await old.open()).history())).toEqual(['old db 0', 'old db 1']);
    const byName = read(dir, { kind: 'name', value: 'db' }, {}, 10);
    expect(await collect((await byName.open()).history())).toEqual(['old db 0', 'old db 1', 'db 2']);
  });

  it('gives a renamed container its lines from before the rename, under its new name', async () => {
    const { dir } = newStore();
    const id = fakeId('dd');
    appendToStore(dir, [makeEvent({ container: container(id, 'api'), sec: T0, seq: 1, message: 'before the rename' })]);
    appendToStore(dir, [makeEvent({ container: container(id, 'api-v2'), sec: T0 + 1, seq: 2, message: 'after the rename' })]);
    appendToStore(dir, [makeEvent({ container: container(fakeId('de'), 'api'), sec: T0 + 2, seq: 3, message: 'a new container named api' })]);
    const store = createFileStore(dir, () => undefined);
    const renamed = await resolveInStore(store, 'api-v2');
    expect(renamed.selection).toEqual({ kind: 'name', value: 'api-v2', ids: [id] });
    expect(await collect((await store.open({ ...renamed, filter: {}, limit: Infinity })).history())).toEqual(['before the rename', 'after the rename']);
    const reused = await resolveInStore(store, 'api');
    expect(await collect((await store.open({ ...reused, filter: {}, limit: Infinity })).history())).toEqual(['before the rename', 'a new container named api']);
  });

  it('skips a foreign or torn line with one warning and goes on', async () => {
    const { dir } = newStore();
    seed(dir);
    appendFileSync(join(dir, 'web', fileName('2026-11-22', 2)), 'not json\n{"half":');
    const r = read(dir, { kind: 'name', value: 'web' }, {}, 2);
    expect(await collect((await r.open()).history())).toEqual(['web 28.5', 'web 29']);
    expect(r.warnings).toEqual([expect.stringContaining('skipped a line that is not a clogs event')]);
  });
});

describe('file store: sources and stats', () => {
  it('finds sources from the first and last lines of the files', async () => {
    const { dir } = newStore();
    seed(dir);
    const sources = await createFileStore(dir, () => undefined).sources();
    expect(sources.map((s) => s.name ?? s.tag).sort()).toEqual(['app.pay', 'db', 'db', 'web']);
    expect(sources.find((s) => s.id === WEB.id)).toMatchObject({ name: 'web', project: 'shop', service: 'web' });
  });

  it('counts every line by stream', async () => {
    const { dir } = newStore();
    seed(dir);
    const stats = await createFileStore(dir, () => undefined).stats();
    const web = stats.find((s) => s.info.id === WEB.id)!;
    expect(web).toMatchObject({ stdout: 20, stderr: 11, other: 0 });
    expect(web.first).toBe('2026-11-22T09:53:10.000000000Z');
    expect(web.last).toBe('2026-11-22T09:53:39.000000000Z');
    expect(stats.find((s) => s.info.tag === 'app.pay')).toMatchObject({ stdout: 0, stderr: 0, other: 1 });
  });
});

describe('file store: follow', () => {
  it('returns lines written after the reader opened, through rotation, and holds back a line until its "\\n"', async () => {
    const { dir } = newStore();
    seed(dir);
    const r = read(dir, { kind: 'name', value: 'web' }, {}, 1);
    const reader = await r.open();
    expect(await collect(reader.history())).toEqual(['web 29']);
    const ac = new AbortController();
    const got = collect(reader.follow(ac.signal), 4);
    const file2 = join(dir, 'web', fileName('2026-11-22', 2));
    appendToStore(dir, [makeEvent({ container: WEB, sec: T0 + 40, seq: 500, message: 'new 1' })], 2);
    await new Promise((r) => setTimeout(r, 50));
    // Rotation: the sink starts file 3; a torn line in it is completed later.
    const next = makeEvent({ container: WEB, sec: T0 + 41, seq: 501, message: 'new 2' });
    appendToStore(dir, [next], 3);
    const torn = JSON.stringify(makeEvent({ container: WEB, sec: T0 + 42, seq: 502, message: 'new 3' }));
    appendFileSync(join(dir, 'web', fileName('2026-11-22', 3)), torn.slice(0, 20));
    await new Promise((r) => setTimeout(r, 100));
    appendFileSync(join(dir, 'web', fileName('2026-11-22', 3)), torn.slice(20) + '\n');
    // The old file is removed while we follow (retention); a new day begins.
    rmSync(file2);
    appendToStore(dir, [makeEvent({ container: WEB, sec: T0 + 43, seq: 503, message: 'new 4' })], 0, '2026-11-23');
    expect(await got).toEqual(['new 1', 'new 2', 'new 3', 'new 4']);
    ac.abort();
  });

  it('picks up a directory that appears later for a growing selection (a new compose replica)', async () => {
    const { dir } = newStore();
    seed(dir);
    const r = read(dir, { kind: 'service', value: 'web', project: 'shop' }, {}, 0);
    const reader = await r.open();
    expect(await collect(reader.history())).toEqual([]);
    const ac = new AbortController();
    const got = collect(reader.follow(ac.signal), 2);
    await new Promise((r) => setTimeout(r, 50));
    appendToStore(dir, [makeEvent({ container: WEB2, sec: T0 + 50, seq: 600, message: 'replica 2' })]);
    appendToStore(dir, [makeEvent({ container: DB, sec: T0 + 50, seq: 601, message: 'not web' })]);
    appendToStore(dir, [makeEvent({ container: WEB, sec: T0 + 51, seq: 602, message: 'replica 1' })], 2);
    expect((await got).sort()).toEqual(['replica 1', 'replica 2']);
    ac.abort();
  });

  it('a directory made while the reader opens: its lines once, by history or by follow, at every point of the open', async () => {
    // The open lists directories in steps, each a thread-pool round trip:
    // the directory is made after 0 to 23 round trips of the test, so
    // across the runs it lands before, between and after those steps.
    const later = container(fakeId('f7'), 'starts-later');
    for (let k = 0; k < 48; k++) {
      const { dir } = newStore();
      appendToStore(dir, [makeEvent({ container: DB, sec: T0, seq: 1, message: 'db 0' })]);
      const store = createFileStore(dir, () => undefined);
      const opening = store.open({ selection: { kind: 'name', value: 'starts-later', ids: [] }, matched: [], filter: {}, limit: 10 });
      for (let j = 0; j < k % 24; j++) await stat(dir);
      appendToStore(dir, [makeEvent({ container: later, sec: T0 + 1, seq: 2, message: 'its line' })]);
      const reader = await opening;
      const fromHistory = await collect(reader.history());
      const ac = new AbortController();
      // Found by history: a short look for a second copy; else it must come by follow.
      const timer = setTimeout(() => ac.abort(), fromHistory.length > 0 ? 100 : 10_000);
      const fromFollow = await collect(reader.follow(ac.signal), 1);
      clearTimeout(timer);
      ac.abort();
      expect([...fromHistory, ...fromFollow], `after ${k % 24} round trips`).toEqual(['its line']);
    }
  });

  it.each([
    ['had no directory yet', () => undefined],
    // The sink makes the directory, then the file, then writes.
    ['had an empty file', (dir: string) => {
      mkdirSync(join(dir, 'web-2'));
      writeFileSync(join(dir, 'web-2', fileName('2026-11-22', 0)), '');
    }],
  ])('a replica that %s when the name was resolved, and wrote before the open: its lines by history, once', async (_, before: (dir: string) => void) => {
    const { dir } = newStore();
    seed(dir);
    before(dir);
    const store = createFileStore(dir, () => undefined);
    const selection: Selection = { kind: 'service', value: 'web', project: 'shop' };
    // Resolved from the store's sources as `clogs tail web` does: web-2 has no directory yet.
    const matched = (await store.sources()).filter((s) => s.service === 'web');
    appendToStore(dir, [makeEvent({ container: WEB2, sec: T0 + 50, seq: 600, message: 'replica 2, before the open' })]);
    const reader = await store.open({ selection, matched, filter: {}, limit: Infinity });
    const fromHistory = (await collect(reader.history())).filter((m) => m.startsWith('replica'));
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), 200);
    const fromFollow = await collect(reader.follow(ac.signal));
    clearTimeout(timer);
    expect(fromHistory).toEqual(['replica 2, before the open']);
    expect(fromFollow).toEqual([]);
  });

  it('follows a selection into a directory that existed when it opened, and into a new one another container started', async () => {
    const { dir } = newStore();
    seed(dir);
    // The id of a container that has no directory yet: it will be renamed into `db`
    // (which exists, the old db's), as a blue-green `docker rename` does.
    const NEXT = container(fakeId('dd'), 'db');
    appendToStore(dir, [makeEvent({ container: OLD_DB, sec: T0, seq: 700, message: 'old db' })]);
    const r = read(dir, { kind: 'id', value: NEXT.id! }, {}, 0);
    const reader = await r.open();
    expect(await collect(reader.history())).toEqual([]);
    const ac = new AbortController();
    const got = collect(reader.follow(ac.signal), 2);
    await new Promise((r) => setTimeout(r, 50));
    appendToStore(dir, [makeEvent({ container: NEXT, sec: T0 + 60, seq: 701, message: 'in the existing db directory' })]);
    // A directory another container opened first, which the selected one writes to later.
    const OTHER = container(fakeId('ee'), 'shared');
    appendToStore(dir, [makeEvent({ container: OTHER, sec: T0 + 61, seq: 702, message: 'not it' })]);
    await new Promise((r) => setTimeout(r, 50));
    appendToStore(dir, [makeEvent({ container: { ...NEXT, name: 'shared' }, sec: T0 + 62, seq: 703, message: 'in a directory another started' })]);
    expect(await got).toEqual(['in the existing db directory', 'in a directory another started']);
    ac.abort();
  });

  it('follows an id through every directory, parsing only the lines that hold it', async () => {
    const { dir } = newStore();
    seed(dir);
    const r = read(dir, { kind: 'id', value: DB.id! }, {}, 0);
    const reader = await r.open();
    const ac = new AbortController();
    const got = collect(reader.follow(ac.signal), 2);
    await new Promise((r) => setTimeout(r, 50));
    // Not an event, and without the id: never parsed, so nothing to warn of.
    appendFileSync(join(dir, 'web', fileName('2026-11-22', 2)), 'not json\n');
    // Another container's line that names the followed id: parsed, and not its own.
    appendToStore(dir, [makeEvent({ container: WEB, sec: T0 + 60, seq: 800, message: `restarted ${DB.id!}` })], 2);
    appendToStore(dir, [makeEvent({ container: { ...DB, name: 'web' }, sec: T0 + 61, seq: 801, message: 'db in web' })], 2);
    appendToStore(dir, [makeEvent({ container: DB, sec: T0 + 62, seq: 802, message: 'db in db' })]);
    // Each directory is read in turn, not merged in time order.
    expect((await got).sort()).toEqual(['db in db', 'db in web']);
    expect(r.warnings).toEqual([]);
    ac.abort();
  });

  it('ends the follow when the signal aborts', async () => {
    const { dir } = newStore();
    seed(dir);
    const reader = await read(dir, { kind: 'name', value: 'web' }, {}, 0).open();
    const ac = new AbortController();
    const done = collect(reader.follow(ac.signal));
    setTimeout(() => ac.abort(), 50);
    expect(await done).toEqual([]);
  });
});

/** Gzips file `index` of web the way the sink's compressor does (the real one). */
const compress = (dir: string, index: number) => compressFile(join(dir, 'web', fileName('2026-11-22', index)), { io: nodeFileIo });

describe('file store: compressed rotated files', () => {
  it('-n N across compressed and plain files reads them in order, as if plain', async () => {
    const { dir } = newStore();
    seed(dir);
    await compress(dir, 0);
    await compress(dir, 1);
    expect(readdirSync(join(dir, 'web')).sort()).toEqual(['2026-11-22.0000.ndjson.gz', '2026-11-22.0001.ndjson.gz', '2026-11-22.0002.ndjson']);
    const r = read(dir, { kind: 'name', value: 'web' }, {}, 15);
    expect(await collect((await r.open()).history())).toEqual([...Array.from({ length: 14 }, (_, i) => `web ${16 + i}`)].toSpliced(13, 0, 'web 28.5'));
    const all = read(dir, { kind: 'name', value: 'web' }, {}, 1000);
    expect(await collect((await all.open()).history())).toEqual([...Array.from({ length: 30 }, (_, i) => `web ${i}`)].toSpliced(29, 0, 'web 28.5'));
    expect(r.warnings).toEqual([]);
  });

  it('ps counts each line once when counts are asked for while others run', async () => {
    const { dir } = newStore();
    seed(dir);
    const store = createFileStore(dir, () => undefined);
    const web = async (): Promise<unknown> => (await store.stats()).find((s) => s.info.id === WEB.id);
    expect(await web()).toMatchObject({ stdout: 20, stderr: 11 });
    // The newest file grows: every count asked meanwhile reads its new lines.
    appendToStore(dir, Array.from({ length: 5 }, (_, i) => makeEvent({ container: WEB, sec: T0 + 40 + i, seq: 700 + i, message: `more ${i}`, stream: 'stdout' })), 2);
    const counted = await Promise.all([web(), web(), web()]);
    for (const c of counted) expect(c).toMatchObject({ stdout: 25, stderr: 11 });
    expect(await web()).toMatchObject({ stdout: 25, stderr: 11 });
  });

  it('a time window, ps counts and source lookup see compressed files', async () => {
    const { dir } = newStore();
    seed(dir);
    await compress(dir, 0);
    await compress(dir, 1);
    const since = new Date((T0 + 5) * 1000).toISOString().replace('Z', '000000Z');
    const until = new Date((T0 + 15) * 1000).toISOString().replace('Z', '000000Z');
    const window = read(dir, { kind: 'name', value: 'web' }, { since, until });
    expect(await collect((await window.open()).history())).toEqual(Array.from({ length: 10 }, (_, i) => `web ${5 + i}`));
    const store = createFileStore(dir, () => undefined);
    expect((await store.stats()).find((s) => s.info.id === WEB.id)).toMatchObject({ stdout: 20, stderr: 11, other: 0 });
    expect((await store.sources()).find((s) => s.id === WEB.id)).toMatchObject({ name: 'web' });
    const byId = read(dir, { kind: 'id', value: WEB.id! }, {}, 2);
    expect(await collect((await byId.open()).history())).toEqual(['web 28.5', 'web 29']);
  });

  it('follow: a file rotated and compressed before the follower read its end loses nothing and repeats nothing', async () => {
    const { dir } = newStore();
    seed(dir);
    const reader = await read(dir, { kind: 'name', value: 'web' }, {}, 1).open();
    expect(await collect(reader.history())).toEqual(['web 29']);
    // Written to file 2 after the snapshot, then the sink rotates to file 3 and compresses file 2.
    appendToStore(dir, [1, 2, 3].map((k) => makeEvent({ container: WEB, sec: T0 + 40 + k, seq: 700 + k, message: `late ${k}` })), 2);
    appendToStore(dir, [makeEvent({ container: WEB, sec: T0 + 50, seq: 710, message: 'next 1' })], 3);
    await compress(dir, 2);
    const ac = new AbortController();
    expect(await collect(reader.follow(ac.signal), 4)).toEqual(['late 1', 'late 2', 'late 3', 'next 1']);
    ac.abort();
  });

  it('follow: a file compressed while the follower is part-way through goes on in the .gz at the same line', async () => {
    const { dir } = newStore();
    seed(dir);
    const reader = await read(dir, { kind: 'name', value: 'web' }, {}, 1).open();
    await collect(reader.history());
    const ac = new AbortController();
    const follow = reader.follow(ac.signal)[Symbol.asyncIterator]();
    const line = (k: number) => makeEvent({ container: WEB, sec: T0 + 40 + k, seq: 800 + k, message: `line ${k}` });
    appendToStore(dir, [line(1), line(2)], 2);
    const got: string[] = [];
    for (let i = 0; i < 2; i++) got.push((await follow.next()).value!.event.message);
    // The follower is suspended after line 2, its offset in the plain file. Now: more lines, rotation, compression.
    appendToStore(dir, [line(3), line(4)], 2);
    appendToStore(dir, [line(5)], 3);
    await compress(dir, 2);
    expect(existsSync(join(dir, 'web', fileName('2026-11-22', 2)))).toBe(false);
    for (let i = 0; i < 3; i++) got.push((await follow.next()).value!.event.message);
    // One more line after the rotation: nothing from the old file comes again before it.
    appendToStore(dir, [line(6)], 3);
    got.push((await follow.next()).value!.event.message);
    expect(got).toEqual(['line 1', 'line 2', 'line 3', 'line 4', 'line 5', 'line 6']);
    ac.abort();
    await follow.return?.(undefined);
  });
});

describe('file store: files that end days before --since', () => {
  it('are not read, forwards nor backwards: the next file\'s day bounds their lines', async () => {
    const { dir } = newStore();
    const event = (sec: number, seq: number, message: string) => makeEvent({ container: WEB, sec, seq, message, stream: 'stdout' });
    // T0 is 2026-11-22. The file of 2026-11-01, whose next file is of 2026-11-10, ended by then.
    // It holds a line stamped in the window, as only a source clock weeks fast could write:
    // not shown shows that the file was not read.
    appendToStore(dir, [event(T0, 1, 'from a fast clock')], 0, '2026-11-01');
    appendToStore(dir, [event(T0 - 86_400 * 12, 2, 'old')], 0, '2026-11-10');
    appendToStore(dir, [event(T0, 3, 'first')], 0, '2026-11-22');
    const since = new Date((T0 - 60) * 1000).toISOString();
    for (const limit of [Infinity, 5]) {
      const r = read(dir, { kind: 'name', value: 'web' }, { since }, limit);
      expect(await collect((await r.open()).history())).toEqual(['first']);
      expect(r.warnings).toEqual([]);
    }
    // Without --since, every file is read.
    const all = read(dir, { kind: 'name', value: 'web' });
    expect(await collect((await all.open()).history())).toEqual(['old', 'from a fast clock', 'first']);
  });
});

describe('file store: lines written late (more than 10 s out of order)', () => {
  const at = (sec: number) => new Date((T0 + sec) * 1000).toISOString().replace('Z', '000000Z');
  const lines = (from: number, to: number, prefix = 'web') => Array.from({ length: to - from + 1 }, (_, i) => `${prefix} ${from + i}`);

  /**
   * The review's store: file 0000 holds T0+100..110, then lines stamped
   * T0+40..45 that `docker.fluentd_backfill` appended late; file 0001 holds
   * T0+111..115. With `compressed`, file 0000 is gzipped as the sink leaves it.
   */
  async function seedLate(dir: string, compressed: boolean): Promise<void> {
    let seq = 1;
    const event = (sec: number, message: string) => makeEvent({ container: WEB, sec: T0 + sec, seq: seq++, message, stream: 'stdout' });
    appendToStore(dir, Array.from({ length: 11 }, (_, i) => event(100 + i, `web ${100 + i}`)), 0);
    appendToStore(dir, Array.from({ length: 6 }, (_, i) => event(40 + i, `backfilled ${40 + i}`)), 0);
    appendToStore(dir, Array.from({ length: 5 }, (_, i) => event(111 + i, `web ${111 + i}`)), 1);
    if (compressed) await compress(dir, 0);
  }

  async function history(dir: string, filter: EventFilter, limit = Infinity): Promise<string[]> {
    const r = read(dir, { kind: 'name', value: 'web' }, filter, limit);
    const out = await collect((await r.open()).history());
    expect(r.warnings).toEqual([]);
    return out;
  }

  for (const compressed of [false, true]) {
    const files = compressed ? 'the late lines in a compressed file' : 'plain files';
    it(`--since: every line in the window, from a file whose last line is before --since (${files})`, async () => {
      const { dir } = newStore();
      await seedLate(dir, compressed);
      expect(await history(dir, { since: at(105) })).toEqual(lines(105, 115));
      expect(await history(dir, { since: at(42) })).toEqual([...lines(42, 45, 'backfilled'), ...lines(100, 115)]);
    });

    it(`--until: the late lines after lines past --until (${files})`, async () => {
      const { dir } = newStore();
      await seedLate(dir, compressed);
      expect(await history(dir, { until: at(50) })).toEqual(lines(40, 45, 'backfilled'));
      expect(await history(dir, { since: at(43), until: at(102) })).toEqual([...lines(43, 45, 'backfilled'), ...lines(100, 101)]);
      // `clogs search backfilled --until ...`: the stored-line test skips lines without parsing them.
      const search: EventFilter = { until: at(50) };
      searchText(search, 'backfilled', true);
      expect(await history(dir, search)).toEqual(lines(40, 45, 'backfilled'));
    });

    it(`--since with -n (a backwards read): not stopped by a late line below --since (${files})`, async () => {
      const { dir } = newStore();
      await seedLate(dir, compressed);
      expect(await history(dir, { since: at(60) }, 100)).toEqual(lines(100, 115));
      expect(await history(dir, { since: at(60) }, 8)).toEqual(lines(108, 115));
      expect(await history(dir, { since: at(41) }, 100)).toEqual([...lines(41, 45, 'backfilled'), ...lines(100, 115)]);
      const search: EventFilter = { since: at(60) };
      searchText(search, 'web 10', true);
      expect(await history(dir, search, 100)).toEqual(lines(100, 109));
      // -n N alone and -n all were right before and stay so.
      expect(await history(dir, {}, 3)).toEqual(lines(113, 115));
      expect(await history(dir, {})).toEqual([...lines(40, 45, 'backfilled'), ...lines(100, 115)]);
    });
  }
});

describe('file store: memory of a read across many directories', () => {
  const SOURCES = 200;
  const LINES = 250;
  let dir: string;
  /** Each source's events in the order its files have them. */
  let written: StoredEvent[][];
  let sorted: StoredEvent[];

  async function* from(events: readonly StoredEvent[]): AsyncGenerator<StoredEvent> {
    yield* events;
  }

  // Sources write 1 ms apart, interleaved with each other. In each file, every
  // tenth line is written after the next one (a stdout/stderr swap) and line 100
  // after line 120; two files per source (a rotation at line 125).
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'clogs-store-'));
    written = Array.from({ length: SOURCES }, (_, s) => {
      const c = container(fakeId(s.toString(16).padStart(4, '0')), `svc-${s}`);
      const events = Array.from({ length: LINES }, (_, i) => {
        const event = makeEvent({ container: c, sec: T0, nsec: i * 1_000_000 + s * 1000, seq: s * 1000 + i, message: `${s}/${i}`, stream: i % 10 === 4 ? 'stderr' : 'stdout' });
        return { event, raw: JSON.stringify(event) };
      });
      for (let i = 3; i + 1 < LINES; i += 10) [events[i], events[i + 1]] = [events[i + 1]!, events[i]!];
      events.splice(120, 0, ...events.splice(100, 1));
      const sub = join(dir, sourceDirName(events[0]!.event));
      mkdirSync(sub);
      const file = (part: StoredEvent[]) => part.map((e) => e.raw + '\n').join('');
      writeFileSync(join(sub, fileName('2026-11-22', 0)), file(events.slice(0, 125)));
      writeFileSync(join(sub, fileName('2026-11-22', 1)), file(events.slice(125)));
      return events;
    });
    sorted = written.flat().sort(compareStored);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** The events read, and the most the read held at once: taken from files, not let go of, not returned yet. */
  async function readHistory(limit: number): Promise<{ out: StoredEvent[]; most: number }> {
    let held = 0;
    let most = 0;
    const onHeld = (change: number) => {
      held += change;
      most = Math.max(most, held);
    };
    const reader = await createFileStore(dir, () => undefined, { onHeld }).open({ selection: { kind: 'all' }, matched: [], filter: {}, limit });
    const out: StoredEvent[] = [];
    for await (const e of reader.history()) {
      held--;
      out.push(e);
    }
    expect(held).toBe(0);
    return { out, most };
  }

  it('forwards: the order a window of 4096 per directory gave, holding at most MERGE_WINDOW + one event per directory', async () => {
    // What the reader did before: each directory sorted in its own window, then merged.
    const before = await collectEvents(mergeOrdered(written.map((events) => mergeOrdered([from(events)], 4096))));
    expect(before).toEqual(sorted);
    // The files alone are out of order: the window is what sorts them.
    expect(await collectEvents(mergeOrdered(written.map(from)))).not.toEqual(sorted);
    const { out, most } = await readHistory(Infinity);
    expect(out.map((e) => e.raw)).toEqual(sorted.map((e) => e.raw));
    // Before, every directory's window took in all its 250 lines before the first line came out: 50,000.
    expect(most).toBeGreaterThan(MERGE_WINDOW);
    expect(most).toBeLessThanOrEqual(MERGE_WINDOW + SOURCES);
  });

  it('backwards (-n N): the newest N of all directories, holding at most N events', async () => {
    const limit = 300;
    const { out, most } = await readHistory(limit);
    expect(out.map((e) => e.raw)).toEqual(sorted.slice(-limit).map((e) => e.raw));
    // Before, every directory kept its matches (all 250 of each, fewer than N): 50,000.
    expect(most).toBe(limit);
  });
});

async function collectEvents(it: AsyncIterable<StoredEvent>): Promise<StoredEvent[]> {
  const out: StoredEvent[] = [];
  for await (const e of it) out.push(e);
  return out;
}

describe('file store: follow through a docker rename', () => {
  it('follows a name into the directory its container writes after a rename', async () => {
    const { dir } = newStore();
    const id = fakeId('dd');
    appendToStore(dir, [makeEvent({ container: container(id, 'api'), sec: T0, seq: 1, message: 'before' })]);
    const store = createFileStore(dir, () => undefined);
    const sel = await resolveInStore(store, 'api');
    expect(sel.selection).toEqual({ kind: 'name', value: 'api', ids: [id] });
    const reader = await store.open({ ...sel, filter: {}, limit: 0 });
    const ac = new AbortController();
    const got = collect(reader.follow(ac.signal), 1);
    await new Promise((r) => setTimeout(r, 50));
    // docker rename api api-v2: the sink writes the same container's lines in api-v2/.
    appendToStore(dir, [makeEvent({ container: container(id, 'api-v2'), sec: T0 + 1, seq: 2, message: 'after the rename' })]);
    const timeout = new Promise<string[]>((r) => setTimeout(() => r(['(nothing within 3 s)']), 3000));
    const out = await Promise.race([got, timeout]);
    ac.abort();
    // The same selection's history takes it:
    const again = await createFileStore(dir, () => undefined).open({ ...sel, filter: {}, limit: Infinity });
    expect(await collect(again.history())).toEqual(['before', 'after the rename']);
    expect(out).toEqual(['after the rename']);
  });
});
