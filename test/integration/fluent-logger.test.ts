/**
 * The real fluent-logger npm client (3.4.1) against the forward input, in
 * process, with a real Pipeline and a capturing sink.
 */
import fluentLogger from 'fluent-logger';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestInput, type TestInput } from '../helpers/forward.js';
import { until } from '../helpers/until.js';

const quiet = { info: () => undefined, error: () => undefined };

type Sender = ReturnType<typeof fluentLogger.createFluentSender<Record<string, unknown>>>;

function sender(port: number, options: Record<string, unknown> = {}): Sender {
  return fluentLogger.createFluentSender<Record<string, unknown>>('app', {
    host: '127.0.0.1',
    port,
    requireAckResponse: true,
    internalLogger: quiet,
    reconnectInterval: 100,
    ...options,
  });
}

/** emit() as a promise: resolves when fluent-logger got the ack (it calls back only then). */
function emit(s: Sender, label: string, record: Record<string, unknown>, time?: unknown): Promise<void> {
  return new Promise((resolve, reject) => {
    const cb = (err?: Error) => (err ? reject(err) : resolve());
    if (time === undefined) s.emit(label, record, cb);
    else (s.emit as (l: string, r: unknown, t: unknown, c: (err?: Error) => void) => void)(label, record, time, cb);
  });
}

function end(s: Sender): Promise<void> {
  return new Promise((resolve) => s.end(undefined as unknown as string, undefined as unknown as Record<string, unknown>, () => resolve()));
}

let running: TestInput | undefined;
afterEach(async () => {
  await running?.stop();
  running = undefined;
});

describe('fluent-logger against the forward input', () => {
  it('Message mode with requireAckResponse and EventTime: every record once, every ack received', async () => {
    running = await startTestInput();
    const s = sender(running.port);
    const EventTime = fluentLogger.EventTime as unknown as new (sec: number, nsec: number) => unknown;
    for (let i = 0; i < 30; i++) {
      await emit(s, 'web', { level: i % 2 ? 'warn' : 'info', msg: `hello ${i}`, n: i }, new EventTime(1795341190, 123456789 + i));
    }
    await end(s);
    const events = running.sink.events;
    expect(events.map((e) => e.message)).toEqual(Array.from({ length: 30 }, (_, i) => `hello ${i}`));
    const e = events[3]!;
    expect(e['@timestamp']).toBe('2026-11-22T09:53:10.123456792Z');
    expect(e.log?.level).toBe('warn');
    expect(e.clogs).toMatchObject({ input: 'forward', tag: 'app.web' });
    expect(e.container).toBeUndefined();
    expect(e.attrs).toMatchObject({ level: 'warn', msg: 'hello 3', n: 3 });
  });

  it('Message mode without acks, integer time', async () => {
    running = await startTestInput();
    const s = sender(running.port, { requireAckResponse: false });
    for (let i = 0; i < 20; i++) s.emit('plain', { message: `line ${i}` }, 1795341190);
    await until('20 events', () => running!.sink.events.length === 20, 10_000);
    await end(s);
    expect(running.sink.events.map((e) => e.message)).toEqual(Array.from({ length: 20 }, (_, i) => `line ${i}`));
    expect(running.sink.events[0]!['@timestamp']).toBe('2026-11-22T09:53:10.000000000Z');
  });

  for (const eventMode of ['PackedForward', 'CompressedPackedForward'] as const) {
    it(`${eventMode} with requireAckResponse`, async () => {
      running = await startTestInput();
      const s = sender(running.port, { eventMode, flushInterval: 20 });
      const sent: Promise<void>[] = [];
      for (let i = 0; i < 500; i++) sent.push(emit(s, 'batch', { msg: `packed ${i}`, i }));
      await Promise.all(sent);
      await end(s);
      const got = running.sink.events.map((e) => e.message);
      expect(got).toHaveLength(500);
      expect(new Set(got).size).toBe(500);
      expect(got).toEqual(Array.from({ length: 500 }, (_, i) => `packed ${i}`));
      expect(running.sink.events[0]!.clogs.tag).toBe('app.batch');
    });
  }

  it('does not ack before the sink write resolved', async () => {
    running = await startTestInput();
    running.sink.hold();
    const s = sender(running.port);
    let acked = false;
    const done = emit(s, 'held', { msg: 'wait for it' }).then(() => (acked = true));
    await until('a held write', () => running!.sink.pendingWrites === 1, 10_000);
    await new Promise((r) => setTimeout(r, 300));
    expect(acked).toBe(false);
    expect(running.sink.events).toHaveLength(0);
    running.sink.release();
    await done;
    expect(acked).toBe(true);
    expect(running.sink.events.map((e) => e.message)).toEqual(['wait for it']);
    await end(s);
  });
});
