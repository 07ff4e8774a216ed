/**
 * Helpers for the tests that talk to the real Elasticsearch nodes
 * scripts/elasticsearch.sh starts: the plain one (CLOGS_TEST_ES_URL) and the
 * secured one (CLOGS_TEST_ES_SECURE_URL, basic auth). They throw when a node
 * does not answer, so those tests fail rather than skip.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { Client } from '@elastic/elasticsearch';
import pino from 'pino';
import type { ContainerMeta, LogEvent } from '../../src/collector/event.js';
import { elasticsearchSchema, type ElasticsearchConfig } from '../../src/config/schema.js';
import type { Logger } from '../../src/log.js';

const run = promisify(execFile);

export const ES_URL = process.env.CLOGS_TEST_ES_URL ?? 'http://127.0.0.1:9200';
export const ES_SECURE_URL = process.env.CLOGS_TEST_ES_SECURE_URL ?? 'http://127.0.0.1:9201';
/** The fixed test credentials of the secured node (scripts/elasticsearch.sh). */
export const ES_SECURE_USER = process.env.CLOGS_TEST_ES_SECURE_USER ?? 'clogs';
export const ES_SECURE_PASSWORD = process.env.CLOGS_TEST_ES_SECURE_PASSWORD ?? 'clogs-test-pw';
export const ES_SCRIPT = join(process.cwd(), 'scripts/elasticsearch.sh');

export async function requireNode(url: string, auth?: { username: string; password: string }): Promise<void> {
  const headers: Record<string, string> = {};
  if (auth) headers.authorization = 'Basic ' + Buffer.from(`${auth.username}:${auth.password}`).toString('base64');
  try {
    const res = await fetch(`${url}/_cluster/health?wait_for_status=yellow&timeout=30s`, { headers });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
  } catch (err) {
    throw new Error(`Elasticsearch is not reachable at ${url}: run scripts/elasticsearch.sh ensure (${(err as Error).message})`);
  }
}

export const secureAuth = { username: ES_SECURE_USER, password: ES_SECURE_PASSWORD };

export function esClient(url = ES_URL, auth?: { username: string; password: string }): Client {
  return new Client({ node: url, ...(auth ? { auth } : {}), requestTimeout: 60_000 });
}

/** A dataset name no other test (or earlier run) used: data streams cannot be deleted on the test distribution. */
export function uniqueDataset(prefix = 't'): string {
  return `${prefix}${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
}

/** A fully-defaulted sink config, as the config loader would produce it. */
export function sinkConfig(overrides: Record<string, unknown>): ElasticsearchConfig {
  return elasticsearchSchema.parse({ url: ES_URL, ...overrides });
}

/** A logger that keeps its JSON lines in memory, to assert on what the sink logged. */
export function memoryLogger(): { log: Logger; lines: Record<string, unknown>[]; text(): string } {
  const lines: Record<string, unknown>[] = [];
  const raw: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) {
        if (!l) continue;
        raw.push(l);
        lines.push(JSON.parse(l) as Record<string, unknown>);
      }
      cb();
    },
  });
  const log = pino({ level: 'debug', redact: { paths: ['*.password', '*.api_key', '*.apiKey', '*.authorization'], censor: '[redacted]' } }, stream);
  return { log, lines, text: () => raw.join('\n') };
}

const defaultContainer: ContainerMeta = {
  id: 'c0ffee'.padEnd(64, '0'),
  name: 'web-1',
  image: { name: 'nginx:1.27' },
  labels: { 'com.docker.compose.project': 'shop', 'com.docker.compose.service': 'web', 'team': 'core' },
  compose: { project: 'shop', service: 'web' },
};

let seq = 1_000_000;

/** A LogEvent as the normalizer makes them; `i` spreads timestamps one microsecond apart. */
export function makeEvent(i: number, over: Partial<LogEvent> & { container?: ContainerMeta } = {}): LogEvent {
  const nsec = 100_000_000 + i * 1000 + 7;
  const sec = 1_795_000_000 + Math.floor(nsec / 1e9);
  const ts = new Date(sec * 1000).toISOString().slice(0, 20) + String(nsec % 1e9).padStart(9, '0') + 'Z';
  return {
    '@timestamp': ts,
    message: `line ${i} hello`,
    stream: 'stdout',
    container: defaultContainer,
    host: { name: 'test-host' },
    clogs: { input: 'docker', seq: seq++, ordinal: 0 },
    ...over,
  };
}

export function makeEvents(n: number, from = 0, over: Partial<LogEvent> = {}): LogEvent[] {
  return Array.from({ length: n }, (_, k) => makeEvent(from + k, over));
}

export async function refresh(client: Client, index: string): Promise<void> {
  await client.indices.refresh({ index, ignore_unavailable: true, allow_no_indices: true, expand_wildcards: 'all' });
}

export async function count(client: Client, index: string): Promise<number> {
  await refresh(client, index);
  const res = await client.count({ index, ignore_unavailable: true, allow_no_indices: true }).catch(() => ({ count: 0 }));
  return res.count;
}

/** Polls until `index` holds `n` documents (or more), then returns the count after a last settle. */
export async function waitForCount(client: Client, index: string, n: number, timeoutMs = 30_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let c = 0;
  while (Date.now() < deadline) {
    c = await count(client, index);
    if (c >= n) return c;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${index}: ${c} documents after ${timeoutMs} ms, expected ${n}`);
}

export async function searchAll<T = Record<string, unknown>>(client: Client, index: string, query?: Record<string, unknown>, size = 10_000): Promise<T[]> {
  await refresh(client, index);
  const res = await client.search<T>({
    index,
    size,
    query: (query ?? { match_all: {} }) as never,
    sort: [{ '@timestamp': 'asc' }, { 'clogs.seq': 'asc' }] as never,
  });
  return res.hits.hits.map((h) => h._source!);
}

/** Every message of the stream (by scrolling): the test's exactly-once check. */
export async function allMessages(client: Client, index: string): Promise<string[]> {
  await client.indices.refresh({ index });
  const out: string[] = [];
  for await (const doc of client.helpers.scrollDocuments<{ message: string }>({ index, size: 5000, _source: ['message'], query: { match_all: {} } })) {
    out.push(doc.message);
  }
  return out;
}

/** A TCP port nothing listens on (bound, then closed). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Runs scripts/elasticsearch.sh with arguments (start/stop/wipe of throwaway nodes). */
export async function esScript(...args: string[]): Promise<string> {
  const { stdout, stderr } = await run('bash', [ES_SCRIPT, ...args], { timeout: 300_000, maxBuffer: 16 * 1024 * 1024 });
  return stdout + stderr;
}

/** Where scripts/elasticsearch.sh keeps a node's files (its CA certificate for a tls node: ca.crt). */
export function esNodeDir(name: string): string {
  const cache =
    process.env.CLOGS_ES_CACHE ??
    (process.getuid?.() === 0 ? '/var/cache/clogs' : join(process.env.XDG_CACHE_HOME ?? join(process.env.HOME ?? '/tmp', '.cache'), 'clogs'));
  return join(cache, 'nodes', name);
}
