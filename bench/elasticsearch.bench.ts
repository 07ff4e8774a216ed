/**
 * Elasticsearch throughput: the same 1,000,000 Docker-shaped events (20
 * containers, ~120-byte messages, 1 in 4 a parsed JSON line with attrs)
 * into a fresh data stream of the real node, twice:
 *
 *   direct  a plain `client.bulk` loop: `in_flight` workers, each sending
 *           `batch_events` documents per request (create, the same _id,
 *           filter_path on the response), nothing on disk: the best this
 *           Elasticsearch takes on this machine;
 *   clogs   the sink: write() in batches of 1000 (what the forward input
 *           hands it), disk queue with fsync, the bulk loop with the same
 *           batch size and requests in flight;
 *   collector  the whole `clogs collect --es` (file sink off): the same
 *           number of Docker-shaped records as PackedForward requests of 1000
 *           over one connection, forward decoding, normalizing, the sink;
 *           the clock stops when its /metrics count them all delivered;
 *   queue   the sink's disk queue alone, no Elasticsearch: the bulk lines of
 *           the same events appended in batches of 1000, read back in
 *           requests of `batch_events` and released; CPU per 1M events.
 *
 * Each side's clock runs, per slice, from the first event until Elasticsearch
 * accepted the last one; both write into streams created from the same index
 * template.
 *
 *   npm run build && node dist/bench/elasticsearch.bench.js [queue]
 *   CLOGS_BENCH_ES_URL (default http://127.0.0.1:9200), CLOGS_BENCH_EVENTS (default 1000000),
 *   CLOGS_BENCH_SLICES (default 10): each side's events are sent in this many
 *   slices, interleaved ABBA, so load from other work on a shared machine
 *   falls on both sides alike,
 *   CLOGS_BENCH_COLLECTOR=0 skips the whole-collector run
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Client } from '@elastic/elasticsearch';
import { EncodedBatch } from '../src/collector/encoded.js';
import type { LogEvent } from '../src/collector/event.js';
import { encodeLine } from '../src/collector/event-json.js';
import { encodeMsgpack } from '../src/collector/forward/encode.js';
import { LineFields } from '../src/collector/line-fields.js';
import { formatNanoTime } from '../src/collector/time.js';
import { elasticsearchSchema } from '../src/config/schema.js';
import { createLogger } from '../src/log.js';
import { eventsOut } from '../src/metrics.js';
import { BulkEncoder, resolveTarget } from '../src/sinks/elasticsearch/bulk.js';
import { documentIdOfLine } from '../src/sinks/elasticsearch/document-id.js';
import { createElasticsearchSink } from '../src/sinks/elasticsearch/index.js';
import { DiskQueue } from '../src/sinks/elasticsearch/queue.js';
import type { Sink } from '../src/sinks/sink.js';
import { ensureTemplate } from '../src/sinks/elasticsearch/template.js';
import { cpuSeconds } from './proc.js';
import { dockerEntry, mpStr, packedRequest, sampleContainers, sampleLine, sendAll } from './samples.js';

const URL = process.env.CLOGS_BENCH_ES_URL ?? 'http://127.0.0.1:9200';
const TOTAL = Number(process.env.CLOGS_BENCH_EVENTS ?? 1_000_000);
const SLICES = Number(process.env.CLOGS_BENCH_SLICES ?? 10);
const WRITE_BATCH = 1000;
const CONTAINERS = 20;
const defaults = elasticsearchSchema.parse({ url: URL });
const BATCH_EVENTS = defaults.batch_events;
const IN_FLIGHT = defaults.in_flight;

const metas = sampleContainers(CONTAINERS);
const host = { name: 'bench-host' };
const fields = new LineFields();

/** Events [from, from+count): every one distinct, so none is a 409. Built on demand to keep memory flat. */
function makeEvents(from: number, count: number): LogEvent[] {
  const out: LogEvent[] = [];
  for (let n = from; n < from + count; n++) {
    const event: LogEvent = {
      '@timestamp': formatNanoTime(1_795_000_000 + Math.floor(n / 1000), (n * 7919) % 1_000_000_000),
      message: sampleLine(n),
      stream: n % 9 === 0 ? 'stderr' : 'stdout',
      container: metas[n % CONTAINERS]!,
      host,
      clogs: { input: 'docker', seq: 1_795_000_000_000_000 + n, ordinal: 0 },
    };
    if (n % 4 === 0) {
      event.log = { level: n % 8 === 0 ? 'info' : 'error' };
      event.attrs = { pid: 4242, hostname: 'web-1', req: { method: 'GET', url: `/api/v1/orders/${n}` }, responseTime: n % 97 };
    }
    out.push(event);
  }
  return out;
}

interface Figure {
  seconds: number;
  rate: number;
  cpuSeconds: number;
}

/** Time and CPU summed over the slices one side ran. */
class Tally {
  seconds = 0;
  cpuSeconds = 0;
  events = 0;

  async time(events: number, work: () => Promise<void>): Promise<void> {
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    await work();
    this.seconds += Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu = process.cpuUsage(cpu0);
    this.cpuSeconds += (cpu.user + cpu.system) / 1e6;
    this.events += events;
  }

  figure(): Figure {
    return { seconds: this.seconds, rate: this.events / this.seconds, cpuSeconds: this.cpuSeconds };
  }
}

async function prepare(client: Client, dataset: string): Promise<string> {
  await ensureTemplate(client, resolveTarget({ data_stream: { dataset, namespace: 'default' } }), new AbortController().signal);
  return `logs-${dataset}-default`;
}

async function countOf(client: Client, stream: string): Promise<number> {
  await client.indices.refresh({ index: stream });
  return (await client.count({ index: stream })).count;
}

/** The plain loop: events [from, to) in requests of BATCH_EVENTS, IN_FLIGHT at once. */
async function directSlice(client: Client, stream: string, from: number, to: number): Promise<void> {
  let next = from;
  const worker = async (): Promise<void> => {
    for (;;) {
      const at = next;
      if (at >= to) return;
      next += BATCH_EVENTS;
      const events = makeEvents(at, Math.min(BATCH_EVENTS, to - at));
      const operations: unknown[] = [];
      for (const e of events) {
        fields.read(Buffer.from(encodeLine(e)), 0);
        operations.push({ create: { _index: stream, _id: documentIdOfLine(fields, e.container) } }, e);
      }
      const res = await client.bulk({ operations: operations as never, filter_path: 'errors,items.*.status,items.*.error' });
      if (res.errors) throw new Error(`direct bulk: item errors: ${JSON.stringify(res.items.find((i) => Object.values(i)[0]?.error))}`);
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
}

async function delivered(): Promise<number> {
  return (await eventsOut.get()).values.find((v) => v.labels.sink === 'elasticsearch')?.value ?? 0;
}

/** Through the sink: events [from, to) written in batches of WRITE_BATCH by 4 writers, until all are delivered. */
async function sinkSlice(sink: Sink, from: number, to: number): Promise<void> {
  const before = await delivered();
  // Several writers at once, as several connections would: group commit shares their fsyncs.
  let next = from;
  const writer = async (): Promise<void> => {
    for (;;) {
      const at = next;
      if (at >= to) return;
      next += WRITE_BATCH;
      await sink.write(EncodedBatch.of(makeEvents(at, Math.min(WRITE_BATCH, to - at))));
    }
  };
  await Promise.all(Array.from({ length: 4 }, writer));
  while ((await delivered()) - before < to - from) await new Promise((r) => setTimeout(r, 10));
}

/**
 * Both sides, TOTAL events each, in SLICES interleaved slices (ABBA order):
 * on a shared machine, load that comes and goes hits both alike.
 */
async function sideBySide(client: Client, tag: string): Promise<{ direct: Figure; clogs: Figure }> {
  const directStream = await prepare(client, `benchdirect${tag}`);
  const dataset = `benchclogs${tag}`;
  const clogsStream = await prepare(client, dataset);
  const state = mkdtempSync(join(tmpdir(), 'clogs-bench-es-'));
  const sink = createElasticsearchSink(elasticsearchSchema.parse({ url: URL, data_stream: { dataset, namespace: 'default' } }), {
    log: createLogger('warn'),
    stateDir: state,
  });
  const direct = new Tally();
  const clogs = new Tally();
  try {
    await sink.start();
    const size = Math.ceil(TOTAL / SLICES);
    for (let k = 0; k < SLICES; k++) {
      const from = k * size;
      const to = Math.min(TOTAL, from + size);
      const runDirect = (): Promise<void> => direct.time(to - from, () => directSlice(client, directStream, from, to));
      const runClogs = (): Promise<void> => clogs.time(to - from, () => sinkSlice(sink, from, to));
      if (k % 4 === 0 || k % 4 === 3) {
        await runDirect();
        await runClogs();
      } else {
        await runClogs();
        await runDirect();
      }
    }
    await sink.close();
  } finally {
    rmSync(state, { recursive: true, force: true });
  }
  for (const stream of [directStream, clogsStream]) {
    const n = await countOf(client, stream);
    if (n !== TOTAL) throw new Error(`${n} documents in ${stream}, expected ${TOTAL}`);
  }
  return { direct: direct.figure(), clogs: clogs.figure() };
}

// --- the whole collector ------------------------------------------------------

const CLI = join(process.cwd(), 'dist/src/clogs.cjs');

/** PackedForward requests of 1000 Docker-driver records each (EventTime, container_id/name, source, log), one container per request. */
function forwardRequests(total: number): Buffer[] {
  const requests: Buffer[] = [];
  for (let r = 0, n = 0; n < total; r++) {
    const c = r % CONTAINERS;
    const meta = metas[c]!;
    const entries: Buffer[] = [];
    for (let i = 0; i < WRITE_BATCH && n < total; i++, n++) entries.push(dockerEntry(n, meta, sampleLine(n)));
    requests.push(packedRequest(`docker.${meta.id!.slice(0, 12)}`, entries, encodeMsgpack({ chunk: `b-${r}` })));
  }
  return requests;
}

function procCpuSeconds(pid: number): number {
  const { user, system } = cpuSeconds(pid);
  return user + system;
}

async function deliveredByCollector(http: string): Promise<number> {
  const text = await (await fetch(`http://${http}/metrics`)).text();
  const m = /^clogs_sink_events_total\{sink="elasticsearch"\} (\d+)/m.exec(text);
  return Number(m?.[1] ?? 0);
}

async function throughCollector(client: Client, dataset: string): Promise<Figure & { ackSeconds: number }> {
  const stream = `logs-${dataset}-default`;
  const requests = forwardRequests(TOTAL);
  const state = mkdtempSync(join(tmpdir(), 'clogs-bench-es-collector-'));
  const child = spawn(process.execPath, [CLI, 'collect', '--no-docker', '--forward', '127.0.0.1:0', '--http', '127.0.0.1:0', '--es', URL, '--state', state], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, CLOGS_SINKS_FILE_ENABLED: 'false', CLOGS_SINKS_ELASTICSEARCH_DATA_STREAM_DATASET: dataset },
  });
  try {
    const ready = await new Promise<{ forward: string; http: string }>((resolve, reject) => {
      createInterface({ input: child.stdout! }).on('line', (line) => {
        if (line.includes('"msg":"ready"')) resolve(JSON.parse(line) as { forward: string; http: string });
      });
      child.once('exit', (code) => reject(new Error(`collector exited with ${code} before it was ready`)));
    });
    const cpu0 = procCpuSeconds(child.pid!);
    const t0 = process.hrtime.bigint();
    // One connection, written as fast as the socket takes it; every request is acked once queued on disk.
    const ackSeconds = await new Promise<number>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port: Number(ready.forward.split(':').pop()) });
      const lastAck = Buffer.concat([Buffer.of(0x81), mpStr('ack'), mpStr(`b-${requests.length - 1}`)]);
      let tail = Buffer.alloc(0);
      socket.on('data', (d: Buffer) => {
        tail = Buffer.concat([tail, d]).subarray(-lastAck.length);
        if (tail.equals(lastAck)) {
          socket.end();
          resolve(Number(process.hrtime.bigint() - t0) / 1e9);
        }
      });
      socket.on('error', reject);
      socket.once('connect', () => sendAll(socket, requests));
    });
    while ((await deliveredByCollector(ready.http)) < TOTAL) await new Promise((r) => setTimeout(r, 50));
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpuSeconds = procCpuSeconds(child.pid!) - cpu0;
    const n = await countOf(client, stream);
    if (n !== TOTAL) throw new Error(`collector: ${n} documents in ${stream}, expected ${TOTAL}`);
    return { seconds, rate: TOTAL / seconds, cpuSeconds, ackSeconds };
  } finally {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
    rmSync(state, { recursive: true, force: true });
  }
}

const fmt = (n: number): string => Math.round(n).toLocaleString('en');

/** The disk queue's own CPU per 1M events: append (with fsync), read, take each request's body, release. */
async function queueCpu(): Promise<number> {
  const events = Math.min(TOTAL, 500_000);
  const encoder = new BulkEncoder(resolveTarget(defaults));
  const root = mkdtempSync(join(tmpdir(), 'clogs-bench-queue-'));
  const queue = await DiskQueue.open({ dir: root, maxBytes: defaults.queue_max_size, log: createLogger('silent') });
  try {
    let cpu = 0;
    for (let from = 0; from < events; from += 20 * WRITE_BATCH) {
      const payloads: Buffer[] = [];
      for (let at = from; at < Math.min(events, from + 20 * WRITE_BATCH); at += WRITE_BATCH) payloads.push(encoder.encode(EncodedBatch.of(makeEvents(at, WRITE_BATCH))));
      const c0 = process.cpuUsage();
      await Promise.all(payloads.map((p) => queue.append(p, WRITE_BATCH)));
      for (let batch = await queue.read(BATCH_EVENTS, defaults.batch_size); batch; batch = await queue.read(BATCH_EVENTS, defaults.batch_size)) {
        if (batch.entries.body.length === 0) throw new Error('an empty request body');
        queue.release(batch);
      }
      const c = process.cpuUsage(c0);
      cpu += (c.user + c.system) / 1e6;
    }
    return (cpu * 1_000_000) / events;
  } finally {
    await queue.close();
    rmSync(root, { recursive: true, force: true });
  }
}

export async function run(): Promise<void> {
  console.log(`elasticsearch disk queue alone (append x ${WRITE_BATCH} + fsync, read x ${BATCH_EVENTS}, release): CPU ${(await queueCpu()).toFixed(2)} s per 1M events`);
  const client = new Client({ node: URL, requestTimeout: 120_000 });
  try {
    await client.cluster.health({ wait_for_status: 'yellow', timeout: '30s' });
  } catch (err) {
    throw new Error(`Elasticsearch is not reachable at ${URL}: run scripts/elasticsearch.sh ensure (${(err as Error).message})`);
  }
  const tag = Date.now().toString(36);
  try {
    // Elasticsearch's JIT and the first data stream's creation would be charged to whichever side goes first.
    const warm = await prepare(client, `benchwarmup${tag}`);
    await directSlice(client, warm, 0, Math.min(TOTAL, 100_000));
    const load0 = loadavg()[0]!;
    const { direct, clogs } = await sideBySide(client, tag);
    const load = `load ${load0.toFixed(1)} -> ${loadavg()[0]!.toFixed(1)}`;
    console.log(
      `elasticsearch direct client.bulk (${IN_FLIGHT} in flight x ${BATCH_EVENTS} docs, no disk): ${fmt(direct.rate)} events/s ` +
        `(${fmt(TOTAL)} in ${direct.seconds.toFixed(1)} s over ${SLICES} slices, client CPU ${direct.cpuSeconds.toFixed(1)} s)`,
    );
    console.log(
      `elasticsearch through the clogs sink (write() x ${WRITE_BATCH}, disk queue + fsync, same batches and in-flight): ${fmt(clogs.rate)} events/s ` +
        `(${fmt(TOTAL)} in ${clogs.seconds.toFixed(1)} s over ${SLICES} slices, client CPU ${clogs.cpuSeconds.toFixed(1)} s)`,
    );
    console.log(`elasticsearch clogs sink / direct: ${((clogs.rate / direct.rate) * 100).toFixed(0)}% (target >= 90%; slices interleaved ABBA, ${load})`);
    if (process.env.CLOGS_BENCH_COLLECTOR !== '0') {
      const w = await throughCollector(client, `benchcollector${tag}`);
      console.log(
        `elasticsearch through the whole collector (forward PackedForward x ${WRITE_BATCH} -> clogs collect --es): ${fmt(w.rate)} events/s ` +
          `(${fmt(TOTAL)} in ${w.seconds.toFixed(1)} s; last ack after ${w.ackSeconds.toFixed(1)} s; collector CPU ${w.cpuSeconds.toFixed(1)} s; ` +
          `${((w.rate / direct.rate) * 100).toFixed(0)}% of direct, not interleaved; load ${loadavg()[0]!.toFixed(1)})`,
      );
    }
  } finally {
    await client.close();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv[2] === 'queue') console.log(`elasticsearch disk queue alone: CPU ${(await queueCpu()).toFixed(2)} s per 1M events`);
  else await run();
}
