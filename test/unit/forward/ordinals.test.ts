/**
 * Ordinals across a stop of the forward input: identical lines with the same
 * whole-second time, as Docker's driver sends them, keep distinct
 * identities when the input starts again between them.
 */
import { cpSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { EncodedBatch } from '../../../src/collector/encoded.js';
import type { LogEvent } from '../../../src/collector/event.js';
import { encodeMsgpack } from '../../../src/collector/forward/encode.js';
import type { WriteOptions } from '../../../src/sinks/sink.js';
import { eventsOf } from '../../helpers/batch.js';
import { CaptureSink, dockerRecord, mp, rawClient, startTestInput, type TestInput } from '../../helpers/forward.js';
import { until } from '../../helpers/until.js';

const T = 1795341190;
let running: TestInput | undefined;
const alsoRunning: TestInput[] = [];

afterEach(async () => {
  await running?.stop();
  running = undefined;
  for (const r of alsoRunning.splice(0)) await r.stop();
});

/** kill -9 of a running input: its state directory as it is now, for the next input to start on. */
function stateAsLeft(input: TestInput): string {
  const crashed = mkdtempSync(join(tmpdir(), 'clogs-ordinals-crashed-'));
  cpSync(input.stateDir, crashed, { recursive: true });
  return crashed;
}

/** A record of another container than dockerRecord()'s. */
const otherRecord = (log: string): Buffer =>
  mp.map([
    ['container_id', mp.str('f'.repeat(64))],
    ['container_name', mp.str('/other-1')],
    ['source', mp.str('stdout')],
    ['log', mp.str(log)],
  ]);

describe('forward ordinals across a crash', () => {
  for (const [name, time] of [
    ['whole seconds', mp.int32(T)],
    ['a float time of whole milliseconds (.123 decodes to .122999907)', mp.f64(T + 0.123)],
    ['a 15.625 ms clock tick', mp.eventTime(T, 15_625_000)],
    ['nanoseconds', mp.eventTime(T, 123_456_789)],
  ] as const) {
    it(`count on from what the crashed input had counted: ${name}`, async () => {
      running = await startTestInput();
      const c1 = await rawClient(running.port);
      await c1.send(mp.arr(mp.str('docker.web'), time, dockerRecord('tick'), encodeMsgpack({ chunk: 'before' })));
      await c1.waitReplies(1);
      const next = await startTestInput({}, { stateDir: stateAsLeft(running) });
      alsoRunning.push(next);
      const c2 = await rawClient(next.port);
      await c2.send(mp.arr(mp.str('docker.web'), time, dockerRecord('tick'), encodeMsgpack({ chunk: 'after' })));
      await c2.waitReplies(1);
      expect(running.sink.events[0]!['@timestamp']).toBe(next.sink.events[0]!['@timestamp']);
      expect([running.sink.events[0]!.clogs.ordinal, next.sink.events[0]!.clogs.ordinal]).toEqual([0, 1]);
    });
  }
});

describe('a request sent again after its first copy was written in part', () => {
  const LINES = 30_000;
  /** 30,000 identical lines of one container, then 10,000 of another: rendered in several slices. */
  const bigRequest = (): Buffer =>
    mp.arr(
      mp.str('docker.web'),
      mp.bin(Buffer.concat([...Array<Buffer>(LINES).fill(mp.arr(mp.int32(T), dockerRecord('same line'))), ...Array<Buffer>(10_000).fill(mp.arr(mp.int32(T), otherRecord('other')))])),
      encodeMsgpack({ chunk: 'big' }),
    );
  const identities = (events: readonly { message: string; clogs: { ordinal: number } }[]): number => new Set(events.filter((e) => e.message === 'same line').map((e) => e.clogs.ordinal)).size;

  it('gives its written records their ordinals again, and its other lines and those sent meanwhile ordinals of their own', async () => {
    running = await startTestInput();
    const { sink } = running;
    // A sink fails a write of the first copy: it is not acked, and the client sends it again.
    sink.failNext = new Error('the sink failed this write');
    const c1 = await rawClient(running.port);
    await c1.send(bigRequest());
    await c1.closed;
    // Meanwhile, two more identical lines of that second, acked.
    const c2 = await rawClient(running.port);
    await c2.send(mp.arr(mp.str('docker.web'), mp.int32(T), dockerRecord('same line'), encodeMsgpack({ chunk: 'x-0' })));
    await c2.send(mp.arr(mp.str('docker.web'), mp.int32(T), dockerRecord('same line'), encodeMsgpack({ chunk: 'x-1' })));
    await c2.waitReplies(2);
    // The resend pauses between slices (its writes held), and a line of the same source comes on another connection.
    sink.hold();
    const c3 = await rawClient(running.port);
    await c3.send(bigRequest());
    await new Promise((r) => setTimeout(r, 500));
    const c4 = await rawClient(running.port);
    await c4.send(mp.arr(mp.str('docker.web'), mp.int32(T), dockerRecord('same line'), encodeMsgpack({ chunk: 'late' })));
    await new Promise((r) => setTimeout(r, 200));
    sink.release();
    expect(await c3.waitReplies(1, 60_000)).toEqual([{ ack: 'big' }]);
    expect(await c4.waitReplies(1)).toEqual([{ ack: 'late' }]);
    // The file sink's replay guard and Elasticsearch keep one line per identity: every line sent has one of its own.
    expect(identities(sink.events)).toBe(LINES + 3);

    // A crash now: the next identical line of that second takes no stored line's identity.
    const next = await startTestInput({}, { stateDir: stateAsLeft(running) });
    alsoRunning.push(next);
    const c5 = await rawClient(next.port);
    await c5.send(mp.arr(mp.str('docker.web'), mp.int32(T), dockerRecord('same line'), encodeMsgpack({ chunk: 'after-crash' })));
    await c5.waitReplies(1);
    expect(identities([...sink.events, ...next.sink.events])).toBe(LINES + 4);
  }, 120_000);
});

/** Sends the records, each acked, on one connection, and closes it. */
async function send(input: TestInput, records: Array<[number, Buffer]>): Promise<void> {
  const c = await rawClient(input.port);
  for (const [i, [time, record]] of records.entries()) await c.send(mp.arr(mp.str('docker.web'), mp.int32(time), record, encodeMsgpack({ chunk: `c-${Date.now()}-${i}` })));
  await c.waitReplies(records.length);
  c.socket.end();
  await c.closed;
}

/** A sink that takes the first write and then fails it, as one of two sinks whose other failed. */
class TookThenFailedSink extends CaptureSink {
  private failed = false;

  override write(batch: EncodedBatch, opts?: WriteOptions): Promise<void> {
    if (this.failed) return super.write(batch, opts);
    this.failed = true;
    this.events.push(...eventsOf(batch));
    return Promise.reject(new Error('the other sink failed this write'));
  }
}

describe('a request sent again after a failed write', () => {
  it('gets the ordinals its first copy had, which a sink that took that copy already holds', async () => {
    const sink = new TookThenFailedSink();
    running = await startTestInput({}, { sink });
    const request = mp.arr(mp.str('docker.web'), mp.bin(Buffer.concat([dockerRecord('same line'), dockerRecord('same line')].map((r) => mp.arr(mp.int32(T), r)))), encodeMsgpack({ chunk: 'again-1' }));
    const first = await rawClient(running.port);
    await first.send(request);
    await first.closed;
    expect(first.replies()).toEqual([]);
    const second = await rawClient(running.port);
    await second.send(request);
    expect(await second.waitReplies(1)).toEqual([{ ack: 'again-1' }]);
    second.socket.end();
    expect(sink.events.map((e) => [e.message, e.clogs.ordinal])).toEqual([
      ['same line', 0],
      ['same line', 1],
      ['same line', 0],
      ['same line', 1],
    ]);
  });
});

describe('a request sent a third time', () => {
  /** Fails the first write; then stores, but fails, the first write holding 'last' (as when another sink failed it). */
  class TwiceFailingSink extends CaptureSink {
    private seen = 0;
    private lastFailed = false;

    override write(batch: EncodedBatch, opts?: WriteOptions): Promise<void> {
      if (++this.seen === 1) return Promise.reject(new Error('the first write fails'));
      const events = eventsOf(batch);
      if (!this.lastFailed && events.some((e) => e.message === 'last')) {
        this.lastFailed = true;
        this.events.push(...events);
        return Promise.reject(new Error('the other sink failed this write'));
      }
      return super.write(batch, opts);
    }
  }

  it('gives each record the ordinal the copy that first wrote it gave', async () => {
    const sink = new TwiceFailingSink();
    running = await startTestInput({}, { sink });
    const N = 30_000;
    const records = Array.from({ length: N }, (_, i) => mp.arr(mp.int32(T), dockerRecord(i === N - 1 ? 'last' : `r${i}`)));
    const request = mp.arr(mp.str('docker.web'), mp.bin(Buffer.concat(records)), encodeMsgpack({ chunk: 'thrice' }));
    // The first copy fails part-way; a line of the same second comes between the copies.
    const c1 = await rawClient(running.port);
    await c1.send(request);
    await c1.closed;
    const x = await rawClient(running.port);
    await x.send(mp.arr(mp.str('docker.web'), mp.int32(T), dockerRecord('same line'), encodeMsgpack({ chunk: 'between' })));
    await x.waitReplies(1);
    // The second copy writes further than the first, then fails too; the third is acked.
    const c2 = await rawClient(running.port);
    await c2.send(request);
    await c2.closed;
    const c3 = await rawClient(running.port);
    await c3.send(request);
    expect(await c3.waitReplies(1, 60_000)).toEqual([{ ack: 'thrice' }]);
    const ordinals = new Map<string, Set<number>>();
    for (const e of sink.events) if (e.message !== 'same line') (ordinals.get(e.message) ?? ordinals.set(e.message, new Set()).get(e.message)!).add(e.clogs.ordinal);
    expect(ordinals.size).toBe(N);
    expect([...ordinals].filter(([, o]) => o.size > 1).map(([m]) => m)).toEqual([]);
  }, 120_000);
});

describe('a request rendered in slices with a line of the same source between them', () => {
  /** Keeps what each write hands it at once (as a sink that took the lines), and settles the writes when told. */
  class TakingSink extends CaptureSink {
    passThrough = false;
    private waiting: Array<{ resolve(): void; reject(err: Error): void }> = [];

    override write(batch: EncodedBatch): Promise<void> {
      this.events.push(...eventsOf(batch));
      if (this.passThrough) return Promise.resolve();
      return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
    }

    settleWaiting(err?: Error): void {
      for (const w of this.waiting.splice(0)) {
        if (err === undefined) w.resolve();
        else w.reject(err);
      }
    }
  }

  const sinks: TakingSink[] = [];
  // Before the inputs stop (the outer hook runs after this one): a crashed input's writes never settle by themselves.
  afterEach(() => {
    for (const sink of sinks.splice(0)) sink.settleWaiting(new Error('stopped'));
  });
  const takingSink = (): TakingSink => {
    const sink = new TakingSink();
    sinks.push(sink);
    return sink;
  };

  const N = 60_000;
  const request = mp.arr(
    mp.str('docker.web'),
    mp.bin(Buffer.concat(Array.from({ length: N }, (_, i) => mp.arr(mp.int32(T), dockerRecord(`r${i}`))))),
    encodeMsgpack({ chunk: 'sliced' }),
  );
  const isRecord = (e: LogEvent): boolean => e.message.startsWith('r');

  /**
   * The first copy's first slices fill what a connection may have in flight;
   * a line of the same second comes on another connection; those writes
   * succeed and the first copy counts on past that line, its next slice
   * handed to the sink and still waiting.
   */
  async function interleaved(input: TestInput): Promise<{ c1: Awaited<ReturnType<typeof rawClient>> }> {
    const sink = input.sink as TakingSink;
    const rendered = (): number => sink.events.filter(isRecord).length;
    const c1 = await rawClient(input.port);
    await c1.send(request);
    await until('the first slices are handed to the sink', () => rendered() > 0);
    const x = await rawClient(input.port);
    await x.send(mp.arr(mp.str('docker.web'), mp.int32(T), dockerRecord('between'), encodeMsgpack({ chunk: 'between' })));
    await until('the line between is handed to the sink', () => sink.events.some((e) => e.message === 'between'));
    const before = rendered();
    sink.settleWaiting();
    await until('a later slice of the first copy is handed to the sink', () => rendered() > before);
    const between = sink.events.find((e) => e.message === 'between')!.clogs.ordinal;
    const firstCopy = sink.events.filter(isRecord).map((e) => e.clogs.ordinal);
    expect(Math.min(...firstCopy)).toBeLessThan(between);
    expect(Math.max(...firstCopy)).toBeGreaterThan(between);
    return { c1 };
  }

  /** Every record keeps one identity over all the copies handed to the sinks. */
  function expectOneIdentityEach(events: readonly LogEvent[]): void {
    const identities = new Map<string, Set<number>>();
    for (const e of events) if (isRecord(e)) (identities.get(e.message) ?? identities.set(e.message, new Set()).get(e.message)!).add(e.clogs.ordinal);
    expect(identities.size).toBe(N);
    expect([...identities].filter(([, o]) => o.size > 1).map(([m, o]) => `${m}: ${[...o].join(', ')}`).slice(0, 5)).toEqual([]);
  }

  it('gives a resend after a failed write the ordinals each slice of the first copy counted', async () => {
    const sink = takingSink();
    running = await startTestInput({}, { sink });
    const { c1 } = await interleaved(running);
    sink.settleWaiting(new Error('the other sink failed this write'));
    await c1.closed;
    sink.passThrough = true;
    const c2 = await rawClient(running.port);
    await c2.send(request);
    expect(await c2.waitReplies(1, 60_000)).toEqual([{ ack: 'sliced' }]);
    expectOneIdentityEach(sink.events);
  }, 120_000);

  it('gives a resend after a crash the ordinals each slice of the first copy counted', async () => {
    running = await startTestInput({}, { sink: takingSink() });
    await interleaved(running);
    const sink = takingSink();
    sink.passThrough = true;
    const next = await startTestInput({}, { sink, stateDir: stateAsLeft(running) });
    alsoRunning.push(next);
    const c2 = await rawClient(next.port);
    await c2.send(request);
    expect(await c2.waitReplies(1, 60_000)).toEqual([{ ack: 'sliced' }]);
    expectOneIdentityEach([...running.sink.events, ...sink.events]);
  }, 120_000);
});

describe('forward ordinals across a stop', () => {
  it('count on from where the stopped input was, per source and stream', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'clogs-ordinals-'));
    running = await startTestInput({}, { stateDir });
    await send(running, [[T, dockerRecord('same line')], [T, dockerRecord('same line')], [T, dockerRecord('other stream', {}, 'stderr')]]);
    expect(running.sink.events.map((e) => e.clogs.ordinal)).toEqual([0, 1, 0]);
    await running.stop();

    running = await startTestInput({}, { stateDir });
    await send(running, [[T, dockerRecord('same line')], [T, dockerRecord('other stream', {}, 'stderr')], [T + 1, dockerRecord('same line')]]);
    expect(running.sink.events.map((e) => [e.message, e.stream, e.clogs.ordinal])).toEqual([
      ['same line', 'stdout', 2],
      ['other stream', 'stderr', 1],
      ['same line', 'stdout', 0],
    ]);
  });

  it('count on across starts that saw none of a source\'s lines, as async Docker drivers send buffered lines late', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'clogs-ordinals-'));
    running = await startTestInput({}, { stateDir });
    await send(running, [[T, dockerRecord('same line')], [T, dockerRecord('same line')]]);
    await running.stop();
    running = await startTestInput({}, { stateDir });
    await running.stop();
    running = await startTestInput({}, { stateDir });
    await send(running, [[T, dockerRecord('same line')]]);
    expect(running.sink.events.map((e) => e.clogs.ordinal)).toEqual([2]);
  });

  it('count from 0 when what the last stop saved is damaged', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'clogs-ordinals-'));
    writeFileSync(join(stateDir, 'forward-ordinals.json'), '{"ordinals":[{"source"');
    running = await startTestInput({}, { stateDir });
    await send(running, [[T, dockerRecord('same line')]]);
    expect(running.sink.events.map((e) => e.clogs.ordinal)).toEqual([0]);
    expect(running.logs.some((l) => l.msg === 'the ordinals of the last stop are damaged; counting from 0')).toBe(true);
  });
});
