import { describe, expect, it } from 'vitest';
import { IntegerText, parseJson, stringifyJson } from '../../../src/collector/json-values.js';

const roundTrip = (text: string): string => stringifyJson(parseJson(text));

describe('json-values', () => {
  it('keeps the digits of integers a double would round, wherever they are', () => {
    expect(roundTrip('{"level":"info","time":1700000000123456789,"message":"zerolog, nanoseconds"}')).toBe('{"level":"info","time":1700000000123456789,"message":"zerolog, nanoseconds"}');
    expect(roundTrip('{ "id" : 1234567890123456789 , "a" : [ -9007199254740993, 1 ], "o": {"deep": {"n": 99999999999999999999999}} }')).toBe(
      '{"id":1234567890123456789,"a":[-9007199254740993,1],"o":{"deep":{"n":99999999999999999999999}}}',
    );
    expect(parseJson('{"t":1700000000123456789}')).toEqual({ t: new IntegerText('1700000000123456789') });
    expect(roundTrip('[12345678901234567890]')).toBe('[12345678901234567890]');
    expect(roundTrip('12345678901234567890')).toBe('12345678901234567890');
    // 16 digits: past 2^53 only from a 9 on.
    expect(parseJson('[9007199254740993,9007199254740991,1799999999999999]')).toEqual([new IntegerText('9007199254740993'), 9007199254740991, 1799999999999999]);
  });

  it('leaves every other value as JSON.parse and JSON.stringify make it', () => {
    const cases: Array<[string, string]> = [
      // Long integers a double holds exactly, long numbers that are no integer, and digits in strings.
      ['{"a":10000000000000000,"b":1234567890123456.7,"c":1e21,"d":12345678901234567e3,"e":"12345678901234567890"}', '{"a":10000000000000000,"b":1234567890123456.8,"c":1e+21,"d":12345678901234567000,"e":"12345678901234567890"}'],
      ['{"a":-0,"b":1.50,"c":"\\u00e9\\/\\n","d":[true,false,null,{}],"e":[]}', '{"a":0,"b":1.5,"c":"é/\\n","d":[true,false,null,{}],"e":[]}'],
      // JSON.parse's member order and repeats: index keys first, the last value at the first place.
      ['{"b":1,"2":2,"1":1,"b":12345678901234567890,"__proto__":{"x":12345678901234567890}}', '{"1":1,"2":2,"b":12345678901234567890,"__proto__":{"x":12345678901234567890}}'],
      ['{"k\\"ey":12345678901234567890,"k\\u0065y":1}', '{"k\\"ey":12345678901234567890,"key":1}'],
    ];
    for (const [text, expected] of cases) {
      expect(roundTrip(text), text).toBe(expected);
      expect(Object.keys(parseJson(text) as object), text).toEqual(Object.keys(JSON.parse(text) as object));
    }
    expect(Object.getPrototypeOf(parseJson('{"__proto__":{"x":12345678901234567890}}'))).toBe(Object.prototype);
    expect(() => parseJson('{"a":12345678901234567890')).toThrow(SyntaxError);
  });

  it('writes random documents as JSON.stringify would, with long integers as written', () => {
    let seed = 11;
    const rand = (n: number): number => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % n;
    const digits = (n: number): string => Array.from({ length: n }, () => String(rand(10))).join('');
    const space = (): string => [' ', '', '\n', '\t', ''][rand(5)]!;
    /** A random value as [JSON text with random whitespace, the text clogs must write]. */
    const value = (depth: number): [string, string] => {
      const r = rand(depth > 3 ? 3 : 6);
      if (r === 0) {
        let n = (rand(3) === 0 ? '-' : '') + (rand(5) === 0 ? '0' : String(1 + rand(9)) + digits(rand(24)));
        if (rand(4) === 0) n += '.' + digits(1 + rand(5));
        const kept = /^-?\d{16,}$/.test(n) && String(Number(n)) !== n;
        return [n, kept ? n : JSON.stringify(Number(n))];
      }
      if (r === 1) {
        const s = ['plain', 'q"uote', 'é', '12345678901234567890', 'back\\slash'][rand(5)]!;
        return [JSON.stringify(s), JSON.stringify(s)];
      }
      if (r === 2) {
        const w = ['true', 'false', 'null'][rand(3)]!;
        return [w, w];
      }
      if (r === 3) {
        const items = Array.from({ length: rand(4) }, () => value(depth + 1));
        return [`[${space()}${items.map((i) => i[0]).join(`${space()},${space()}`)}${space()}]`, `[${items.map((i) => i[1]).join(',')}]`];
      }
      // Distinct keys that are no array index, so member order is the order written.
      const members = Array.from({ length: rand(4) }, (_, k) => [`k${k}`, value(depth + 1)] as const);
      return [
        `{${space()}${members.map(([k, v]) => `"${k}"${space()}:${space()}${v[0]}`).join(`${space()},`)}${space()}}`,
        `{${members.map(([k, v]) => `"${k}":${v[1]}`).join(',')}}`,
      ];
    };
    let kept = 0;
    for (let i = 0; i < 5000; i++) {
      const [text, expected] = value(0);
      expect(roundTrip(text), text).toBe(expected);
      if (expected !== JSON.stringify(JSON.parse(text))) kept++;
    }
    expect(kept).toBeGreaterThan(50);
  });

  it('writes what JSON.stringify writes, digits as strings, nested deeper than its own writer goes', () => {
    let failedWrites = 0;
    for (let depth = 500; depth <= 8000; depth += 500) {
      const text = '['.repeat(depth) + '12345678901234567890' + ']'.repeat(depth);
      let plain: string;
      try {
        plain = JSON.stringify(JSON.parse(text));
      } catch {
        continue;
      }
      const written = stringifyJson(parseJson(text));
      if (written === text) continue;
      failedWrites++;
      // Past the writer's depth the digits stay as strings; past the reader's, the number is JSON.parse's.
      expect([plain.replace('12345678901234567000', '"12345678901234567890"'), plain]).toContain(written);
    }
    expect(failedWrites).toBeGreaterThan(0);
  });

  it('falls back to JSON.parse past its own nesting depth, and never throws for it', () => {
    const text = '['.repeat(100_000) + '12345678901234567890' + ']'.repeat(100_000);
    expect(() => parseJson(text)).not.toThrow();
  });
});
