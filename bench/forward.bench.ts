/**
 * Forward input throughput.
 *
 * End to end: 1,000,000 Docker-shaped records (20 containers, ~120-byte `log`,
 * 1 in 4 a JSON line, EventTime) pre-encoded as PackedForward requests of
 * 1000 records, each with a `chunk`, streamed over one loopback connection
 * into `clogs collect` with the file sink (fsync per batch). The clock stops
 * at the last ack, which the collector sends only once that line is fsync'd.
 * Reports records/s, the child's CPU seconds (/proc/<pid>/stat utime+stime)
 * and its peak RSS (/proc/<pid>/status VmHWM), and the rate of the same bytes
 * into a process that discards them (the ceiling of one loopback connection).
 * A second run sends 200,000 Message-mode requests, one record and one chunk
 * each, pipelined: Docker's driver's shape, where per-request cost counts.
 *
 * Micro: in process, on the same PackedForward requests, in CPU time
 * (steadier than wall time on a shared machine): the decoder alone, the
 * general path to NDJSON lines (decoder, records.ts, Normalizer,
 * event-json.ts) and the fast path (packed-lines.ts), also on requests of
 * plain lines only and of JSON lines only.
 *
 *   npm run build && node dist/bench/forward.bench.js [e2e|packed|message|micro]
 *   CLOGS_BENCH_RECORDS (default 1000000), CLOGS_BENCH_RUNS (default 3)
 *   CLOGS_BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=DIR" profiles the collector,
 *   CLOGS_BENCH_CHILD_LOG=FILE keeps its stdout (with --trace-gc: heap sizes)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { encodeMsgpack } from '../src/collector/forward/encode.js';
import { EncodedBatch } from '../src/collector/encoded.js';
import { DecodeCache, decodeEntries, decodeRequest } from '../src/collector/forward/decoder.js';
import { PackedLineEncoder } from '../src/collector/forward/packed-lines.js';
import { Framer } from '../src/collector/forward/framer.js';
import { RecordMapper } from '../src/collector/forward/records.js';
import { Normalizer } from '../src/collector/normalize.js';
import { cpuSeconds, memoryMb } from './proc.js';
import { dockerEntry, mpStr, packedRequest, sampleContainers, sampleLine, sendAll } from './samples.js';

const TOTAL = Number(process.env.CLOGS_BENCH_RECORDS ?? 1_000_000);
/** End-to-end runs per mode: the development VM's rate varies by a quarter from run to run. */
const RUNS = Number(process.env.CLOGS_BENCH_RUNS ?? 3);
const PER_REQUEST = 1000;
const MESSAGE_MODE_TOTAL = Math.min(TOTAL, 200_000);
const CONTAINERS = 20;
const LIMITS = { maxFrameSize: 8 * 1024 * 1024, maxRecordKeys: 1024 };
const CLI = join(process.cwd(), 'dist/src/cli.js');
const containers = sampleContainers(CONTAINERS);

/** Which lines the records carry: the mix (1 in 4 JSON), or only one kind (micro). */
type Lines = 'mix' | 'plain' | 'json';

/** ~120 bytes: plain, or (1 in 4 in the mix) a pino-style JSON line. */
function logLine(n: number, lines: Lines): string {
  const s = sampleLine(n);
  if (lines === 'plain' || (lines === 'mix' && n % 4 !== 0)) return s;
  return JSON.stringify({ level: n % 8 === 0 ? 30 : 50, time: 1795000000000 + n, pid: 4242, msg: s.slice(0, 50), req: { url: `/api/v1/orders/${n}` } });
}

const entry = (n: number, c: number, lines: Lines = 'mix'): Buffer => dockerEntry(n, containers[c]!, logLine(n, lines));

/** PackedForward requests of PER_REQUEST records, one container per request (one tag per chunk, as a relay sends them). */
function packedRequests(total: number, lines: Lines = 'mix'): { requests: Buffer[]; lastChunk: string } {
  const requests: Buffer[] = [];
  for (let r = 0, n = 0; n < total; r++) {
    const c = r % CONTAINERS;
    const entries: Buffer[] = [];
    for (let i = 0; i < PER_REQUEST && n < total; i++, n++) entries.push(entry(n, c, lines));
    requests.push(packedRequest(`docker.${containers[c]!.id!.slice(0, 12)}`, entries, encodeMsgpack({ chunk: `bench-${r}`, size: entries.length })));
  }
  return { requests, lastChunk: `bench-${requests.length - 1}` };
}

/** Message-mode requests `[tag, time, record, {chunk}]`, one record each. */
function messageRequests(total: number): { requests: Buffer[]; lastChunk: string } {
  const requests: Buffer[] = [];
  for (let n = 0; n < total; n++) {
    const c = n % CONTAINERS;
    const e = entry(n, c);
    requests.push(Buffer.concat([Buffer.of(0x94), mpStr(containers[c]!.id!.slice(0, 12)), e.subarray(1), encodeMsgpack({ chunk: `m-${n}` })]));
  }
  return { requests, lastChunk: `m-${total - 1}` };
}

interface Collector {
  child: ChildProcess;
  port: number;
  dataDir: string;
  stop(): Promise<void>;
}

async function startCollector(): Promise<Collector> {
  const root = mkdtempSync(join(tmpdir(), 'clogs-bench-forward-'));
  const dataDir = join(root, 'data');
  const nodeArgs = process.env.CLOGS_BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
  const child = spawn(process.execPath, [...nodeArgs, CLI, 'collect', '--no-docker', '--forward', '127.0.0.1:0', '--file', dataDir, '--state', join(root, 'state'), '--http', '127.0.0.1:0'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const ready = await new Promise<{ forward: string }>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    const tee = process.env.CLOGS_BENCH_CHILD_LOG;
    lines.on('line', (line) => {
      if (tee) appendFileSync(tee, line + '\n');
      if (!line.includes('"msg":"ready"')) return;
      resolve(JSON.parse(line) as { forward: string });
    });
    child.once('exit', (code) => reject(new Error(`collector exited with ${code} before it was ready`)));
  });
  return {
    child,
    port: Number(ready.forward.split(':').pop()),
    dataDir,
    stop: async () => {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** Writes every request as fast as the socket takes them; resolves at the ack of `lastChunk`. */
function stream(port: number, requests: Buffer[], lastChunk: string, expectAcks: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connect({ host: '127.0.0.1', port });
    const framer = new Framer(LIMITS.maxFrameSize);
    const acks: Buffer[] = [];
    let count = 0;
    let t0 = 0n;
    const lastAck = Buffer.concat([Buffer.of(0x81, 0xa3), Buffer.from('ack'), mpStr(lastChunk)]);
    socket.on('data', (d: Buffer) => {
      framer.push(d, acks);
      count += acks.length;
      const last = acks[acks.length - 1];
      acks.length = 0;
      if (count === expectAcks) {
        const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
        if (!last?.equals(lastAck)) reject(new Error(`last ack is ${last?.toString('latin1')}, expected ${lastChunk}`));
        socket.end();
        resolve(seconds);
      }
    });
    socket.on('error', reject);
    socket.once('connect', () => {
      t0 = process.hrtime.bigint();
      sendAll(socket, requests);
    });
  });
}

/** The same bytes into a process that reads and drops them; it answers one byte when all arrived. */
async function ceiling(requests: Buffer[]): Promise<number> {
  const total = requests.reduce((s, r) => s + r.length, 0);
  const child = spawn(
    process.execPath,
    ['-e', `const n=${total};let got=0;require('net').createServer(s=>s.on('data',d=>{got+=d.length;if(got===n)s.write('.')})).listen(0,'127.0.0.1',function(){console.log(this.address().port)})`],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const port = await new Promise<number>((resolve) => createInterface({ input: child.stdout! }).once('line', (l) => resolve(Number(l))));
  const seconds = await new Promise<number>((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let t0 = 0n;
    socket.once('data', () => {
      resolve(Number(process.hrtime.bigint() - t0) / 1e9);
      socket.destroy();
    });
    socket.on('error', reject);
    socket.once('connect', () => {
      t0 = process.hrtime.bigint();
      sendAll(socket, requests);
    });
  });
  child.kill();
  return seconds;
}

function countLines(dir: string): number {
  let n = 0;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) n += countLines(p);
    else if (name.endsWith('.ndjson')) {
      const b = readFileSync(p);
      for (let i = b.indexOf(10); i >= 0; i = b.indexOf(10, i + 1)) n++;
    }
  }
  return n;
}

const fmt = (n: number): string => Math.round(n).toLocaleString('en');

/** CLOGS_BENCH_RUNS runs, each against a fresh collector; with more than one, their median too. */
async function endToEnd(label: string, records: number, built: { requests: Buffer[]; lastChunk: string }): Promise<void> {
  const rates: number[] = [];
  for (let i = 0; i < RUNS; i++) rates.push(await endToEndOnce(label, records, built));
  if (RUNS > 1) {
    const sorted = [...rates].sort((a, b) => a - b);
    console.log(`forward ${label}: median of ${RUNS} runs ${fmt(sorted[Math.floor(RUNS / 2)]!)} records/s (range ${fmt(sorted[0]!)}-${fmt(sorted[RUNS - 1]!)})`);
  }
}

async function endToEndOnce(label: string, records: number, built: { requests: Buffer[]; lastChunk: string }): Promise<number> {
  const bytes = built.requests.reduce((s, r) => s + r.length, 0);
  const collector = await startCollector();
  try {
    const pid = collector.child.pid!;
    const cpu0 = cpuSeconds(pid);
    const seconds = await stream(collector.port, built.requests, built.lastChunk, built.requests.length);
    const cpu1 = cpuSeconds(pid);
    const cpu = cpu1.user + cpu1.system - cpu0.user - cpu0.system;
    const rss = memoryMb(pid).peakMb;
    const lines = countLines(collector.dataDir);
    if (lines !== records) throw new Error(`${lines} lines on disk, expected ${records}`);
    const top = await ceiling(built.requests);
    console.log(
      `forward ${label}: ${fmt(records)} records in ${seconds.toFixed(2)} s = ${fmt(records / seconds)} records/s end to end ` +
        `(ceiling, same bytes into a discarding process: ${fmt(records / top)} records/s); ` +
        `collector CPU ${cpu.toFixed(2)} s, peak RSS ${rss.toFixed(0)} MB; ${(bytes / 1e6).toFixed(0)} MB in ${fmt(built.requests.length)} requests, all lines on disk`,
    );
    return records / seconds;
  } finally {
    await collector.stop();
  }
}

function micro(records: number): void {
  const built = packedRequests(records);
  const newNormalizer = (): Normalizer =>
    new Normalizer({ hostName: 'bench', nextSeq: () => 0, parseJson: true, maxLineBytes: 1 << 20, partialTimeoutMs: 5000, onTimeoutFlush: () => undefined });
  /** CPU ns per record of `each` over every PackedForward request. */
  const measure = (requests: Buffer[], each: (tag: string, entries: Buffer) => number): number => {
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
    if (seen !== records) throw new Error(`handled ${seen}`);
    const cpu = process.cpuUsage(cpu0);
    return ((cpu.user + cpu.system) * 1000) / records;
  };
  const decode = (): number => measure(built.requests, (_tag, entries) => decodeEntries(entries, LIMITS).length);
  const general = (): number => {
    const mapper = new RecordMapper();
    const normalizer = newNormalizer();
    return measure(built.requests, (tag, entries) => {
      const batch = new EncodedBatch();
      for (const e of decodeEntries(entries, LIMITS)) batch.add(normalizer.push(mapper.toRawLine(e, tag)));
      return batch.count;
    });
  };
  const fast = (requests = built.requests): number => {
    const mapper = new RecordMapper();
    const normalizer = newNormalizer();
    const lines = new PackedLineEncoder({ normalizer, mapper, limits: LIMITS, cache: new DecodeCache() });
    return measure(requests, (tag, entries) => {
      const batch = new EncodedBatch();
      lines.encode(entries, tag, batch, (e) => normalizer.push(mapper.toRawLine(e, tag)));
      return batch.count;
    });
  };
  decode();
  const decodeNs = decode();
  general();
  const generalNs = general();
  fast();
  const fastNs = fast();
  const plain = packedRequests(records, 'plain').requests;
  fast(plain);
  const plainNs = fast(plain);
  const json = packedRequests(records, 'json').requests;
  fast(json);
  const jsonNs = fast(json);
  console.log(
    `forward micro (CPU time, one core, to NDJSON lines): decode alone ${decodeNs.toFixed(0)} ns/record; ` +
      `general path (decode, map, Normalizer, event-json) ${generalNs.toFixed(0)} ns/record (${fmt(1e9 / generalNs)} records/s); ` +
      `fast path (packed-lines) ${fastNs.toFixed(0)} ns/record (${fmt(1e9 / fastNs)} records/s): ` +
      `plain lines only ${plainNs.toFixed(0)} ns, pino JSON lines only ${jsonNs.toFixed(0)} ns`,
  );
}

export async function run(which: string = 'all'): Promise<void> {
  if (which === 'all' || which === 'micro') micro(TOTAL);
  if (which === 'all' || which === 'e2e' || which === 'packed') await endToEnd(`PackedForward x${PER_REQUEST}`, TOTAL, packedRequests(TOTAL));
  if (which === 'all' || which === 'e2e' || which === 'message') {
    await endToEnd('Message mode, one chunk per record', MESSAGE_MODE_TOTAL, messageRequests(MESSAGE_MODE_TOTAL));
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await run(process.argv[2]);
