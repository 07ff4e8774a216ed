import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { ClogsError } from '../../../src/errors.js';
import { Framer } from '../../../src/collector/forward/framer.js';
import { decodeEntries, decodeMessageAt, decodeRequest, decodeValue } from '../../../src/collector/forward/decoder.js';
import type { ForwardRecord } from '../../../src/collector/forward/messages.js';
import { encodeMsgpack } from '../../../src/collector/forward/encode.js';
import { CONTAINER_ID, LIMITS, decodeStream, dockerRecord, entriesOf, mp, type Decoded } from '../../helpers/forward.js';
import { xorshift32 } from '../../helpers/random.js';
import { IntegerText } from '../../../src/collector/json-values.js';

const FIXTURES = join(process.cwd(), 'test/fixtures/docker/fluentd');

interface FixtureFrame {
  offset: number;
  length: number;
  mode: string;
  tag: string;
  time: { type: string; value?: number; seconds?: number; nanoseconds?: number };
  record: Record<string, string>;
  option: Record<string, string>;
  invalid_utf8_strings?: Array<{ path: string; hex: string }>;
}

const captures = readdirSync(FIXTURES)
  .filter((f) => f.endsWith('.bin') && !f.endsWith('.reply.bin'))
  .sort()
  .map((name) => ({
    name,
    bytes: readFileSync(join(FIXTURES, name)),
    frames: (JSON.parse(readFileSync(join(FIXTURES, name.replace(/\.bin$/, '.decoded.json')), 'utf8')) as { frames: FixtureFrame[] }).frames,
  }));

/** A record as plain key → string, the way the capture tool shows it. */
function plain(rec: ForwardRecord): Record<string, unknown> {
  const out: Record<string, unknown> = { ...rec.rest };
  const fixed: Record<string, string | Buffer | undefined> = {
    container_id: rec.containerId,
    container_name: rec.containerName,
    source: rec.source,
    log: rec.log,
    partial_message: rec.partialMessage,
    partial_id: rec.partialId,
    partial_ordinal: rec.partialOrdinal,
    partial_last: rec.partialLast,
  };
  for (const [k, v] of Object.entries(fixed)) if (v !== undefined) out[k] = typeof v === 'string' ? v : v.toString('utf8');
  return out;
}

function expectMatchesFixture(decoded: Decoded[], frames: FixtureFrame[]): void {
  expect(decoded).toHaveLength(frames.length);
  decoded.forEach((d, i) => {
    const f = frames[i]!;
    expect(d.frame.length).toBe(f.length);
    expect(d.message.mode).toBe(f.mode);
    if (d.message.mode !== 'Message') throw new Error('Docker sends Message mode only');
    expect(d.message.tag).toBe(f.tag);
    const { time, record } = d.entries[0]!;
    if (f.time.type === 'integer seconds') expect(time).toEqual({ sec: f.time.value, nsec: 0 });
    else expect(time).toEqual({ sec: f.time.seconds, nsec: f.time.nanoseconds });
    expect(plain(record)).toEqual(f.record);
    expect(Object.keys(plain(record)).sort()).toEqual(Object.keys(f.record).sort());
    const chunk = d.message.option.chunk;
    if (f.option.chunk === undefined) expect(chunk).toBeUndefined();
    else {
      expect(decodeValue(chunk!, LIMITS)).toBe(f.option.chunk);
      // Echoed as sent: Docker's chunk is a fixstr(24).
      expect(chunk![0]).toBe(0xa0 | 24);
    }
  });
}

function* randomSizes(seed: number, max: number): Generator<number> {
  let x = seed;
  for (;;) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    yield 1 + (x % max);
  }
}

describe('decoder against the Docker captures', () => {
  it('has captures to test', () => {
    expect(captures.map((c) => c.name)).toContain('g2-request-ack-withheld.conn2.bin');
    expect(captures.length).toBeGreaterThanOrEqual(12);
  });

  for (const c of captures) {
    describe(c.name, () => {
      it('decodes every frame as the capture tool did', () => {
        expectMatchesFixture(decodeStream(c.bytes), c.frames);
      });

      it('cuts the same frames when split at every byte offset', () => {
        const whole = decodeStream(c.bytes).map((d) => d.frame);
        for (let k = 1; k < c.bytes.length; k++) {
          const framer = new Framer(LIMITS.maxFrameSize);
          const out: Buffer[] = [];
          framer.push(Buffer.from(c.bytes.subarray(0, k)), out);
          // Valid until the next push.
          for (let i = 0; i < out.length; i++) out[i] = Buffer.from(out[i]!);
          const before = out.length;
          const second = Buffer.from(c.bytes.subarray(k));
          framer.push(second, out);
          expect(framer.midFrame).toBe(false);
          if (out.length !== whole.length || out.some((f, i) => !f.equals(whole[i]!))) throw new Error(`split at ${k} cut different frames`);
          // The requests from viewsFrom on lie back to back in the chunk; one before them there was held.
          const v = framer.viewsFrom;
          if (v < before || v > before + 1) throw new Error(`split at ${k}: viewsFrom ${v}, ${before} requests before the push`);
          for (let i = before; i < out.length; i++) {
            const f = out[i]!;
            const inChunk = f.buffer === second.buffer && f.byteOffset >= second.byteOffset && f.byteOffset + f.length <= second.byteOffset + second.length;
            if (inChunk !== i >= v) throw new Error(`split at ${k}: request ${i} is ${inChunk ? '' : 'not '}a view of the chunk`);
            if (i > v && f.byteOffset !== out[i - 1]!.byteOffset + out[i - 1]!.length) throw new Error(`split at ${k}: request ${i} does not follow the one before`);
          }
        }
      });

      it('decodes the same when fed one byte at a time and in random read sizes', () => {
        expectMatchesFixture(decodeStream(c.bytes, randomSizes(1, 1)), c.frames);
        for (const seed of [7, 42, 1234]) expectMatchesFixture(decodeStream(c.bytes, randomSizes(seed, 700)), c.frames);
      });
    });
  }

  it('keeps the raw bytes of split-line pieces and of invalid UTF-8 (d-long-lines, a-defaults)', () => {
    const long = decodeStream(captures.find((c) => c.name === 'd-long-lines.bin')!.bytes);
    const pieces = long.slice(0, 3).map((d) => d.entries[0]!.record.log);
    for (const p of pieces) expect(Buffer.isBuffer(p)).toBe(true);
    const joined = Buffer.concat(pieces as Buffer[]).toString();
    expect(joined).toHaveLength(40000);
    expect(joined.startsWith('1,2,3,4,')).toBe(true);
    // The empty last piece of a 16384-byte line.
    expect(long[4]!.entries[0]!.record.log).toEqual(Buffer.alloc(0));

    const a = decodeStream(captures.find((c) => c.name === 'a-defaults.bin')!.bytes);
    expect(a[6]!.entries[0]!.record.log).toBe('invalid utf8: \ufffd\ufffd');
  });
});

const T = 1795341190;

describe('decoder: the four modes', () => {
  const rec = (log: string) => dockerRecord(log);

  it('Message mode with and without option, EventTime fixext8 and ext8, float and v1.5 [time, meta]', () => {
    const stream = Buffer.concat([
      mp.arr(mp.str('a'), mp.int32(T), rec('int time')),
      mp.arr(mp.str('a'), mp.eventTime(T, 526990943), rec('fixext8'), mp.map([])),
      mp.arr(mp.str('a'), mp.eventTime(T, 1, 'ext8'), rec('ext8'), mp.nil()),
      mp.arr(mp.str('a'), mp.f64(T + 0.25), rec('float')),
      mp.arr(mp.str('a'), mp.arr(mp.eventTime(T, 5), mp.map([['k', mp.str('v')]])), rec('wrapped')),
      mp.arr(mp.str('a'), mp.uint64(BigInt(T)), rec('uint64')),
    ]);
    const out = decodeStream(stream);
    expect(out.map((d) => d.message.mode)).toEqual(Array(6).fill('Message'));
    expect(out.map((d) => d.entries[0]!.time)).toEqual([
      { sec: T, nsec: 0 },
      { sec: T, nsec: 526990943 },
      { sec: T, nsec: 1 },
      { sec: T, nsec: 250_000_000 },
      { sec: T, nsec: 5 },
      { sec: T, nsec: 0 },
    ]);
    expect(out.map((d) => d.entries[0]!.record.log)).toEqual(['int time', 'fixext8', 'ext8', 'float', 'wrapped', 'uint64']);
    expect(out[0]!.entries[0]!.record.containerId).toBe(CONTAINER_ID);
  });

  it('decodeMessageAt reads every Message-mode shape from requests back to back, and nothing else', () => {
    const frames = [
      mp.arr(mp.str('a'), mp.int32(T), rec('int time')),
      mp.arr(mp.str('a'), mp.eventTime(T, 526990943), rec('fixext8'), mp.map([])),
      mp.arr(mp.str('a'), mp.f64(T + 0.25), rec('float'), encodeMsgpack({ chunk: 'c-1' })),
      mp.arr(mp.str('a'), mp.arr(mp.eventTime(T, 5), mp.map([['k', mp.str('v')]])), rec('wrapped')),
    ];
    const run = Buffer.concat(frames);
    let pos = 0;
    for (const frame of frames) {
      const read = decodeMessageAt(run, pos, LIMITS)!;
      const message = decodeRequest(frame, LIMITS);
      if (message.mode !== 'Message') throw new Error('not Message mode');
      expect(read.tag).toBe('a');
      expect(read.option).toEqual(message.option);
      expect([read.entry]).toEqual(decodeEntries(message.entry, LIMITS));
      pos = read.end;
    }
    expect(pos).toBe(run.length);
    const others = [
      mp.arr(mp.str('a'), mp.bin(mp.arr(mp.int32(T), rec('packed')))),
      mp.arr(mp.str('a'), mp.arr(mp.arr(mp.int32(T), rec('forward')))),
      mp.arr(mp.str('a'), mp.arr(mp.arr(mp.int32(T), rec('forward'))), mp.map([])),
      mp.arr(mp.str('a'), mp.int32(T), rec('left over'), mp.map([]), mp.nil()),
      mp.nil(),
    ];
    for (const frame of others) expect(decodeMessageAt(frame, 0, LIMITS)).toBeUndefined();
    // Malformed: what decodeRequest and the entry's decoder say.
    expect(() => decodeMessageAt(mp.arr(mp.str('a'), mp.int32(T), mp.str('not a record'), mp.map([])), 0, LIMITS)).toThrow(/record at offset \d+ is a string, not a map/);
  });

  it('Forward mode, including [time, meta] entries and an empty entry list', () => {
    const entries = mp.arr(
      mp.arr(mp.int32(T), rec('one')),
      mp.arr(mp.arr(mp.eventTime(T, 9), mp.map([])), rec('two')),
      mp.arr(mp.f32(1.5), rec('three')),
    );
    const out = decodeStream(
      Buffer.concat([mp.arr(mp.str('fwd'), entries, mp.map([['chunk', mp.str('abc')]])), mp.arr(mp.str('empty'), mp.arr())]),
    );
    expect(out[0]!.message.mode).toBe('Forward');
    expect(out[0]!.entries.map((e) => [e.time, e.record.log])).toEqual([
      [{ sec: T, nsec: 0 }, 'one'],
      [{ sec: T, nsec: 9 }, 'two'],
      [{ sec: 1, nsec: 500_000_000 }, 'three'],
    ]);
    expect(out[0]!.message.mode === 'Forward' && out[0]!.message.option.chunk).toEqual(mp.str('abc'));
    expect(out[1]!.message.mode).toBe('Forward');
    expect(out[1]!.entries).toEqual([]);
  });

  const packed = Buffer.concat([
    mp.arr(mp.int32(T), rec('p1')),
    mp.arr(mp.eventTime(T, 7, 'ext8'), rec('p2 ✓')),
    mp.arr(mp.arr(mp.eventTime(T, 8), mp.map([])), rec('p3')),
  ]);

  it('PackedForward as bin, as str32 (Fluentd) and with compressed:"text"', () => {
    const chunk = mp.str('p8n9gmxTQVC8/nh2wlKKeQ==\n');
    const out = decodeStream(
      Buffer.concat([
        mp.arr(mp.str('bin'), mp.bin(packed)),
        mp.arr(mp.str('str32'), mp.str(packed, 'str32'), mp.map([['size', mp.fixint(3)], ['chunk', chunk], ['compressed', mp.str('text')]])),
        mp.arr(mp.str('bin32'), mp.bin(packed, 'bin32'), mp.map([])),
      ]),
    );
    for (const d of out) {
      expect(d.message.mode).toBe('PackedForward');
      expect(d.entries.map((e) => e.record.log)).toEqual(['p1', 'p2 ✓', 'p3']);
      expect(d.entries.map((e) => e.time.nsec)).toEqual([0, 7, 8]);
    }
    const m = out[1]!.message;
    expect(m.mode === 'PackedForward' && m.option.chunk).toEqual(chunk);
  });

  it('CompressedPackedForward with several gzip members', () => {
    const half = packed.length >> 1;
    const gz = Buffer.concat([gzipSync(packed.subarray(0, half)), gzipSync(packed.subarray(half))]);
    const out = decodeStream(mp.arr(mp.str('gz'), mp.bin(gz), mp.map([['compressed', mp.str('gzip')], ['chunk', mp.str('c')]])));
    expect(out[0]!.message.mode).toBe('CompressedPackedForward');
    expect(out[0]!.entries.map((e) => e.record.log)).toEqual(['p1', 'p2 ✓', 'p3']);
  });

  it('heartbeat nil, fluent_signal, and records that are not Docker-shaped', () => {
    const out = decodeStream(
      Buffer.concat([
        mp.nil(),
        mp.arr(
          mp.str('app'),
          mp.int32(T),
          mp.map([
            ['level', mp.str('info')],
            ['msg', mp.str('hi')],
            ['n', mp.fixint(5)],
            ['nested', mp.map([['a', mp.arr(mp.bool(true), mp.nil(), mp.f64(1.5))]])],
            ['raw', mp.bin(Buffer.from('bytes'))],
            ['at', mp.eventTime(T, 1)],
            ['big', mp.uint64(2n ** 63n)],
            ['__proto__', mp.str('own key')],
          ]),
          mp.map([['fluent_signal', mp.fixint(2)]]),
        ),
      ]),
    );
    expect(out[0]!.message.mode).toBe('Heartbeat');
    const m = out[1]!.message;
    expect(m.mode === 'Message' && m.option.signal).toBe(2);
    const r = out[1]!.entries[0]!.record;
    expect(r.containerId).toBeUndefined();
    expect(r.rest).toEqual({
      level: 'info',
      msg: 'hi',
      n: 5,
      nested: { a: [true, null, 1.5] },
      raw: 'bytes',
      at: '2026-11-22T09:53:10.000000001Z',
      big: new IntegerText('9223372036854775808'),
      ['__proto__']: 'own key',
    });
    expect(Object.getPrototypeOf(r.rest)).toBe(Object.prototype);
  });
});

describe('Framer', () => {
  it('cuts values of every msgpack format, whole in a read or across reads', () => {
    const rand = xorshift32(0x9e3779b9);
    const bytes = (n: number): Buffer => Buffer.alloc(n, 0x61 + rand(26));
    const ext = (n: number, width: 1 | 2 | 4): Buffer => {
      const len = width === 1 ? mp.raw(0xc7, n) : width === 2 ? mp.raw(0xc8, n >> 8, n & 0xff) : mp.raw(0xc9, 0, 0, n >> 8, n & 0xff);
      return Buffer.concat([len, mp.raw(rand(128)), bytes(n)]);
    };
    const value = (depth: number): Buffer => {
      switch (depth < 3 ? rand(16) : rand(11)) {
        case 0: return mp.raw(rand(2) ? rand(128) : 0xe0 + rand(32));
        case 1: return [mp.nil(), mp.bool(true), mp.bool(false)][rand(3)]!;
        case 2: return [mp.f32(1.5), mp.f64(-2.25), mp.uint32(rand(1e6)), mp.int32(-rand(1e6)), mp.uint64(5n), mp.raw(0xcc, 7), mp.raw(0xd1, 1, 2)][rand(7)]!;
        case 3: {
          const fmt = (['fix', 'str8', 'str16', 'str32'] as const)[rand(4)]!;
          return mp.str(bytes(rand(fmt === 'fix' ? 32 : fmt === 'str8' ? 256 : 300)), fmt);
        }
        case 4: return mp.str(bytes(rand(300)));
        case 5: {
          const fmt = (['bin8', 'bin16', 'bin32'] as const)[rand(3)]!;
          return mp.bin(bytes(rand(fmt === 'bin8' ? 256 : 300)), fmt);
        }
        case 6: return fixext();
        case 7: {
          const width = ([1, 2, 4] as const)[rand(3)]!;
          return ext(rand(width === 1 ? 256 : 300), width);
        }
        case 8: return mp.eventTime(1_795_000_000 + rand(100), rand(1e9), rand(2) ? 'fixext8' : 'ext8');
        case 9: return Buffer.concat([mp.raw(0xdc, 0, 2), mp.fixint(1), mp.nil()]);
        case 10: return Buffer.concat([mp.raw(0xdf, 0, 0, 0, 1), mp.str('k'), mp.fixint(2)]);
        case 11: case 12: return mp.arr(...Array.from({ length: rand(20) }, () => value(depth + 1)));
        default: return mp.map(Array.from({ length: rand(18) }, (_, i): [string, Buffer] => [`k${i}`, value(depth + 1)]));
      }
    };
    const fixext = (): Buffer => {
      const b = [0xd4, 0xd5, 0xd6, 0xd7, 0xd8][rand(5)]!;
      return Buffer.concat([mp.raw(b, rand(128)), bytes([1, 2, 4, 8, 16][b - 0xd4]!)]);
    };
    const values = Array.from({ length: 2000 }, () => value(0));
    const stream = Buffer.concat(values);
    const whole: Buffer[] = [];
    new Framer(LIMITS.maxFrameSize).push(stream, whole);
    expect(whole.length).toBe(values.length);
    for (let i = 0; i < values.length; i++) if (!whole[i]!.equals(values[i]!)) throw new Error(`value ${i} cut as ${whole[i]!.toString('hex')}`);
    for (const size of [1, 7, 300, 4096]) {
      const framer = new Framer(LIMITS.maxFrameSize);
      const out: Buffer[] = [];
      for (let at = 0; at < stream.length; at += size) {
        const before = out.length;
        framer.push(Buffer.from(stream.subarray(at, at + size)), out);
        for (let i = before; i < out.length; i++) out[i] = Buffer.from(out[i]!);
      }
      expect(framer.midFrame).toBe(false);
      expect(out.length, `reads of ${size}`).toBe(values.length);
      for (let i = 0; i < values.length; i++) if (!out[i]!.equals(values[i]!)) throw new Error(`reads of ${size}: value ${i} differs`);
    }
  });
});

describe('decoder: bad input', () => {
  const expectError = (fn: () => unknown, code: string, message?: RegExp): void => {
    try {
      fn();
    } catch (err) {
      expect(err).toBeInstanceOf(ClogsError);
      expect((err as ClogsError).code).toBe(code);
      if (message) expect((err as ClogsError).message).toMatch(message);
      return;
    }
    throw new Error('expected an error');
  };
  const push = (bytes: Buffer, limits = LIMITS) => () => new Framer(limits.maxFrameSize).push(bytes, []);
  // A request and its entries, read as the input reads them (a Message-mode
  // record is checked with the entries, where packed-lines.ts reads it).
  const request = (bytes: Buffer, limits = LIMITS) => () => entriesOf(decodeRequest(bytes, limits), limits);

  it('rejects huge declared lengths and counts from their header alone, without allocating', () => {
    expectError(push(mp.raw(0xdb, 0xff, 0xff, 0xff, 0xff)), 'CLOGS_FRAME_TOO_LARGE');
    expectError(push(mp.raw(0x93, 0xa1, 0x61, 0xc6, 0x7f, 0xff, 0xff, 0xff)), 'CLOGS_FRAME_TOO_LARGE');
    expectError(push(mp.raw(0xdd, 0xff, 0xff, 0xff, 0xff)), 'CLOGS_FRAME_TOO_LARGE', /items/);
    expectError(push(mp.raw(0xdf, 0x7f, 0xff, 0xff, 0xff)), 'CLOGS_FRAME_TOO_LARGE');
    expectError(push(mp.raw(0xc9, 0xff, 0xff, 0xff, 0xf0)), 'CLOGS_FRAME_TOO_LARGE');
    // A length cut across reads is still caught as soon as it is complete.
    const f = new Framer(1000);
    f.push(mp.raw(0x92, 0xa1, 0x61, 0xc5, 0x10), []);
    expect(f.buffered).toBeLessThan(64 * 1024);
    expect(() => f.push(mp.raw(0x00), [])).toThrow(/max_frame_size/);
  });

  it('rejects a request over max_frame_size, even when sent in small pieces', () => {
    const small = { maxFrameSize: 1000, maxRecordKeys: 1024 };
    const big = mp.arr(mp.str('t'), mp.int32(T), dockerRecord('x'.repeat(2000)));
    expectError(push(big, small), 'CLOGS_FRAME_TOO_LARGE');
    const framer = new Framer(small.maxFrameSize);
    const many = mp.arr(mp.str('t'), mp.arr(...Array.from({ length: 100 }, () => mp.arr(mp.int32(T), dockerRecord('y')))));
    expect(() => {
      for (let i = 0; i < many.length; i += 7) framer.push(many.subarray(i, i + 7), []);
    }).toThrow(/max_frame_size/);
  });

  it('rejects too many record keys, also inside a PackedForward stream', () => {
    const limits = { maxFrameSize: LIMITS.maxFrameSize, maxRecordKeys: 3 };
    expectError(request(mp.arr(mp.str('t'), mp.int32(T), dockerRecord('x')), limits), 'CLOGS_TOO_MANY_KEYS');
    expectError(() => decodeEntries(mp.arr(mp.int32(T), dockerRecord('x')), limits), 'CLOGS_TOO_MANY_KEYS');
    expectError(request(mp.arr(mp.str('t'), mp.int32(T), mp.map([['a', mp.map(Array.from({ length: 4 }, (_, i): [string, Buffer] => [`k${i}`, mp.nil()]))]])), limits), 'CLOGS_TOO_MANY_KEYS');
  });

  it('rejects wrong types with a reason', () => {
    expectError(request(mp.str('hello')), 'CLOGS_FRAME_MALFORMED', /not an array or nil/);
    expectError(request(mp.arr(mp.str('t'))), 'CLOGS_FRAME_MALFORMED', /array of 1/);
    expectError(request(mp.arr(mp.fixint(1), mp.int32(T), dockerRecord('x'))), 'CLOGS_FRAME_MALFORMED', /tag is an integer/);
    expectError(request(mp.arr(mp.str('t'), mp.map([]), dockerRecord('x'))), 'CLOGS_FRAME_MALFORMED', /time .* is a map/);
    expectError(request(mp.arr(mp.str('t'), mp.int32(T), mp.str('not a map'))), 'CLOGS_FRAME_MALFORMED', /record .* not a map/);
    expectError(request(mp.arr(mp.str('t'), mp.int32(T), dockerRecord('x'), mp.str('opt'))), 'CLOGS_FRAME_MALFORMED', /option .* not a map/);
    expectError(request(mp.arr(mp.str('t'), mp.arr(mp.arr(mp.int32(T))))), 'CLOGS_FRAME_MALFORMED', /not \[time, record\]/);
    expectError(request(mp.arr(mp.str('t'), mp.bin(Buffer.from([1, 2])), mp.map([['compressed', mp.str('zstd')]]))), 'CLOGS_FRAME_MALFORMED', /zstd.*not supported/);
    expectError(request(mp.arr(mp.str('t'), mp.bin(Buffer.from([1, 2])), mp.map([['compressed', mp.str('lz4')]]))), 'CLOGS_FRAME_MALFORMED', /lz4/);
    expectError(request(mp.arr(mp.str('t'), Buffer.from([0xd7, 0x05, 0, 0, 0, 0, 0, 0, 0, 0]), dockerRecord('x'))), 'CLOGS_FRAME_MALFORMED', /ext type 5/);
    expectError(push(mp.raw(0x92, 0xc1)), 'CLOGS_FRAME_MALFORMED', /0xc1/);
  });

  it('rejects truncated entries inside a PackedForward stream', () => {
    const entry = mp.arr(mp.int32(T), dockerRecord('x'));
    for (let cut = 1; cut < entry.length; cut++) {
      expectError(() => decodeEntries(entry.subarray(0, cut), LIMITS), 'CLOGS_FRAME_MALFORMED');
    }
  });

  it('rejects nesting deeper than the limit in records', () => {
    let v = mp.nil();
    for (let i = 0; i < 40; i++) v = mp.arr(v);
    expectError(request(mp.arr(mp.str('t'), mp.int32(T), mp.map([['deep', v]]))), 'CLOGS_FRAME_MALFORMED', /nested deeper/);
  });

  it('survives random bytes: only ClogsErrors, never anything else', () => {
    let x = 99;
    for (let round = 0; round < 2000; round++) {
      const len = 1 + (round % 64);
      const bytes = Buffer.alloc(len);
      for (let i = 0; i < len; i++) bytes[i] = (x = (x * 1103515245 + 12345) & 0x7fffffff) >> 16;
      try {
        const frames: Buffer[] = [];
        new Framer(4096).push(bytes, frames);
        for (const f of frames) {
          const m = decodeRequest(f, { maxFrameSize: 4096, maxRecordKeys: 16 });
          if (m.mode === 'PackedForward') decodeEntries(m.entries, LIMITS);
        }
      } catch (err) {
        if (!(err instanceof ClogsError)) throw err;
      }
    }
  });
});

describe('decodeValue: which str and bin stay bytes', () => {
  const raw = Buffer.from([0xff, 0x80, 0x00]);
  const value = mp.arr(mp.str('PING'), mp.str(raw), mp.str(raw, 'str8'), mp.bin(raw), mp.map([['k', mp.str(raw)]]));

  it('none: both as UTF-8 text', () => {
    const text = raw.toString('utf8');
    expect(decodeValue(value, LIMITS, 'none')).toEqual(['PING', text, text, text, { k: text }]);
  });

  it('bin (the default): bin as bytes, str as text', () => {
    const text = raw.toString('utf8');
    expect(decodeValue(value, LIMITS)).toEqual(['PING', text, text, raw, { k: text }]);
  });

  it('all: every str and bin as the bytes received, map keys as text', () => {
    expect(decodeValue(value, LIMITS, 'all')).toEqual([Buffer.from('PING'), raw, raw, raw, { k: raw }]);
  });
});
