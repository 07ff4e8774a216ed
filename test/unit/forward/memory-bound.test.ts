/**
 * The forward input's memory bound, asserted on its counter of rendered bytes
 * in flight (render-budget.ts), never on time or RSS: requests of tiny records
 * render to about 50 times their wire size, and are rendered and written in
 * slices within the bound, acked after their last slice.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { EncodedBatch } from '../../../src/collector/encoded.js';
import { encodeMsgpack } from '../../../src/collector/forward/encode.js';
import { MAX_IN_FLIGHT_BYTES, RENDER_BUDGET_BYTES, SLICE_BYTES } from '../../../src/collector/forward/render-budget.js';
import { forwardRenderedBytes } from '../../../src/metrics.js';
import { CaptureSink, mp, rawClient, startTestInput, type TestInput } from '../../helpers/forward.js';
import { until } from '../../helpers/until.js';

/** `[0,{}]`: 3 bytes on the wire, a line of about 150 bytes. */
const TINY = Buffer.from([0x92, 0x00, 0x80]);
/** Slack for the record that ends a slice: a tiny record's line, generously. */
const RECORD_SLACK = 4096;

/** Counts what it is given, per tag, without keeping it (nor parsing lines back). */
class CountingSink extends CaptureSink {
  readonly lines = new Map<string, number>();

  override write(batch: EncodedBatch): Promise<void> {
    return this.take(() => {
      for (const s of batch.sources()) this.count(s.name, s.count);
    });
  }

  private count(tag: string, n: number): void {
    this.lines.set(tag, (this.lines.get(tag) ?? 0) + n);
  }
}

function packed(tag: string, records: number, chunk: string, last: Buffer = TINY): Buffer {
  const stream = Buffer.concat([...Array.from({ length: records - 1 }, () => TINY), last]);
  return mp.arr(mp.str(tag), mp.bin(stream), encodeMsgpack({ chunk }));
}

function forwardMode(tag: string, records: number, chunk: string): Buffer {
  const header = Buffer.alloc(5);
  header[0] = 0xdd;
  header.writeUInt32BE(records, 1);
  const entries = Buffer.concat([header, ...Array.from({ length: records }, () => TINY)]);
  return mp.arr(mp.str(tag), entries, encodeMsgpack({ chunk }));
}

let running: TestInput<CountingSink> | undefined;
afterEach(async () => {
  await running?.stop();
  running = undefined;
});

/** Events rather than lines reach the sinks while someone follows the live stream (/tail). */
async function start(events: boolean): Promise<TestInput<CountingSink>> {
  const t = await startTestInput({}, { sink: new CountingSink() });
  if (events) t.pipeline.subscribe(() => undefined);
  return t;
}

describe.each([
  ['rendered lines', false],
  ['events (a /tail client follows)', true],
])('rendered bytes in flight stay bounded: %s', (_name, events) => {
  it('with 8 connections at once, each sending a request that renders to about 15 MiB, while the sink holds every write', async () => {
    running = await start(events);
    const t = running;
    const sink = t.sink;
    const budget = t.input.budget;
    const RECORDS = 100_000;
    const CONNECTIONS = 8;
    sink.hold();
    const clients = await Promise.all(Array.from({ length: CONNECTIONS }, () => rawClient(t.port)));
    await Promise.all(clients.map((c, i) => c.send(i % 2 === 0 ? packed(`t${i}`, RECORDS, `c${i}`) : forwardMode(`t${i}`, RECORDS, `c${i}`))));

    // Every connection renders until the budget is spent, then waits for durable writes.
    await until('the budget to fill', () => budget.inFlight >= budget.limit, 60_000);
    expect(budget.inFlight).toBeLessThanOrEqual(RENDER_BUDGET_BYTES + SLICE_BYTES + RECORD_SLACK);
    expect((await forwardRenderedBytes.get()).values[0]?.value).toBe(budget.inFlight);
    expect(clients.flatMap((c) => c.replies())).toEqual([]);

    // Then writes complete as they come, the bound holding all along.
    const pump = setInterval(() => sink.release(), 1);
    try {
      const acks = await Promise.all(clients.map((c) => c.waitReplies(1, 120_000)));
      expect(acks.map((a) => a[0])).toEqual(clients.map((_, i) => ({ ack: `c${i}` })));
    } finally {
      clearInterval(pump);
    }
    expect(budget.peak).toBeLessThanOrEqual(RENDER_BUDGET_BYTES + SLICE_BYTES + RECORD_SLACK);
    for (let i = 0; i < CONNECTIONS; i++) expect(sink.lines.get(`t${i}`)).toBe(RECORDS);
    // Written in slices, not at once.
    expect(sink.writes).toBeGreaterThan(CONNECTIONS * 4);
    await until('nothing in flight', () => budget.inFlight === 0, 10_000);
    for (const c of clients) c.socket.end();
  }, 180_000);

  it('one connection holds at most its own share, and is acked after the last slice', async () => {
    running = await start(events);
    const { sink } = running;
    const budget = running.input.budget;
    sink.hold();
    const c = await rawClient(running.port);
    await c.send(packed('one', 300_000, 'one-1'));
    await until('the connection to fill its share', () => budget.inFlight >= MAX_IN_FLIGHT_BYTES, 60_000);
    expect(budget.inFlight).toBeLessThanOrEqual(MAX_IN_FLIGHT_BYTES + SLICE_BYTES + RECORD_SLACK);
    const pump = setInterval(() => sink.release(), 1);
    try {
      expect(await c.waitReplies(1, 120_000)).toEqual([{ ack: 'one-1' }]);
    } finally {
      clearInterval(pump);
    }
    expect(budget.peak).toBeLessThanOrEqual(MAX_IN_FLIGHT_BYTES + SLICE_BYTES + RECORD_SLACK);
    expect(sink.lines.get('one')).toBe(300_000);
    c.socket.end();
  }, 180_000);
});

describe('a malformed request of many slices', () => {
  it('is refused whole: none of it is written, and the connection is closed', async () => {
    running = await start(false);
    const { sink } = running;
    const c = await rawClient(running.port);
    await c.send(packed('bad', 100_000, 'bad-1', Buffer.from([0x92, 0xc1])));
    await c.closed;
    expect(sink.lines.get('bad')).toBeUndefined();
    expect(running.input.budget.peak).toBe(0);
  });
});
