/**
 * History a page at a time over the file store: pages going backwards meet
 * exactly, across files, sources and the binary search into a large file.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { LogEvent } from '../../../src/collector/event.js';
import { eventKey } from '../../../src/tail/order.js';
import { readAll, readPage, type LinesQuery } from '../../../src/tail/page.js';
import { createFileStore } from '../../../src/tail/store-file.js';
import type { Store } from '../../../src/tail/store.js';
import { appendToStore, container, fakeId, makeEvent } from '../../helpers/tail.js';

const T0 = 1795341190;
const WEB1 = container(fakeId('aa'), 'web-1', { compose: { project: 'shop', service: 'web' } });
const WEB2 = container(fakeId('ab'), 'web-2', { compose: { project: 'shop', service: 'web' } });
const DB = container(fakeId('bb'), 'db');

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function storeWith(events: LogEvent[][]): { dir: string; store: Store } {
  const dir = mkdtempSync(join(tmpdir(), 'clogs-page-'));
  dirs.push(dir);
  events.forEach((file, i) => appendToStore(dir, file, i));
  return { dir, store: createFileStore(dir, () => undefined) };
}

/** Every page from the newest back, concatenated oldest first. */
async function allPages(store: Store, query: LinesQuery, limit: number): Promise<{ messages: string[]; pages: number }> {
  const pages: string[][] = [];
  let before: string | undefined;
  for (;;) {
    const page = await readPage(store, query, limit, before);
    pages.unshift(page.events.map((e) => e.event.message));
    expect(page.events.length).toBeLessThanOrEqual(limit);
    if (page.next === undefined) break;
    before = page.next;
  }
  return { messages: pages.flat(), pages: pages.length };
}

/** web-1 and web-2 interleaved, db apart; three files each. */
function seed(): LogEvent[][] {
  let seq = 1;
  return [0, 1, 2].map((file) => {
    const out: LogEvent[] = [];
    for (let i = 0; i < 20; i++) {
      const n = file * 20 + i;
      out.push(makeEvent({ container: n % 2 ? WEB2 : WEB1, sec: T0 + n, seq: seq++, message: `web ${n}`, level: n % 4 === 0 ? 'warn' : 'info' }));
      out.push(makeEvent({ container: DB, sec: T0 + n, nsec: 5, seq: seq++, message: `db ${n}${n === 33 ? ' Needle' : ''}` }));
    }
    return out;
  });
}

describe('readPage', () => {
  it('pages one container back to its first line, each line once', async () => {
    const { store } = storeWith(seed());
    const { messages, pages } = await allPages(store, { containers: ['db'], filter: {} }, 7);
    expect(messages).toEqual(Array.from({ length: 60 }, (_, n) => `db ${n}${n === 33 ? ' Needle' : ''}`));
    expect(pages).toBe(9);
  });

  it('merges several containers, and a compose service is its replicas merged', async () => {
    const { store } = storeWith(seed());
    const webs = Array.from({ length: 60 }, (_, n) => `web ${n}`);
    expect((await allPages(store, { containers: ['web-1', 'web-2'], filter: {} }, 8)).messages).toEqual(webs);
    expect((await allPages(store, { containers: ['web'], filter: {} }, 8)).messages).toEqual(webs);
    const newest = await readPage(store, { containers: ['web-2', 'db'], filter: {} }, 3);
    expect(newest.events.map((e) => e.event.message)).toEqual(['db 58', 'web 59', 'db 59']);
  });

  it('searches every container for a substring in any case, with the filters', async () => {
    const { store } = storeWith(seed());
    expect((await readPage(store, { containers: [], filter: {}, search: 'needle' }, 10)).events.map((e) => e.event.message)).toEqual(['db 33 Needle']);
    const warn = await allPages(store, { containers: [], filter: { minLevel: 40 }, search: 'WEB 5' }, 2);
    expect(warn.messages).toEqual(['web 52', 'web 56']);
  });

  it('searches messages only, also for text JSON escapes', async () => {
    const quoted = makeEvent({ container: DB, sec: T0 + 500, seq: 900, message: 'said "hi"\tthere' });
    const { store } = storeWith([...seed(), [quoted]]);
    const search = async (text: string) => (await readPage(store, { containers: [], filter: {}, search: text }, 10)).events.map((e) => e.event.message);
    expect(await search('"HI"\tthere')).toEqual(['said "hi"\tthere']);
    // In every stored line (the container's name), in no message.
    expect(await search('web-1')).toEqual([]);
  });

  it('finds its place in a large file by the timestamps', async () => {
    let seq = 1;
    const big = Array.from({ length: 20_000 }, (_, n) =>
      makeEvent({ container: DB, sec: T0 + Math.floor(n / 10), nsec: n % 10, seq: seq++, message: `line ${n} ${'x'.repeat(40)}` }),
    );
    const { store } = storeWith([big]);
    const first = await readPage(store, { containers: ['db'], filter: {} }, 100);
    expect(first.events[0]!.event.message).toMatch(/^line 19900 /);
    const deep = await readPage(store, { containers: ['db'], filter: {} }, 5, eventKey(big[1234]!));
    expect(deep.events.map((e) => e.event.message.split(' ')[1])).toEqual(['1229', '1230', '1231', '1232', '1233']);
    // A cursor in the form without the host (a page loaded before an upgrade) keeps every line of its time.
    const older = await readPage(store, { containers: ['db'], filter: {} }, 5, `${big[1234]!['@timestamp']}/${big[1234]!.clogs.seq}`);
    expect(older.events.map((e) => e.event.message.split(' ')[1])).toEqual(['1230', '1231', '1232', '1233', '1234']);
    const start = await readPage(store, { containers: ['db'], filter: {} }, 5, eventKey(big[3]!));
    expect(start.events.map((e) => e.event.message.split(' ')[1])).toEqual(['0', '1', '2']);
    expect(start.next).toBeUndefined();
  });

  it('says which container it does not know', async () => {
    const { store } = storeWith(seed());
    await expect(readPage(store, { containers: ['nope'], filter: {} }, 5)).rejects.toThrow(/no container, compose service or tag matches "nope"/);
  });
});

describe('readAll', () => {
  it('gives every matching line of several containers in order', async () => {
    const { store } = storeWith(seed());
    const out: string[] = [];
    for await (const e of readAll(store, { containers: ['web-2', 'db'], filter: { since: makeEvent({ sec: T0 + 57, seq: 0, message: '' })['@timestamp'] } })) {
      out.push(e.event.message);
    }
    expect(out).toEqual(['web 57', 'db 57', 'db 58', 'web 59', 'db 59']);
  });
});

describe('overlapping selections', () => {
  const webs = Array.from({ length: 60 }, (_, n) => `web ${n}`);
  const web1 = webs.filter((_, n) => n % 2 === 0);
  const overlaps: [string, string[], string[]][] = [
    ['a name and its id', ['web-1', fakeId('aa')], web1],
    ['a name and an id prefix', ['web-1', 'aa00'], web1],
    ['a service and one of its replicas', ['web', 'web-1'], webs],
    ['a service, a replica by name and by id', ['web-2', 'web', 'web-1', fakeId('aa')], webs],
  ];

  it.each(overlaps)('reads each line once, a page at a time: %s', async (_, containers, expected) => {
    const { store } = storeWith(seed());
    const first = await readPage(store, { containers, filter: {} }, 7);
    expect(first.events.map((e) => e.event.message)).toEqual(expected.slice(-7));
    expect((await allPages(store, { containers, filter: {} }, 7)).messages).toEqual(expected);
    expect((await allPages(store, { containers, filter: {} }, 1000)).messages).toEqual(expected);
  });

  it.each(overlaps)('exports each line once: %s', async (_, containers, expected) => {
    const { store } = storeWith(seed());
    const out: string[] = [];
    for await (const e of readAll(store, { containers, filter: {} })) out.push(e.event.message);
    expect(out).toEqual(expected);
  });

  it('keeps lines of two sources that share a timestamp and seq (a clock stepped back can repeat one)', async () => {
    const same = [WEB1, WEB2].map((c) => makeEvent({ container: c, sec: T0, seq: 7, message: `same ${c.name}` }));
    const { store } = storeWith([same]);
    const query = { containers: ['web', 'web-1', 'web-2'], filter: {} };
    expect((await readPage(store, query, 10)).events.map((e) => e.event.message).sort()).toEqual(['same web-1', 'same web-2']);
    const out: string[] = [];
    for await (const e of readAll(store, query)) out.push(e.event.message);
    expect(out.sort()).toEqual(['same web-1', 'same web-2']);
  });
});

describe('file store stats', () => {
  it('counts only the new lines of a file on the next call', async () => {
    const { dir, store } = storeWith(seed());
    const db = async () => (await store.stats()).find((s) => s.info.name === 'db');
    expect(await db()).toMatchObject({ other: 60 });
    appendToStore(dir, [makeEvent({ container: DB, sec: T0 + 100, seq: 999, message: 'late', stream: 'stderr' })], 2);
    expect(await db()).toMatchObject({ other: 60, stderr: 1, last: makeEvent({ sec: T0 + 100, seq: 0, message: '' })['@timestamp'] });
  });
});
