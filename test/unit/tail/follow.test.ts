/**
 * The switch from history to live: a real HTTP endpoint and pipeline, a file
 * store, and lines written at every point of the switch (before the live
 * subscription, between it and the store snapshot, and after both).
 */
import { eventsOf } from '../../helpers/batch.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { LogEvent } from '../../../src/collector/event.js';
import { Pipeline } from '../../../src/collector/pipeline.js';
import { startHttpServer } from '../../../src/http/server.js';
import { createLogger } from '../../../src/log.js';
import type { Sink } from '../../../src/sinks/sink.js';
import { runTail } from '../../../src/tail/follow.js';
import type { Output } from '../../../src/tail/output.js';
import type { Store } from '../../../src/tail/store.js';
import { createFileStore } from '../../../src/tail/store-file.js';
import { appendToStore, container, fakeId, makeEvent, NO_STORE } from '../../helpers/tail.js';
import { until } from '../../helpers/until.js';

const WEB = container(fakeId('aa'), 'web');
const OTHER = container(fakeId('bb'), 'other');
const T0 = 1795341190;

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A sink that writes the store in the file sink's layout, synchronously (durable enough for the test). */
function storeSink(dir: string): Sink {
  return { name: 'file', start: async () => undefined, close: async () => undefined, write: async (batch) => appendToStore(dir, eventsOf(batch)) };
}

function capture(): Output & { lines: () => string[] } {
  let text = '';
  return {
    write: (t) => {
      text += t;
      return undefined;
    },
    drained: async () => undefined,
    full: false,
    lines: () => text.split('\n').filter((l) => l !== ''),
  };
}

describe('runTail -f', () => {
  it('switches from history to live with no line lost or doubled', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'clogs-switch-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const pipeline = new Pipeline([storeSink(dir)]);
    const log = createLogger('silent');
    const http = await startHttpServer({ enabled: true, listen: { host: '127.0.0.1', port: 0 } }, { log, pipeline, inputs: () => [], sinks: () => pipeline.sinkList, reader: NO_STORE });
    cleanups.push(() => http.close());

    let seq = 1;
    const ev = (message: string, meta = WEB): LogEvent => makeEvent({ container: meta, sec: T0 + seq, seq: seq++, message, stream: 'stdout' });
    for (let i = 0; i < 20; i++) await pipeline.write([ev(`before ${i}`)]);

    // Lines published after the live subscription but before the store
    // snapshot are in both; lines published after it come from both the live
    // stream and the store follower.
    const files = createFileStore(dir, () => undefined);
    const store: Store = {
      ...files,
      open: async (req) => {
        for (let i = 0; i < 5; i++) await pipeline.write([ev(`overlap ${i}`), ev(`other ${i}`, OTHER)]);
        return files.open(req);
      },
    };
    const output = capture();
    const ac = new AbortController();
    const running = runTail({
      store,
      request: { selection: { kind: 'name', value: 'web' }, matched: [], filter: {}, limit: 8 },
      follow: true,
      live: http.address,
      format: (e) => e.event.message + '\n',
      output,
      warn: (m) => {
        throw new Error(m);
      },
      signal: ac.signal,
    });
    await until('the overlap lines', () => output.lines().includes('overlap 4'));
    for (let i = 0; i < 20; i++) await pipeline.write([ev(`after ${i}`)]);
    await until('the live lines', () => output.lines().includes('after 19'));
    // Let the store follower catch up with what the live stream already showed.
    await new Promise((r) => setTimeout(r, 1500));
    ac.abort();
    await running;

    const expected = ['before 17', 'before 18', 'before 19', ...Array.from({ length: 5 }, (_, i) => `overlap ${i}`), ...Array.from({ length: 20 }, (_, i) => `after ${i}`)];
    // -n 8 counts the overlap lines as history: they are in the store when it is read.
    expect(output.lines()).toEqual(expected);
  });

  it('follows the store alone when no collector answers, and picks up the live stream when one starts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'clogs-switch-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const pipeline = new Pipeline([storeSink(dir)]);
    let seq = 1;
    const ev = (message: string): LogEvent => makeEvent({ container: WEB, sec: T0 + seq, seq: seq++, message, stream: 'stdout' });
    await pipeline.write([ev('first')]);

    // A port nothing listens on yet: bind, note it, close.
    const probe = await startHttpServer({ enabled: true, listen: { host: '127.0.0.1', port: 0 } }, { log: createLogger('silent'), pipeline, inputs: () => [], sinks: () => [], reader: NO_STORE });
    await probe.close();

    const output = capture();
    const ac = new AbortController();
    const running = runTail({
      store: createFileStore(dir, () => undefined),
      request: { selection: { kind: 'name', value: 'web' }, matched: [], filter: {}, limit: 10 },
      follow: true,
      live: probe.address,
      format: (e) => e.event.message + '\n',
      output,
      warn: () => undefined,
      signal: ac.signal,
    });
    await until('history', () => output.lines().includes('first'));
    await pipeline.write([ev('from the store')]);
    await until('the store follower', () => output.lines().includes('from the store'));
    const [host, port] = [probe.address.split(':')[0]!, Number(probe.address.split(':')[1])];
    const http = await startHttpServer({ enabled: true, listen: { host, port } }, { log: createLogger('silent'), pipeline, inputs: () => [], sinks: () => [], reader: NO_STORE });
    cleanups.push(() => http.close());
    await new Promise((r) => setTimeout(r, 2500));
    for (let i = 0; i < 5; i++) await pipeline.write([ev(`live ${i}`)]);
    await until('live lines', () => output.lines().includes('live 4'));
    await new Promise((r) => setTimeout(r, 1500));
    ac.abort();
    await running;
    expect(output.lines()).toEqual(['first', 'from the store', 'live 0', 'live 1', 'live 2', 'live 3', 'live 4']);
  });

  it('waits for a lagging store (Elasticsearch-like) so lines published before the subscription still print in order', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'clogs-switch-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    // Durable at once (a disk queue), in the store 300 ms later (bulk + refresh).
    const lagging: Sink = {
      name: 'lagging',
      start: async () => undefined,
      close: async () => undefined,
      write: async (batch) => void setTimeout(() => appendToStore(dir, eventsOf(batch)), 300),
    };
    const pipeline = new Pipeline([lagging]);
    const http = await startHttpServer({ enabled: true, listen: { host: '127.0.0.1', port: 0 } }, { log: createLogger('silent'), pipeline, inputs: () => [], sinks: () => [], reader: NO_STORE });
    cleanups.push(() => http.close());
    let seq = 1;
    const ev = (message: string): LogEvent => makeEvent({ container: WEB, sec: T0 + seq, seq: seq++, message, stream: 'stdout' });
    for (let i = 0; i < 10; i++) await pipeline.write([ev(`stored ${i}`)]);
    await new Promise((r) => setTimeout(r, 400));
    // Published, not yet in the store when tail reads its history.
    for (let i = 0; i < 10; i++) await pipeline.write([ev(`gap ${i}`)]);

    const output = capture();
    const ac = new AbortController();
    const running = runTail({
      store: createFileStore(dir, () => undefined),
      request: { selection: { kind: 'name', value: 'web' }, matched: [], filter: {}, limit: 3 },
      follow: true,
      live: http.address,
      format: (e) => e.event.message + '\n',
      output,
      warn: () => undefined,
      signal: ac.signal,
    });
    await until('history', () => output.lines().includes('stored 9'));
    for (let i = 0; i < 10; i++) await pipeline.write([ev(`live ${i}`)]);
    await until('live lines', () => output.lines().includes('live 9'));
    await new Promise((r) => setTimeout(r, 1500));
    ac.abort();
    await running;
    expect(output.lines()).toEqual(['stored 7', 'stored 8', 'stored 9', ...Array.from({ length: 10 }, (_, i) => `gap ${i}`), ...Array.from({ length: 10 }, (_, i) => `live ${i}`)]);
  });
});
