/**
 * Pipeline.replaceSinks: what a reload of the sinks does to the writes and
 * syncs of inputs that keep running.
 */
import { describe, expect, it } from 'vitest';
import type { EncodedBatch } from '../../src/collector/encoded.js';
import { Pipeline } from '../../src/collector/pipeline.js';
import type { Sink } from '../../src/sinks/sink.js';
import { eventsOf } from '../helpers/batch.js';
import { makeEvents } from '../helpers/elasticsearch.js';

/** A sink that keeps the messages it took; writes wait while `gate` is set. */
class MemorySink implements Sink {
  readonly name = 'memory';
  readonly messages: string[] = [];
  closed = false;
  gate: Promise<void> | undefined;
  syncError: Error | undefined;

  async start(): Promise<void> {}

  async write(batch: EncodedBatch): Promise<void> {
    if (this.closed) throw new Error('written after close');
    const messages = eventsOf(batch).map((e) => e.message);
    await this.gate;
    this.messages.push(...messages);
  }

  async sync(): Promise<void> {
    if (this.syncError) throw this.syncError;
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

const batch = (message: string) => makeEvents(1, 0, { message });

describe('Pipeline.replaceSinks', () => {
  it('lets writes under way finish on the old sinks, holds new ones, and gives them to the new sinks', async () => {
    const old = new MemorySink();
    const next = new MemorySink();
    const pipeline = new Pipeline([old]);
    let open!: () => void;
    old.gate = new Promise((r) => (open = r));
    const underWay = pipeline.write(batch('under way'));
    let opened = false;
    const replaced = pipeline.replaceSinks([], async () => {
      opened = true;
      return [next];
    });
    const held = pipeline.write(batch('held'));
    await new Promise((r) => setTimeout(r, 20));
    // The old sink is still writing: not closed, and the new one not started.
    expect([old.closed, opened, pipeline.isReplacing]).toEqual([false, false, true]);
    open();
    await Promise.all([underWay, replaced, held]);
    expect(pipeline.isReplacing).toBe(false);
    expect(old.messages).toEqual(['under way']);
    expect(next.messages).toEqual(['held']);
    expect(pipeline.sinkList).toEqual([next]);
  });

  it('keeps the sinks it is told to keep running, and takes no write while the others did not start', async () => {
    const kept = new MemorySink();
    const old = new MemorySink();
    const pipeline = new Pipeline([kept, old]);
    await expect(pipeline.replaceSinks([kept], () => Promise.reject(new Error('queue directory read-only')))).rejects.toThrow('read-only');
    expect([kept.closed, old.closed]).toEqual([false, true]);
    // The kept sink alone would store a line the other sink never gets, and it would be acked.
    await expect(pipeline.write(batch('half'))).rejects.toMatchObject({ code: 'CLOGS_SINK' });
    const next = new MemorySink();
    await pipeline.replaceSinks([kept], async () => [kept, next]);
    await pipeline.write(batch('both'));
    expect([kept.messages, next.messages]).toEqual([['both'], ['both']]);
  });

  it('fails writes while no sink started, until a replace starts some', async () => {
    const pipeline = new Pipeline([new MemorySink()]);
    await expect(pipeline.replaceSinks([], () => Promise.reject(new Error('port taken')))).rejects.toThrow('port taken');
    await expect(pipeline.write(batch('lost?'))).rejects.toMatchObject({ code: 'CLOGS_SINK', message: expect.stringContaining('port taken') });
    await expect(pipeline.sync()).rejects.toMatchObject({ code: 'CLOGS_SINK' });
    const next = new MemorySink();
    await pipeline.replaceSinks([], async () => [next]);
    await pipeline.write(batch('taken'));
    expect(next.messages).toEqual(['taken']);
  });

  it('fails the next sync that is not in the background when the old sinks could not make their writes durable', async () => {
    const old = new MemorySink();
    old.syncError = new Error('EIO on fsync');
    const pipeline = new Pipeline([old]);
    expect(await pipeline.replaceSinks([], async () => [new MemorySink()])).toEqual([old.syncError]);
    expect(old.closed).toBe(true);
    await pipeline.sync({ background: true });
    await expect(pipeline.sync()).rejects.toThrow('EIO on fsync');
    await pipeline.sync();
  });

  it('closes no sink while it still writes a batch another sink failed', async () => {
    const failing = new MemorySink();
    failing.closed = true;
    const slow = new MemorySink();
    let open!: () => void;
    slow.gate = new Promise((r) => (open = r));
    const pipeline = new Pipeline([failing, slow]);
    const written = pipeline.write(batch('half'));
    const replaced = pipeline.replaceSinks([], async () => [new MemorySink()]);
    await new Promise((r) => setTimeout(r, 20));
    expect(slow.closed).toBe(false);
    open();
    await expect(written).rejects.toThrow('written after close');
    await replaced;
    expect(slow.messages).toEqual(['half']);
  });

  it('takes no write while no sink runs', async () => {
    const pipeline = new Pipeline([new MemorySink()]);
    await pipeline.replaceSinks([], async () => []);
    await expect(pipeline.write(batch('nowhere'))).rejects.toMatchObject({ code: 'CLOGS_SINK' });
  });
});
