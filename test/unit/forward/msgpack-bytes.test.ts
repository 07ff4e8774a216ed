import { describe, expect, it } from 'vitest';
import { decodeValue } from '../../../src/collector/forward/decoder.js';
import { encodeMsgpack } from '../../../src/collector/forward/encode.js';
import { LIMITS as FORWARD_LIMITS } from '../../helpers/forward.js';
import { FIXED_PAYLOAD, numberAt, SCALAR_BYTES, skipNested, skipStr, strEnd, strStart } from '../../../src/collector/msgpack-bytes.js';

const LIMITS = { depth: 8, items: 1024, mapKeys: 64 };

function str(len: number, header: number[]): Buffer {
  return Buffer.concat([Buffer.from(header), Buffer.alloc(len, 0x61)]);
}

describe('msgpack-bytes', () => {
  it('counts the bytes of every scalar the fast path keeps, and no 64-bit integer or ext', () => {
    const kept = [...SCALAR_BYTES.entries()].filter(([, n]) => n > 0).map(([b, n]) => [b, n]);
    const expected = new Map<number, number>([[0xc0, 1], [0xc2, 1], [0xc3, 1], [0xcc, 2], [0xcd, 3], [0xce, 5], [0xd0, 2], [0xd1, 3], [0xd2, 5], [0xca, 5], [0xcb, 9]]);
    for (let b = 0x00; b <= 0x7f; b++) expected.set(b, 1);
    for (let b = 0xe0; b <= 0xff; b++) expected.set(b, 1);
    expect(new Map(kept as Array<[number, number]>)).toEqual(expected);
    for (const b of [0xcf, 0xd3, 0xd4, 0xd8, 0xc4, 0xd9, 0x80, 0x90]) expect(SCALAR_BYTES[b]).toBe(0);
    expect(FIXED_PAYLOAD[0xcf]).toBe(8);
    expect(FIXED_PAYLOAD[0xd8]).toBe(17);
    expect(FIXED_PAYLOAD[0xd9]).toBe(-1);
  });

  it('reads numbers as the decoder does', () => {
    for (const n of [0, 127, -1, -32, -33, 200, 40000, 4_000_000_000, -200, -40000, -2_000_000_000, 1.5, -0.25, 1e300]) {
      const bytes = encodeMsgpack(n);
      if (SCALAR_BYTES[bytes[0]!] === 0) continue;
      expect(numberAt(bytes, 0)).toBe(decodeValue(bytes, FORWARD_LIMITS));
      expect(SCALAR_BYTES[bytes[0]!]).toBe(bytes.length);
    }
  });

  it('finds the bytes of a str of each width, and refuses one cut short', () => {
    for (const [len, header] of [[5, [0xa5]], [40, [0xd9, 40]], [300, [0xda, 0x01, 0x2c]], [70000, [0xdb, 0x00, 0x01, 0x11, 0x70]]] as const) {
      const b = str(len, [...header]);
      expect(strStart(b, 0)).toBe(header.length);
      expect(strEnd(b, 0)).toBe(b.length);
      expect(skipStr(b, 0, b.length)).toBe(b.length);
      expect(skipStr(b, 0, b.length - 1)).toBe(-1);
      expect(skipStr(b, 0, header.length - 1)).toBe(-1);
    }
    expect(skipStr(Buffer.from([0xc0]), 0, 1)).toBe(-1);
  });

  it('finds where a map or an array of strings and scalars ends, within its limits', () => {
    const value = encodeMsgpack({ pod: 'shop', labels: { app: 'shop', n: 3 }, list: [1, 'two', null, true, { x: 1.5 }] });
    expect(skipNested(value, 0, value.length, 1, LIMITS)).toBe(value.length);
    for (let cut = 0; cut < value.length; cut++) expect(skipNested(value, 0, cut, 1, LIMITS)).toBe(-1);
    expect(skipNested(value, 0, value.length, 1, { ...LIMITS, depth: 2 })).toBe(-1);
    expect(skipNested(value, 0, value.length, 1, { ...LIMITS, items: 4 })).toBe(-1);
    expect(skipNested(value, 0, value.length, 1, { ...LIMITS, mapKeys: 2 })).toBe(-1);
    const wide = Buffer.from([0x81, 0xa3, 0x62, 0x69, 0x67, 0xcf, 0, 0, 1, 0, 0, 0, 0, 0]);
    expect(skipNested(wide, 0, wide.length, 1, LIMITS)).toBe(-1);
    const numericKey = Buffer.from([0x81, 0x01, 0x02]);
    expect(skipNested(numericKey, 0, numericKey.length, 1, LIMITS)).toBe(-1);
  });
});
