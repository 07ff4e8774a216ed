/**
 * Client of the collector's `GET /tail` server-sent events (src/http/sse.ts).
 *
 * `connectLive` resolves once the server's opening comment arrived, i.e. once
 * the subscription exists: from then on every event the collector makes
 * durable reaches us, which is what lets `clogs tail -f` read the store
 * afterwards and lose nothing in between.
 */
import { request, type IncomingMessage } from 'node:http';
import type { LogEvent } from '../collector/event.js';
import type { HttpAuthConfig, ListenAddress } from '../config/schema.js';
import { hasEventKey, type StoredEvent } from './order.js';

/** `/tail` answered with an HTTP error instead of the stream: the collector is there and refuses this subscription. */
export interface LiveRefusal {
  readonly status: number;
  /** The first line of the answer's body, where the collector says why (e.g. an ambiguous container); may be empty. */
  readonly reason: string;
}

export interface LiveStream {
  /** Resolves with the reason once the stream ended (collector gone, dropped as too slow, closed). */
  readonly ended: Promise<string>;
  close(): void;
}

/** Return false to pause the stream until `resume` is called (the output is full). */
export type LiveSink = (event: StoredEvent) => boolean;

const CONNECT_TIMEOUT_MS = 1000;
/** A line longer than this is not one the collector sends: drop the connection. */
const MAX_LINE_CHARS = 64 * 1024 * 1024;
/** Enough of a refusal's body for the line that says why. */
const MAX_REASON_CHARS = 1024;

/** Where to reach the endpoint the collector listens on: a wildcard address is reached on loopback. */
export function liveAddress(listen: ListenAddress): string {
  const host = listen.host === '0.0.0.0' || listen.host === '' ? '127.0.0.1' : listen.host === '::' ? '::1' : listen.host;
  return host.includes(':') ? `[${host}]:${listen.port}` : `${host}:${listen.port}`;
}

/** The Authorization header the collector's `http.auth` accepts: its token, else its first user. */
export function liveAuthorization(auth: HttpAuthConfig | undefined): string | undefined {
  if (auth?.token !== undefined) return `Bearer ${auth.token}`;
  const user = auth?.users[0];
  return user === undefined ? undefined : `Basic ${Buffer.from(`${user.username}:${user.password}`).toString('base64')}`;
}

/**
 * Subscribes to `/tail` at `address` (`HOST:PORT`). Resolves a LiveRefusal
 * when the collector answers with an HTTP error, undefined when nothing
 * answers there, or something that is not a clogs collector does.
 */
export function connectLive(
  address: string,
  authorization: string | undefined,
  params: URLSearchParams,
  onEvent: LiveSink,
  resume: () => Promise<void>,
): Promise<LiveStream | LiveRefusal | undefined> {
  return new Promise((resolve) => {
    let settled = false;
    /** What a failure settles with once the collector answered with an error. */
    let refusal: LiveRefusal | undefined;
    let endReason = 'closed';
    let finish!: (reason: string) => void;
    const ended = new Promise<string>((r) => (finish = r));
    const query = params.toString();
    const req = request(`http://${address}/tail${query ? `?${query}` : ''}`, {
      headers: { accept: 'text/event-stream', ...(authorization === undefined ? {} : { authorization }) },
      agent: false,
    });
    const timer = setTimeout(() => req.destroy(new Error('timeout')), CONNECT_TIMEOUT_MS);
    const settle = (value: LiveStream | LiveRefusal | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(value);
    };
    const stream: LiveStream = { ended, close: () => req.destroy() };

    req.on('error', (err) => {
      settle(refusal);
      finish(err.message);
    });
    req.on('response', (res: IncomingMessage) => {
      const status = res.statusCode ?? 0;
      if (status !== 200) {
        refusal = { status, reason: '' };
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (body.length < MAX_REASON_CHARS) body += chunk;
        });
        // A body cut short (the connect timeout) still names the status.
        res.on('close', () => {
          refusal = { status, reason: body.split('\n', 1)[0]!.trim().slice(0, MAX_REASON_CHARS) };
          req.destroy();
          settle(refusal);
          finish(`HTTP ${status}`);
        });
        return;
      }
      if (!String(res.headers['content-type']).startsWith('text/event-stream')) {
        res.resume();
        req.destroy();
        settle(undefined);
        finish(`HTTP ${status}`);
        return;
      }
      res.setEncoding('utf8');
      let buffered = '';
      let data = '';
      res.on('data', (chunk: string) => {
        buffered += chunk;
        let start = 0;
        let nl: number;
        while ((nl = buffered.indexOf('\n', start)) !== -1) {
          const line = buffered.slice(start, nl);
          start = nl + 1;
          if (line === '') {
            if (data !== '') deliver(data);
            data = '';
          } else if (line.startsWith('data:')) {
            data += line.slice(line.charCodeAt(5) === 32 ? 6 : 5);
          } else if (line.startsWith(':')) {
            const comment = line.slice(1).trim();
            if (comment === 'subscribed') settle(stream);
            else if (comment.startsWith('dropped')) endReason = comment;
          }
        }
        buffered = buffered.slice(start);
        if (buffered.length > MAX_LINE_CHARS) req.destroy(new Error('line too long'));
      });
      res.on('close', () => {
        settle(undefined);
        finish(endReason);
      });

      function deliver(json: string): void {
        let event: LogEvent;
        try {
          event = JSON.parse(json) as LogEvent;
        } catch {
          return;
        }
        if (!hasEventKey(event)) return;
        if (!onEvent({ event, raw: json })) {
          res.pause();
          void resume().then(() => res.resume());
        }
      }
    });
    req.end();
  });
}
