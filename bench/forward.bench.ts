/**
 * Forward input throughput and memory, side by side with Fluent Bit.
 *
 * End to end (`packed`, `message`): 1,000,000 Docker-shaped records from 20
 * containers whose lines are the realistic mix of samples.ts, pre-encoded once
 * and streamed over one loopback connection into `clogs collect` (file sink,
 * fsync per batch) and into Fluent Bit (in_forward → out_file), alternately,
 * CLOGS_BENCH_RUNS times each. The clock stops when the last line is on disk,
 * for both. Fluent Bit acks on ingest into memory and flushes once a second;
 * clogs writes each batch durably (O_DSYNC) before it acks, so it does strictly
 * more per record; requests without acks (Message mode) it writes at once and
 * syncs within a second. Fluent Bit's flush makes its figure depend on the
 * run's length: with 500,000 records, up to a second of waiting for it is a
 * large part of its time; the default of 1,000,000 is the fairer measure.
 * The ratio that counts is clogs/Fluent Bit, pair by pair: it survives the
 * machine's drift, an absolute figure does not.
 *   packed   PackedForward requests of 1000 records, each with a `chunk` (acked)
 *   message  Message mode as Docker's fluentd driver sends it by default:
 *            `[tag, EventTime, record, {}]`, one record per request, no ack;
 *            the 20 containers take turns on the one connection
 *   message-conns  the same requests on 20 connections, one per container,
 *            as Docker's driver connects (a logger per container)
 *   message-cost  clogs against itself: its CPU for message-conns against
 *            its CPU for the same records in PackedForward, pair by pair,
 *            on a fresh collector and for as many more once it has run them
 *   loose    records without a container, as Fluent Bit's forward output
 *            sends the lines its tail input read: PackedForward requests of
 *            1000 `{log}` records under 20 file tags, each with a `chunk`
 *
 * clogs against itself:
 *   enrich   `forward.enrich` auto vs off, PackedForward from 20 containers
 *            the engine knows (created, never started, with the samples'
 *            compose labels: the lookups and the metadata in every line), then
 *            from 20 it does not know (the lookups alone); needs the Docker
 *            engine and clogs-busybox:latest
 *   tail     PackedForward with one `/tail` client attached (following a
 *            container that is not in the stream) vs without: the ratio
 *   es       200,000 records (CLOGS_BENCH_ES_RECORDS), then as many more to the
 *            same collector (first pass and second), file sink plus the Elasticsearch sink vs the
 *            file sink alone: the collector's CPU until Elasticsearch counts
 *            every record, and the ratio (needs Elasticsearch at CLOGS_BENCH_ES_URL,
 *            default http://127.0.0.1:9200)
 *   tiny     peak RSS when requests render to much more than their wire size:
 *            two connections at once, each one legal PackedForward request of
 *            just under 8 MiB of `[0, {}]` entries (3 bytes each); 500
 *            connections at once, each one such request of 16 KiB; and 32
 *            records of 1 MiB each, one per request, over two connections
 *
 * Micro: in process, on the same PackedForward requests, in CPU time
 * (steadier than wall time on a shared machine): the decoder alone, the
 * general path to NDJSON lines (decoder, records.ts, Normalizer,
 * event-json.ts) and the fast path (packed-lines.ts), also with every
 * container's metadata from a container directory (forward.enrich); and the
 * same records in Message mode, framed and rendered as a connection does.
 *
 *   npm run build && node dist/bench/forward.bench.js [all|micro|packed|message|message-conns|message-cost|loose|enrich|tail|es|tiny]
 *   CLOGS_BENCH_RECORDS (default 1000000), CLOGS_BENCH_RUNS (default 3),
 *   CLOGS_BENCH_ES_RECORDS (es: default 200000 or fewer, see ES_TOTAL),
 *   FLUENT_BIT (default test/tools/fluent-bit/fluent-bit)
 *   CLOGS_BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=DIR" profiles the collector
 */
import { execFileSync } from 'node:child_process';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { encodeMsgpack } from '../src/collector/forward/encode.js';
import { EncodedBatch } from '../src/collector/encoded.js';
import { DecodeCache, decodeEntries, decodeRequest } from '../src/collector/forward/decoder.js';
import { PackedLineEncoder } from '../src/collector/forward/packed-lines.js';
import { SLICE_BYTES, SLICE_ENTRIES } from '../src/collector/forward/render-budget.js';
import { Framer } from '../src/collector/forward/framer.js';
import { RecordMapper } from '../src/collector/forward/records.js';
import type { ContainerDirectory } from '../src/collector/containers.js';
import type { ContainerMeta, LogEvent } from '../src/collector/event.js';
import type { ForwardEntry } from '../src/collector/forward/messages.js';
import { Normalizer } from '../src/collector/normalize.js';
import { multilineSchema } from '../src/config/schema.js';
import { cpuSeconds, diskStats, memoryMb } from './proc.js';
import { DiskLines, fluentBitBinary, startClogs, startFluentBit, type Receiver } from './receivers.js';
import { dockerEntry, mpStr, packedRequest, sampleContainers, sampleLine, sendAll, tailEntry } from './samples.js';

const TOTAL = Number(process.env.CLOGS_BENCH_RECORDS ?? 1_000_000);
/** Runs per receiver: the development VM's rate varies by a quarter from run to run. */
const RUNS = Number(process.env.CLOGS_BENCH_RUNS ?? 3);
/**
 * `es`: records per run. The default keeps a run under a minute; a run's fixed
 * costs (the JIT compiling each side's code) then weigh five times as much
 * per 1M as with 1,000,000, more for the file sink alone, whose runs are short.
 */
const ES_TOTAL = Number(process.env.CLOGS_BENCH_ES_RECORDS ?? Math.min(TOTAL, 200_000));
const ES_URL = process.env.CLOGS_BENCH_ES_URL ?? 'http://127.0.0.1:9200';
const PER_REQUEST = 1000;
/** What one socket read brings at most (libuv reads 64 KiB at a time). */
const READ_BYTES = 64 * 1024;
/** `tiny`: clients at once in its many-connections case (below max_connections), and 1 MiB records in its big-record case. */
const MANY_CONNECTIONS = 500;
const BIG_RECORDS = 32;
const CONTAINERS = 20;
const MAX_FRAME = 8 * 1024 * 1024;
const LIMITS = { maxFrameSize: MAX_FRAME, maxRecordKeys: 1024 };
const containers = sampleContainers(CONTAINERS);

const entry = (n: number): Buffer => dockerEntry(n, containers[n % CONTAINERS]!, sampleLine(n));

/** PackedForward requests of PER_REQUEST records, one container per request (one tag per chunk, as a relay sends them). */
function packedRequests(total: number, from: readonly ContainerMeta[] = containers, first = 0): Buffer[] {
  const requests: Buffer[] = [];
  for (let r = 0, n = first; n < first + total; r++) {
    const c = r % from.length;
    const entries: Buffer[] = [];
    for (let i = 0; i < PER_REQUEST && n < first + total; i++, n++) entries.push(dockerEntry(n, from[c]!, sampleLine(n)));
    requests.push(packedRequest(`docker.${from[c]!.id!.slice(0, 12)}`, entries, encodeMsgpack({ chunk: `bench-${first}-${r}`, size: entries.length })));
  }
  return requests;
}

/** PackedForward requests of PER_REQUEST records without a container, one file's tag per request. */
function looseRequests(total: number): Buffer[] {
  const requests: Buffer[] = [];
  for (let r = 0, n = 0; n < total; r++) {
    const entries: Buffer[] = [];
    for (let i = 0; i < PER_REQUEST && n < total; i++, n++) entries.push(tailEntry(n, sampleLine(n)));
    requests.push(packedRequest(`tail.var.log.app-${r % CONTAINERS}.log`, entries, encodeMsgpack({ chunk: `bench-${r}`, size: entries.length })));
  }
  return requests;
}

/** The sample containers, created in the engine (never started) with their labels: their ids as the engine gave them, the names the driver would send. */
function createContainers(): ContainerMeta[] {
  return containers.map((c) => {
    const name = `clogs-bench-${process.pid}-${c.name!}`;
    const labels = Object.entries(c.labels ?? {}).flatMap(([k, v]) => ['--label', `${k}=${v}`]);
    const id = execFileSync('docker', ['create', '--name', name, ...labels, 'clogs-busybox:latest', 'true'], { encoding: 'utf8' }).trim();
    return { ...c, id, name };
  });
}

/** Message-mode requests as Docker's driver sends them by default: `[tag, time, record, {}]`. */
function messageRequests(total: number, first = 0): Buffer[] {
  const requests: Buffer[] = [];
  for (let n = first; n < first + total; n++) {
    requests.push(Buffer.concat([Buffer.of(0x94), mpStr(containers[n % CONTAINERS]!.id!.slice(0, 12)), entry(n).subarray(1), Buffer.of(0x80)]));
  }
  return requests;
}

/** messageRequests() grouped by container, `total / CONTAINERS` of each, for a connection per container. */
function messageRequestsByContainer(total: number, first = 0): Buffer[] {
  const all = messageRequests(total - (total % CONTAINERS), first);
  const grouped: Buffer[] = [];
  for (let c = 0; c < CONTAINERS; c++) for (let n = c; n < all.length; n += CONTAINERS) grouped.push(all[n]!);
  return grouped;
}

/** `count` requests of `bytes` (at most MAX_FRAME) of `[0, {}]` entries; just under MAX_FRAME is the most records a legal request can hold. */
function tinyRequests(count: number, bytes = MAX_FRAME): { requests: Buffer[]; records: number } {
  const tiny = Buffer.of(0x92, 0x00, 0x80);
  const records = Math.floor((bytes - 64) / tiny.length);
  const body = Buffer.alloc(records * tiny.length);
  for (let i = 0; i < records; i++) tiny.copy(body, i * tiny.length);
  const requests = Array.from({ length: count }, (_, i) => packedRequest('tiny', [body], encodeMsgpack({ chunk: `tiny-${i}` })));
  return { requests, records };
}

/** `count` requests of one Docker record each, whose line is 1 MiB of text (just under max_line_size, so one line on disk). */
function bigRecordRequests(count: number): Buffer[] {
  const line = 'x'.repeat(1024 * 1024 - 64);
  return Array.from({ length: count }, (_, i) => packedRequest('big', [dockerEntry(i, containers[0]!, line)], encodeMsgpack({ chunk: `big-${i}` })));
}

interface Figure {
  rate: number;
  seconds: number;
  cpu: number;
  peakMb: number;
  /**
   * Share of the run the receiver's disk had a request in flight, and the
   * cache flushes it completed: what durable writes cost that CPU does not show.
   */
  diskBusy: number;
  flushes: number;
}

/**
 * Streams the requests over `connections` connections and waits for their
 * last line on disk; `lines`: the receiver's lines counted so far, when it
 * took requests before.
 */
async function measure(receiver: Receiver, requests: readonly Buffer[], records: number, connections = 1, lines = new DiskLines(receiver.dataDir)): Promise<Figure> {
  const expected = lines.poll() + records;
  const cpu0 = cpuSeconds(receiver.pid);
  const disk0 = diskStats(receiver.dataDir);
  const sockets: Socket[] = [];
  const t0 = process.hrtime.bigint();
  const per = Math.ceil(requests.length / connections);
  for (let c = 0; c < connections; c++) {
    const socket = connect({ host: '127.0.0.1', port: receiver.port });
    socket.on('data', () => undefined);
    socket.on('error', (err) => process.stderr.write(`${receiver.name} connection: ${err.message}\n`));
    socket.once('connect', () => sendAll(socket, requests.slice(c * per, (c + 1) * per)));
    sockets.push(socket);
  }
  while (lines.poll() < expected) await new Promise((r) => setTimeout(r, 25));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu1 = cpuSeconds(receiver.pid);
  const disk1 = diskStats(receiver.dataDir);
  const peakMb = memoryMb(receiver.pid).peakMb;
  for (const s of sockets) s.destroy();
  if (lines.count !== expected) throw new Error(`${receiver.name}: ${lines.count} lines on disk, expected ${expected}`);
  return {
    rate: records / seconds,
    seconds,
    cpu: cpu1.user + cpu1.system - cpu0.user - cpu0.system,
    peakMb,
    diskBusy: disk0 && disk1 ? (disk1.busyMs - disk0.busyMs) / 1000 / seconds : NaN,
    flushes: disk0 && disk1 ? disk1.flushes - disk0.flushes : NaN,
  };
}

const fmt = (n: number): string => Math.round(n).toLocaleString('en');
const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const range = (xs: readonly number[]): string => `${fmt(Math.min(...xs))}-${fmt(Math.max(...xs))}`;

function describe(name: string, figures: readonly Figure[]): string {
  const rates = figures.map((f) => f.rate);
  return (
    `${name} median ${fmt(median(rates))} records/s (${range(rates)}), ` +
    `CPU ${median(figures.map((f) => f.cpu)).toFixed(1)} s, peak RSS ${fmt(median(figures.map((f) => f.peakMb)))} MB, ` +
    `disk busy ${(100 * median(figures.map((f) => f.diskBusy))).toFixed(0)} % of the run with ${fmt(median(figures.map((f) => f.flushes)))} cache flushes`
  );
}

/** Runs A and B in turn, RUNS times each, and prints both and the median of the pairwise ratios A/B. */
async function pairwise(label: string, a: { name: string; run: () => Promise<Figure> }, b: { name: string; run: () => Promise<Figure> }): Promise<void> {
  const fa: Figure[] = [];
  const fb: Figure[] = [];
  for (let i = 0; i < RUNS; i++) {
    fa.push(await a.run());
    fb.push(await b.run());
  }
  const ratios = fa.map((f, i) => f.rate / fb[i]!.rate);
  console.log(`forward ${label}: ${describe(a.name, fa)}; ${describe(b.name, fb)}`);
  console.log(`forward ${label}: ${a.name}/${b.name} = ${median(ratios).toFixed(2)} (median of ${RUNS} pairs, ${ratios.map((r) => r.toFixed(2)).join(' ')})`);
}

async function once(start: () => Promise<Receiver>, requests: readonly Buffer[], records: number, connections = 1): Promise<Figure> {
  const receiver = await start();
  try {
    return await measure(receiver, requests, records, connections);
  } finally {
    await receiver.stop();
  }
}

/** clogs against Fluent Bit on the same bytes. */
async function versusFluentBit(label: string, requests: readonly Buffer[], records: number, connections = 1): Promise<void> {
  const binary = fluentBitBinary();
  await pairwise(
    label,
    { name: 'clogs', run: () => once(() => startClogs(), requests, records, connections) },
    { name: 'fluent-bit', run: () => once(() => startFluentBit(binary), requests, records, connections) },
  );
}

/** A `/tail` client following a container that is not in the stream: the live path runs for every batch, and sends nothing. */
function attachTail(http: string): () => void {
  const req = request({ host: http.split(':')[0], port: Number(http.split(':').pop()), path: '/tail?container=not-in-the-stream' });
  req.on('response', (res) => res.resume());
  req.on('error', () => undefined);
  req.end();
  return () => req.destroy();
}

async function withTail(requests: readonly Buffer[], records: number): Promise<Figure> {
  const receiver = await startClogs();
  const detach = attachTail(receiver.http!);
  try {
    // Let the subscription register before the first request arrives.
    await new Promise((r) => setTimeout(r, 200));
    return await measure(receiver, requests, records);
  } finally {
    detach();
    await receiver.stop();
  }
}

/**
 * Documents in the run's data stream, as of Elasticsearch's last refresh (at
 * most a second old). Asked of Elasticsearch, not of the collector's
 * /metrics: each /metrics answer cost the collector about 3.5 ms of CPU, which
 * counted against the sink in a run that asked twice a second.
 */
async function documentsIndexed(dataset: string): Promise<number> {
  const res = await fetch(`${ES_URL}/logs-${dataset}-*/_count`);
  if (!res.ok) throw new Error(`Elasticsearch answered ${res.status} to _count: ${await res.text()}`);
  return ((await res.json()) as { count: number }).count;
}

/** Stalled delivery fails the run: the sink retries for ever, so waiting on it would too. */
const DELIVERY_STALL_MS = 120_000;

/** Waits until Elasticsearch holds `delivered` documents of the run's data stream, asking twice a second. */
async function delivery(receiver: Receiver, dataset: string, delivered: number): Promise<void> {
  let seen = -1;
  let since = Date.now();
  for (;;) {
    const now = await documentsIndexed(dataset);
    if (now >= delivered) return;
    if (now !== seen) [seen, since] = [now, Date.now()];
    else if (Date.now() - since > DELIVERY_STALL_MS) {
      throw new Error(`Elasticsearch took no event for ${DELIVERY_STALL_MS / 1000} s (${now} of ${delivered}); the collector's last warning: ${receiver.lastWarning?.() ?? 'none'}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

/**
 * The collector's CPU for each pass of requests in turn (`records` each, on
 * `connections` connections), until every record of the pass is in the files
 * and, with `es`, delivered to Elasticsearch too; `ingest` is the part until
 * the last line is in the files, the rest is the sender's while
 * Elasticsearch indexes.
 */
/** Per pass: the collector's CPU until delivered, until the last line was in the files, and its peak RSS so far. */
async function collectorCpu(passes: readonly (readonly Buffer[])[], records: number, es: boolean, connections = 1): Promise<{ total: number; ingest: number; peakMb: number }[]> {
  const dataset = `benchforward${Date.now().toString(36)}`;
  const receiver = await startClogs(es ? ['--es', ES_URL] : [], es ? { CLOGS_SINKS_ELASTICSEARCH_DATA_STREAM_DATASET: dataset } : {});
  try {
    const lines = new DiskLines(receiver.dataDir);
    const figures: { total: number; ingest: number; peakMb: number }[] = [];
    for (const requests of passes) {
      const cpu0 = cpuSeconds(receiver.pid);
      const { cpu: ingest } = await measure(receiver, requests, records, connections, lines);
      const delivered = records * (figures.length + 1);
      if (es) await delivery(receiver, dataset, delivered);
      const cpu1 = cpuSeconds(receiver.pid);
      figures.push({ total: cpu1.user + cpu1.system - cpu0.user - cpu0.system, ingest, peakMb: memoryMb(receiver.pid).peakMb });
    }
    return figures;
  } finally {
    await receiver.stop();
  }
}

function micro(records: number): void {
  const requests = packedRequests(records);
  const newNormalizer = (multiline: boolean): Normalizer =>
    new Normalizer({
      hostName: 'bench',
      nextSeq: () => 0,
      parseJson: true,
      parseLogfmt: true,
      stripAnsi: true,
      maxLineBytes: 1 << 20,
      partialTimeoutMs: 5000,
      onTimeoutFlush: () => undefined,
      ...(multiline ? { multiline: multilineSchema.parse({}) } : {}),
    });
  /**
   * CPU ns per record of `each` over every PackedForward request. `each`
   * returns the events it made: one per record, fewer when traces are joined.
   */
  const cpuPerRecord = (each: (tag: string, entries: Buffer) => number, joins = false): number => {
    const framer = new Framer(LIMITS.maxFrameSize);
    const frames: Buffer[] = [];
    let seen = 0;
    const cpu0 = process.cpuUsage();
    for (const r of requests) {
      framer.push(r, frames);
      for (const f of frames) {
        const m = decodeRequest(f, LIMITS);
        if (m.mode !== 'PackedForward') throw new Error(m.mode);
        seen += each(m.tag, m.entries);
      }
      frames.length = 0;
    }
    if (joins ? seen > records || seen === 0 : seen !== records) throw new Error(`handled ${seen}`);
    const cpu = process.cpuUsage(cpu0);
    return ((cpu.user + cpu.system) * 1000) / records;
  };
  const decode = (): number => cpuPerRecord((_tag, entries) => decodeEntries(entries, LIMITS).length);
  const general = (multiline = false): number => {
    const mapper = new RecordMapper();
    const normalizer = newNormalizer(multiline);
    return cpuPerRecord((tag, entries) => {
      const batch = new EncodedBatch();
      for (const e of decodeEntries(entries, LIMITS)) batch.add(normalizer.push(mapper.toRawLine(e, tag)));
      return batch.count;
    }, multiline);
  };
  const fast = (multiline = false, containers?: ContainerDirectory): number => {
    const mapper = new RecordMapper(containers);
    const normalizer = newNormalizer(multiline);
    const lines = new PackedLineEncoder({ normalizer, mapper, limits: LIMITS, cache: new DecodeCache() });
    return cpuPerRecord((tag, entries) => {
      const batch = new EncodedBatch();
      // As a connection does: read through once, then render in slices.
      lines.check(entries, SLICE_ENTRIES);
      for (let pos = 0; pos < entries.length; ) {
        pos = lines.encodeSlice(entries, pos, tag, batch, (e) => normalizer.push(mapper.toRawLine(e, tag)), SLICE_ENTRIES, SLICE_BYTES);
      }
      return batch.count;
    }, multiline);
  };
  /**
   * Message mode as a connection reads it (requests.ts): the same records one
   * per request, from the 20 containers in turn, in reads of READ_BYTES,
   * framed, and each run of requests that lie back to back in a read checked
   * and rendered together.
   */
  const messages = (): number => {
    const mapper = new RecordMapper();
    const normalizer = newNormalizer(false);
    const lines = new PackedLineEncoder({ normalizer, mapper, limits: LIMITS, cache: new DecodeCache() });
    const general = (e: ForwardEntry, tag: string): LogEvent[] => normalizer.push(mapper.toRawLine(e, tag));
    const framer = new Framer(LIMITS.maxFrameSize);
    const frames: Buffer[] = [];
    let seen = 0;
    const cpu0 = process.cpuUsage();
    for (let at = 0; at < messageBytes.length; at += READ_BYTES) {
      framer.push(messageBytes.subarray(at, at + READ_BYTES), frames);
      for (let i = 0; i < frames.length; ) {
        const first = frames[i]!;
        let size = first.length;
        for (i++; i < frames.length && frames[i]!.buffer === first.buffer && frames[i]!.byteOffset === first.byteOffset + size; i++) size += frames[i]!.length;
        for (let run = Buffer.from(first.buffer, first.byteOffset, size); run.length > 0; ) {
          const part = lines.checkMessages(run, SLICE_ENTRIES);
          if (part.length === 0) throw new Error('a request the bench sends is not taken with the others');
          const batch = new EncodedBatch();
          for (let pos = 0; pos < part.length; ) pos = lines.encodeSlice(part, pos, undefined, batch, general, SLICE_ENTRIES, SLICE_BYTES);
          seen += batch.count;
          run = run.subarray(part.length);
        }
      }
      frames.length = 0;
    }
    if (seen !== records) throw new Error(`handled ${seen}`);
    const cpu = process.cpuUsage(cpu0);
    return ((cpu.user + cpu.system) * 1000) / records;
  };
  const messageBytes = Buffer.concat(messageRequests(records));
  // Each measured after one warm-up pass, so the JIT has seen the path.
  decode();
  const decodeNs = decode();
  general();
  const generalNs = general();
  fast();
  const fastNs = fast();
  // Every container known, as the engine's answers make them: the metadata in every line.
  const known = new Map(containers.map((c) => [c.id!, c]));
  const directory: ContainerDirectory = { known: (id) => known.get(id), lookup: () => undefined, subscribe: () => () => undefined };
  fast(false, directory);
  const enrichedNs = fast(false, directory);
  // Against packed-lines once more, side by side, so a busy moment does not land on one side only.
  messages();
  let [messageNs, packedNs] = [Infinity, Infinity];
  for (let i = 0; i < 3; i++) {
    messageNs = Math.min(messageNs, messages());
    packedNs = Math.min(packedNs, fast());
  }
  // The mix's stack traces (samples.ts TRACE_AT) joined by the multiline stage,
  // against the same path without it: the best of three runs each, alternating,
  // so a busy moment of a shared machine does not land on one side only.
  general(true);
  fast(true);
  let [generalOffNs, generalMlNs, fastOffNs, fastMlNs] = [Infinity, Infinity, Infinity, Infinity];
  for (let i = 0; i < 3; i++) {
    generalOffNs = Math.min(generalOffNs, general());
    generalMlNs = Math.min(generalMlNs, general(true));
    fastOffNs = Math.min(fastOffNs, fast());
    fastMlNs = Math.min(fastMlNs, fast(true));
  }
  console.log(
    `forward micro (CPU time, one core, realistic mix to NDJSON lines): decode alone ${decodeNs.toFixed(0)} ns/record; ` +
      `general path (decode, map, Normalizer, event-json) ${generalNs.toFixed(0)} ns/record (${fmt(1e9 / generalNs)} records/s); ` +
      `packed-lines (fast path where a line allows it) ${fastNs.toFixed(0)} ns/record (${fmt(1e9 / fastNs)} records/s); ` +
      `packed-lines with container metadata (forward.enrich) ${enrichedNs.toFixed(0)} ns/record (${(enrichedNs / fastNs).toFixed(2)} of the CPU); ` +
      `Message mode, one record per request from the containers in turn (best of 3) ${messageNs.toFixed(0)} vs packed-lines ${packedNs.toFixed(0)} ns/record (${(messageNs / packedNs).toFixed(2)}); ` +
      `multiline auto against off (best of 3): general ${generalMlNs.toFixed(0)} vs ${generalOffNs.toFixed(0)} ns/record (${((generalMlNs / generalOffNs - 1) * 100).toFixed(1)} %), ` +
      `packed-lines ${fastMlNs.toFixed(0)} vs ${fastOffNs.toFixed(0)} ns/record (${((fastMlNs / fastOffNs - 1) * 100).toFixed(1)} %)`,
  );
}

export async function run(which: string = 'all'): Promise<void> {
  const all = which === 'all';
  if (all || which === 'micro') micro(TOTAL);
  if (all || which === 'packed') await versusFluentBit(`PackedForward x${PER_REQUEST}, ${fmt(TOTAL)} records`, packedRequests(TOTAL), TOTAL);
  if (all || which === 'message') await versusFluentBit(`Message mode (Docker's shape, no ack), ${fmt(TOTAL)} records`, messageRequests(TOTAL), TOTAL);
  if (all || which === 'message-conns') {
    const requests = messageRequestsByContainer(TOTAL);
    await versusFluentBit(`Message mode (Docker's shape, no ack), ${fmt(requests.length)} records, a connection per container`, requests, requests.length, CONTAINERS);
  }
  if (all || which === 'message-cost') {
    // Issue 9's "Docker's shape costs per record within 20 % of PackedForward":
    // clogs against itself, in CPU. Each collector takes two sets of records
    // in turn: the first pass pays V8's compiling of each path's code as well (its
    // optimizing compiler runs on threads of its own), the second is what
    // a collector that has run a while pays per record.
    const records = TOTAL - (TOTAL % CONTAINERS);
    const message = [messageRequestsByContainer(records), messageRequestsByContainer(records, records)];
    const packed = [packedRequests(records), packedRequests(records, containers, records)];
    const ratios: [number[], number[]] = [[], []];
    for (let i = 0; i < RUNS; i++) {
      const m = await collectorCpu(message, records, false, CONTAINERS);
      const p = await collectorCpu(packed, records, false);
      for (const pass of [0, 1]) ratios[pass]!.push(m[pass]!.total / p[pass]!.total);
    }
    const show = (xs: readonly number[]): string => `${median(xs).toFixed(2)} (median of ${RUNS} pairs, ${xs.map((r) => r.toFixed(2)).join(' ')})`;
    console.log(
      `forward Message mode (a connection per container) against PackedForward x${PER_REQUEST}, ${fmt(records)} records, clogs CPU per record: ` +
        `first pass ${show(ratios[0])}; second pass ${show(ratios[1])}`,
    );
  }
  if (all || which === 'loose') await versusFluentBit(`PackedForward x${PER_REQUEST} of records without a container (Fluent Bit's tail lines), ${fmt(TOTAL)} records`, looseRequests(TOTAL), TOTAL);
  if (all || which === 'enrich') {
    const known = createContainers();
    try {
      // Known: every line gets the metadata. Unknown (the sample ids): every
      // lookup fails, so the lines are as with `off` and only the lookups cost.
      for (const [what, from] of [['the engine knows', known], ['unknown to the engine', containers]] as const) {
        const requests = packedRequests(TOTAL, from);
        await pairwise(
          `PackedForward x${PER_REQUEST}, ${fmt(TOTAL)} records from containers ${what}`,
          { name: 'enrich auto', run: () => once(() => startClogs(), requests, TOTAL) },
          { name: 'enrich off', run: () => once(() => startClogs([], { CLOGS_FORWARD_ENRICH: 'off' }), requests, TOTAL) },
        );
      }
    } finally {
      execFileSync('docker', ['rm', '-f', ...known.map((c) => c.id!)], { stdio: 'ignore' });
    }
  }
  if (all || which === 'tail') {
    const requests = packedRequests(TOTAL);
    await pairwise(
      `PackedForward x${PER_REQUEST}, ${fmt(TOTAL)} records, live /tail client`,
      { name: 'with /tail', run: () => withTail(requests, TOTAL) },
      { name: 'without', run: () => once(() => startClogs(), requests, TOTAL) },
    );
  }
  if (all || which === 'es') {
    // Each collector takes two sets of records in turn: the first pass also pays V8's compiling of the sink's code
    // and the renderer's on threads of its own, the second is what a
    // collector that has run a while pays.
    const passes = [packedRequests(ES_TOTAL), packedRequests(ES_TOTAL, containers, ES_TOTAL)];
    const fileOnly: number[][] = [[], []];
    const withEs: number[][] = [[], []];
    const withEsIngest: number[][] = [[], []];
    const peaks = { file: [] as number[], es: [] as number[] };
    for (let i = 0; i < RUNS; i++) {
      const file = await collectorCpu(passes, ES_TOTAL, false);
      const es = await collectorCpu(passes, ES_TOTAL, true);
      peaks.file.push(file[1]!.peakMb);
      peaks.es.push(es[1]!.peakMb);
      for (const pass of [0, 1]) {
        fileOnly[pass]!.push(file[pass]!.total);
        withEs[pass]!.push(es[pass]!.total);
        withEsIngest[pass]!.push(es[pass]!.ingest);
      }
    }
    const per1M = (cpu: number) => ((cpu * 1_000_000) / ES_TOTAL).toFixed(1);
    const pass = (i: number, name: string): string =>
      `${name}: file sink ${per1M(median(fileOnly[i]!))} s, file + Elasticsearch ${per1M(median(withEs[i]!))} s ` +
      `(until the last line is in the files ${per1M(median(withEsIngest[i]!))} s); ` +
      `ratio ${(median(withEs[i]!) / median(fileOnly[i]!)).toFixed(2)} (medians of ${RUNS}; runs: ${fileOnly[i]!.map((c, r) => `${per1M(c)}/${per1M(withEs[i]![r]!)}`).join(' ')})`;
    console.log(
      `forward PackedForward x${PER_REQUEST}, ${fmt(ES_TOTAL)} records, collector CPU per 1M records until delivered, ` +
        `${pass(0, 'first pass')}; ${pass(1, 'second pass')}; ` +
        `peak RSS file sink ${fmt(median(peaks.file))} MB, file + Elasticsearch ${fmt(median(peaks.es))} MB`,
    );
  }
  if (all || which === 'tiny') {
    // Requests that render to far more than their wire size, and many clients at once: peak RSS.
    const tinyCase = async (connections: number, bytes?: number): Promise<void> => {
      const { requests, records } = tinyRequests(connections, bytes);
      const f = await once(() => startClogs(), requests, requests.length * records, connections);
      console.log(
        `forward tiny records: ${connections} connections x 1 request of ${fmt(records)} [0,{}] entries (${(requests[0]!.length / 1048576).toFixed(2)} MiB): ` +
          `all ${fmt(requests.length * records)} lines on disk in ${f.seconds.toFixed(1)} s, collector peak RSS ${fmt(f.peakMb)} MB`,
      );
    };
    await tinyCase(2);
    await tinyCase(MANY_CONNECTIONS, 16 * 1024);
    const big = bigRecordRequests(BIG_RECORDS);
    const f = await once(() => startClogs(), big, big.length, 2);
    console.log(
      `forward 1 MiB records: 2 connections x ${BIG_RECORDS / 2} requests of one record: ` +
        `all ${big.length} lines on disk in ${f.seconds.toFixed(1)} s, collector peak RSS ${fmt(f.peakMb)} MB`,
    );
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await run(process.argv[2]);
