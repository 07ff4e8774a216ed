import { describe, expect, it } from 'vitest';
import { EncodedBatch } from '../../../src/collector/encoded.js';
import { encodeLine } from '../../../src/collector/event-json.js';
import type { LogEvent } from '../../../src/collector/event.js';
import { Pipeline } from '../../../src/collector/pipeline.js';
import type { Sink } from '../../../src/sinks/sink.js';
import { eventsOf } from '../../helpers/batch.js';
import { container, event } from '../file-sink/helpers.js';

const web = container('web');
const db = container('db');


describe('EncodedBatch', () => {
  it('groups lines by container object, else by tag or input, in order', () => {
    const events = [event('w1', { container: web }), event('t1', { tag: 'app.a' }), event('w2', { container: web }), event('d1', { container: db }), event('i1')];
    const b = EncodedBatch.of(events);
    expect(b.count).toBe(5);
    const bySource = [...b.sources()].map((s) => [s.container?.name ?? s.name, Buffer.concat(s.chunks()).toString()]);
    expect(bySource).toEqual([
      ['web', encodeLine(events[0]!) + encodeLine(events[2]!)],
      ['db', encodeLine(events[3]!)],
      ['app.a', encodeLine(events[1]!)],
      ['forward', encodeLine(events[4]!)],
    ]);
  });

  it('refuses an event that breaks the LogEvent type, leaving the lines before it whole', () => {
    const b = EncodedBatch.of([event('ok1', { container: web })]);
    const broken = { ...event('broken', { container: web }), host: undefined } as unknown as LogEvent;
    expect(() => b.add([broken])).toThrow();
    b.add([event('ok2', { container: web })]);
    expect(eventsOf(b).map((e) => e.message)).toEqual(['ok1', 'ok2']);
  });

  it('knows whether every line of a source came under its name, through appends too', () => {
    const only = EncodedBatch.of([event('1', { container: web, tag: 'app.a' }), event('2', { container: web, tag: 'app.a' })]);
    expect([...only.sources()].map((s) => [s.name, s.onlyName])).toEqual([['app.a', true]]);
    const mixed = EncodedBatch.of([event('3', { container: web, tag: 'app.a' }), event('4', { container: db }), event('5', { container: web, tag: 'app.b' })]);
    expect([...mixed.sources()].map((s) => [s.name, s.onlyName])).toEqual([['app.a', false], ['forward', true]]);
    const into = EncodedBatch.of([event('6', { container: web, tag: 'app.a' })]);
    into.append(EncodedBatch.of([event('7', { container: web, tag: 'app.b' })]));
    expect([...into.sources()].map((s) => s.onlyName)).toEqual([false]);
    const intoSame = EncodedBatch.of([event('8', { container: web, tag: 'app.a' })]);
    intoSame.append(mixed);
    expect([...intoSame.sources()].map((s) => [s.name, s.onlyName])).toEqual([['app.a', false], ['forward', true]]);
  });

  it('appends another batch after its own lines', () => {
    const a = EncodedBatch.of([event('1', { container: web })]);
    const b = EncodedBatch.of([event('2', { container: web }), event('3', { container: db })]);
    a.append(b);
    expect(a.count).toBe(3);
    expect(eventsOf(a).map((e) => e.message)).toEqual(['1', '2', '3']);
  });
});

class Recording implements Sink {
  readonly writes: string[][] = [];
  constructor(readonly name: string) {}
  async start(): Promise<void> {}
  async write(batch: EncodedBatch): Promise<void> {
    this.writes.push(eventsOf(batch).map((e) => e.message));
  }
  async close(): Promise<void> {}
}

describe('Pipeline', () => {
  it('renders events once and hands the same lines to every sink and subscriber', async () => {
    const a = new Recording('a');
    const b = new Recording('b');
    const p = new Pipeline([a, b]);
    const seen: EncodedBatch[] = [];
    p.subscribe((batch) => seen.push(batch));
    const events = [event('a', { container: web }), event('b', { container: web })];
    await p.write(events);
    expect(a.writes).toEqual([['a', 'b']]);
    expect(b.writes).toEqual([['a', 'b']]);
    expect(seen).toHaveLength(1);
    expect(Buffer.concat([...seen[0]!.sources()].flatMap((s) => [...s.chunks()])).toString()).toBe(events.map(encodeLine).join(''));
  });
});
