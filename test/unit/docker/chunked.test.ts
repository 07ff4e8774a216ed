import { describe, expect, it } from 'vitest';
import { ChunkedDecoder } from '../../../src/collector/docker/chunked.js';

function decode(parts: Buffer[]): { body: Buffer; pieces: number; done: boolean } {
  const d = new ChunkedDecoder();
  const out: Buffer[] = [];
  for (const p of parts) d.push(p, out);
  return { body: Buffer.concat(out), pieces: out.length, done: d.done };
}

const frame = (text: string) => {
  const body = Buffer.from(text);
  const header = Buffer.alloc(8);
  header[0] = 1;
  header.writeUInt32BE(body.length, 4);
  return Buffer.concat([header, body]);
};

describe('ChunkedDecoder', () => {
  // What the engine sends for a followed log: one chunk per flushed frame,
  // binary payloads with CR and LF inside, a chunk extension, then a trailer.
  const frames = [frame('2026-11-22T09:54:12.667302120Z one\r\n'), frame('2026-11-22T09:54:12.667302121Z two\n'), Buffer.alloc(300, 0x0d)];
  const wire = Buffer.concat([
    ...frames.map((f, i) => Buffer.concat([Buffer.from(`${f.length.toString(16)}${i === 1 ? ';ext=1' : ''}\r\n`), f, Buffer.from('\r\n')])),
    Buffer.from('0\r\nX-Trailer: yes\r\n\r\n'),
  ]);
  const expected = Buffer.concat(frames);

  it('returns the body of a whole message and sees its end', () => {
    expect(decode([wire])).toEqual({ body: expected, pieces: 3, done: true });
  });

  it('gives the same body split at every byte', () => {
    for (let at = 0; at <= wire.length; at++) {
      const r = decode([wire.subarray(0, at), wire.subarray(at)]);
      expect(r.body.equals(expected), `split at ${at}`).toBe(true);
      expect(r.done).toBe(true);
    }
  });

  it('gives the same body one byte at a time', () => {
    const bytes = Array.from(wire, (b) => Buffer.from([b]));
    const r = decode(bytes);
    expect(r.body.equals(expected)).toBe(true);
    expect(r.done).toBe(true);
  });

  it('is not done before the last chunk and its empty trailer line', () => {
    const end = wire.length - 2;
    expect(decode([wire.subarray(0, end)]).done).toBe(false);
  });

  it('takes upper-case hex and bare LF line ends', () => {
    const body = Buffer.alloc(0x1a, 0x61);
    expect(decode([Buffer.concat([Buffer.from('1A\n'), body, Buffer.from('\n0\n\n')])])).toEqual({ body, pieces: 1, done: true });
  });

  it('takes whitespace around the size and skips extensions', () => {
    expect(decode([Buffer.from(' 3 ;a="x y"\r\nabc\r\n0\t\r\n\r\n')])).toEqual({ body: Buffer.from('abc'), pieces: 1, done: true });
  });

  it('ignores bytes after the end of the body', () => {
    expect(decode([Buffer.from('3\r\nabc\r\n0\r\n\r\ngarbage')]).body.toString()).toBe('abc');
  });

  it.each([
    ['a size that is not hex', 'zz\r\n'],
    ['data not followed by CRLF', '3\r\nabcd\r\n'],
    ['a size line that never ends', 'f'.repeat(9000)],
    ['a size too large', '123456789\r\n'],
    ['digits after whitespace', '1 2\r\n'],
    ['an extension without a size', ';x\r\n'],
    ['an empty size line', '\r\n'],
  ])('rejects %s', (_what, text) => {
    expect(() => decode([Buffer.from(text)])).toThrow(expect.objectContaining({ code: 'CLOGS_FRAME_MALFORMED' }));
  });
});
