/**
 * Message-mode requests (one record each, what Docker's fluentd driver sends)
 * that arrive together are taken as one request: one write for all of them,
 * the same events as one by one, each chunk acked, and a malformed one in the
 * middle refuses only itself and what follows.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { LogEvent } from '../../../src/collector/event.js';
import { encodeMsgpack } from '../../../src/collector/forward/encode.js';
import { CaptureSink, dockerRecord, mp, rawClient, startTestInput, type TestInput } from '../../helpers/forward.js';
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
});
