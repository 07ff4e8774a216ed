import { describe, expect, it } from 'vitest';
import { plainWord, utf8End } from '../../../src/collector/json-bytes.js';
import { JsonMembers, KIND_INTEGER, KIND_OTHER, KIND_STRING } from '../../../src/collector/json-members.js';
import { parseJson, stringifyJson } from '../../../src/collector/json-values.js';

/** What the general path writes for a JSON text: JSON.parse and JSON.stringify, long integers as written. */
const rewrite = (text: string): string => stringifyJson(parseJson(text));

const needsEscape = (b: number): boolean => b < 0x20 || b > 0x7f || b === 0x22 || b === 0x5c;

function scan(text: string): { ok: boolean; rewrite: boolean; members: Array<[string, string, number]> } {
  const buf = Buffer.from(`xx${text}yy`);
  const m = new JsonMembers();
  const ok = m.scan(buf, new DataView(buf.buffer, buf.byteOffset, buf.length), 2, buf.length - 2);
  const members: Array<[string, string, number]> = [];
  for (let i = 0; ok && i < m.count; i++) members.push([buf.toString('latin1', m.keyAt[i], m.keyEnd[i]), buf.toString('latin1', m.valueAt[i], m.valueEnd[i]), m.kind[i]!]);
  let rewrite = false;
  for (let i = 0; ok && i < m.count; i++) rewrite ||= m.rewrite[i] === 1;
  return { ok, rewrite, members };
}

describe('plainWord', () => {
  it('agrees with the byte rule on every mix of the edge bytes', () => {
    const edges = [0x00, 0x01, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x5b, 0x5c, 0x5d, 0x7e, 0x7f, 0x80, 0x81, 0xfe, 0xff, 0x41];
    for (const a of edges) for (const b of edges) for (const c of edges) for (const d of edges) {
      const x = ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
      expect(plainWord(x)).toBe(![a, b, c, d].some(needsEscape));
    }
  });
});

describe('JsonMembers', () => {
  it('finds the top-level members of a pino line, with their kinds', () => {
    const r = scan('{"level":30,"time":1795000000000,"msg":"a \\"b\\"","req":{"url":"/x","n":[1,null,true]},"neg":-5}');
    expect(r.ok).toBe(true);
    expect(r.members).toEqual([
      ['level', '30', KIND_INTEGER],
      ['time', '1795000000000', KIND_INTEGER],
      ['msg', '"a \\"b\\""', KIND_STRING],
      ['req', '{"url":"/x","n":[1,null,true]}', KIND_OTHER],
      ['neg', '-5', KIND_INTEGER],
    ]);
  });

  it('copies only what the general path writes back unchanged', () => {
    const accepted = ['{}', '{"a":""}', '{"a":"\\n\\t\\r\\b\\f\\\\\\""}', '{"a":0,"b":-1,"c":123456789012345}', '{"a":{"a":1},"b":{"a":2}}', '{"a":[]}', '{"a":"\u007f"}', '{"a":12345678901234567890,"b":[-9007199254740993]}'];
    for (const text of accepted) {
      expect(scan(text), text).toMatchObject({ ok: true, rewrite: false });
      expect(rewrite(text), text).toBe(text);
    }
    // Valid JSON that the general path writes another way: the member is marked to be written anew.
    const rewritten = ['{"a":1e3}', '{"a":"\\u0041"}', '{"a":"\\/"}', '{"a":"\\u00e9"}', '{"a":"\\u000a"}', '{"a":"\\u001B"}', '{"a":1.50}', '{"a":-0.0}', '{"a":0.0000001}', '{"a":0.1234567890123456789}', '{"a":-0}', '{"o":{"n":[1,2E-3]}}'];
    for (const text of rewritten) {
      expect(scan(text), text).toMatchObject({ ok: true, rewrite: true });
      expect(rewrite(text), text).not.toBe(text);
    }
    const refused = [
      '{"a": 1}', '{"a":01}', '{"a":1.}', '{"a":1e}', '{"a":-}', '{"a":"\\u00g1"}', '{"a":"\\x"}', '{"a":"tab\there"}', '{"a":1,"a":2}', '{"o":{"k":1,"k":2}}', '{"1":1}', '{"a":1', '{"a":1}}', '{"a":tru}', '[1]',
      `{"d":${'['.repeat(40)}${']'.repeat(40)}}`,
      // Escaped keys, at the top and below: compared as bytes, they would hide a repeat or a key clogs reads.
      '{"a\\/b":1}', '{"a":1,"\\u0061":2}', '{"\\u006dsg":"hi"}', '{"\\u0030":1,"b":2}', '{"o":{"a":1,"\\u0061":2}}', '{"k\\"q":1}',
    ];
    for (const text of refused) expect(scan(text).ok, text).toBe(false);
  });

  it('refuses an object with a key twice, at any depth, among keys that look alike', () => {
    let seed = 7;
    const rand = (n: number): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed % n;
    };
    // Same lengths, same first or last bytes, the empty key: keys a cheap check could confuse.
    const keys = ['a', 'b', 'ab', 'ba', 'aa', 'abc', 'acb', 'cba', '', 'é', 'level', 'lever', 'msg', 'mg'];
    const object = (depth: number): string => {
      const n = rand(6);
      const members: string[] = [];
      for (let i = 0; i < n; i++) members.push(`${JSON.stringify(keys[rand(keys.length)])}:${depth < 3 && rand(4) === 0 ? object(depth + 1) : String(rand(10))}`);
      return `{${members.join(',')}}`;
    };
    let refused = 0;
    for (let i = 0; i < 3000; i++) {
      const text = object(0);
      // Valid JSON in the form JSON.stringify writes: it writes it back unchanged unless a key repeats.
      const unique = JSON.stringify(JSON.parse(text)) === text;
      expect(scan(text).ok, text).toBe(unique);
      if (!unique) refused++;
    }
    expect(refused).toBeGreaterThan(300);
  });

  it('copies a number exactly when the general path writes it back the same', () => {
    let seed = 7;
    const rand = (n: number): number => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % n;
    const digits = (n: number): string => Array.from({ length: n }, () => String(rand(10))).join('');
    for (let i = 0; i < 20_000; i++) {
      let text = (rand(3) === 0 ? '-' : '') + (rand(4) === 0 ? '0' : String(1 + rand(9)) + digits(rand(18)));
      if (rand(2) === 0) text += '.' + digits(1 + rand(12));
      if (rand(20) === 0) text += 'e' + String(rand(30));
      const line = `{"n":${text}}`;
      let same = false;
      try {
        same = rewrite(line) === line;
      } catch {
        same = false;
      }
      // Every JSON number is read; copying one that would not round-trip is a
      // bug, writing anew one that would costs speed only.
      const r = scan(line);
      expect(r.ok, line).toBe(true);
      if (!r.rewrite) expect(same, line).toBe(true);
      else if (same && !/\d{16}/.test(text.replace(/[-.]/g, ''))) expect.fail(`rewrites ${line}, which round-trips`);
      else if (same && /^-?\d+$/.test(text)) expect.fail(`rewrites the integer ${line}`);
    }
  });
});

describe('utf8End', () => {
  it("agrees with Node's decoder on two-, three- and four-byte sequences", () => {
    const oneCharacter = (b: Buffer): boolean => {
      const s = b.toString('utf8');
      return [...s].length === 1 && !s.includes('\ufffd');
    };
    for (let a = 0x80; a <= 0xff; a++) {
      for (let b = 0; b <= 0xff; b++) {
        const two = Buffer.from([a, b]);
        expect(utf8End(two, 0, 2) === 2, two.toString('hex')).toBe(oneCharacter(two));
        for (const c of [0x80, 0xbf, 0x41]) {
          const four = Buffer.from([a, b, c, 0x90]);
          expect(utf8End(four, 0, 4) === 4, four.toString('hex')).toBe(oneCharacter(four));
          const three = Buffer.from([a, b, c]);
          expect(utf8End(three, 0, 3) === 3, three.toString('hex')).toBe(oneCharacter(three));
        }
      }
    }
  });
});
