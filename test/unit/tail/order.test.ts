import { describe, expect, it } from 'vitest';
import { compareEvents, compareStored, compareToKey, Deduper, eventKey, mergeOrdered, NewestEvents, parseKey, type StoredEvent } from '../../../src/tail/order.js';
import { makeEvent } from '../../helpers/tail.js';

const ev = (sec: number, nsec: number, seq: number): StoredEvent => {
  const event = makeEvent({ sec, nsec, seq, message: `${sec}.${nsec}#${seq}`, tag: 't' });
  return { event, raw: JSON.stringify(event) };
};

async function* from<T>(items: readonly T[]): AsyncGenerator<T> {
  yield* items;
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe('order', () => {
  it('sorts by nanosecond timestamp, then by seq', () => {
    const a = ev(10, 1, 5).event;
    const b = ev(10, 2, 1).event;
    const c = ev(10, 2, 2).event;
    expect([c, b, a].sort(compareEvents)).toEqual([a, b, c]);
    // String order of the fixed-width timestamp is time order even across a digit carry.
    expect(compareEvents(ev(9, 999_999_999, 9).event, ev(10, 0, 0).event)).toBeLessThan(0);
  });

  it('sorts lines of one time by host, then seq: two hosts\' collectors count seq each on their own', () => {
    const a = { ...ev(10, 0, 7).event, host: { name: 'host-a' } };
    const b = { ...ev(10, 0, 3).event, host: { name: 'host-b' } };
    const b2 = { ...ev(10, 0, 7).event, host: { name: 'host-b' } };
    expect([b2, b, a].sort(compareEvents)).toEqual([a, b, b2]);
    expect(compareToKey(b, parseKey(eventKey(b))!)).toBe(0);
    // Code point order, as Elasticsearch sorts keywords: U+FF21 before U+1F600, though its UTF-16 unit is larger.
    const wide = { ...ev(10, 0, 1).event, host: { name: 'h\uFF21' } };
    const emoji = { ...ev(10, 0, 1).event, host: { name: 'h\u{1F600}' } };
    expect([emoji, wide].sort(compareEvents)).toEqual([wide, emoji]);
    expect(Buffer.compare(Buffer.from(wide.host.name), Buffer.from(emoji.host.name))).toBeLessThan(0);
    expect(compareToKey(a, parseKey(eventKey(b))!)).toBeLessThan(0);
  });

  it('keys an event as @timestamp/host/seq, and reads the older @timestamp/seq as after every host of its time', () => {
    const e = ev(1795341190, 42, 7).event;
    expect(eventKey(e)).toBe('2026-11-22T09:53:10.000000042Z/test-host/7');
    expect(parseKey(eventKey({ ...e, host: { name: 'a/b' } }))).toEqual({ ts: '2026-11-22T09:53:10.000000042Z', host: 'a/b', seq: 7 });
    // A page before an older cursor holds every line of its time, whatever its seq: none is lost.
    const old = parseKey('2026-11-22T09:53:10.000000042Z/5')!;
    expect(compareToKey(e, old)).toBeLessThan(0);
    expect(compareToKey(ev(1795341190, 43, 1).event, old)).toBeGreaterThan(0);
    for (const bad of ['', '7', '/7', 'zzz/1', '0/1', '2026-11-22T09:53:10Z/h/1', '2026-11-22T09:53:10.000000042Z/', '2026-11-22T09:53:10.000000042Z/h/x']) expect(parseKey(bad), bad).toBeUndefined();
  });

  it('mergeOrdered with a window puts a nearly sorted stream in order', async () => {
    const input = [ev(1, 0, 1), ev(3, 0, 3), ev(2, 0, 2), ev(4, 0, 5), ev(4, 0, 4), ev(5, 0, 6)];
    const out = await collect(mergeOrdered([from(input)], 2));
    expect(out.map((e) => e.event.clogs.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    // Without one, the swaps stay.
    expect((await collect(mergeOrdered([from(input)]))).map((e) => e.event.clogs.seq)).toEqual([1, 3, 2, 5, 4, 6]);
  });

  it('mergeOrdered sorts nearly sorted streams in one window: at most window + one head per stream held', async () => {
    // 50 streams interleaved in time, each with neighbours swapped every 5 lines.
    const streams = Array.from({ length: 50 }, (_, s) => {
      const lines = Array.from({ length: 40 }, (_, i) => ev(i, s, s * 100 + i));
      for (let i = 2; i + 1 < lines.length; i += 5) [lines[i], lines[i + 1]] = [lines[i + 1]!, lines[i]!];
      return lines;
    });
    const sorted = streams.flat().sort(compareStored);
    // Held: taken from the streams and not returned yet.
    let held = 0;
    let most = 0;
    async function* counted(items: readonly StoredEvent[]): AsyncGenerator<StoredEvent> {
      for (const x of items) {
        most = Math.max(most, ++held);
        yield x;
      }
    }
    const out: StoredEvent[] = [];
    for await (const e of mergeOrdered(streams.map(counted), 200)) {
      held--;
      out.push(e);
    }
    expect(out).toEqual(sorted);
    expect(most).toBeGreaterThan(200);
    expect(most).toBeLessThanOrEqual(200 + 50);
  });

  it('mergeOrdered merges sorted streams into one sorted stream', async () => {
    const a = [ev(1, 0, 1), ev(4, 0, 4), ev(6, 0, 6)];
    const b = [ev(2, 0, 2), ev(3, 0, 3), ev(5, 0, 5)];
    const out = await collect(mergeOrdered([from(a), from(b), from([])]));
    expect(out.map((e) => e.event.clogs.seq)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('NewestEvents keeps what sorting all and keeping the end keeps, ties included, holding no more', () => {
    // Equal events (same timestamp and seq) told apart by their raw text.
    const input = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9].map((sec, i) => ({ ...ev(sec, 0, 0), raw: `#${i}` }));
    for (const max of [0, 1, 4, 7, 15, 20]) {
      const newest = new NewestEvents(max);
      for (const e of input) {
        newest.add(e);
        expect(newest.size).toBeLessThanOrEqual(max);
      }
      const expected = [...input].sort(compareStored).slice(Math.max(0, input.length - max));
      expect(newest.drain().map((e) => e.raw)).toEqual(expected.map((e) => e.raw));
    }
  });
});

describe('Deduper (the switch from history to live)', () => {
  it('admits an event once, whichever side delivers it first, and forgets it after the second sighting', () => {
    const d = new Deduper();
    const e = ev(1, 0, 1).event;
    const copy = JSON.parse(JSON.stringify(e)) as typeof e;
    expect(d.admit(e)).toBe(true);
    expect(d.size).toBe(1);
    expect(d.admit(copy)).toBe(false);
    expect(d.size).toBe(0);
  });

  it('keeps events with the same timestamp but different seq apart', () => {
    const d = new Deduper();
    expect(d.admit(ev(1, 0, 1).event)).toBe(true);
    expect(d.admit(ev(1, 0, 2).event)).toBe(true);
  });

  it('forgets the oldest keys beyond its bound', () => {
    const d = new Deduper(3);
    for (let i = 0; i < 5; i++) d.admit(ev(1, 0, i).event);
    expect(d.size).toBe(3);
    expect(d.admit(ev(1, 0, 0).event)).toBe(true);
    expect(d.admit(ev(1, 0, 4).event)).toBe(false);
  });
});
