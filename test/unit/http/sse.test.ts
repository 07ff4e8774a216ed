import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { EncodedBatch } from '../../../src/collector/encoded.js';
import { Pipeline } from '../../../src/collector/pipeline.js';
import { CLIENT_BUFFER_BYTES, DROPPED_COMMENT, MAX_CLIENTS, SLOW_CLIENT_MS, createTailStreams, type TailLimits } from '../../../src/http/sse.js';
import { parseTailQuery, tailFilter, type TailFilter, type TailQuery } from '../../../src/http/tail-filter.js';
import { createLogger } from '../../../src/log.js';
import { discardSink } from '../../helpers/forward.js';
import { until } from '../../helpers/until.js';
import { container, event } from '../file-sink/helpers.js';

const web = container('web');
const db = container('db');

let server: Server | undefined;
afterEach(() => server?.close());

interface Tail {
  /** The messages of the events received so far. */
  messages(): string[];
  /** Everything received so far. */
  raw(): string;
  /** The client's side of the stream, to stop and resume reading. */
  incoming: IncomingMessage;
  /** The server's side of the stream. */
  response: ServerResponse;
  ended: Promise<void>;
  close(): void;
}

/** A /tail stream with `query` on a real HTTP server. */
async function subscribe(pipeline: Pipeline, query: string, filter?: TailFilter, limits?: TailLimits): Promise<Tail> {
  filter ??= await tailFilter(parseTailQuery(new URLSearchParams(query)) as TailQuery, undefined, createLogger('silent'));
  const streams = createTailStreams(pipeline, createLogger('silent'), limits);
  let response: ServerResponse | undefined;
  server = createServer((req, res) => {
    response = res;
    streams.serve(req, res, filter);
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  let raw = '';
  let ended = (): void => undefined;
  const endedPromise = new Promise<void>((resolve) => (ended = resolve));
  const req = request({ host: '127.0.0.1', port, path: `/tail?${query}` });
  const incoming = await new Promise<IncomingMessage>((resolve, reject) => {
    req.on('response', (res) => {
      res.setEncoding('utf8');
      res.on('end', () => ended());
      res.on('data', (chunk: string) => {
        raw += chunk;
        if (raw.startsWith(': subscribed\n\n')) resolve(res);
      });
    });
    req.on('error', reject);
    req.end();
  });
  return {
    messages: () => [...raw.matchAll(/^data: (.*)$/gm)].map((m) => (JSON.parse(m[1]!) as { message: string }).message),
    raw: () => raw,
    incoming,
    response: response!,
    ended: endedPromise,
    close: () => req.destroy(),
  };
}

/** Lines of about 1 KiB: this many make 8 MiB, more than the kernel's socket buffers take from a client that does not read. */
const BURST_LINES = 8192;

/** `n` lines of `web` in batches of 256, all published in one turn of the event loop, as a commit's batches are. */
async function burst(pipeline: Pipeline, n = BURST_LINES): Promise<void> {
  const body = 'x'.repeat(1000);
  const batches: EncodedBatch[] = [];
  for (let i = 0; i < n; i += 256) batches.push(EncodedBatch.of(Array.from({ length: Math.min(256, n - i) }, (_, j) => event(`${i + j} ${body}`, { container: web }))));
  await Promise.all(batches.map((b) => pipeline.write(b)));
}

describe('/tail stream', () => {
  it('takes the lines of a wanted container, and lines without a container by their tag', async () => {
    const pipeline = new Pipeline([discardSink()]);
    const tail = await subscribe(pipeline, 'container=app.b&container=web');
    await pipeline.write(EncodedBatch.of([event('w1', { container: web, tag: 'app.a' }), event('d1', { container: db, tag: 'app.b' }), event('a1', { tag: 'app.a' })]));
    await pipeline.write(EncodedBatch.of([event('a2', { tag: 'app.a' }), event('b1', { tag: 'app.b' }), event('w2', { container: web })]));
    const deadline = Date.now() + 5000;
    while (tail.messages().length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 50));
    tail.close();
    // A batch's lines go out source by source.
    expect(tail.messages()).toEqual(['w1', 'w2', 'b1']);
  });

  it('ends the stream of a client whose lines cannot be rendered, and the write still succeeds', async () => {
    const pipeline = new Pipeline([discardSink()]);
    const broken = {
      get selections(): TailFilter['selections'] {
        throw new Error('a renderer bug');
      },
    } as TailFilter;
    const tail = await subscribe(pipeline, 'container=web', broken);
    await expect(pipeline.write(EncodedBatch.of([event('a1', { container: web, tag: 'app.a' })]))).resolves.toBeUndefined();
    await tail.ended;
    expect(tail.messages()).toEqual([]);
  });
});

describe('/tail stream: how many', () => {
  it('answers 503 past the most streams open at once, and takes one again once a stream ends', async () => {
    const streams = createTailStreams(new Pipeline([discardSink()]), createLogger('silent'), { bufferBytes: CLIENT_BUFFER_BYTES, slowMs: SLOW_CLIENT_MS, maxBufferBytes: 32 * CLIENT_BUFFER_BYTES, totalBufferBytes: 64 * CLIENT_BUFFER_BYTES, maxClients: 2 });
    const filter = await tailFilter(parseTailQuery(new URLSearchParams('container=web')) as TailQuery, undefined, createLogger('silent'));
    server = createServer((req, res) => streams.serve(req, res, filter));
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const open = (): Promise<{ status: number; close: () => void }> =>
      new Promise((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path: '/tail?container=web' });
        req.on('response', (res) => {
          res.resume();
          resolve({ status: res.statusCode!, close: () => req.destroy() });
        });
        req.on('error', reject);
        req.end();
      });
    const [a, b] = [await open(), await open()];
    expect([a.status, b.status]).toEqual([200, 200]);
    expect((await open()).status).toBe(503);
    a.close();
    await until('a stream again once one ended', async () => (await open()).status === 200, 5000);
    b.close();
  });
});

describe('/tail stream: slow clients', () => {
  it('keeps a client that reads through a burst far above the buffer bound', async () => {
    const pipeline = new Pipeline([discardSink()]);
    const tail = await subscribe(pipeline, 'container=web');
    await burst(pipeline);
    // The burst is queued in one turn, before the socket could drain: more than the bound, and that alone is no reason to drop.
    expect(tail.response.writableLength).toBeGreaterThan(CLIENT_BUFFER_BYTES);
    await pipeline.write(EncodedBatch.of([event('after the burst', { container: web })]));
    await until('the whole burst and the line after it', () => tail.raw().includes('after the burst'), SLOW_CLIENT_MS);
    expect(tail.messages()).toHaveLength(BURST_LINES + 1);
    expect(tail.raw()).not.toContain(DROPPED_COMMENT);
    expect(tail.response.writableEnded).toBe(false);
    tail.close();
  });

  /** A client that does not read while a burst is published; generous bounds but those in `limits`. */
  async function pausedThroughBurst(limits: Partial<TailLimits>): Promise<Tail> {
    const pipeline = new Pipeline([discardSink()]);
    const bounds: TailLimits = { bufferBytes: CLIENT_BUFFER_BYTES, slowMs: 60_000, maxBufferBytes: 64 * CLIENT_BUFFER_BYTES, totalBufferBytes: 64 * CLIENT_BUFFER_BYTES, maxClients: MAX_CLIENTS, ...limits };
    const tail = await subscribe(pipeline, 'container=web', undefined, bounds);
    tail.incoming.pause();
    await burst(pipeline);
    return tail;
  }

  /** Lets the client read what it was sent, to its end: the drop's comment last. */
  async function readToDrop(tail: Tail): Promise<void> {
    tail.incoming.resume();
    await tail.ended;
    expect(tail.raw().endsWith(DROPPED_COMMENT)).toBe(true);
  }

  it('drops a client that leaves more than the bound queued for longer than the time it gets', async () => {
    const tail = await pausedThroughBurst({ slowMs: 200 });
    expect(tail.response.writableLength).toBeGreaterThan(CLIENT_BUFFER_BYTES);
    expect(tail.response.writableEnded).toBe(false);
    await until('the client dropped', () => tail.response.writableEnded, 5000);
    await readToDrop(tail);
    expect(tail.messages()).toHaveLength(BURST_LINES);
  });

  it('drops a client at once when its queue passes the hard bound', async () => {
    const tail = await pausedThroughBurst({ maxBufferBytes: 2 * CLIENT_BUFFER_BYTES });
    expect(tail.response.writableEnded).toBe(true);
    await readToDrop(tail);
    // Nothing was queued for it after the drop.
    expect(tail.messages().length).toBeLessThan(BURST_LINES);
  });

  it('drops a client at once when the clients behind hold more than the bound for all together', async () => {
    const tail = await pausedThroughBurst({ totalBufferBytes: 2 * CLIENT_BUFFER_BYTES });
    expect(tail.response.writableEnded).toBe(true);
    await readToDrop(tail);
  });
});
