/**
 * The Elasticsearch client as the sink uses it: auth and TLS from the config,
 * no retries of its own (the sender retries with backoff from its disk
 * queue, and the transport's retries would hide failures from it), and
 * helpers that keep credentials out of logs.
 */
import { readFileSync } from 'node:fs';
import { Client, errors, type ClientOptions } from '@elastic/elasticsearch';
import type { ElasticsearchConfig } from '../../config/schema.js';
import { ClogsError } from '../../errors.js';
import type { RequestOutcome } from './retry.js';

/** A bulk request that takes longer is abandoned and sent again (409s absorb what did land). */
export const REQUEST_TIMEOUT_MS = 60_000;

/** `options`: what a reader changes on top (tail's serializer). */
export function createClient(cfg: ElasticsearchConfig, options: Pick<ClientOptions, 'Serializer'> = {}): Client {
  const urls = Array.isArray(cfg.url) ? cfg.url : [cfg.url];
  const opts: ClientOptions = {
    nodes: urls,
    maxRetries: 0,
    requestTimeout: REQUEST_TIMEOUT_MS,
    compression: false,
    name: 'clogs',
    ...options,
  };
  if (cfg.api_key !== undefined) opts.auth = { apiKey: cfg.api_key };
  else if (cfg.username !== undefined) opts.auth = { username: cfg.username, password: cfg.password ?? '' };
  if (cfg.ca !== undefined) {
    let ca: Buffer;
    try {
      ca = readFileSync(cfg.ca);
    } catch (err) {
      throw new ClogsError('CLOGS_CONFIG', `sinks.elasticsearch.ca: cannot read ${cfg.ca} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    }
    opts.tls = { ca };
  }
  if (cfg.fingerprint !== undefined) {
    opts.caFingerprint = cfg.fingerprint;
    // The pinned CA fingerprint is the trust check (checked by the transport on
    // every connection); a self-signed cluster CA would fail the system-CA chain
    // check before it. With `ca` set as well, both apply.
    if (cfg.ca === undefined) opts.tls = { rejectUnauthorized: false };
  }
  return new Client(opts);
}

/** The node URLs without user:password, for log lines. */
export function safeUrls(cfg: Pick<ElasticsearchConfig, 'url'>): string[] {
  return (Array.isArray(cfg.url) ? cfg.url : [cfg.url]).map(safeUrl);
}

export function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString().replace(/\/$/, '');
  } catch {
    return '(invalid url)';
  }
}

/**
 * A client error reduced to what may be logged and decided on. The client's
 * error objects carry the request, Authorization header included: never log
 * them whole.
 */
export function outcomeOf(err: unknown): RequestOutcome {
  if (err instanceof errors.ResponseError) {
    return { kind: 'response', status: err.statusCode ?? 0, body: err.body };
  }
  if (err instanceof errors.TimeoutError) return { kind: 'timeout', message: err.message };
  if (err instanceof errors.ProductNotSupportedError) {
    return { kind: 'not_elasticsearch', message: 'the server is not Elasticsearch (no X-Elastic-Product header)' };
  }
  if (err instanceof Error) return { kind: 'connection', message: err.message };
  return { kind: 'connection', message: String(err) };
}

/** A short reason from an error body: `security_exception: unable to authenticate user [clogs]`. */
export function errorReason(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null) return typeof body === 'string' ? body.slice(0, 300) : undefined;
  const e = (body as { error?: unknown }).error;
  if (typeof e === 'string') return e.slice(0, 300);
  if (typeof e === 'object' && e !== null) {
    // On a 401, the last part names which credentials failed ("API key: … for id …").
    const { type, reason, additional_unsuccessful_credentials: which } = e as { type?: unknown; reason?: unknown; additional_unsuccessful_credentials?: unknown };
    const text = [type, reason].filter((x) => typeof x === 'string').join(': ').slice(0, 300);
    return (typeof which === 'string' ? `${text} (${which.slice(0, 200)})` : text) || undefined;
  }
  return undefined;
}
