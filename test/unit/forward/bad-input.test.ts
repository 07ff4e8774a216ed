/**
 * Hostile and broken clients against a running forward input: each bad
 * connection is closed with a logged reason, a good connection next to it
 * keeps working, and the process goes on.
 */
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inputErrors } from '../../../src/metrics.js';
import { encodeMsgpack } from '../../../src/collector/forward/encode.js';
import { dockerRecord, mp, rawClient, startTestInput, type RawClient, type TestInput } from '../../helpers/forward.js';
import { until } from '../../helpers/until.js';

const T = 1795341190;
const MAX_FRAME = 64 * 1024;
let running: TestInput;

beforeAll(async () => {
  running = await startTestInput({ max_frame_size: MAX_FRAME, max_record_keys: 16 });
});
afterAll(async () => {
  await running.stop();
});

const request = (log: string, chunk: string): Buffer => mp.arr(mp.str('good'), mp.int32(T), dockerRecord(log), encodeMsgpack({ chunk }));

async function errorCount(reason: string): Promise<number> {
  const m = await inputErrors.get();
  return m.values.find((v) => v.labels.input === 'forward' && v.labels.reason === reason)?.value ?? 0;
}

/**
 * Sends `bad` on one connection while a good connection sends a request
 * before and after; expects the bad one closed with `reason` logged and both
 * good requests written and acked.
 */
async function expectRejected(bad: Buffer | ((c: RawClient) => Promise<void>), reason: RegExp, metric: string): Promise<RawClient> {
  const before = await errorCount(metric);
  const logsBefore = running.logs.length;
  const good = await rawClient(running.port);
  const tag = `g${Math.random().toString(36).slice(2)}`;
  await good.send(request(`${tag} 1`, `${tag}-1`));
  await good.waitReplies(1);

  const c = await rawClient(running.port);
  if (Buffer.isBuffer(bad)) await c.send(bad).catch(() => undefined);
  else await bad(c);
  await c.closed;

  await good.send(request(`${tag} 2`, `${tag}-2`));
  expect(await good.waitReplies(2)).toEqual([{ ack: `${tag}-1` }, { ack: `${tag}-2` }]);
  good.socket.end();
  await until('both good lines', () => running.sink.events.filter((e) => e.message.startsWith(tag)).length === 2, 5000);

  const closeLog = running.logs.slice(logsBefore).find((l) => l.msg === 'closing forward connection: bad input');
  expect(closeLog?.reason).toMatch(reason);
  expect(await errorCount(metric)).toBe(before + 1);
  return c;
}

describe('bad input closes only its own connection', () => {
  it('random bytes', async () => {
    // 0xc1 is never valid msgpack; the rest is noise.
    const noise = Buffer.concat([Buffer.from([0x94, 0xa1, 0x61, 0xc1]), Buffer.from(Array.from({ length: 500 }, (_, i) => (i * 73 + 11) & 0xff))]);
    await expectRejected(noise, /not a msgpack type/, 'malformed');
  });

  it('a request that is not an array', async () => {
    await expectRejected(mp.str('GET / HTTP/1.1'), /not an array or nil/, 'malformed');
  });

  it('wrong types inside a request', async () => {
    await expectRejected(mp.arr(mp.str('t'), mp.int32(T), mp.arr(mp.str('record?'))), /record .* not a map/, 'malformed');
    await expectRejected(mp.arr(mp.fixint(5), mp.int32(T), dockerRecord('x')), /tag is an integer/, 'malformed');
    await expectRejected(mp.arr(mp.str('t'), mp.bool(true), dockerRecord('x')), /time .* is a boolean/, 'malformed');
    await expectRejected(mp.arr(mp.str('t'), mp.bin(Buffer.from([0x92, 0x01])), mp.nil()), /truncated/, 'malformed');
  });

  it('times no RFC 3339 text can hold, with a chunk or without, in any encoding', async () => {
    const withChunk = (time: Buffer) => mp.arr(mp.str('t'), time, dockerRecord('x'), encodeMsgpack({ chunk: 'bad-time' }));
    await expectRejected(withChunk(mp.uint64(0xffff_ffff_ffff_ffffn)), /time at offset \d+ is .* outside the years 0000 to 9999/, 'malformed');
    await expectRejected(withChunk(mp.f64(1e20)), /outside the years 0000 to 9999/, 'malformed');
    await expectRejected(mp.arr(mp.str('t'), mp.f64(-1e12), dockerRecord('x')), /is -1000000000000 s, outside/, 'malformed');
    const entry = mp.arr(mp.uint64(2n ** 40n), dockerRecord('x'));
    await expectRejected(mp.arr(mp.str('t'), mp.bin(Buffer.concat([mp.arr(mp.int32(T), dockerRecord('x')), entry])), encodeMsgpack({ chunk: 'bad-packed' })), /outside/, 'malformed');
  });

  it('a chunk id longer than any client sends, which would be remembered for minutes', async () => {
    await expectRejected(mp.arr(mp.str('t'), mp.int32(T), dockerRecord('x'), encodeMsgpack({ chunk: 'c'.repeat(300) })), /option "chunk" .* 303 bytes, more than 256/, 'malformed');
  });

  it('huge declared lengths, rejected from the header alone', async () => {
    await expectRejected(Buffer.from([0x93, 0xa1, 0x74, 0xc6, 0xff, 0xff, 0xff, 0xff]), /max_frame_size/, 'frame_too_large');
    await expectRejected(Buffer.from([0xdd, 0x7f, 0xff, 0xff, 0xff]), /items/, 'frame_too_large');
  });

  it('a request over max_frame_size', async () => {
    await expectRejected(mp.arr(mp.str('t'), mp.int32(T), dockerRecord('x'.repeat(MAX_FRAME))), /max_frame_size/, 'frame_too_large');
  });

  it('a gzip chunk that inflates over max_frame_size', async () => {
    const { gzipSync } = await import('node:zlib');
    const entries = Buffer.concat(Array.from({ length: 50 }, () => mp.arr(mp.int32(T), dockerRecord('z'.repeat(4000)))));
    await expectRejected(mp.arr(mp.str('t'), mp.bin(gzipSync(entries)), encodeMsgpack({ compressed: 'gzip' })), /inflates/, 'frame_too_large');
  });

  it('too many record keys', async () => {
    const keys = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, 'v']));
    await expectRejected(mp.arr(mp.str('t'), mp.int32(T), mp.strMap(keys)), /max_record_keys/, 'too_many_keys');
  });

  it('a record whose maps and arrays hold more items than any log record: decoded, each is an object', async () => {
    // 5,000 empty maps under one key: 5 KB on the wire.
    const many = Buffer.concat([Buffer.from([0xdc, 0x13, 0x88]), Buffer.alloc(5000, 0x80)]);
    const record = mp.map([['log', mp.str('x')], ['a', many]]);
    await expectRejected(mp.arr(mp.str('t'), mp.int32(T), record, encodeMsgpack({ chunk: 'big' })), /past 4096 map entries and array items/, 'too_many_keys');
  });

  it('a tag, container_id or partial_id longer than any source is named: each is kept in tables of thousands', async () => {
    await expectRejected(mp.arr(mp.str('t'.repeat(1025)), mp.int32(T), dockerRecord('x'), encodeMsgpack({ chunk: 'long-tag' })), /tag of 1025 bytes, more than 1024/, 'malformed');
    const longId = mp.map([['container_id', mp.str('c'.repeat(129))], ['source', mp.str('stdout')], ['log', mp.str('x')]]);
    await expectRejected(mp.arr(mp.str('t'), mp.arr(mp.arr(mp.int32(T), longId)), encodeMsgpack({ chunk: 'long-id' })), /container_id at offset \d+ of 129 bytes, more than 128/, 'malformed');
    const longPartial = mp.map([['log', mp.str('x')], ['partial_message', mp.str('true')], ['partial_id', mp.str('p'.repeat(129))], ['partial_ordinal', mp.str('1')], ['partial_last', mp.str('false')]]);
    await expectRejected(mp.arr(mp.str('t'), mp.int32(T), longPartial, encodeMsgpack({ chunk: 'long-partial' })), /partial_id at offset \d+ of 129 bytes/, 'malformed');
  });

  it('zstd compression, with a reason that says what to do', async () => {
    await expectRejected(mp.arr(mp.str('t'), mp.bin(Buffer.from([1])), encodeMsgpack({ compressed: 'zstd' })), /zstd.*send gzip/, 'malformed');
  });

  it('a truncated request followed by a close', async () => {
    const whole = request('cut short', 'never');
    await expectRejected(
      async (c) => {
        await c.send(whole.subarray(0, whole.length - 5));
        c.socket.end();
      },
      /middle of a request/,
      'malformed',
    );
  });

  it('acks the good requests sent before the bad one on the same connection', async () => {
    const c = await rawClient(running.port);
    await c.send(Buffer.concat([request('before the junk', 'pre-1'), Buffer.from([0xc1, 0xc1])]));
    await c.closed;
    expect(c.replies()).toEqual([{ ack: 'pre-1' }]);
    expect(running.sink.events.some((e) => e.message === 'before the junk')).toBe(true);
  });

  it('writes the requests that waited behind a gzip chunk before the bad one, and closes', async () => {
    const c = await rawClient(running.port);
    const entries = Buffer.concat([mp.arr(mp.int32(T), dockerRecord('inflated before the junk'))]);
    const gz = mp.arr(mp.str('t'), mp.bin(gzipSync(entries)), encodeMsgpack({ compressed: 'gzip', chunk: 'gz-1' }));
    // Cut with the gzip chunk, the Message-mode request waits for its inflating; then the junk.
    await c.send(Buffer.concat([gz, mp.arr(mp.str('t'), mp.int32(T), dockerRecord('waited behind the gzip chunk')), Buffer.from([0xc1])]));
    await c.closed;
    expect(c.replies()).toEqual([{ ack: 'gz-1' }]);
    const messages = running.sink.events.map((e) => e.message);
    expect(messages).toContain('inflated before the junk');
    expect(messages).toContain('waited behind the gzip chunk');
  });

  it('refuses a request that does not decode, and the ones behind it, but writes the ones before it', async () => {
    const c = await rawClient(running.port);
    const refused = mp.arr(mp.str('t'), mp.bool(true), dockerRecord('x'));
    const entries = mp.arr(mp.int32(T), dockerRecord('inflated before the refused one'));
    const gz = mp.arr(mp.str('t'), mp.bin(gzipSync(entries)), encodeMsgpack({ compressed: 'gzip', chunk: 'gz-2' }));
    await c.send(Buffer.concat([gz, request('before the refused one', 'pre-2'), refused, request('after the refused one', 'post-2')]));
    await c.closed;
    expect(c.replies()).toEqual([{ ack: 'gz-2' }, { ack: 'pre-2' }]);
    const messages = running.sink.events.map((e) => e.message);
    expect(messages).toContain('inflated before the refused one');
    expect(messages).toContain('before the refused one');
    expect(messages).not.toContain('after the refused one');
  });
});

describe('awkward but valid clients', () => {
  it('a slow client sending one byte at a time', async () => {
    const c = await rawClient(running.port);
    const good = await rawClient(running.port);
    const bytes = Buffer.concat([request('slow 1', 'slow-1'), mp.nil(), request('slow 2', 'slow-2')]);
    for (let i = 0; i < bytes.length; i++) {
      await c.send(bytes.subarray(i, i + 1));
      if (i === 100) {
        await good.send(request('fast while slow', 'fast-1'));
        expect(await good.waitReplies(1)).toEqual([{ ack: 'fast-1' }]);
      }
    }
    expect(await c.waitReplies(2)).toEqual([{ ack: 'slow-1' }, { ack: 'slow-2' }]);
    c.socket.end();
    good.socket.end();
  });

  it('connect-then-close and TCP nil heartbeats are no errors', async () => {
    const before = running.logs.filter((l) => l.msg === 'closing forward connection: bad input').length;
    const empty = await rawClient(running.port);
    empty.socket.end();
    await empty.closed;
    const hb = await rawClient(running.port);
    await hb.send(Buffer.concat([mp.nil(), mp.nil(), request('after heartbeats', 'hb-1'), mp.nil()]));
    expect(await hb.waitReplies(1)).toEqual([{ ack: 'hb-1' }]);
    hb.socket.end();
    await hb.closed;
    expect(running.logs.filter((l) => l.msg === 'closing forward connection: bad input').length).toBe(before);
  });
});

describe('mutated requests of every mode', () => {
  it('never stop the input: a good client beside 400 of them is acked throughout', async () => {
    let seed = 11;
    const rand = (n: number): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % n;
    // What takes each path: Docker's lines (a trace, a split line), a record
    // without a container with nested keys, a logfmt message with scalars.
    const records = [
      dockerRecord('docker line "q" \u00e9'),
      dockerRecord('Exception in thread "main" java.lang.IllegalStateException: boom', {}, 'stderr'),
      dockerRecord('\tat com.example.App.main(App.java:12)', {}, 'stderr'),
      dockerRecord('part one ', { partial_message: 'true', partial_id: 'p1', partial_ordinal: '1', partial_last: 'false' }),
      dockerRecord('part two', { partial_message: 'true', partial_id: 'p1', partial_ordinal: '2', partial_last: 'true' }),
      encodeMsgpack({ log: '{"msg":"json","level":30,"o":{"a":[1,2.5]}}', kubernetes: { pod_name: 'p', labels: { app: 'a' } } }),
      encodeMsgpack({ message: 'level=warn k=v msg="hi"', n: -7, f: 1.25, t: true, z: null }),
    ];
    const record = (): Buffer => records[rand(records.length)]!;
    const entries = (): Buffer[] => Array.from({ length: 1 + rand(5) }, (_, i) => mp.arr(mp.eventTime(T + i, rand(1e9)), record()));
    const anyRequest = (): Buffer => {
      const option = rand(2) === 0 ? encodeMsgpack({ chunk: `m${rand(1e6)}` }) : mp.map([]);
      switch (rand(4)) {
        case 0:
          return mp.arr(mp.str('fuzz'), mp.eventTime(T, rand(1e9)), record(), option);
        case 1:
          return mp.arr(mp.str('fuzz'), mp.arr(...entries()), option);
        case 2:
          return mp.arr(mp.str('fuzz'), mp.bin(Buffer.concat(entries())), option);
        default:
          return mp.arr(mp.str('fuzz'), mp.bin(gzipSync(Buffer.concat(entries()))), encodeMsgpack({ compressed: 'gzip' }));
      }
    };
    // Bytes changed, cut short, inserted or dropped; sometimes behind a good request.
    const mutate = (b: Buffer): Buffer => {
      const at = rand(b.length);
      switch (rand(4)) {
        case 0: {
          const c = Buffer.from(b);
          for (let k = 1 + rand(4); k > 0; k--) c[rand(c.length)] = rand(256);
          return c;
        }
        case 1:
          return b.subarray(0, at);
        case 2:
          return Buffer.concat([b.subarray(0, at), Buffer.from([rand(256), rand(256), rand(256)]), b.subarray(at)]);
        default:
          return Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + rand(8))]);
      }
    };
    const good = await rawClient(running.port);
    let acked = 0;
    for (let i = 0; i < 400; i++) {
      const c = await rawClient(running.port);
      const bad = mutate(anyRequest());
      await c.send(rand(5) === 0 ? Buffer.concat([anyRequest(), bad]) : bad).catch(() => undefined);
      c.socket.end();
      await c.closed;
      if (i % 50 === 49) {
        await good.send(request(`good ${i}`, `good-${i}`));
        expect(await good.waitReplies(++acked)).toHaveLength(acked);
      }
    }
    good.socket.end();
    await until('the good lines', () => running.sink.events.filter((e) => e.message.startsWith('good ')).length === acked, 5000);
  });
});
