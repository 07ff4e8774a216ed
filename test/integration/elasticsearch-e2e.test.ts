/**
 * The whole path into the real Elasticsearch: Docker's fluentd driver and the
 * real fluent-logger client → `clogs collect --es` → Elasticsearch. Then the
 * two failures a log pipeline must survive without losing or doubling a line:
 * Elasticsearch going away for a minute (on a throwaway node of its own, so
 * the shared one stays up), and `kill -9` of clogs in the middle of bulk sends.
 */
import fluentLogger from 'fluent-logger';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LogEvent } from '../../src/collector/event.js';
import { formatNanoTime } from '../../src/collector/time.js';
import { docker, readFileStore, requireDocker, startCollector, tempDir, TEST_IMAGE, type RunningCollector } from '../helpers/services.js';
import { allMessages, count, ES_URL, esClient, esScript, freePort, requireNode, searchAll, uniqueDataset, waitForCount } from '../helpers/elasticsearch.js';
import { until } from '../helpers/until.js';

type Sender = ReturnType<typeof fluentLogger.createFluentSender<Record<string, unknown>>>;
const EventTime = fluentLogger.EventTime as unknown as new (sec: number, nsec: number) => unknown;
const quiet = { info: () => undefined, error: () => undefined };

/** The minute of outage the issue asks for; CLOGS_TEST_OUTAGE_SECONDS shortens it while developing. */
const OUTAGE_SECONDS = Number(process.env.CLOGS_TEST_OUTAGE_SECONDS ?? 60);

function sender(port: number, tag: string, options: Record<string, unknown> = {}): Sender {
  return fluentLogger.createFluentSender<Record<string, unknown>>(tag, {
    host: '127.0.0.1',
    port,
    requireAckResponse: true,
    ackResponseTimeout: 3000,
    reconnectInterval: 100,
    internalLogger: quiet,
    ...options,
  });
}

function emit(s: Sender, label: string, record: Record<string, unknown>, time: unknown): Promise<void> {
  return new Promise((resolve, reject) => {
    (s.emit as (l: string, r: unknown, t: unknown, c: (err?: Error) => void) => void)(label, record, time, (err?: Error) => (err ? reject(err) : resolve()));
  });
}

function end(s: Sender): Promise<void> {
  return new Promise((resolve) => s.end(undefined as unknown as string, undefined as unknown as Record<string, unknown>, () => resolve()));
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * An at-least-once producer, as a real application with fluent-logger and
 * acks is: every record has a fixed time with nanoseconds, and a record whose
 * ack did not come is sent again. clogs must turn that into exactly once.
 */
class Producer {
  private next = 0;
  private running = true;
  private loop: Promise<void> | undefined;
  readonly acked = new Set<number>();

  constructor(
    private readonly s: Sender,
    private readonly label: string,
    private readonly group: number,
    private readonly pauseMs: number,
    private readonly limit = Infinity,
  ) {}

  static time(n: number): unknown {
    return new EventTime(1_795_000_000 + Math.floor(n / 1000), (n % 1000) * 1_000_000 + 17);
  }

  start(): this {
    this.loop = this.run();
    return this;
  }

  get produced(): number {
    return this.next;
  }

  /** Stops after the current group, once it is acked; resolves with how many records were produced. */
  async stop(): Promise<number> {
    this.running = false;
    await this.loop;
    return this.next;
  }

  /** Resolves once every record up to the limit is acked. */
  async finish(): Promise<number> {
    await this.loop;
    return this.next;
  }

  private async run(): Promise<void> {
    while (this.running && this.next < this.limit) {
      const from = this.next;
      this.next = Math.min(this.limit, from + this.group);
      let pending = Array.from({ length: this.next - from }, (_, k) => from + k);
      while (pending.length > 0) {
        const failed = await Promise.all(
          pending.map((n) => emit(this.s, this.label, { message: `${this.label} line ${n}`, n }, Producer.time(n)).then(() => (this.acked.add(n), undefined), () => n)),
        );
        pending = failed.filter((n): n is number => n !== undefined);
        if (pending.length > 0) await sleep(200);
      }
      if (this.pauseMs > 0) await sleep(this.pauseMs);
    }
  }
}

function expectExactlyOnce(messages: string[], label: string, produced: number): void {
  const expected = Array.from({ length: produced }, (_, n) => `${label} line ${n}`);
  const counts = new Map<string, number>();
  for (const m of messages) counts.set(m, (counts.get(m) ?? 0) + 1);
  const doubled = [...counts].filter(([, c]) => c > 1).map(([m]) => m);
  const missing = expected.filter((m) => !counts.has(m));
  expect({ doubled: doubled.slice(0, 10), missing: missing.slice(0, 10) }).toEqual({ doubled: [], missing: [] });
  expect(messages).toHaveLength(produced);
}

function collectorEnv(dataset: string): NodeJS.ProcessEnv {
  return { CLOGS_SINKS_ELASTICSEARCH_DATA_STREAM_DATASET: dataset, CLOGS_SINKS_ELASTICSEARCH_FLUSH_INTERVAL: '200ms', CLOGS_LOG_LEVEL: 'info' };
}

const client = esClient();
const running: RunningCollector[] = [];
const containers: string[] = [];

beforeAll(async () => {
  await requireNode(ES_URL);
});

afterAll(async () => {
  await Promise.allSettled(running.map((c) => c.stop('SIGKILL')));
  if (containers.length > 0) await docker('rm', '-f', ...containers).catch(() => undefined);
  await client.close();
});

describe('clogs collect --es: the whole path', () => {
  it('delivers Docker fluentd-driver lines and fluent-logger records, searchable, in nanosecond order, identical lines kept', async () => {
    await requireDocker();
    const dataset = uniqueDataset('e2e');
    const stream = `logs-${dataset}-default`;
    const c = await startCollector(
      ['--no-docker', '--forward', '127.0.0.1:0', '--http', '127.0.0.1:0', '--es', ES_URL, '--state', tempDir('e2e-state'), '--file', tempDir('e2e-files')],
      collectorEnv(dataset),
    );
    running.push(c);
    expect(c.ready.sinks).toContain('elasticsearch');

    const name = `clogs-it-es-${process.pid}`;
    containers.push(name);
    // Docker's driver sends whole-second times: the 30 identical lines of one second differ only by their ordinal.
    const script = 'for i in $(seq 1 100); do echo "line $i"; done; for i in $(seq 1 30); do echo "same words"; done; echo "payment failure detected" >&2';
    const id = (await docker('run', '-d', '--name', name, '--log-driver=fluentd', '--log-opt', `fluentd-address=127.0.0.1:${c.forwardPort()}`, TEST_IMAGE, 'sh', '-c', script)).trim();
    await docker('wait', id);

    const s = sender(c.forwardPort(), 'app');
    for (let i = 0; i < 10; i++) await emit(s, 'ns', { message: `ns ${i}` }, new EventTime(1_795_000_000, 999_999_990 + i));
    await end(s);

    await waitForCount(client, stream, 141, 60_000);
    const mapping = await client.indices.getMapping({ index: stream });
    const props = Object.values(mapping)[0]!.mappings.properties as Record<string, any>;
    expect(props['@timestamp'].type).toBe('date_nanos');
    expect(props.container.properties.name.type).toBe('keyword');
    expect(props.container.properties.labels?.type ?? 'flattened').toBe('flattened');

    const hits = await searchAll<LogEvent>(client, stream, {
      bool: { filter: [{ term: { 'container.name': name } }, { term: { stream: 'stderr' } }], must: [{ match: { message: 'failure' } }] },
    });
    expect(hits.map((h) => h.message)).toEqual(['payment failure detected']);
    expect(hits[0]!.container?.id).toBe(id);

    const same = await searchAll<LogEvent>(client, stream, { bool: { filter: [{ term: { 'container.name': name } }], must: [{ match_phrase: { message: 'same words' } }] } });
    expect(same).toHaveLength(30);
    expect(new Set(same.map((e) => `${e['@timestamp']}|${e.clogs.ordinal}`)).size).toBe(30);

    const ns = await searchAll<LogEvent>(client, stream, { term: { 'clogs.tag': 'app.ns' } });
    expect(ns.map((e) => e.message)).toEqual(Array.from({ length: 10 }, (_, i) => `ns ${i}`));
    expect(ns.map((e) => e['@timestamp'])).toEqual(Array.from({ length: 10 }, (_, i) => formatNanoTime(1_795_000_000, 999_999_990 + i)));
    expect(await count(client, stream)).toBe(141);
    await c.stop();
  });

  it('survives Elasticsearch stopping for a minute while a producer keeps sending: every line exactly once', async () => {
    const port = await freePort();
    const node = `outage-${port}`;
    await esScript('start', node, String(port), 'plain', '384m');
    const url = `http://127.0.0.1:${port}`;
    const outageClient = esClient(url);
    try {
      const dataset = uniqueDataset('outage');
      const stream = `logs-${dataset}-default`;
      const files = tempDir('outage-files');
      const c = await startCollector(
        ['--no-docker', '--forward', '127.0.0.1:0', '--http', '127.0.0.1:0', '--es', url, '--state', tempDir('outage-state'), '--file', files],
        collectorEnv(dataset),
      );
      running.push(c);
      const s = sender(c.forwardPort(), 'outage');
      const producer = new Producer(s, 'p', 20, 100).start();

      await waitForCount(outageClient, stream, 100, 30_000);
      await esScript('stop', node);
      const atStop = producer.produced;
      await sleep(OUTAGE_SECONDS * 1000);
      // Acks kept coming while Elasticsearch was down: the disk queue took the lines.
      expect(producer.acked.size).toBeGreaterThan(atStop + 100);
      expect(c.lines.some((l) => l.msg === 'cannot reach elasticsearch; events stay queued and are retried')).toBe(true);
      // The file sink, with its own progress, was not held back.
      expect(readFileStore(files).length).toBeGreaterThan(atStop);

      await esScript('start', node, String(port), 'plain', '384m');
      await sleep(3000);
      const produced = await producer.stop();
      await end(s);
      await waitForCount(outageClient, stream, produced, 120_000);
      await until('recovery logged', () => c.lines.some((l) => l.msg === 'elasticsearch accepts requests again'), 10_000);
      expectExactlyOnce(await allMessages(outageClient, stream), 'p', produced);
      await c.stop();
    } finally {
      await outageClient.close();
      await esScript('wipe', node);
    }
  }, (OUTAGE_SECONDS + 300) * 1000);

  it('loses and doubles nothing when clogs is killed with SIGKILL during bulk sends', async () => {
    const dataset = uniqueDataset('kill');
    const stream = `logs-${dataset}-default`;
    const state = tempDir('kill-state');
    const port = await freePort();
    const args = ['--no-docker', '--forward', `127.0.0.1:${port}`, '--http', '127.0.0.1:0', '--es', ES_URL, '--state', state, '--file', tempDir('kill-files')];
    const first = await startCollector(args, collectorEnv(dataset));
    running.push(first);
    const TOTAL = 20_000;
    const s = sender(port, 'kill', { eventMode: 'PackedForward', flushInterval: 10 });
    const producer = new Producer(s, 'k', 250, 0, TOTAL).start();

    await until('bulk sends under way', async () => (await count(client, stream)) >= 2000, 60_000);
    expect(producer.produced).toBeLessThan(TOTAL);
    await first.stop('SIGKILL');
    const second = await startCollector(args, collectorEnv(dataset));
    running.push(second);

    expect(await producer.finish()).toBe(TOTAL);
    await end(s);
    await waitForCount(client, stream, TOTAL, 120_000);
    await sleep(1000);
    expectExactlyOnce(await allMessages(client, stream), 'k', TOTAL);
    await second.stop();
  }, 300_000);
});
