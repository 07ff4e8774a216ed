/**
 * Our own log request against a stand-in engine on a unix socket: what the
 * real engine answers is covered by test/integration/docker-*.test.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { ClogsError } from '../../../src/errors.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import Docker from 'dockerode';
import { dockerodeLogOpener, EngineHttpError, logQuery, parseResponseHead, rawLogOpener, type LogBody, type OpenLogs } from '../../../src/collector/docker/log-stream.js';
import { until } from '../../helpers/until.js';

const dirs: string[] = [];
const servers: Server[] = [];
const peers: Socket[] = [];
afterEach(async () => {
  for (const p of peers.splice(0)) p.destroy();
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A server that answers every connection with `answer`; returns the socket path and the requests it got. */
async function engine(answer: (socket: Socket, request: string) => void): Promise<{ path: string; requests: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'clogs-logstream-'));
  dirs.push(dir);
  const path = join(dir, 'docker.sock');
  const requests: string[] = [];
  const server = createServer((socket) => {
    peers.push(socket);
    let got = '';
    socket.on('data', (b) => {
      got += b.toString('latin1');
      if (got.includes('\r\n\r\n')) {
        requests.push(got);
        answer(socket, got);
        got = '';
      }
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(path, r));
  return { path, requests };
}

interface Seen {
  body: Buffer[];
  coalesce: boolean[];
  ended: boolean;
  error?: Error;
}

async function open(path: string, since?: string, opener: OpenLogs = rawLogOpener({ path })): Promise<{ body: LogBody; seen: Seen }> {
  const seen: Seen = { body: [], coalesce: [], ended: false };
  const body = await opener('abc123', since, {
    data: (pieces, coalesce) => {
      seen.body.push(...pieces);
      seen.coalesce.push(coalesce);
    },
    end: () => (seen.ended = true),
    error: (err) => (seen.error = err),
  });
  return { body, seen };
}

const chunk = (text: string) => `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`;
const OK = 'HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\nTransfer-Encoding: chunked\r\n\r\n';

/** A body resumed on an engine that answered OK and sends what the test writes to `peer`. */
async function following(): Promise<{ body: LogBody; seen: Seen; peer: Socket }> {
  let peer: Socket | undefined;
  const { path } = await engine((socket) => {
    peer = socket;
    socket.write(OK);
  });
  const { body, seen } = await open(path);
  body.resume();
  return { body, seen, peer: peer! };
}

describe('rawLogOpener', () => {
  it('asks for the followed log from a position and hands on the chunked body until its end', async () => {
    const { path, requests } = await engine((socket) => {
      // Head and first chunk in one write: the body opens paused and keeps it.
      socket.write(OK + chunk('first'));
      setTimeout(() => socket.end(chunk('second') + chunk('third') + '0\r\n\r\n'), 20);
    });
    const { body, seen } = await open(path, '1795341258.000000123');
    expect(requests[0]).toMatch(/^GET \/containers\/abc123\/logs\?follow=1&stdout=1&stderr=1&timestamps=1&since=1795341258\.000000123 HTTP\/1\.1\r\n/);
    expect(seen.body).toEqual([]);
    body.resume();
    await until('the end of the body', () => seen.ended);
    expect(Buffer.concat(seen.body).toString()).toBe('firstsecondthird');
    expect(seen.coalesce.at(-1)).toBe(true);
    expect(seen.error).toBeUndefined();
  });

  it('reads on at once after a small read of many short lines: the socket was full, not the writer slow', async () => {
    const { body, seen, peer } = await following();
    body.pause();
    // One write per line, as the engine flushes them: ~15 KiB in all, under the size that alone says "read on".
    for (let i = 0; i < 300; i++) peer.write(chunk(`2026-12-02T04:40:00.000000000Z line ${String(i).padStart(6, '0')}\n`));
    await new Promise((r) => setTimeout(r, 50));
    body.resume();
    await until('every line', () => seen.body.length === 300);
    expect(seen.coalesce[0]).toBe(false);
    body.close();
  });

  it('holds reads while paused and delivers them on resume', async () => {
    const { body, seen, peer } = await following();
    peer.write(chunk('a'));
    await until('the first chunk', () => seen.body.length === 1);
    body.pause();
    peer.write(chunk('b') + chunk('c'));
    await new Promise((r) => setTimeout(r, 50));
    expect(seen.body.length).toBe(1);
    body.resume();
    await until('the held chunks', () => seen.body.length === 3);
    expect(Buffer.concat(seen.body).toString()).toBe('abc');
    body.close();
  });

  it('gives up on an engine that takes the request and never answers', async () => {
    const { path } = await engine(() => undefined);
    const err = await open(path, undefined, rawLogOpener({ path }, 100)).catch((e: unknown) => e);
    expect((err as Error).message).toBe('docker engine: no answer to the log request within 0.1 s');
  });

  it('rejects with the engine message on an HTTP error', async () => {
    const msg = JSON.stringify({ message: 'No such container: abc123' });
    const { path } = await engine((socket) => socket.end(`HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: ${msg.length}\r\n\r\n${msg}`));
    const err = await open(path).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EngineHttpError);
    expect(err).toMatchObject({ statusCode: 404, message: '(HTTP code 404) No such container: abc123' });
  });

  it('reports a body cut off before its last chunk as an error, not an end', async () => {
    const { path } = await engine((socket) => {
      socket.write(OK + chunk('partial'));
      setTimeout(() => socket.destroy(), 20);
    });
    const { body, seen } = await open(path);
    body.resume();
    await until('the error', () => seen.error !== undefined);
    expect(seen.ended).toBe(false);
    expect(seen.error!.message).toMatch(/cut off|closed/);
  });

  it('ends the stream with the reason at a chunk it cannot read, after the chunks before it', async () => {
    // A chunk's data goes on as it comes: the two bytes of the last one, before the missing CRLF.
    for (const [name, bad, delivered] of [
      ['a size that is no hex number', 'zz\r\nxx\r\n', 'wholealso'],
      ['a chunk without its CRLF', '2\r\nabcd', 'wholealsoab'],
    ] as const) {
      const { seen, peer } = await following();
      // In a later read than the head: the one that comes through the socket's callback.
      peer.write(chunk('whole'));
      await until('the first chunk', () => seen.body.length === 1);
      peer.write(chunk('also') + bad);
      await until(`the error (${name})`, () => seen.error !== undefined);
      expect(Buffer.concat(seen.body).toString(), name).toBe(delivered);
      expect(seen.ended, name).toBe(false);
      expect(seen.error, name).toBeInstanceOf(ClogsError);
    }
  });

  it('rejects when nothing listens', async () => {
    await expect(open(join(tmpdir(), 'clogs-no-such-engine.sock'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('rejects an answer that is not HTTP', async () => {
    const { path } = await engine((socket) => socket.end('SSH-2.0-OpenSSH\r\n\r\n'));
    await expect(open(path)).rejects.toThrow(/not an HTTP response/);
  });
});

describe('dockerodeLogOpener (TLS engines)', () => {
  it('hands on the same body, never asking to coalesce', async () => {
    const { path, requests } = await engine((socket) => socket.end(OK + chunk('first') + chunk('second') + '0\r\n\r\n'));
    const { body, seen } = await open(path, '12.5', dockerodeLogOpener(new Docker({ socketPath: path })));
    expect(seen.body).toEqual([]);
    body.resume();
    await until('the end of the body', () => seen.ended);
    expect(requests[0]).toMatch(/^GET \/containers\/abc123\/logs\?.*since=12\.5/);
    expect(Buffer.concat(seen.body).toString()).toBe('firstsecond');
    expect(seen.coalesce.every((c) => !c)).toBe(true);
  });

  it('gives up on an engine that takes the request and never answers', async () => {
    const { path } = await engine(() => undefined);
    await expect(open(path, undefined, dockerodeLogOpener(new Docker({ socketPath: path }), 100))).rejects.toThrow();
  });
});

describe('parseResponseHead', () => {
  it('reads the status and lower-cases header names', () => {
    const head = parseResponseHead('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nApi-Version: 1.41');
    expect(head.status).toBe(200);
    expect(head.headers.get('transfer-encoding')).toBe('chunked');
    expect(head.headers.get('api-version')).toBe('1.41');
  });
});

describe('logQuery', () => {
  it('leaves since out when there is no position', () => {
    expect(logQuery(undefined)).toBe('follow=1&stdout=1&stderr=1&timestamps=1');
  });
});
