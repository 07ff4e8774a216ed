/**
 * `GET /tail` as server-sent events: the live, normalized stream.
 *
 * Each event is one `id:` line (`@timestamp/seq`, what `clogs tail` dedupes
 * on when it switches from the store to live) and one `data:` line: the
 * event's line as the store has it (JSON escapes newlines, so one line
 * always suffices).
 *
 * The pipeline publishes synchronously and must never wait for a reader, so
 * each client has a bounded send buffer: a client that lets more than
 * CLIENT_BUFFER_BYTES pile up is sent a final comment and dropped. A dropped
 * client loses nothing it cannot get back: every event it was sent is already
 * durable in the store.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { EncodedBatch } from '../collector/encoded.js';
import { LineFields } from '../collector/line-fields.js';
import type { Pipeline } from '../collector/pipeline.js';
import type { Logger } from '../log.js';
import { matchesLine, mayTakeName, takesContainer, takesTag, type TailFilter } from './tail-filter.js';

/** Bytes a client may have queued in the socket before it is dropped. */
export const CLIENT_BUFFER_BYTES = 1024 * 1024;
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

export function createTailStreams(pipeline: Pipeline, log: Logger): TailStreams {
  const open = new Set<() => void>();

  function serve(req: IncomingMessage, res: ServerResponse, filter: TailFilter): void {
    let ended = false;
    const finish = (): void => {
      if (ended) return;
      ended = true;
      unsubscribe();
      clearInterval(keepalive);
      open.delete(endStream);
    };
    const drop = (): void => {
      finish();
      log.warn({ remote: req.socket.remoteAddress, queued: res.writableLength }, 'tail client dropped: too slow');
      res.end(DROPPED_COMMENT);
      setTimeout(() => res.destroy(), DROP_GRACE_MS).unref();
    };
    const send = (chunk: string | Buffer): void => {
      res.write(chunk);
      if (res.writableLength > CLIENT_BUFFER_BYTES) drop();
    };
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
