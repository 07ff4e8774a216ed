/**
 * `clogs tail -f` against a collector whose `/tail` does not give it the
 * stream: a refusal is named once on stderr, one that asking again cannot
 * change ends the asking, and the store is followed all along; and a stop
 * that comes while a connection is under way leaves nothing open.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { LogEvent } from '../../../src/collector/event.js';
import { Pipeline } from '../../../src/collector/pipeline.js';
import { startHttpServer } from '../../../src/http/server.js';
import { createLogger } from '../../../src/log.js';
import { runTail } from '../../../src/tail/follow.js';
import { liveAuthorization } from '../../../src/tail/live.js';
import type { Output } from '../../../src/tail/output.js';
import { createFileStore } from '../../../src/tail/store-file.js';
import { appendToStore, container, fakeId, makeEvent, NO_STORE } from '../../helpers/tail.js';
import { until } from '../../helpers/until.js';

const WEB = container(fakeId('aa'), 'web');
const T0 = 1795341190;
const TOKEN = 'the-token-0123456789';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** An HTTP server on 127.0.0.1 that answers `/tail` with `answer` (given the request's number, from 1), and counts the requests. */
async function fakeCollector(answer: (req: IncomingMessage, res: ServerResponse, n: number) => void): Promise<{ address: string; requests: () => number }> {
  let requests = 0;
  const server = createServer((req, res) => answer(req, res, ++requests));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  );
  return { address: `127.0.0.1:${(server.address() as AddressInfo).port}`, requests: () => requests };
}

function refuse(status: number, body: string): (req: IncomingMessage, res: ServerResponse) => void {
  return (_req, res) => {
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };
}

/** `clogs tail -f web` of a file store holding one line, against the live endpoint at `live`. */
function follow(live: string, authorization?: string) {
  const dir = mkdtempSync(join(tmpdir(), 'clogs-live-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  let seq = 1;
  const ev = (message: string): LogEvent => makeEvent({ container: WEB, sec: T0 + seq, seq: seq++, message, stream: 'stdout' });
  appendToStore(dir, [ev('first')]);
  let text = '';
  const output: Output = {
    write: (t) => {
      text += t;
      return undefined;
    },
    drained: async () => undefined,
    full: false,
  };
  const warnings: string[] = [];
  const ac = new AbortController();
  const running = runTail({
    store: createFileStore(dir, () => undefined),
    request: { selection: { kind: 'name', value: 'web' }, matched: [], filter: {}, limit: 10 },
    follow: true,
    live,
    ...(authorization === undefined ? {} : { liveAuthorization: authorization }),
    format: (e) => e.event.message + '\n',
    output,
    warn: (m) => warnings.push(m),
    signal: ac.signal,
  });
  cleanups.push(async () => {
    ac.abort();
    await running;
  });
  return { warnings, lines: () => text.split('\n').filter((l) => l !== ''), store: (message: string) => appendToStore(dir, [ev(message)]), ac, running };
}

describe('clogs tail -f when /tail refuses it', () => {
  it('says once that the collector asks for credentials, stops asking, and follows the store', async () => {
    const pipeline = new Pipeline();
    const http = await startHttpServer(
      { enabled: true, listen: { host: '127.0.0.1', port: 0 }, auth: { token: TOKEN, users: [] } },
      { log: createLogger('silent'), pipeline, inputs: () => [], sinks: () => [], reader: NO_STORE },
    );
    cleanups.push(() => http.close());
    const tail = follow(http.address);
    await until('the warning', () => tail.warnings.length > 0);
    expect(tail.warnings).toEqual([
      `the collector's live stream at ${http.address} answered HTTP 401: set http.auth.token in the config clogs tail reads, or CLOGS_HTTP_AUTH_TOKEN; following the store only`,
    ]);
    await until('history', () => tail.lines().includes('first'));
    tail.store('from the store');
    await until('the store follower', () => tail.lines().includes('from the store'));
  });

  it('says when the credentials it sends are not the collector’s', async () => {
    const fake = await fakeCollector(refuse(401, 'authentication required\n'));
    const tail = follow(fake.address, liveAuthorization({ token: 'not-the-token-0123456789', users: [] }));
    await until('the warning', () => tail.warnings.length > 0);
    expect(tail.warnings).toEqual([
      `the collector's live stream at ${fake.address} answered HTTP 401: the credentials of http.auth in the config clogs tail reads are not the collector's; following the store only`,
    ]);
  });

  it('names the reason of a 400 once and does not ask again', async () => {
    const fake = await fakeCollector(refuse(400, 'container "web" is ambiguous: web-1, web-2\nmore detail\n'));
    const tail = follow(fake.address);
    await until('the warning', () => tail.warnings.length > 0);
    // Past the reconnect interval (2 s).
    await new Promise((r) => setTimeout(r, 2500));
    expect(fake.requests()).toBe(1);
    expect(tail.warnings).toEqual([`the collector's live stream at ${fake.address} answered HTTP 400: container "web" is ambiguous: web-1, web-2; following the store only`]);
  });

  it('keeps asking after a 503, and says so once', async () => {
    const fake = await fakeCollector(refuse(503, 'busy\n'));
    const tail = follow(fake.address);
    await until('a second request', () => fake.requests() >= 2);
    await until('history', () => tail.lines().includes('first'));
    expect(tail.warnings).toEqual([`the collector's live stream at ${fake.address} answered HTTP 503: busy; following the store, asking again every 2 s`]);
  });
});

describe('clogs tail -f stopped while it connects', () => {
  it('closes the stream that arrives after the stop and arms no catch-up timer', async () => {
    let held: ServerResponse | undefined;
    let heldClosed = false;
    const fake = await fakeCollector((req, res, n) => {
      // The first attempt finds no collector; the reconnect's is answered later, by the test.
      if (n === 1) {
        req.socket.destroy();
        return;
      }
      held = res;
      res.on('close', () => (heldClosed = true));
    });
    const tail = follow(fake.address);
    await until('history', () => tail.lines().includes('first'));
    await until('the reconnect', () => held !== undefined, 5000);

    tail.ac.abort();
    await tail.running;
    const timers = vi.spyOn(globalThis, 'setTimeout');
    held!.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8' });
    held!.write(':subscribed\n\n');
    await until('the late stream to be closed', () => heldClosed, 2000);
    expect(timers.mock.calls.filter(([, ms]) => ms === 5000)).toEqual([]);
    expect(tail.warnings).toEqual([]);
  });
});
