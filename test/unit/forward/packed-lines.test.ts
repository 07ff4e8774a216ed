import { describe, expect, it, vi } from 'vitest';
import { EncodedBatch } from '../../../src/collector/encoded.js';
import type { LogEvent } from '../../../src/collector/event.js';
import { decodeEntries, decodeRequest, DecodeCache } from '../../../src/collector/forward/decoder.js';
import { encodeMsgpack } from '../../../src/collector/forward/encode.js';
import { PackedLineEncoder } from '../../../src/collector/forward/packed-lines.js';
import { RecordMapper } from '../../../src/collector/forward/records.js';
import { Normalizer } from '../../../src/collector/normalize.js';
import { multilineSchema } from '../../../src/config/schema.js';
import type { ForwardEntry } from '../../../src/collector/forward/messages.js';
import { LIMITS, mp } from '../../helpers/forward.js';
import { checkMarks, eventsOf } from '../../helpers/batch.js';
import { trace } from '../multiline/helpers.js';
import { JSON_LINES, PLAIN_LINES, TEXT_LINES } from '../../helpers/line-shapes.js';

const T = 1_795_341_190;
const ID_A = 'a1b2c3d4e5f6'.repeat(6).slice(0, 64);
const ID_B = 'b'.repeat(64);

interface Opts {
  parseJson?: boolean;
  parseLogfmt?: boolean;
  stripAnsi?: boolean;
  maxLineBytes?: number;
  firstSeq?: number;
  multiline?: boolean;
}

function normalizer(opts: Opts = {}): Normalizer {
  let seq = opts.firstSeq ?? 1_795_000_000_000_000;
  return new Normalizer({
    hostName: 'host-1',
    nextSeq: () => seq++,
    parseJson: opts.parseJson ?? true,
    parseLogfmt: opts.parseLogfmt ?? true,
    stripAnsi: opts.stripAnsi ?? true,
    maxLineBytes: opts.maxLineBytes ?? 1024,
    partialTimeoutMs: 60_000,
    onTimeoutFlush: () => undefined,
    ...(opts.multiline ? { multiline: multilineSchema.parse({}) } : {}),
  });
}

/** As a connection renders a request: read through once, then in slices (small ones here, so that records cross them). */
function encode(encoder: PackedLineEncoder, stream: Buffer, tag: string, out: EncodedBatch, general: (e: ForwardEntry) => readonly LogEvent[], sliceEntries = 3, sliceBytes = 700): void {
  encoder.check(stream, sliceEntries);
  for (let pos = 0; pos < stream.length; ) pos = encoder.encodeSlice(stream, pos, tag, out, general, sliceEntries, sliceBytes);
}

/** Every source's lines, keyed by container id or name, as text. */
function linesOf(batch: EncodedBatch): Map<string, string> {
  checkMarks(batch);
  const out = new Map<string, string>();
  for (const s of batch.sources()) out.set(s.container?.id ?? s.name, Buffer.concat(s.chunks()).toString('utf8'));
  return out;
}

/** The same PackedForward streams through packed-lines.ts and through the general path. */
function both(streams: Buffer[], opts: Opts = {}, tag = 'docker.web') {
  const fast = { n: normalizer(opts), m: new RecordMapper(), batch: new EncodedBatch() };
  const encoder = new PackedLineEncoder({ normalizer: fast.n, mapper: fast.m, limits: LIMITS, cache: new DecodeCache() });
  const general = { n: normalizer(opts), m: new RecordMapper(), batch: new EncodedBatch() };
  let generalCalls = 0;
  for (const stream of streams) {
    encode(encoder, stream, tag, fast.batch, (entry) => {
      generalCalls++;
      return fast.n.push(fast.m.toRawLine(entry, tag));
    });
    for (const entry of decodeEntries(stream, LIMITS)) general.batch.add(general.n.push(general.m.toRawLine(entry, tag)));
  }
  fast.batch.add(fast.n.flushAll());
  general.batch.add(general.n.flushAll());
  return { fast: linesOf(fast.batch), general: linesOf(general.batch), generalCalls, count: fast.batch.count };
}

/** `extra`: other keys, after Docker's (as the driver sends its `labels` and `env`), or before them with `extraFirst`. */
function record(
  log: string | Buffer,
  o: { id?: string; name?: string | null; source?: string; extra?: Record<string, string> | Array<[string, Buffer]>; extraFirst?: boolean; partial?: [string, number, boolean] } = {},
): Buffer {
  const extra: Array<[string, Buffer]> = Array.isArray(o.extra) ? o.extra : Object.entries(o.extra ?? {}).map(([k, v]) => [k, mp.str(v)]);
  const entries: Array<[string, Buffer]> = o.extraFirst ? [...extra] : [];
  entries.push(['container_id', mp.str(o.id ?? ID_A)]);
  if (o.name !== null) entries.push(['container_name', mp.str(o.name ?? '/web-1')]);
  entries.push(['source', mp.str(o.source ?? 'stdout')], ['log', mp.str(log)]);
  if (!o.extraFirst) entries.push(...extra);
  if (o.partial) {
    const [pid, ordinal, last] = o.partial;
    entries.push(['partial_message', mp.str('true')], ['partial_id', mp.str(pid)], ['partial_ordinal', mp.str(String(ordinal))], ['partial_last', mp.str(String(last))]);
  }
  return mp.map(entries);
}

const entry = (time: Buffer, rec: Buffer): Buffer => mp.arr(time, rec);
const at = (sec: number, nsec = 0): Buffer => mp.eventTime(sec, nsec);

describe('packed-lines: the fast path writes what the general path writes', () => {
  it('for lines the text stages change, and near misses, with the stages on and off', () => {
    const entries = TEXT_LINES.map((log, i) => entry(at(T, i), record(log)));
    for (const opts of [{}, { stripAnsi: false }, { parseLogfmt: false }]) {
      const r = both([Buffer.concat(entries)], opts);
      expect(r.count).toBe(entries.length);
      expect(r.fast).toEqual(r.general);
    }
  });

  it('renders leading levels and logfmt itself, and leaves to the Normalizer only what it writes differently', () => {
    const n = normalizer();
    const push = vi.spyOn(n, 'push');
    const encoder = new PackedLineEncoder({ normalizer: n, mapper: new RecordMapper(), limits: LIMITS, cache: new DecodeCache() });
    const staged = [`ERROR ${'ü'.repeat(100)}`, 'k="esc\\"aped" v=1', 'a=1 a=2', '7=x y=1', 'k="\u0007" v=1'];
    const plain = ['ERROR x', 'ERROR ü', 'Bestellung für Müller', '12:00:00.123 [main] INFO c.e.App - hi', 'level=info a=b', 'k=v plain', 'user said error occurred', 'GET /healthz 200', 'Error: not a token'];
    encode(encoder, Buffer.concat([...staged, ...plain].map((log) => entry(at(T), record(log)))), 'tag', new EncodedBatch(), () => {
      throw new Error('general path taken');
    });
    expect(push.mock.calls.map((c) => c[0].line)).toEqual(staged);
  });

  it('for plain and JSON lines, byte for byte', () => {
    const entries = [...PLAIN_LINES, ...JSON_LINES].map((log, i) => entry(at(T + (i % 3), i % 2 === 0 ? 0 : 123_456_789), record(log, { source: i % 5 === 0 ? 'stderr' : 'stdout' })));
    const r = both([Buffer.concat(entries)]);
    expect(r.count).toBe(entries.length + 1); // the 1025-byte line is cut in two
    expect(r.fast).toEqual(r.general);
    for (const text of r.fast.values()) for (const line of text.trimEnd().split('\n')) expect(() => JSON.parse(line)).not.toThrow();
  });

  it('for ECS-format JSON lines, whose level is under log.level', () => {
    const lines = ['{"@timestamp":"2026-12-02T03:04:05.678Z","log.level":"error","message":"boom","ecs.version":"1.6.0"}', '{"log.level":"INFO","message":"ok","log.logger":"app"}'];
    const r = both([Buffer.concat(lines.map((l, i) => entry(at(T, i), record(l))))]);
    expect(r.fast).toEqual(r.general);
    const text = [...r.fast.values()].join('');
    expect(text).toContain('"log":{"level":"error"}');
    expect(text).toContain('"log":{"level":"info"}');
    expect(text).not.toContain('"log.level"');
  });

  it('keeps the integers of JSON lines as written, also those a double would round', () => {
    const lines = ['{"level":"info","time":1700000000123456789,"message":"m"}', '{"msg": "spaces", "id": 12345678901234567890}', '{"msg":"m","o":{"id":-12345678901234567890,"f":1.50}}'];
    const r = both([Buffer.concat(lines.map((l, i) => entry(at(T, i), record(l))))]);
    expect(r.fast).toEqual(r.general);
    const attrs = [...r.fast.values()].join('').trimEnd().split('\n').map((l) => l.slice(l.indexOf('"attrs":') + 8, l.indexOf(',"clogs"')));
    expect(attrs).toEqual(['{"time":1700000000123456789}', '{"id":12345678901234567890}', '{"o":{"id":-12345678901234567890,"f":1.5}}']);
    // A record's 64-bit integers (Fluent Bit packs a parsed JSON line's so) are written as integers too.
    const int64 = Buffer.alloc(9);
    int64[0] = 0xd3;
    int64.writeBigInt64BE(-(2n ** 63n), 1);
    const rec = mp.map([['log', mp.str('64-bit')], ['u', mp.uint64(2n ** 64n - 1n)], ['i', int64], ['o', mp.map([['t', mp.uint64(1_700_000_000_123_456_789n)]])]]);
    // And as map keys, nested and at the top: kept under their digits.
    const intKeys = Buffer.concat([Buffer.of(0x82), mp.uint64(2n ** 63n), mp.str('a'), mp.uint64(2n ** 63n + 1n), mp.str('b')]);
    const keyed = Buffer.concat([Buffer.of(0x83), mp.str('log'), mp.str('keys'), mp.str('ids'), intKeys, mp.uint64(2n ** 62n + 1n), mp.str('top')]);
    const loose = both([Buffer.concat([entry(at(T), rec), entry(at(T), keyed)])], {}, 'app');
    expect(loose.fast).toEqual(loose.general);
    const text = [...loose.fast.values()].join('');
    expect(text).toContain('"u":18446744073709551615,"i":-9223372036854775808,"o":{"t":1700000000123456789}');
    expect(text).toContain('"ids":{"9223372036854775808":"a","9223372036854775809":"b"}');
    expect(text).toContain('"4611686018427387905":"top"');
  });

  it('builds no event object for Docker records of text, UTF-8 or canonical JSON', () => {
    const logs = [
      'plain',
      'GET /api?x=1 200 12ms',
      '10.0.0.1 - - [29/Nov/2026:14:03:07 +0000] "GET / HTTP/1.1" 200 12 "-" "curl/8.5.0"',
      'path C:\\temp\tand a tab',
      'café 東京 🚀',
      JSON_LINES[0]!,
      JSON_LINES[1]!,
      JSON_LINES[13]!,
      JSON_LINES[16]!,
      JSON_LINES[30]!,
      '{"msg":"escapes \\" ok","n":-1}',
      '{"level":50,"msg":"boom","err":{"type":"TypeError","message":"x is \\"undefined\\"","stack":"TypeError: x\\n    at f (/app/a.js:1:2)"},"took":0.125}',
    ];
    const n = normalizer();
    const push = vi.spyOn(n, 'push');
    const encoder = new PackedLineEncoder({ normalizer: n, mapper: new RecordMapper(), limits: LIMITS, cache: new DecodeCache() });
    const batch = new EncodedBatch();
    encode(encoder, Buffer.concat(logs.map((log) => entry(at(T), record(log)))), 'tag', batch, () => {
      throw new Error('general path taken');
    });
    expect(batch.count).toBe(logs.length);
    expect(push).not.toHaveBeenCalled();
  });

  it('for records with other keys (labels, env), under attrs first, as the general path orders them', () => {
    const labels = { 'com.docker.compose.service': 'web', 'com.example.team': 'payments "core"', env: 'prod\tblue' };
    const lines = [
      'plain',
      'WARN disk almost full',
      'café 東京 🚀',
      '{"msg":"json","level":"info","n":1.5,"o":{"a":[1,null]}}',
      '{"msg":"no level","k":"v"}',
      '{"message":"key of a label","env":"dev"}',
      '{"msg":"escaped key","a\\u0062":1}',
      '{"msg":"level of no name","level":""}',
      'level=error msg="logfmt" k=v',
      'msg="logfmt under a label key" env=dev',
      'ctl \u0001 char',
    ];
    const extras: Array<Record<string, string> | Array<[string, Buffer]>> = [
      labels,
      { level: 'warn', team: 'a' },
      { severity: 'Error' },
      { level: '', lvl: 'debug' },
      { level: 'not-a-level-name-at-all' },
      [['0', mp.str('index key')]],
      [['__proto__', mp.str('proto')]],
      [['a', mp.str('1')], ['a', mp.str('2')]],
      [['a', mp.str('é"\\')], ['b', mp.str('\u0001 control')]],
      [['bin', mp.bin(Buffer.from('bytes'))]],
      [['nil', mp.nil()]],
      [['num', mp.fixint(7)]],
      [['level', mp.fixint(40)], ['ratio', mp.f64(0.25)], ['on', mp.bool(true)], ['n32', mp.int32(-1)]],
      [['bad utf-8', mp.str(Buffer.from([0x61, 0xff]))]],
      Array.from({ length: 40 }, (_, i): [string, Buffer] => [`k${i}`, mp.str(`v${i}`)]),
    ];
    const entries: Buffer[] = [];
    for (const [i, extra] of extras.entries()) {
      for (const [j, log] of lines.entries()) entries.push(entry(at(T, i * 100 + j), record(log, { extra, extraFirst: (i + j) % 3 === 0 })));
    }
    for (const opts of [{}, { parseLogfmt: false }, { parseJson: false }]) {
      const r = both([Buffer.concat(entries)], opts);
      expect(r.count).toBe(entries.length);
      // The writable ones (five sets of keys, most lines) take the fast path.
      expect(entries.length - r.generalCalls).toBeGreaterThan(30);
      expect(r.fast).toEqual(r.general);
    }
  });

  it('builds no event object for a record whose other keys are labels', () => {
    const n = normalizer();
    const push = vi.spyOn(n, 'push');
    const encoder = new PackedLineEncoder({ normalizer: n, mapper: new RecordMapper(), limits: LIMITS, cache: new DecodeCache() });
    const batch = new EncodedBatch();
    const logs = ['plain', '{"msg":"json","n":1}', 'level=info msg=logfmt'];
    const stream = Buffer.concat(logs.map((log) => entry(at(T), record(log, { extra: { 'com.docker.compose.service': 'web', level: 'warn' } }))));
    encode(encoder, stream, 'tag', batch, () => {
      throw new Error('general path taken');
    });
    expect(batch.count).toBe(logs.length);
    expect(push).not.toHaveBeenCalled();
    const attrs = eventsOf(batch).map((e) => e.attrs);
    expect(attrs[0]).toEqual({ 'com.docker.compose.service': 'web', level: 'warn' });
    expect(attrs[1]).toEqual({ 'com.docker.compose.service': 'web', level: 'warn', n: 1 });
  });

  it('for records without a container (fluent-logger, Fluent Bit), every key under attrs, as the general path writes them', () => {
    const s = (v: string): Buffer => mp.str(v);
    const records: Array<Array<[string, Buffer]>> = [
      [['log', s('Fluent Bit tail line')]],
      [['log', s('with its stream'), ], ['source', s('stderr')]],
      [['message', s('fluent-logger'), ], ['level', s('warn')]],
      [['msg', s('msg key'), ], ['level', s('INFO')], ['pid', s('12')]],
      [['log', s('log before message')], ['message', s('message wins')]],
      [['msg', s('msg after log')], ['log', s('log wins over msg')]],
      [['container_name', s('/named')], ['log', s('a name but no id')]],
      [['log', s('{"msg":"json line","level":"error","n":1.5,"o":{"a":[1,null]}}')]],
      [['log', s('{"msg":"json under a record key","log":"x"}')]],
      [['message', s('level=info msg="logfmt" k=v')], ['app', s('shop')]],
      [['log', s('café 東京 🚀 "quoted" \\ back')], ['team', s('é"\\')]],
      [['log', s('ctl \u0001 char')]],
      [['log', s('dup')], ['a', s('1')], ['a', s('2')]],
      [['0', s('index key')], ['log', s('index')]],
      [['__proto__', s('proto')], ['log', s('proto')]],
      [['log', s('nested')], ['kubernetes', mp.map([['pod', s('p')]])]],
      [['log', s('a number')], ['n', mp.fixint(3)]],
      [['log', s('nil')], ['x', mp.nil()]],
      // fluent-logger's values of every other type that is read in place.
      [['message', s('typed')], ['count', mp.int32(-70000)], ['big', mp.uint32(4_000_000_000)], ['neg', mp.fixint(-5)], ['u8', Buffer.of(0xcc, 200)], ['i16', Buffer.of(0xd1, 0x80, 0x00)], ['u16', Buffer.of(0xcd, 0xff, 0xff)], ['i8', Buffer.of(0xd0, 0x80)]],
      [['message', s('floats')], ['ms', mp.f64(1.5)], ['tiny', mp.f64(5e-324)], ['huge', mp.f64(1e21)], ['f32', mp.f32(0.1)], ['negzero', mp.f64(-0)], ['nan', mp.f64(Number.NaN)], ['inf', mp.f64(-Infinity)]],
      [['message', s('booleans and nil')], ['ok', mp.bool(true)], ['retry', mp.bool(false)], ['none', mp.nil()]],
      [['message', s('pino level number')], ['level', mp.fixint(50)]],
      [['msg', s('level of another number')], ['level', mp.int32(35)], ['severity', s('warn')]],
      [['message', s('{"msg":"json","n":2}')], ['level', mp.f64(30)], ['n', mp.fixint(1)]],
      [['message', mp.fixint(42)], ['log', s('a number as message')]],
      [['message', mp.bool(true)]],
      [['message', mp.nil()], ['log', s('nil message, log line')]],
      [['message', mp.nil()], ['msg', s('nil message, msg line')]],
      [['msg', mp.fixint(7)]],
      [['log', s('64-bit')], ['n', mp.uint64(2n ** 60n)]],
      // Fluent Bit's kubernetes filter: maps and arrays under a key.
      [['log', s('k8s')], ['stream', s('stdout')], ['kubernetes', mp.map([['pod_name', s('shop-7d9f-x2k4p')], ['labels', mp.map([['app', s('shop')], ['tier', s('web "front"')]])], ['ids', mp.arr(mp.fixint(1), mp.f64(2.5), mp.nil(), mp.bool(true), s('é'), mp.arr(), mp.map([]))]])]],
      [['message', mp.map([['a', s('b')]])], ['log', s('a map as message: log is the line')]],
      [['log', s('nested index key')], ['m', mp.map([['1', s('x')], ['a', s('y')]])]],
      [['log', s('nested proto')], ['m', mp.map([['__proto__', s('x')]])]],
      [['log', s('nested repeated key')], ['m', mp.map([['a', s('x')], ['a', s('y')]])]],
      [['log', s('nested repeated key, other maps')], ['m', mp.map([['a', mp.map([['a', s('x')]])], ['b', mp.map([['a', s('y')]])]])]],
      [['log', s('nested control char')], ['m', mp.arr(s('\u0001'))]],
      [['log', s('nested bin')], ['m', mp.arr(mp.bin(Buffer.from('b')))]],
      [['log', s('nested 64-bit')], ['m', mp.arr(mp.uint64(1n))]],
      [['log', s('nested non-string key')], ['m', mp.map([[mp.fixint(1), s('x')]])]],
      [['log', s('65 keys')], ...Array.from({ length: 64 }, (_, i): [string, Buffer] => [`k${i}`, mp.fixint(i)])],
      [['log', s('a map of 65 keys')], ['m', mp.map(Array.from({ length: 65 }, (_, i): [string, Buffer] => [`k${i}`, mp.nil()]))]],
      [['log', s('a map of 64 keys')], ['m', mp.map(Array.from({ length: 64 }, (_, i): [string, Buffer] => [`k${i}`, mp.nil()]))]],
      [['log', s('deep')], ['m', [...Array(12)].reduce((inner: Buffer) => mp.arr(inner), mp.fixint(1))]],
      [['bytes', mp.bin(Buffer.from('b'))], ['log', s('bin value')]],
      [['level', s('info')], ['no_line', s('no line key: the record as JSON')]],
      [['log', s('bad utf-8 follows')], ['b', mp.str(Buffer.from([0x61, 0xff]))]],
      [['log', s('  ERROR leading level')], ['source', s('console')]],
      // Fluent Bit's tail input (docker parser) on json-file: the end of line stays in the record.
      [['log', s('{"level":"error","msg":"db down","n":1}\n')], ['stream', s('stdout')]],
      [['log', s('level=warn msg="disk" free=3\r\n')]],
      [['log', s('plain line\n')]],
      [['log', s('\n')]],
    ];
    const entries = records.map((rec, i) => entry(at(T, i % 4), mp.map(rec)));
    for (const opts of [{}, { parseLogfmt: false }, { parseJson: false }, { multiline: true }]) {
      for (const tag of ['app.web', '']) {
        const r = both([Buffer.concat(entries)], opts, tag);
        expect(r.count).toBe(entries.length);
        expect(r.fast).toEqual(r.general);
        if (!opts.multiline) expect(entries.length - r.generalCalls).toBeGreaterThan(10);
      }
    }
  });

  it('builds no event object for records without a container', () => {
    const n = normalizer();
    const push = vi.spyOn(n, 'push');
    const encoder = new PackedLineEncoder({ normalizer: n, mapper: new RecordMapper(), limits: LIMITS, cache: new DecodeCache() });
    const batch = new EncodedBatch();
    const recs = [[['log', mp.str('tail line')]], [['message', mp.str('{"msg":"json","n":1}')], ['level', mp.str('warn')]]] as Array<Array<[string, Buffer]>>;
    encode(encoder, Buffer.concat(recs.map((r) => entry(at(T), mp.map(r)))), 'app', batch, () => {
      throw new Error('general path taken');
    });
    expect(push).not.toHaveBeenCalled();
    const events = eventsOf(batch);
    expect(events.map((e) => [e.message, e.stream, e.container, e.clogs.tag, e.log?.level, e.attrs])).toEqual([
      ['tail line', undefined, undefined, 'app', undefined, { log: 'tail line' }],
      ['json', undefined, undefined, 'app', 'warn', { message: '{"msg":"json","n":1}', level: 'warn', n: 1 }],
    ]);
  });

  it('writes sequence numbers across a change in their number of digits', () => {
    const stream = Buffer.concat(Array.from({ length: 30 }, (_, i) => entry(at(T), record(i % 7 === 3 ? 'ü' : `line ${i}`))));
    for (const firstSeq of [0, 95, 99_999_990, 999_999_999_999_990]) {
      const r = both([stream], { firstSeq });
      expect(r.fast).toEqual(r.general);
    }
  });

  it('with JSON parsing off', () => {
    const stream = Buffer.concat(JSON_LINES.map((log) => entry(at(T), record(log))));
    const r = both([stream], { parseJson: false });
    expect(r.fast).toEqual(r.general);
  });

  it('for every shape it leaves to the general path, in order with the others', () => {
    const stream = Buffer.concat([
      entry(at(T), record('first')),
      entry(mp.int32(-1), record('negative time')),
      entry(mp.f64(T + 0.5), record('float time')),
      entry(mp.arr(at(T, 5), mp.map([])), record('v1.5 time with metadata')),
      entry(mp.eventTime(T, 0, 'ext8'), record('ext8 time')),
      entry(at(0, 0), record('time 0')),
      entry(at(T), record('extra keys', { extra: { 'com.example.team': 'clogs', level: 'warn' } })),
      entry(at(T), record('extra key of a 64-bit integer', { extra: [['n', mp.uint64(1n)]] })),
      entry(at(T), record('extra key of a map with bytes', { extra: [['m', mp.map([['b', mp.bin(Buffer.from('x'))]])]] })),
      entry(at(T), record('piece one ', { partial: ['p1', 1, false] })),
      entry(at(T), record('between the pieces')),
      entry(at(T), record('piece two', { partial: ['p1', 2, true] })),
      entry(at(T), record('no name', { name: null })),
      entry(at(T), record('other source', { source: 'console' })),
      entry(at(T), record('bin value'.padEnd(40, '.'))),
      entry(at(T), mp.map([['log', mp.str('no container, a map')], ['n', mp.map([['a', mp.fixint(1)]])]])),
      entry(at(T), mp.map([['log', mp.bin(Buffer.from('no container, log as bin'))]])),
      entry(at(T), mp.map([['container_id', mp.str(ID_A)], ['source', mp.str('stdout')], ['log', mp.bin(Buffer.from('log as bin'))]])),
      entry(at(T), mp.map([['container_id', mp.fixint(7)], ['source', mp.str('stdout')], ['log', mp.str('id not a string')]])),
      entry(at(T), mp.map([['log', mp.str('dup key first')], ['container_id', mp.str(ID_A)], ['source', mp.str('stdout')], ['log', mp.str('dup key wins')]])),
      entry(at(T), record('last', { id: ID_B, name: '/other' })),
      entry(at(T), record('back to the first container')),
    ]);
    const r = both([stream]);
    expect(r.generalCalls).toBeGreaterThan(10);
    expect(r.fast).toEqual(r.general);
  });

  it('renders a slice past the general entries it decodes ahead, as the general path does', () => {
    // Over 512 (packed-lines.ts GENERAL_AHEAD) general entries, between fast ones.
    const entries: Buffer[] = [];
    for (let i = 0; i < 1300; i++) {
      entries.push(i % 3 === 0 ? entry(at(T, i), record('fast ' + i)) : entry(mp.f64(T + i / 1000), record('general ' + i, { extra: { n: String(i) } })));
    }
    const stream = Buffer.concat(entries);
    const fast = { n: normalizer(), m: new RecordMapper(), batch: new EncodedBatch() };
    const encoder = new PackedLineEncoder({ normalizer: fast.n, mapper: fast.m, limits: LIMITS, cache: new DecodeCache() });
    encoder.check(stream, 10_000);
    const end = encoder.encodeSlice(stream, 0, 'docker.web', fast.batch, (e) => fast.n.push(fast.m.toRawLine(e, 'docker.web')), 10_000, 1 << 30);
    expect(end).toBe(stream.length);
    expect(encoder.sliced).toBe(1300);
    const general = { n: normalizer(), m: new RecordMapper(), batch: new EncodedBatch() };
    for (const e of decodeEntries(stream, LIMITS)) general.batch.add(general.n.push(general.m.toRawLine(e, 'docker.web')));
    expect(linesOf(fast.batch)).toEqual(linesOf(general.batch));
  });

  it('for whole seconds as an integer, as Docker sends them without sub-second precision', () => {
    const stream = Buffer.concat([
      entry(mp.int32(T), record('int32 time')),
      entry(mp.uint32(T), record('uint32 time')),
      entry(mp.int32(T), record('{"msg":"same second","level":"warn"}')),
      entry(mp.int32(T + 1), record('next second', { source: 'stderr' })),
    ]);
    const r = both([stream]);
    expect(r.generalCalls).toBe(0);
    expect(r.fast).toEqual(r.general);
  });

  it('numbers lines with the same timestamp by ordinal, across containers, streams and requests', () => {
    const requests: Buffer[] = [];
    for (let q = 0; q < 3; q++) {
      const entries: Buffer[] = [];
      for (let i = 0; i < 50; i++) {
        const id = i % 3 === 0 ? ID_B : ID_A;
        const log = i % 4 === 0 ? '{"msg":"json ' + i + '","level":"info"}' : i % 7 === 0 ? 'ü ' + i : 'line ' + i;
        entries.push(entry(at(T + Math.floor(i / 20), i % 2), record(log, { id, name: id === ID_B ? '/b' : '/a', source: i % 5 === 0 ? 'stderr' : 'stdout' })));
      }
      requests.push(Buffer.concat(entries));
    }
    const r = both(requests);
    expect(r.fast).toEqual(r.general);
  });

  /** The messages of both paths for the fixture traces among other lines, each line ending in `eol` (as a Fluent Bit tail record keeps it). */
  const traceMessages = (eol: string): string[] => {
    const traces = ['java-caused-by.txt', 'python-chained.txt', 'go-goroutines.txt', 'node-props.txt', 'ruby-nomethod.txt'].map(trace);
    const requests: Buffer[] = [];
    let i = 0;
    for (const lines of traces) {
      const entries: Buffer[] = [];
      for (const log of ['plain before ' + i, ...lines, 'plain after ' + i, 'app.server: a dotted head that no trace follows']) {
        i++;
        const id = i % 3 === 0 ? ID_B : ID_A;
        entries.push(entry(at(T + Math.floor(i / 40), i % 2), record(log + eol, { id, name: id === ID_B ? '/b' : '/a', source: i % 5 === 0 ? 'stdout' : 'stderr' })));
      }
      requests.push(Buffer.concat(entries));
    }
    const r = both(requests, { multiline: true, maxLineBytes: 1 << 20 });
    expect(r.fast).toEqual(r.general);
    return [...r.fast.values()].flatMap((text) => text.trimEnd().split('\n').map((l) => (JSON.parse(l) as { message: string }).message));
  };

  it('with stack traces among the lines, holding and joining them as the general path does', () => {
    const messages = traceMessages('');
    expect(messages.filter((m) => m.includes('\n')).length).toBeGreaterThan(0);
    // Lines that keep their end of line join into the same events.
    expect(traceMessages('\n')).toEqual(messages);
    expect(traceMessages('\r\n')).toEqual(messages);
  });

  it('matches on random records', () => {
    let seed = 42;
    const rand = (n: number): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed % n;
    };
    const pieces = ['a', ' ', '"', '\\', '{', '}', '"msg":', ':', ',', '1', '-', '.', 'é', '\t', '\r', 'level', '"x"', '[', ']', 'null', '\u0001', 'ERROR', '12:00:00 '];
    const pairs = ['level=', 'msg=', 'a=', 'a=', '0=', 'lvl=', 'k='];
    const values = ['', 'info', 'Warn', '"x y"', '"é\t"', '"q\\"q"', 'é', '12.5', 'a\\b', '"\u0001"'];
    const entries: Buffer[] = [];
    for (let i = 0; i < 3000; i++) {
      let log = '';
      if (rand(4) === 0) {
        const n = 1 + rand(4);
        for (let k = 0; k < n; k++) log += (k > 0 ? (rand(8) === 0 ? '\t' : ' ') : '') + pairs[rand(pairs.length)] + values[rand(values.length)];
      } else if (rand(3) === 0) {
        // Members copied as they are, in runs long and short, around the message,
        // the level and members written anew (1.50, 1e3, \u00e9).
        const fields = [
          '"msg":"m' + i + '"',
          '"level":' + (rand(2) ? '30' : '"Info"'),
          '"n":' + (rand(100) - 50),
          '"s":"' + 'q'.repeat(rand(5)) + '"',
          '"o":{"a":[1,"b",null]}',
          '"f":' + ['1.50', '2.5', '1e3', '-0'][rand(4)]!,
          '"t":"' + 'a stack line\\n\\tat x (y.js:1:2) '.repeat(rand(12)) + '"',
          '"u":"\\u00e9' + 'é'.repeat(rand(60)) + '"',
        ];
        for (let k = fields.length - 1; k > 0; k--) {
          const j = rand(k + 1);
          [fields[k], fields[j]] = [fields[j]!, fields[k]!];
        }
        log = '{' + fields.filter(() => rand(3) > 0).join(',') + '}';
      } else {
        for (let k = rand(12); k > 0; k--) log += pieces[rand(pieces.length)];
      }
      const keys = ['a', 'k', 'level', 'msg', 'lvl', '0', 'x"y'];
      const extra = rand(3) === 0 ? Array.from({ length: 1 + rand(3) }, (): [string, Buffer] => [keys[rand(keys.length)]!, mp.str(values[rand(values.length)]!)]) : undefined;
      if (rand(5) === 0) {
        // A record without a container: any keys, the line under one of them or none.
        const looseKeys = ['log', 'message', 'msg', 'level', 'a', 'source', 'container_name', 'x"y', '0'];
        const value = (): Buffer => {
          switch (rand(8)) {
            case 0: return mp.fixint(rand(160) - 32);
            case 1: return mp.f64((rand(2000) - 1000) / 7);
            case 2: return [mp.nil(), mp.bool(true), mp.bool(false)][rand(3)]!;
            case 3: {
              const nestedKeys = ['a', 'b', 'a', '0', '__proto__', 'x"y'];
              const items = Array.from({ length: rand(3) }, (): [string, Buffer] => [nestedKeys[rand(nestedKeys.length)]!, rand(2) ? mp.str(values[rand(values.length)]!) : mp.arr(mp.fixint(rand(100)), mp.nil())]);
              return rand(2) ? mp.map(items) : mp.arr(...items.map(([, v]) => v));
            }
            default: return mp.str(rand(2) ? log : values[rand(values.length)]!);
          }
        };
        const rec = Array.from({ length: 1 + rand(4) }, (): [string, Buffer] => [looseKeys[rand(looseKeys.length)]!, value()]);
        entries.push(entry(at(T + rand(2), rand(3)), mp.map(rec)));
        continue;
      }
      entries.push(entry(at(T + rand(2), rand(3)), record(log, { id: rand(4) === 0 ? ID_B : ID_A, source: rand(2) ? 'stdout' : 'stderr', ...(extra ? { extra } : {}) })));
    }
    const r = both([Buffer.concat(entries)]);
    expect(r.fast).toEqual(r.general);
  });

  it('for containers interleaved record by record, many of them under the same lookup slot, and one id under two names', () => {
    // Ids that differ only in the middle share their first and last bytes and length, so their lookup key: every one collides.
    const ids = Array.from({ length: 300 }, (_, i) => `cafe${String(i).padStart(56, '0')}beef`);
    const entries: Buffer[] = [];
    for (let i = 0; i < 3000; i++) {
      const c = (i * 7) % ids.length;
      const name = c === 0 && i >= 1500 ? '/renamed' : `/c-${c}`;
      entries.push(entry(at(T, i), record(`line ${i} of ${c}`, { id: ids[c]!, name })));
    }
    const r = both([Buffer.concat(entries)]);
    expect(r.fast).toEqual(r.general);
    expect(r.generalCalls).toBe(0);
    expect(r.fast.size).toBe(ids.length);
    // Keyed by id, the source after the rename holds its lines.
    expect(r.fast.get(ids[0]!)).toContain('"name":"renamed"');
  });

  it('refuses a malformed request before the Normalizer saw any of it', () => {
    const n = normalizer();
    const encoder = new PackedLineEncoder({ normalizer: n, mapper: new RecordMapper(), limits: LIMITS, cache: new DecodeCache() });
    const batch = new EncodedBatch();
    const stream = Buffer.concat([entry(at(T), record('good')), entry(at(T), record('piece', { partial: ['p', 1, false] })), mp.raw(0x92, 0xc1)]);
    expect(() => encode(encoder, stream, 'tag', batch, (e) => n.push(new RecordMapper().toRawLine(e, 'tag')))).toThrow(/not a msgpack type|time/);
    expect(batch.count).toBe(0);
    expect(n.pending()).toBe(0);
  });
});

/** A Message-mode request: `[tag, time, record]`, with `option` when given. */
const message = (tag: string, time: Buffer, rec: Buffer, option?: Buffer): Buffer => mp.arr(mp.str(tag), time, rec, ...(option ? [option] : []));

/**
 * Message-mode requests back to back, through checkMessages() and encodeSlice()
 * run after run as a connection renders them, and each through the general path.
 */
function bothMessages(requests: Buffer[], sliceEntries = 3, sliceBytes = 700) {
  const fast = { n: normalizer(), m: new RecordMapper(), batch: new EncodedBatch() };
  const encoder = new PackedLineEncoder({ normalizer: fast.n, mapper: fast.m, limits: LIMITS, cache: new DecodeCache() });
  const general = { n: normalizer(), m: new RecordMapper(), batch: new EncodedBatch() };
  let generalCalls = 0;
  const bytes = Buffer.concat(requests);
  for (let pos = 0; pos < bytes.length; ) {
    const part = encoder.checkMessages(bytes.subarray(pos), 1000);
    expect(part.length).toBeGreaterThan(0);
    for (let p = 0; p < part.length; ) {
      p = encoder.encodeSlice(part, p, undefined, fast.batch, (e, tag) => {
        generalCalls++;
        return fast.n.push(fast.m.toRawLine(e, tag));
      }, sliceEntries, sliceBytes);
    }
    pos += part.length;
  }
  for (const r of requests) {
    const m = decodeRequest(r, LIMITS);
    if (m.mode !== 'Message') throw new Error(`${m.mode} request`);
    for (const e of decodeEntries(m.entry, LIMITS)) general.batch.add(general.n.push(general.m.toRawLine(e, m.tag)));
  }
  fast.batch.add(fast.n.flushAll());
  general.batch.add(general.n.flushAll());
  return { fast: linesOf(fast.batch), general: linesOf(general.batch), generalCalls };
}

describe('packed-lines: Message-mode requests rendered together', () => {
  const LONG_TAG = 'docker.' + 'x'.repeat(40);

  it('write what each request writes through the general path, byte for byte, each with its own tag', () => {
    const requests: Buffer[] = [];
    for (let i = 0; i < 60; i++) {
      const id = i % 3 === 0 ? ID_B : ID_A;
      const tag = id === ID_B ? 'docker.b' : i % 2 === 0 ? 'docker.a' : LONG_TAG;
      const log = i % 4 === 0 ? '{"msg":"json ' + i + '","level":"info"}' : i % 5 === 0 ? 'level=warn msg="logfmt ' + i + '"' : 'line ' + i;
      const time = i % 6 === 0 ? mp.int32(T + (i >> 4)) : at(T + (i >> 4), i % 2);
      const rec = record(log, { id, name: id === ID_B ? '/b' : '/a', source: i % 7 === 0 ? 'stderr' : 'stdout' });
      requests.push(message(tag, time, rec, i % 3 === 1 ? undefined : i % 5 === 2 ? mp.nil() : mp.map([])));
    }
    const r = bothMessages(requests);
    expect(r.generalCalls).toBe(0);
    expect(r.fast).toEqual(r.general);
  });

  it('for every shape it leaves to the general path, in order with the others', () => {
    const requests = [
      message('docker.a', at(T), record('first')),
      message('docker.a', mp.f64(T + 0.5), record('float time'), mp.map([])),
      message('docker.a', mp.arr(at(T, 5), mp.map([])), record('v1.5 time with metadata'), mp.map([])),
      message('docker.a', at(T), record('extra keys', { extra: { level: 'warn' } }), mp.map([])),
      message('docker.a', at(T), record('extra keys it leaves', { extra: [['a', mp.str('1')], ['a', mp.str('2')]] }), mp.map([])),
      message('docker.a', at(T), record('piece one ', { partial: ['p1', 1, false] }), mp.map([])),
      message('docker.b', at(T), record('between the pieces', { id: ID_B }), mp.map([])),
      message('docker.a', at(T), record('piece two', { partial: ['p1', 2, true] }), mp.map([])),
      message('docker.a', at(T), record('an option of another kind'), mp.map([['size', mp.fixint(1)]])),
      message('docker.a', at(T), mp.map([['log', mp.str('no container, a 64-bit integer')], ['n', mp.uint64(2n ** 60n)]]), mp.map([])),
      message('app', at(T), mp.map([['message', mp.str('no container')], ['level', mp.str('warn')]]), mp.map([])),
      message('docker.a', at(T), record('last'), mp.map([])),
    ];
    const r = bothMessages(requests);
    expect(r.generalCalls).toBeGreaterThan(6);
    expect(r.fast).toEqual(r.general);
  });

  it('take requests up to the first that must go alone: refused there when it is the first', () => {
    const plain = (i: number): Buffer => message('docker.a', at(T, i), record('line ' + i), mp.map([]));
    const chunked = message('docker.a', at(T), record('chunked'), encodeMsgpack({ chunk: 'c-1' }));
    const alone = [
      chunked,
      message('docker.a', at(T), record('metrics'), encodeMsgpack({ fluent_signal: 1 })),
      mp.arr(mp.str('docker.a'), mp.str(entry(at(T), record('packed')).toString('latin1')), mp.map([])),
      mp.arr(mp.str('docker.a'), mp.arr(entry(at(T), record('forward'))), mp.map([])),
    ];
    const malformed = message('docker.a', at(T), mp.str('not a record'), mp.map([]));
    const encoder = new PackedLineEncoder({ normalizer: normalizer(), mapper: new RecordMapper(), limits: LIMITS, cache: new DecodeCache() });
    for (const other of [...alone, malformed]) {
      const part = encoder.checkMessages(Buffer.concat([plain(1), plain(2), other, plain(3)]), 1000);
      expect(part.length).toBe(plain(1).length + plain(2).length);
    }
    for (const other of alone) expect(encoder.checkMessages(Buffer.concat([other, plain(1)]), 1000).length).toBe(0);
    expect(() => encoder.checkMessages(Buffer.concat([malformed, plain(1)]), 1000)).toThrow(/record at offset \d+ is a string, not a map/);
    // At most as many as asked for.
    expect(encoder.checkMessages(Buffer.concat([plain(1), plain(2), plain(3)]), 2).length).toBe(plain(1).length + plain(2).length);
  });
});
