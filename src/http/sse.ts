/**
 * `GET /tail` as server-sent events: the live, normalized stream.
 *
 * Each event is one `id:` line (`@timestamp/seq`; `clogs tail` and the web
 * page take an event's identity from its data, tail/order.ts) and one
 * `data:` line: the event's line as the store has it (JSON escapes newlines,
 * so one line always suffices).
 *
 * The pipeline publishes synchronously and must never wait for a reader, so
 * each client has a bounded send buffer. Slowness is judged over time, not
 * at one write: the pipeline publishes a whole commit's batches in one turn
 * of the event loop, so even a fast reader's queue can pass
 * CLIENT_BUFFER_BYTES before the socket had a chance to drain. A client
 * queued above it must empty its queue within SLOW_CLIENT_MS; one that does
 * not, or whose queue passes CLIENT_MAX_BUFFER_BYTES (what bounds the memory
 * a client holds), or while the clients above it hold TOTAL_MAX_BUFFER_BYTES
 * together, is sent a final comment and dropped. Below CLIENT_BUFFER_BYTES a
 * client may stay for ever, so the number of streams is bounded too
 * (MAX_CLIENTS): together that bounds what all of them hold. A dropped client
 * loses nothing it cannot get back: every event it was sent is already
 * durable in the store.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { EncodedBatch } from '../collector/encoded.js';
import { LineFields } from '../collector/line-fields.js';
import type { Pipeline } from '../collector/pipeline.js';
import type { Logger } from '../log.js';
import { matchesLine, mayTakeName, takesContainer, takesTag, type TailFilter } from './tail-filter.js';

/** Bytes a client may have queued in the socket for as long as it likes. */
export const CLIENT_BUFFER_BYTES = 1024 * 1024;
/** How long a client queued above CLIENT_BUFFER_BYTES has to empty its queue. */
export const SLOW_CLIENT_MS = 5_000;
/** Bytes queued for a client past which it is dropped at once: the most memory one client holds. */
export const CLIENT_MAX_BUFFER_BYTES = 32 * 1024 * 1024;
/** Bytes queued for all the clients above CLIENT_BUFFER_BYTES together, past which the one being sent to is dropped. */
export const TOTAL_MAX_BUFFER_BYTES = 64 * 1024 * 1024;
/**
 * Streams open at once; one more is answered 503. Each may hold
 * CLIENT_BUFFER_BYTES for as long as it likes: this many hold at most 128 MiB.
 */
export const MAX_CLIENTS = 128;
/** A comment this often keeps proxies from closing an idle stream and finds dead clients. */
const KEEPALIVE_MS = 15_000;
/** How long a dropped client gets to take its final comment before the socket is destroyed. */
const DROP_GRACE_MS = 5_000;

/** The comment that opens every stream: once a client has read it, it is subscribed. */
const SUBSCRIBED_COMMENT = ': subscribed\n\n';
export const DROPPED_COMMENT = ': dropped: client too slow; reconnect and resume from the store\n\n';

export interface TailStreams {
  serve(req: IncomingMessage, res: ServerResponse, filter: TailFilter): void;
  /** Ends every open stream (server shutdown). */
  closeAll(): void;
}

/** When a client counts as too slow; the defaults above, smaller in tests. */
export interface TailLimits {
  bufferBytes: number;
  slowMs: number;
  maxBufferBytes: number;
  totalBufferBytes: number;
  maxClients: number;
}

const LIMITS: TailLimits = {
  bufferBytes: CLIENT_BUFFER_BYTES,
  slowMs: SLOW_CLIENT_MS,
  maxBufferBytes: CLIENT_MAX_BUFFER_BYTES,
  totalBufferBytes: TOTAL_MAX_BUFFER_BYTES,
  maxClients: MAX_CLIENTS,
};

export function createTailStreams(pipeline: Pipeline, log: Logger, limits: TailLimits = LIMITS): TailStreams {
  const open = new Set<() => void>();
  /** The clients queued above limits.bufferBytes. */
  const behind = new Set<ServerResponse>();
  const queuedBehind = (): number => {
    let bytes = 0;
    for (const r of behind) bytes += r.writableLength;
    return bytes;
  };

  function serve(req: IncomingMessage, res: ServerResponse, filter: TailFilter): void {
    if (open.size >= limits.maxClients) {
      log.warn({ remote: req.socket.remoteAddress, clients: open.size }, 'tail client refused: too many streams open');
      res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'retry-after': '10' });
      res.end(`too many /tail streams open (${limits.maxClients}); try again later\n`);
      return;
    }
    let ended = false;
    /** Runs while the client is queued above limits.bufferBytes; an emptied queue stops it. */
    let slow: NodeJS.Timeout | undefined;
    const finish = (): void => {
      if (ended) return;
      ended = true;
      unsubscribe();
      clearInterval(keepalive);
      clearTimeout(slow);
      behind.delete(res);
      open.delete(endStream);
    };
    const drop = (reason: string): void => {
      finish();
      log.warn({ remote: req.socket.remoteAddress, queued: res.writableLength, reason }, 'tail client dropped: too slow');
      res.end(DROPPED_COMMENT);
      setTimeout(() => res.destroy(), DROP_GRACE_MS).unref();
    };
    const send = (chunk: string | Buffer): void => {
      res.write(chunk);
      const queued = res.writableLength;
      if (queued <= limits.bufferBytes) return;
      behind.add(res);
      if (queued > limits.maxBufferBytes) drop(`more than ${limits.maxBufferBytes} bytes queued`);
      else if (queuedBehind() > limits.totalBufferBytes) drop(`clients behind hold more than ${limits.totalBufferBytes} bytes together`);
      else if (slow === undefined) {
        slow = setTimeout(() => drop(`queue not emptied within ${limits.slowMs} ms`), limits.slowMs);
        slow.unref();
      }
    };
    // 'drain' comes once the whole queue is written: the client kept up after all.
    res.on('drain', () => {
      clearTimeout(slow);
      slow = undefined;
      behind.delete(res);
    });
    const endStream = (): void => {
      finish();
      res.end();
    };

    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    // Subscribed before the opening comment is written, so a client that has
    // read the comment knows every later durable event will reach it.
    const fields = new LineFields();
    const unsubscribe = pipeline.subscribe((batch) => {
      let chunk: Buffer | undefined;
      try {
        chunk = renderBatch(batch, filter, fields);
      } catch (err) {
        // A line this client cannot be shown ends its stream, not the write: the batch is durable already.
        log.error({ err, remote: req.socket.remoteAddress }, 'tail client ended: a line could not be rendered for it');
        endStream();
        return;
      }
      if (chunk !== undefined) send(chunk);
    });
    const keepalive = setInterval(() => send(': keepalive\n\n'), KEEPALIVE_MS);
    keepalive.unref();
    open.add(endStream);
    res.on('close', finish);
    res.write(SUBSCRIBED_COMMENT);
    log.debug({ remote: req.socket.remoteAddress, filter }, 'tail client subscribed');
  }

  return {
    serve,
    closeAll: () => {
      for (const end of [...open]) end();
    },
  };
}

const DATA = Buffer.from('\ndata: ');
const END = Buffer.from('\n\n');

function renderBatch(batch: EncodedBatch, filter: TailFilter, fields: LineFields): Buffer | undefined {
  const out: Buffer[] = [];
  const send = (f: LineFields): void => {
    out.push(Buffer.from(`id: ${f.timestamp()}/${f.seq()}`, 'latin1'), DATA, f.line(), END);
  };
  for (const source of batch.sources()) {
    const container = source.container;
    // A container's lines are taken or left all together: most live lines come from containers nobody follows.
    if (container !== undefined) {
      if (!takesContainer(filter, container)) continue;
      source.forEachLine(fields, (f) => {
        if (matchesLine(filter, f)) send(f);
      });
      continue;
    }
    if (source.onlyName && !mayTakeName(filter, source.name)) continue;
    source.forEachLine(fields, (f) => {
      if (takesTag(filter, f.tag()) && matchesLine(filter, f)) send(f);
    });
  }
  return out.length === 0 ? undefined : Buffer.concat(out);
}
