/**
 * `clogs tail`, `ps` and `search` against the real Elasticsearch, with events
 * written by the real Elasticsearch sink into a data stream of their own.
 * Fails (never skips) when Elasticsearch does not answer at CLOGS_TEST_ES_URL.
 */
import { EncodedBatch } from '../../src/collector/encoded.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@elastic/elasticsearch';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LogEvent } from '../../src/collector/event.js';
import { IntegerText } from '../../src/collector/json-values.js';
import type { Sink } from '../../src/sinks/sink.js';
import { createElasticsearchSink } from '../../src/sinks/elasticsearch/index.js';
import { ES_SECURE_URL, ES_URL, esClient, freePort, memoryLogger, requireNode, secureAuth, sinkConfig, uniqueDataset, waitForCount } from '../helpers/elasticsearch.js';
import { startCollector } from '../helpers/services.js';
import { Pipeline } from '../../src/collector/pipeline.js';
import { startHttpServer } from '../../src/http/server.js';
import { readPage } from '../../src/tail/page.js';
import { createEsStore } from '../../src/tail/store-es.js';
import { container, emitRecord, endSender, expectFollowedIntoLive, fakeId, fluentSender, makeEvent, outputLines, runCli, startCli } from '../helpers/tail.js';

const WEB1 = container(fakeId('a1b2'), 'shop-web-1', { compose: { project: 'shop', service: 'web' } });
const WEB2 = container(fakeId('a1c3'), 'shop-web-2', { compose: { project: 'shop', service: 'web' } });
const DB = container(fakeId('d4'), 'shop-db-1', { compose: { project: 'shop', service: 'db' } });

// An hour ago, so --since with a duration has something on both sides.
const T0 = Math.floor(Date.now() / 1000) - 3600;

let dir: string;
let config: string;
let client: Client;
let sink: Sink;
let index: string;
let dataset: string;
let total = 0;
let seq = 1;

/** A container's line (stdout unless told), or with `meta` undefined a forward record without stream. */
const ev = (meta: typeof WEB1 | undefined, sec: number, message: string, more: { stream?: 'stdout' | 'stderr'; level?: string; nsec?: number; seq?: number; tag?: string } = {}): LogEvent =>
  makeEvent({
    sec: T0 + sec,
    nsec: more.nsec ?? 123456789,
    seq: more.seq ?? seq++,
    message,
    ...(meta ? { container: meta, stream: more.stream ?? 'stdout' } : {}),
    ...(more.level ? { level: more.level } : {}),
    ...(more.tag ? { tag: more.tag } : {}),
  });

async function write(events: LogEvent[]): Promise<void> {
  await sink.write(EncodedBatch.of(events));
  total += events.length;
  await waitForCount(client, index, total);
}

const clogs = (command: string, ...args: string[]) => runCli([command, '--config', config, ...args]);

beforeAll(async () => {
  await requireNode(ES_URL);
  dir = mkdtempSync(join(tmpdir(), 'clogs-tail-es-'));
  dataset = uniqueDataset('tail');
  index = `logs-${dataset}-default`;
  config = join(dir, 'clogs.yaml');
  // No live endpoint: these tests read Elasticsearch alone.
  writeFileSync(config, `sinks:\n  file:\n    enabled: false\n  elasticsearch:\n    url: ${ES_URL}\n    data_stream:\n      dataset: ${dataset}\nhttp:\n  enabled: false\n`);
  client = esClient();
  sink = createElasticsearchSink(sinkConfig({ data_stream: { dataset, namespace: 'default' }, flush_interval: '100ms' }), {
    log: memoryLogger().log,
    stateDir: join(dir, 'state'),
  });
  await sink.start();
  const events: LogEvent[] = [];
  for (let i = 0; i < 30; i++) {
    events.push(ev(WEB1, i * 60, `web1 ${i}`, { stream: i % 5 === 4 ? 'stderr' : 'stdout', ...(i % 10 === 9 ? { level: 'error' } : {}) }));
  }
  for (let i = 0; i < 5; i++) events.push(ev(WEB2, i * 60 + 30, `web2 ${i}`));
  events.push(ev(DB, 100, 'db boom one'), ev(DB, 200, 'db fine'), ev(WEB1, 1790, 'web1 boom'));
  events.push(ev(undefined, 50, 'payment ok', { tag: 'app.pay' }));
  // Three lines with one timestamp, indexed out of order: seq decides.
  events.push(ev(DB, 300, 'same 3', { nsec: 5, seq: 900_003 }), ev(DB, 300, 'same 1', { nsec: 5, seq: 900_001 }), ev(DB, 300, 'same 2', { nsec: 5, seq: 900_002 }));
  // Nanoseconds decide between lines of one millisecond.
  events.push(ev(DB, 400, 'ns 2', { nsec: 1_000_002 }), ev(DB, 400, 'ns 1', { nsec: 1_000_001 }));
  // Integers past 2^53, as a JSON line's fields hold them (zerolog's nanosecond time, a 64-bit id).
  const ids = ev(undefined, 60, 'with ids', { tag: 'app.ids' });
  ids.attrs = { time: new IntegerText('1700000000123456789'), span: { id: new IntegerText('18446744073709551615'), small: 7 } };
  events.push(ids);
  await write(events);
});

afterAll(async () => {
  await sink?.close();
  await client?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});


describe('clogs tail on Elasticsearch', () => {
  it('prints the last 10 lines of a container by default, in order', async () => {
    const r = await clogs('tail', 'shop-web-1');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(outputLines(r.stdout)).toEqual(['web1 21', 'web1 22', 'web1 23', 'web1 24', 'web1 25', 'web1 26', 'web1 27', 'web1 28', 'ERROR web1 29', 'web1 boom']);
  });

  it('-n and -t: the last N lines with their 9-digit timestamps', async () => {
    const r = await clogs('tail', 'shop-web-1', '-n', '2', '-t');
    const out = outputLines(r.stdout);
    expect(out).toHaveLength(2);
    expect(out[0]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.123456789Z ERROR web1 29$/);
  });

  it('orders by nanosecond timestamp, then by sequence', async () => {
    const r = await clogs('tail', 'shop-db-1', '-n', '5');
    expect(outputLines(r.stdout)).toEqual(['same 1', 'same 2', 'same 3', 'ns 1', 'ns 2']);
  });

  it('time window: --since as a duration and --until as an RFC 3339 time', async () => {
    const until = new Date((T0 + 5 * 60) * 1000).toISOString();
    const r = await clogs('tail', 'shop-web-1', '--since', '2h', '--until', until);
    expect(outputLines(r.stdout)).toEqual(['web1 0', 'web1 1', 'web1 2', 'web1 3', 'web1 4']);
    // Half-way between "web1 19" and "web1 20", as a duration back from now.
    const back = Math.round(Date.now() / 1000 - (T0 + 19 * 60 + 30));
    const recent = await clogs('tail', 'shop-web-1', '--since', `${back}s`);
    expect(outputLines(recent.stdout)[0]).toBe('web1 20');
    expect(outputLines(recent.stdout)).toHaveLength(11);
  });

  it('filters by stream, level and regular expression', async () => {
    expect(outputLines((await clogs('tail', 'shop-web-1', '--stream', 'stderr', '-n', '3')).stdout)).toEqual(['ERROR web1 19', 'web1 24', 'ERROR web1 29']);
    expect(outputLines((await clogs('tail', 'shop-web-1', '--level', 'error')).stdout)).toEqual(['ERROR web1 9', 'ERROR web1 19', 'ERROR web1 29']);
    expect(outputLines((await clogs('tail', 'shop-web-1', '--grep', '^web1 1[0-2]$')).stdout)).toEqual(['web1 10', 'web1 11', 'web1 12']);
  });

  it('-o json prints the stored events', async () => {
    const r = await clogs('tail', 'shop-db-1', '-n', '2', '-o', 'json');
    const events = outputLines(r.stdout).map((l) => JSON.parse(l) as LogEvent);
    expect(events.map((e) => e.message)).toEqual(['ns 1', 'ns 2']);
    expect(events[0]).toMatchObject({ container: { id: DB.id, name: 'shop-db-1' }, stream: 'stdout', clogs: { input: 'docker' } });
  });

  it('-o json prints integers past 2^53 with the digits stored, as the file store does', async () => {
    const r = await clogs('tail', 'app.ids', '-o', 'json');
    expect(r.stderr).toBe('');
    const [line] = outputLines(r.stdout);
    expect(line).toContain('"attrs":{"time":1700000000123456789,"span":{"id":18446744073709551615,"small":7}}');
  });

  it('resolves a unique id prefix, a compose service, a tag; refuses ambiguous and unknown ids', async () => {
    expect(outputLines((await clogs('tail', 'A1B', '-n', '1')).stdout)).toEqual(['web1 boom']);
    const service = await clogs('tail', 'web', '-n', '2');
    expect(outputLines(service.stdout)).toEqual(['shop-web-1 | ERROR web1 29', 'shop-web-1 | web1 boom']);
    expect(outputLines((await clogs('tail', 'app.pay')).stdout)).toEqual(['payment ok']);
    const ambiguous = await clogs('tail', 'a1');
    expect(ambiguous.code).toBe(1);
    expect(ambiguous.stderr).toMatch(/"a1" is ambiguous: it is the start of 2 container ids/);
    expect(ambiguous.stderr).toContain('shop-web-1 (id a1b200000000');
    expect(ambiguous.stderr).toContain('shop-web-2 (id a1c300000000');
    expect(ambiguous.stdout).toBe('');
    const unknown = await clogs('tail', 'shop-wbe-1');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/no container, compose service or tag matches "shop-wbe-1"[\s\S]*shop-web-1/);
    // A container that just started may be in the files, not yet searchable: the message says so.
    expect(unknown.stderr).toContain('Elasticsearch shows a line about a second after it was written');
    expect(unknown.stderr).not.toMatch(/\n\s+at /);
  });

  it('reads a container that no longer exists, and ps says so', async () => {
    const r = await clogs('ps');
    expect(r.code).toBe(0);
    const rows = outputLines(r.stdout);
    expect(rows[0]).toMatch(/^NAME\s+CONTAINER ID\s+IMAGE\s+FIRST SEEN\s+LAST SEEN\s+STDOUT\s+STDERR\s+OTHER\s+STATE$/);
    const web1 = rows.find((l) => l.startsWith('shop-web-1 '))!;
    expect(web1.split(/\s{2,}/)).toEqual(['shop-web-1', 'a1b200000000', 'clogs-busybox:latest', expect.any(String), expect.any(String), '25', '6', '0', expect.stringMatching(/^(removed|\?)$/)]);
    const json = outputLines((await clogs('ps', '-o', 'json')).stdout).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(json.find((j) => j.tag === 'app.pay')).toMatchObject({ name: 'app.pay', id: null, other: 1, state: '-' });
    expect(json.find((j) => j.name === 'shop-db-1')).toMatchObject({ stdout: 7, stderr: 0, service: 'db', project: 'shop' });
  });

  it('gives a renamed container its lines from before the rename, under its new name', async () => {
    const id = fakeId('e5');
    await write([ev(container(id, 'api'), 10, 'before the rename'), ev(container(id, 'api-v2'), 20, 'after the rename')]);
    const r = await clogs('tail', 'api-v2', '-n', 'all');
    expect(r.code).toBe(0);
    expect(outputLines(r.stdout)).toEqual(['before the rename', 'after the rename']);
  });
});

describe('clogs search on Elasticsearch', () => {
  it('runs a query string over every container, in time order with the source named', async () => {
    // Words without an operator must all be there, as in a substring search.
    expect(outputLines((await clogs('search', 'db boom')).stdout)).toEqual(['shop-db-1 | db boom one']);
    // With an operator, Elasticsearch's own reading: any of the words.
    expect(outputLines((await clogs('search', 'fine OR payment boom')).stdout)).toEqual(['app.pay | payment ok', 'shop-db-1 | db boom one', 'shop-db-1 | db fine', 'shop-web-1 | web1 boom']);
    const r = await clogs('search', 'boom');
    expect(outputLines(r.stdout)).toEqual(['shop-db-1 | db boom one', 'shop-web-1 | web1 boom']);
    const field = await clogs('search', 'stream:stderr AND container.name:shop-web-1', '-n', '1');
    expect(outputLines(field.stdout)).toEqual(['shop-web-1 | ERROR web1 29']);
    const one = await clogs('search', 'boom', '--container', 'shop-db-1');
    expect(outputLines(one.stdout)).toEqual(['db boom one']);
  });
});

describe('the web page\'s pages on Elasticsearch', () => {
  it('pages a container backwards with search_after, each line once, and searches with a query string', async () => {
    const store = createEsStore(sinkConfig({ data_stream: { dataset, namespace: 'default' } }), () => undefined);
    try {
      const messages: string[] = [];
      let before: string | undefined;
      for (let pages = 0; pages < 20; pages++) {
        const page = await readPage(store, { containers: ['shop-db-1'], filter: {} }, 2, before);
        messages.unshift(...page.events.map((e) => e.event.message));
        if (page.next === undefined) break;
        before = page.next;
      }
      expect(messages).toEqual(['db boom one', 'db fine', 'same 1', 'same 2', 'same 3', 'ns 1', 'ns 2']);
      const found = await readPage(store, { containers: [], filter: {}, search: 'boom' }, 10);
      expect(found.events.map((e) => e.event.message)).toEqual(['db boom one', 'web1 boom']);
      await expect(readPage(store, { containers: [], filter: {}, search: 'message:(' }, 10)).rejects.toThrow(/HTTP 400/);
    } finally {
      await store.close();
    }
  });
});

describe('clogs tail -f on Elasticsearch', () => {
  it('polls with search_after: new lines, a late one, each once', async () => {
    const tail = startCli(['tail', '-f', 'shop-db-1', '-n', '1', '--config', config]);
    try {
      await tail.waitFor('ns 2\n');
      await write([ev(DB, 3000, 'live 1'), ev(DB, 3001, 'live 2')]);
      await tail.waitFor('live 2\n');
      // Indexed after "live 2" but stamped before it: inside the poll's look-back.
      await write([ev(DB, 2999, 'late 0', { nsec: 999_000_000 }), ev(DB, 3002, 'live 3')]);
      await tail.waitFor('live 3\n');
      await new Promise((r) => setTimeout(r, 2500));
    } finally {
      const end = await tail.stop('SIGINT');
      expect(end.code === 130 || end.code === 0 || end.signal === 'SIGINT').toBe(true);
    }
    expect(outputLines(tail.stdout())).toEqual(['ns 2', 'live 1', 'live 2', 'late 0', 'live 3']);
    expect(tail.stderr()).toBe('');
  });

  it('keeps apart two hosts\' lines of one time and seq, in history and while polling', async () => {
    // One compose service on two hosts, each with its own collector counting
    // seq; Docker's fluentd driver sends whole seconds.
    const api = (id: string, name: string) => container(fakeId(id), name, { compose: { project: 'shop', service: 'api' } });
    const onA = api('e1', 'shop-api-1');
    const onB = api('e2', 'shop-api-2');
    const twin = (meta: typeof onA, sec: number, message: string, host: string): LogEvent => ({ ...ev(meta, sec, message, { nsec: 0, seq: 777_000 + sec }), host: { name: host } });
    await write([twin(onB, 3100, 'api b 1', 'host-b'), twin(onA, 3100, 'api a 1', 'host-a')]);
    const tail = startCli(['tail', '-f', 'api', '--config', config]);
    try {
      await tail.waitFor('api b 1\n');
      await write([twin(onB, 3101, 'api b 2', 'host-b'), twin(onA, 3101, 'api a 2', 'host-a')]);
      await tail.waitFor('api b 2\n');
      await new Promise((r) => setTimeout(r, 2500));
    } finally {
      await tail.stop('SIGINT');
    }
    expect(outputLines(tail.stdout())).toEqual(['shop-api-1 | api a 1', 'shop-api-2 | api b 1', 'shop-api-1 | api a 2', 'shop-api-2 | api b 2']);
    expect(tail.stderr()).toBe('');
  });
});

describe('clogs tail -f on Elasticsearch with a running collector', () => {
  it('switches from Elasticsearch history to the live stream with no line lost or doubled', async () => {
    const dataset = uniqueDataset('live');
    const cfg = join(dir, 'live.yaml');
    writeFileSync(cfg, `sinks:\n  file:\n    enabled: false\n  elasticsearch:\n    url: ${ES_URL}\n    flush_interval: 200ms\n    data_stream:\n      dataset: ${dataset}\n`);
    const collector = await startCollector(['--config', cfg, '--no-docker', '--forward', '127.0.0.1:0', '--http', '127.0.0.1:0', '--state', join(dir, 'live-state'), '--log-level', 'debug']);
    const s = fluentSender(collector.forwardPort());
    const emit = (i: number) => emitRecord(s, 'live', { message: `line ${i}` });
    let tail: ReturnType<typeof startCli> | undefined;
    try {
      for (let i = 0; i < 50; i++) await emit(i);
      await waitForCount(client, `logs-${dataset}-default`, 50);
      // Lines keep coming while tail reads history: some are acked (published
      // live) before tail subscribes but reach Elasticsearch only after it read.
      const producing = (async () => {
        for (let i = 50; i < 300; i++) {
          await emit(i);
          if (i % 10 === 0) await new Promise((r) => setTimeout(r, 5));
        }
      })();
      tail = startCli(['tail', '-f', 'app.live', '-n', '5', '--config', cfg, '--http', collector.ready.http!]);
      await producing;
      await expectFollowedIntoLive(tail, collector.lines, 300, 3000);
    } finally {
      await tail?.stop('SIGINT');
      await endSender(s);
      await collector.stop();
    }
  });
});

describe('the HTTP API on Elasticsearch', () => {
  /** GET `path` of an API serving `store`; its status, error and what the collector logged at warn or above. */
  async function ask(cfg: Record<string, unknown>, path: string): Promise<{ status: number; error: string; logged: unknown[] }> {
    const { log, lines } = memoryLogger();
    const store = createEsStore(sinkConfig({ data_stream: { dataset, namespace: 'default' }, ...cfg }), () => undefined);
    const http = await startHttpServer({ enabled: true, listen: { host: '127.0.0.1', port: 0 } }, { log, pipeline: new Pipeline(), inputs: () => [], sinks: () => [], reader: { store: () => store, containerStates: async () => undefined } });
    try {
      const res = await fetch(`http://${http.address}${path}`);
      const body = (await res.json()) as { error?: string };
      return { status: res.status, error: body.error ?? '', logged: lines.filter((l) => (l.level as number) >= 40).map((l) => l.msg) };
    } finally {
      await http.close();
      await store.close();
    }
  }

  it('answers 400 to a search Elasticsearch cannot parse, and 502 when Elasticsearch does not answer or refuses the collector', async () => {
    await requireNode(ES_SECURE_URL, secureAuth);
    const bad = await ask({}, '/api/lines?q=' + encodeURIComponent('message:(unclosed'));
    expect(bad).toMatchObject({ status: 400, error: expect.stringContaining('HTTP 400: Failed to parse query [message:(unclosed]'), logged: [] });

    const down = `http://127.0.0.1:${await freePort()}`;
    for (const path of ['/api/lines', '/api/containers', '/api/export']) {
      const res = await ask({ url: down }, path);
      expect(res, path).toMatchObject({ status: 502, error: expect.stringContaining(`Elasticsearch at ${down} is not reachable`) });
      expect(res.logged, path).toEqual(['api request failed: the store did not answer']);
    }

    const refused = await ask({ url: ES_SECURE_URL, username: secureAuth.username, password: 'not-the-password' }, '/api/lines');
    expect(refused).toMatchObject({ status: 502, error: expect.stringContaining('refused the credentials (HTTP 401)'), logged: ['api request failed: the store did not answer'] });
  });
});
