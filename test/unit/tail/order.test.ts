import { describe, expect, it } from 'vitest';
import { compareEvents, Deduper, eventKey, mergeOrdered, reorderWindow, type StoredEvent } from '../../../src/tail/order.js';
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

  it('keys an event as @timestamp/seq, the SSE id the collector sends', () => {
    expect(eventKey(ev(1795341190, 42, 7).event)).toBe('2026-11-22T09:53:10.000000042Z/7');
  });

  it('reorderWindow puts nearly sorted input in order with a bounded window', async () => {
    const input = [ev(1, 0, 1), ev(3, 0, 3), ev(2, 0, 2), ev(4, 0, 5), ev(4, 0, 4), ev(5, 0, 6)];
    const out = await collect(reorderWindow(from(input), 2));
    expect(out.map((e) => e.event.clogs.seq)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('mergeOrdered merges sorted streams into one sorted stream', async () => {
    const a = [ev(1, 0, 1), ev(4, 0, 4), ev(6, 0, 6)];
    const b = [ev(2, 0, 2), ev(3, 0, 3), ev(5, 0, 5)];
    const out = await collect(mergeOrdered([from(a), from(b), from([])]));
    expect(out.map((e) => e.event.clogs.seq)).toEqual([1, 2, 3, 4, 5, 6]);
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
