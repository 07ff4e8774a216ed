import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { EncodedBatch } from '../../../src/collector/encoded.js';
import { Pipeline } from '../../../src/collector/pipeline.js';
import { createTailStreams } from '../../../src/http/sse.js';
import { parseTailQuery, tailFilter, type TailFilter, type TailQuery } from '../../../src/http/tail-filter.js';
import { createLogger } from '../../../src/log.js';
import { container, event } from '../file-sink/helpers.js';

const web = container('web');
const db = container('db');

let server: Server | undefined;
afterEach(() => server?.close());

/** A /tail stream with `query` on a real HTTP server: the messages it was sent so far. */
async function subscribe(
  pipeline: Pipeline,
  query: string,
  filter?: TailFilter,
): Promise<{ messages(): string[]; ended: Promise<void>; close(): void }> {
  filter ??= await tailFilter(parseTailQuery(new URLSearchParams(query)) as TailQuery, undefined, createLogger('silent'));
  const streams = createTailStreams(pipeline, createLogger('silent'));
  server = createServer((req, res) => streams.serve(req, res, filter));
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  let raw = '';
  let ended = (): void => undefined;
  const endedPromise = new Promise<void>((resolve) => (ended = resolve));
  const req = request({ host: '127.0.0.1', port, path: `/tail?${query}` });
  await new Promise<void>((resolve, reject) => {
    req.on('response', (res) => {
      res.setEncoding('utf8');
      res.on('end', () => ended());
      res.on('data', (chunk: string) => {
        raw += chunk;
        if (raw.startsWith(': subscribed\n\n')) resolve();
      });
    });
    req.on('error', reject);
    req.end();
  });
  return {
    messages: () => [...raw.matchAll(/^data: (.*)$/gm)].map((m) => (JSON.parse(m[1]!) as { message: string }).message),
    ended: endedPromise,
    close: () => req.destroy(),
  };
}

describe('/tail stream', () => {
  it('takes the lines of a wanted container, and lines without a container by their tag', async () => {
    const pipeline = new Pipeline([]);
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
    const pipeline = new Pipeline([]);
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
