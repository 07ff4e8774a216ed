/**
 * Opening one container's log body,
 * `GET /containers/{id}/logs?follow=1&stdout=1&stderr=1&timestamps=1&since=…`.
 *
 * Plain engines (unix socket, tcp:// without TLS): a request of our own on a
 * socket read with `onread`, so that `pause()` stops reading from the kernel
 * at once. The engine flushes every log message as its own chunk; a follower
 * that pauses between write cycles lets the lines pile up in the socket and
 * takes them in one read, one parse and one callback, where node's HTTP
 * client costs a read, a parser pass and a stream event per line.
 * TLS engines go through dockerode (a TLS socket has no `onread`): one
 * callback per engine flush, as before.
 */
import { connect, type NetConnectOpts, type Socket } from 'node:net';
import type Docker from 'dockerode';
import { ChunkedDecoder } from './chunked.js';
import { API_TIMEOUT_MS } from './metadata.js';

export interface LogBodyHandlers {
  /**
   * The body pieces of one read. `coalesce`: the read was small (a slow
   * writer), so pausing until the next write cycle lets the next read take
   * many lines at once; false after a large read or where reads cannot be
   * coalesced.
   */
  data(pieces: Buffer[], coalesce: boolean): void;
  /** The engine ended the body cleanly. */
  end(): void;
  error(err: Error): void;
}

/** Opened paused: handlers are called only after the first `resume()`. */
export interface LogBody {
  pause(): void;
  resume(): void;
  close(): void;
}

export type OpenLogs = (containerId: string, since: string | undefined, handlers: LogBodyHandlers) => Promise<LogBody>;

/** An HTTP error answer of the engine (404: no such container). */
export class EngineHttpError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * measured (bench/docker.bench.ts rate): a paused follower's socket holds a
 * cycle's lines, a few KiB; 64 KiB takes a catching-up container's backlog in
 * few reads. One buffer serves every socket: each read is copied out of it
 * before the next one.
 */
const READ_BUFFER_BYTES = 64 * 1024;
const readBuffer = Buffer.allocUnsafe(READ_BUFFER_BYTES);
/**
 * A read this large means the container writes faster than a few KiB per
 * cycle: it is read on at once instead of parked, which would cap it at one
 * socket buffer (~200 KiB) per cycle.
 */
const COALESCE_BELOW_BYTES = 16 * 1024;
/**
 * Nor is a read of this many engine flushes, however small: the kernel
 * counts each small write with its overhead, so a socket full of one-line
 * writes holds only ~13 KiB of them (about 260 lines of 50 bytes), and a
 * container writing more than a few thousand short lines a second was held
 * at one such read per cycle: it fell behind for good (measured: 200,000
 * lines the engine served in 1.1 s took the follower 77 s).
 */
const COALESCE_BELOW_PIECES = 128;
const MAX_HEAD_BYTES = 16 * 1024;
const MAX_ERROR_BODY_BYTES = 64 * 1024;
const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');

export function logQuery(since: string | undefined): string {
  return `follow=1&stdout=1&stderr=1&timestamps=1${since !== undefined ? `&since=${since}` : ''}`;
}

export interface ResponseHead {
  status: number;
  /** Lower-case names. */
  headers: Map<string, string>;
}

export function parseResponseHead(text: string): ResponseHead {
  const lines = text.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0] ?? '');
  if (!m) throw new Error(`docker engine: not an HTTP response: ${JSON.stringify((lines[0] ?? '').slice(0, 80))}`);
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return { status: Number(m[1]), headers };
}

/** How the body's end is known: chunked, Content-Length, or the connection closing. */
interface BodyFraming {
  push(buf: Buffer, out: Buffer[]): void;
  readonly done: boolean;
  /** Whether the connection closing ends the body cleanly. */
  readonly endsAtClose: boolean;
}

function framingOf(head: ResponseHead): BodyFraming {
  if (/\bchunked\b/i.test(head.headers.get('transfer-encoding') ?? '')) {
    const d = new ChunkedDecoder();
    return { push: (buf, out) => d.push(buf, out), get done() { return d.done; }, endsAtClose: false };
  }
  const length = head.headers.get('content-length');
  if (length !== undefined) {
    let left = Number(length);
    return {
      push: (buf, out) => {
        const take = Math.min(left, buf.length);
        if (take > 0) out.push(buf.subarray(0, take));
        left -= take;
      },
      get done() { return left <= 0; },
      endsAtClose: false,
    };
  }
  return { push: (buf, out) => void out.push(buf), done: false, endsAtClose: true };
}

/**
 * Log bodies over our own HTTP/1.1 request on a plain socket. An engine that
 * takes over `answerTimeoutMs` to answer is treated as unreachable, like one
 * that does not take an inspect (metadata.ts): the follower retries, and a
 * stopping collector does not wait on it for ever.
 */
export function rawLogOpener(endpoint: NetConnectOpts, answerTimeoutMs = API_TIMEOUT_MS): OpenLogs {
  return (containerId, since, handlers) =>
    new Promise<LogBody>((resolve, reject) => {
      const request = `GET /containers/${encodeURIComponent(containerId)}/logs?${logQuery(since)} HTTP/1.1\r\nHost: docker\r\nUser-Agent: clogs\r\n\r\n`;
      let head: Buffer | undefined = Buffer.alloc(0);
      let framing: BodyFraming | undefined;
      let status = 0;
      let errorBody: Buffer[] | undefined;
      let errorBytes = 0;
      let opened = false;
      let finished = false;
      let paused = true;
      let stash: Buffer | undefined;

      const finish = (err?: Error) => {
        if (finished) return;
        finished = true;
        clearTimeout(answerTimer);
        socket.destroy();
        if (!opened) reject(err ?? new Error('docker engine closed the connection before answering'));
        else if (err) handlers.error(err);
        else handlers.end();
      };
      const failHttp = () => {
        const text = Buffer.concat(errorBody ?? []).toString('utf8');
        let message = text.trim();
        try {
          message = String((JSON.parse(text) as { message?: unknown }).message ?? message);
        } catch {
          // not JSON: the text as it came
        }
        finish(new EngineHttpError(status, `(HTTP code ${status}) ${message}`));
      };
      const onBody = (buf: Buffer, coalesce: boolean) => {
        const pieces: Buffer[] = [];
        try {
          framing!.push(buf, pieces);
        } catch (err) {
          // A body that breaks its own framing (a proxy, a broken peer) ends
          // this stream with the reason, after what came whole before it:
          // thrown from a socket read, it would take the process down.
          if (!errorBody && pieces.length > 0) handlers.data(pieces, false);
          finish(err as Error);
          return;
        }
        if (errorBody) {
          for (const p of pieces) if (errorBytes < MAX_ERROR_BODY_BYTES) errorBody.push(p), (errorBytes += p.length);
          if (framing!.done) failHttp();
          return;
        }
        if (pieces.length > 0) handlers.data(pieces, coalesce && pieces.length < COALESCE_BELOW_PIECES);
        if (framing!.done && !finished) finish();
      };
      const onHead = (buf: Buffer) => {
        head = head!.length === 0 ? buf : Buffer.concat([head!, buf]);
        const at = head.indexOf(HEAD_END);
        if (at < 0) {
          if (head.length > MAX_HEAD_BYTES) finish(new Error('docker engine: response head too large'));
          return;
        }
        let parsed: ResponseHead;
        try {
          parsed = parseResponseHead(head.toString('latin1', 0, at));
        } catch (err) {
          finish(err as Error);
          return;
        }
        const rest = head.subarray(at + HEAD_END.length);
        head = undefined;
        status = parsed.status;
        framing = framingOf(parsed);
        if (status !== 200) {
          errorBody = [];
          if (rest.length > 0) onBody(rest, false);
          if (framing.done) failHttp();
          return;
        }
        opened = true;
        clearTimeout(answerTimer);
        socket.pause();
        if (rest.length > 0) stash = rest;
        resolve(body);
      };
      const body: LogBody = {
        pause: () => {
          paused = true;
          socket.pause();
        },
        resume: () => {
          if (finished) return;
          paused = false;
          const s = stash;
          stash = undefined;
          if (s) onBody(s, false);
          if (!paused && !finished) socket.resume();
        },
        close: () => {
          finished = true;
          socket.destroy();
        },
      };

      const answerTimer = setTimeout(() => finish(new Error(`docker engine: no answer to the log request within ${answerTimeoutMs / 1000} s`)), answerTimeoutMs);
      const socket: Socket = connect({
        ...endpoint,
        onread: {
          buffer: readBuffer,
          callback: (n: number, buf: Uint8Array) => {
            if (finished) return false;
            // Copied: the buffer is every socket's, and lines keep views into the read.
            const copy = Buffer.from(buf.subarray(0, n));
            if (head) onHead(copy);
            else onBody(copy, n < COALESCE_BELOW_BYTES);
            return !paused || !opened;
          },
        },
      } as NetConnectOpts);
      socket.once('connect', () => socket.write(request));
      socket.once('end', () => {
        if (finished) return;
        if (errorBody) failHttp();
        else if (framing?.endsAtClose) finish();
        else finish(new Error(opened ? 'docker log stream cut off' : 'docker engine closed the connection before answering'));
      });
      socket.once('error', (err) => finish(err));
      socket.once('close', () => finish(new Error('docker log stream closed')));
    });
}

/** Log bodies through dockerode: the path for TLS engines; the same bound on the engine's answer as rawLogOpener(). */
export function dockerodeLogOpener(docker: Docker, answerTimeoutMs = API_TIMEOUT_MS): OpenLogs {
  return async (containerId, since, handlers) => {
    const ac = new AbortController();
    const answerTimer = setTimeout(() => ac.abort(), answerTimeoutMs);
    let stream: NodeJS.ReadableStream & { destroy?: () => void };
    try {
      stream = (await docker.getContainer(containerId).logs({
        follow: true,
        stdout: true,
        stderr: true,
        timestamps: true,
        ...(since !== undefined ? { since } : {}),
        abortSignal: ac.signal,
      })) as NodeJS.ReadableStream & { destroy?: () => void };
    } finally {
      clearTimeout(answerTimer);
    }
    stream.pause();
    let attached = false;
    return {
      pause: () => void stream.pause(),
      resume: () => {
        if (!attached) {
          attached = true;
          stream.on('data', (chunk: Buffer) => handlers.data([chunk], false));
          stream.once('end', () => handlers.end());
          stream.once('error', (err: Error) => handlers.error(err));
        }
        stream.resume();
      },
      close: () => {
        ac.abort();
        stream.destroy?.();
      },
    };
  };
}
