import { describe, expect, it } from 'vitest';
import { BulkEntries } from '../../../src/sinks/elasticsearch/entries.js';

function entriesOf(texts: string[]): BulkEntries {
  const ends: number[] = [];
  let end = 0;
  for (const t of texts) ends.push((end += Buffer.byteLength(t)));
  return new BulkEntries(Buffer.from(texts.join('')), ends);
}

const texts = (e: BulkEntries): string[] => Array.from({ length: e.length }, (_, i) => e.entry(i).toString());

const ENTRIES = ['{"create":{"_id":"a"}}\n{"m":"é"}\n', '{"create":{"_id":"b"}}\n{"m":"two"}\n', '{"create":{"_id":"c"}}\n{"m":"😀"}\n', '{"create":{"_id":"d"}}\n{}\n'];

describe('BulkEntries', () => {
  it('gives each entry back, the body being all of them in order', () => {
    const e = entriesOf(ENTRIES);
    expect(e).toHaveLength(4);
    expect(texts(e)).toEqual(ENTRIES);
    expect(e.body.toString()).toBe(ENTRIES.join(''));
  });

  it('splits into halves that are views of the same body', () => {
    const e = entriesOf(ENTRIES);
    const first = e.slice(0, 2);
    const second = e.slice(2, 4);
    expect(texts(first)).toEqual(ENTRIES.slice(0, 2));
    expect(texts(second)).toEqual(ENTRIES.slice(2));
    expect(second.body.toString()).toBe(ENTRIES.slice(2).join(''));
    expect(second.body.buffer).toBe(e.body.buffer);
    expect(texts(second.slice(1, 2))).toEqual([ENTRIES[3]]);
  });

  it('picks entries to send again into a body of their own', () => {
    const picked = entriesOf(ENTRIES).pick([1, 3]);
    expect(texts(picked)).toEqual([ENTRIES[1], ENTRIES[3]]);
    expect(picked.body.toString()).toBe(ENTRIES[1]! + ENTRIES[3]!);
  });
});
