import { describe, expect, it } from 'vitest';
import { EncodedBatch } from '../../../src/collector/encoded.js';
import { encodeLine } from '../../../src/collector/event-json.js';
import type { LogEvent } from '../../../src/collector/event.js';
import { Pipeline } from '../../../src/collector/pipeline.js';
import type { Sink } from '../../../src/sinks/sink.js';
import { container, event } from '../file-sink/helpers.js';

const web = container('web');
const db = container('db');

function batchOf(events: LogEvent[]): EncodedBatch {
  const b = new EncodedBatch();
  b.add(events);
  return b;
}

describe('EncodedBatch', () => {
  it('groups lines by container object, else by tag or input, in order', () => {
    const events = [event('w1', { container: web }), event('t1', { tag: 'app.a' }), event('w2', { container: web }), event('d1', { container: db }), event('i1')];
    const b = batchOf(events);
    expect(b.count).toBe(5);
    const bySource = [...b.sources()].map((s) => [s.container?.name ?? s.name, Buffer.concat(s.chunks()).toString()]);
    expect(bySource).toEqual([
      ['web', encodeLine(events[0]!) + encodeLine(events[2]!)],
      ['db', encodeLine(events[3]!)],
      ['app.a', encodeLine(events[1]!)],
      ['forward', encodeLine(events[4]!)],
    ]);
  });

  it('gives back the events it holds, with the shared container objects', () => {
    const events = [event('w1', { container: web, stream: 'stderr', attrs: { n: 1 }, log: { level: 'warn' } }), event('t1', { tag: 'app.a' })];
    const parsed = batchOf(events).events();
    expect(parsed).toEqual(events);
    expect(parsed[0]!.container).toBe(web);
  });

  it('appends another batch after its own lines', () => {
    const a = batchOf([event('1', { container: web })]);
    const b = batchOf([event('2', { container: web }), event('3', { container: db })]);
    a.append(b);
    expect(a.count).toBe(3);
    expect(a.events().map((e) => e.message)).toEqual(['1', '2', '3']);
  });
});

class Recording implements Sink {
  readonly writes: Array<{ kind: 'events' | 'encoded'; messages: string[] }> = [];
  constructor(
    readonly name: string,
    encoded: boolean,
  ) {
    if (encoded) {
      this.writeEncoded = async (batch: EncodedBatch) => {
        this.writes.push({ kind: 'encoded', messages: batch.events().map((e) => e.message) });
      };
    }
  }
  writeEncoded?: (batch: EncodedBatch) => Promise<void>;
  async start(): Promise<void> {}
  async write(events: readonly LogEvent[]): Promise<void> {
    this.writes.push({ kind: 'events', messages: events.map((e) => e.message) });
  }
  async close(): Promise<void> {}
}

describe('Pipeline with rendered lines', () => {
  it('asks for lines when every sink takes them, subscribers or not', () => {
    const lines = new Recording('lines', true);
    expect(new Pipeline([lines]).takesEncoded()).toBe(true);
    expect(new Pipeline([lines, new Recording('objects', false)]).takesEncoded()).toBe(false);
    const p = new Pipeline([lines]);
    p.subscribe(() => undefined);
    expect(p.takesEncoded()).toBe(true);
  });

  it('renders events once and hands the same lines to sinks and subscribers', async () => {
    const lines = new Recording('lines', true);
    const objects = new Recording('objects', false);
    const p = new Pipeline([lines, objects]);
    const seen: EncodedBatch[] = [];
    p.subscribe((batch) => seen.push(batch));
    const events = [event('a', { container: web }), event('b', { container: web })];
    await p.write(events);
    expect(lines.writes).toEqual([{ kind: 'encoded', messages: ['a', 'b'] }]);
    expect(objects.writes).toEqual([{ kind: 'events', messages: ['a', 'b'] }]);
    expect(seen).toHaveLength(1);
    expect(Buffer.concat([...seen[0]!.sources()].flatMap((s) => [...s.chunks()])).toString()).toBe(events.map(encodeLine).join(''));
  });
});
