/**
 * Message-mode requests (one record each, what Docker's fluentd driver sends)
 * that arrive together are taken as one request: one write for all of them,
 * the same events as one by one, each chunk acked, and a malformed one in the
 * middle refuses only itself and what follows. Whole ones are taken straight
 * from the bytes read, the one a read cuts through the Framer: however the
 * reads cut them, the events are the same.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { LogEvent } from '../../../src/collector/event.js';
import { encodeMsgpack } from '../../../src/collector/forward/encode.js';
import { CaptureSink, dockerRecord, mp, rawClient, startTestInput, type TestInput } from '../../helpers/forward.js';
import { xorshift32 } from '../../helpers/random.js';
import { until } from '../../helpers/until.js';

const T = 1795341190;

const message = (tag: string, i: number, option?: Buffer): Buffer =>
  mp.arr(mp.str(tag), mp.eventTime(T, i), dockerRecord(`line ${i} "quoted" é`), ...(option ? [option] : []));

const running: TestInput[] = [];
afterEach(async () => {
  for (const t of running.splice(0)) await t.stop();
});

async function start(overrides: Record<string, unknown> = {}): Promise<TestInput> {
  const t = await startTestInput(overrides, { sink: new CaptureSink() });
  running.push(t);
  return t;
}

const sourceKey = (e: LogEvent): string => `${e.clogs.tag} ${e.container?.id ?? '-'}`;

/** What sinks see of an event, minus what differs from run to run. */
const shape = (e: LogEvent): unknown => ({ ...e, clogs: { ...e.clogs, seq: undefined } });

describe('Message-mode requests read together', () => {
  it('go out as one write, as the same events they make one by one, in order per tag', async () => {
    const tag = (i: number): string => (i % 2 === 0 ? 'docker.web' : 'docker.db');
    const requests = Array.from({ length: 200 }, (_, i) =>
      i % 3 === 2 ? mp.arr(mp.str(tag(i)), mp.int32(T + i), dockerRecord(`int time ${i}`), mp.map([])) : message(tag(i), i, mp.map([])),
    );

    const together = await start();
    const c1 = await rawClient(together.port);
    await c1.send(Buffer.concat(requests));
    await until('every record', () => together.sink.events.length === requests.length, 10_000);
    expect(together.sink.writes).toBeLessThan(10);

    const alone = await start();
    const c2 = await rawClient(alone.port);
    for (const r of requests) await c2.send(r);
    await until('every record', () => alone.sink.events.length === requests.length, 10_000);

    for (const t of ['docker.web', 'docker.db']) {
      const ofTag = (events: LogEvent[]): unknown[] => events.filter((e) => e.clogs.tag === t).map(shape);
      expect(ofTag(together.sink.events)).toEqual(ofTag(alone.sink.events));
      expect(ofTag(together.sink.events)).toHaveLength(100);
    }
    c1.socket.end();
    c2.socket.end();
  });

  it('ack each chunk in order, and a resend of one once more without writing it again', async () => {
    const t = await start();
    const c = await rawClient(t.port);
    const chunked = Array.from({ length: 20 }, (_, i) => message('docker.web', i, encodeMsgpack({ chunk: `m-${i}` })));
    await c.send(Buffer.concat([...chunked, message('docker.web', 99), chunked[3]!]));
    const acks = await c.waitReplies(21);
    expect(acks).toEqual([...chunked.map((_, i) => ({ ack: `m-${i}` })), { ack: 'm-3' }]);
    await until('every record', () => t.sink.events.length === 21, 10_000);
    expect(t.sink.events.map((e) => e.message)).toEqual([...chunked.map((_, i) => `line ${i} "quoted" é`), 'line 99 "quoted" é']);
    c.socket.end();
  });

  it('with a malformed one among them: those before it are written, nothing after it, and the connection closes', async () => {
    const t = await start({ max_record_keys: 4 });
    const c = await rawClient(t.port);
    // Well-formed msgpack, so it is taken with the others, but over max_record_keys: refused when they are checked together.
    const bad = mp.arr(mp.str('docker.web'), mp.eventTime(T, 0), dockerRecord('bad', { extra: 'key' }), mp.map([]));
    await c.send(Buffer.concat([message('docker.web', 1), message('docker.web', 2), bad, message('docker.web', 3)]));
    await c.closed;
    expect(t.sink.events.map((e) => e.message)).toEqual(['line 1 "quoted" é', 'line 2 "quoted" é']);
    expect(t.logs.some((l) => l.code === 'CLOGS_TOO_MANY_KEYS')).toBe(true);
  });

  it('make the same events and acks however the reads cut them', async () => {
    const tag = (i: number): string => ['docker.web', 'docker.db', 'app.x'][i % 3]!;
    // Every shape a run meets: Docker's records (EventTime or int time, with or
    // without the option map), requests with a chunk to ack, records the fast
    // path leaves to the decoder (a bin line, a nested value, a split line),
    // and requests of the other modes in between.
    const requests = Array.from({ length: 240 }, (_, i): Buffer => {
      switch (i % 12) {
        case 0: return mp.arr(mp.str(tag(i)), mp.int32(T + i), dockerRecord(`int time ${i}`), mp.map([]));
        case 1: return mp.arr(mp.str(tag(i)), mp.eventTime(T, i), dockerRecord(`no option ${i}`));
        case 2: return message(tag(i), i, encodeMsgpack({ chunk: `c-${i}` }));
        case 3: return mp.arr(mp.str(tag(i)), mp.eventTime(T, i), mp.map([['log', mp.bin(Buffer.from(`bin line ${i}`))], ['source', mp.str('stdout')]]), mp.map([]));
        case 4: return mp.arr(mp.str(tag(i)), mp.eventTime(T, i), mp.map([['log', mp.str(`nested ${i}`)], ['req', mp.map([['id', mp.fixint(i & 0x7f)], ['ok', mp.bool(true)]])]]), mp.map([]));
        case 5: return mp.arr(mp.str(tag(i)), mp.eventTime(T, i), dockerRecord(`split ${i} `, { partial_message: 'true', partial_id: `p${i}`, partial_ordinal: '1', partial_last: 'false' }), mp.map([]));
        case 6: return mp.arr(mp.str(tag(i - 1)), mp.eventTime(T, i), dockerRecord(`end ${i}`, { partial_message: 'true', partial_id: `p${i - 1}`, partial_ordinal: '2', partial_last: 'true' }), mp.map([]));
        case 7: return mp.arr(mp.str(tag(i)), mp.arr(mp.arr(mp.eventTime(T, i), dockerRecord(`forward ${i}`))));
        case 8: return mp.arr(mp.str(tag(i)), mp.bin(mp.arr(mp.eventTime(T, i), dockerRecord(`packed ${i}`))), encodeMsgpack({ chunk: `c-${i}` }));
        default: return message(tag(i), i, mp.map([]));
      }
    });
    const chunks = requests.flatMap((_, i) => (i % 12 === 2 || i % 12 === 8 ? [{ ack: `c-${i}` }] : []));

    const alone = await start();
    const c0 = await rawClient(alone.port);
    for (const r of requests) await c0.send(r);
    expect(await c0.waitReplies(chunks.length)).toEqual(chunks);
    const want = requests.length - requests.length / 12;
    await until('every record', () => alone.sink.events.length === want, 10_000);
    c0.socket.end();

    const random = xorshift32(0x9e3779b9);
    const bytes = Buffer.concat(requests);
    for (const largest of [40, 700, 6000]) {
      const cut = await start();
      const c = await rawClient(cut.port);
      for (let at = 0; at < bytes.length; ) {
        const n = 1 + random(largest);
        await c.send(bytes.subarray(at, at + n));
        // Lets the input read this part alone.
        await new Promise((r) => setImmediate(r));
        at += n;
      }
      expect(await c.waitReplies(chunks.length)).toEqual(chunks);
      await until('every record', () => cut.sink.events.length === want, 10_000);
      // In order within each source (a tag's records with a container and without are two).
      const sources = new Set(alone.sink.events.map(sourceKey));
      expect(sources.size).toBe(5);
      for (const source of sources) {
        const of = (events: LogEvent[]): unknown[] => events.filter((e) => sourceKey(e) === source).map(shape);
        expect(of(cut.sink.events), `reads of up to ${largest} bytes, ${source}`).toEqual(of(alone.sink.events));
      }
      c.socket.end();
    }
  });
});
