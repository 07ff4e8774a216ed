/** logfmt lines copied from real programs' output, and lines that only look like it. */
import { describe, expect, it } from 'vitest';
import { parseLogfmt, startsWithPair } from '../../../src/collector/transforms/logfmt.js';

describe('parseLogfmt', () => {
  it('reads a Heroku router line', () => {
    const line =
      'at=info method=GET path=/ host=salty-earth-7125.herokuapp.com request_id=e2c79e86b3260b9c703756ec93f8a66d fwd="67.180.77.184" dyno=web.1 connect=1ms service=8ms status=200 bytes=21';
    expect(parseLogfmt(line)).toEqual({
      at: 'info',
      method: 'GET',
      path: '/',
      host: 'salty-earth-7125.herokuapp.com',
      request_id: 'e2c79e86b3260b9c703756ec93f8a66d',
      fwd: '67.180.77.184',
      dyno: 'web.1',
      connect: '1ms',
      service: '8ms',
      status: '200',
      bytes: '21',
    });
  });

  it('reads Go slog TextHandler lines (values stay strings)', () => {
    expect(parseLogfmt('time=2022-11-08T15:28:26.000-05:00 level=INFO msg=hello count=3')).toEqual({
      time: '2022-11-08T15:28:26.000-05:00',
      level: 'INFO',
      msg: 'hello',
      count: '3',
    });
    expect(parseLogfmt('level=INFO msg=login name=whoami id=42')).toEqual({ level: 'INFO', msg: 'login', name: 'whoami', id: '42' });
    expect(parseLogfmt('time=2023-05-06T13:24:00.476+02:00 level=INFO msg="added `count` x `item` to shopping cart by `user`" count=7 item=Hat user="John Doe"')).toMatchObject({
      msg: 'added `count` x `item` to shopping cart by `user`',
      user: 'John Doe',
    });
  });

  it('reads logrus TextFormatter lines without a terminal, escapes decoded', () => {
    expect(parseLogfmt('time="2026-11-29T12:00:00Z" level=warning msg="quoted \\"word\\" and a \\\\ backslash\\nnext line" component=api')).toEqual({
      time: '2026-11-29T12:00:00Z',
      level: 'warning',
      msg: 'quoted "word" and a \\ backslash\nnext line',
      component: 'api',
    });
    expect(parseLogfmt('level=info msg="caf\\u00e9 \\x41" a=')).toEqual({ level: 'info', msg: 'caf\u00e9 \\x41', a: '' });
  });

  it('keeps a repeated key once, with its last value', () => {
    expect(parseLogfmt('a=1 b=2 a=3')).toEqual({ a: '3', b: '2' });
    expect(Object.keys(parseLogfmt('a=1 b=2 a=3')!)).toEqual(['a', 'b']);
  });

  it('keeps __proto__ as a field, not a prototype', () => {
    const f = parseLogfmt('__proto__=x constructor=y')!;
    expect(Object.getPrototypeOf(f)).toBe(Object.prototype);
    expect(Object.keys(f)).toEqual(['__proto__', 'constructor']);
  });

  it.each([
    ['one pair only', 'retries=3'],
    ['free text with pairs in it', 'user said x=1 and y=2'],
    ['pairs, then text', 'a=1 b=2 done'],
    ['a bare key', 'a=1 verbose b=2'],
    ['an unclosed quote', 'a=1 msg="never closed'],
    ['text right after a quote', 'a=1 msg="x"y'],
    ['an = in a bare value', 'a=1 q=x=y'],
    ['a leading space', ' a=1 b=2'],
    ['an SQL statement', 'UPDATE t SET a=1, b=2 WHERE id=3'],
    ['a URL query', 'GET /search?q=1&page=2 HTTP/1.1'],
    ['a JSON line', '{"a":1,"b":2}'],
    ['an empty line', ''],
  ])('is not logfmt: %s', (_name, line) => {
    expect(parseLogfmt(line)).toBeUndefined();
  });

  it('tells the fast path which lines may be logfmt, on bytes', () => {
    expect(startsWithPair(Buffer.from('xlevel=info msg=x'), 1, 17)).toBe(true);
    expect(startsWithPair(Buffer.from('plain text a=b'), 0, 14)).toBe(false);
    expect(startsWithPair(Buffer.from('=x'), 0, 2)).toBe(false);
    expect(startsWithPair(Buffer.from('key'), 0, 3)).toBe(false);
  });
});
