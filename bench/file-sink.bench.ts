/**
 * File sink throughput: 1,000,000 Docker-shaped events (20 containers and a
 * forward tag, ~120-byte messages, 1 in 4 a parsed JSON line with attrs)
 * through the sink with fsync "batch", in batches of 1000, first one batch
 * in flight at a time, then 4 at once (what several connections do; group
 * commit shares their fsyncs). Also times the line encoder against plain
 * JSON.stringify on the same events.
 *
 *   npm run build && node dist/bench/file-sink.bench.js
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EncodedBatch } from '../src/collector/encoded.js';
import type { LogEvent } from '../src/collector/event.js';
import { formatNanoTime } from '../src/collector/time.js';
import { fileSinkSchema } from '../src/config/schema.js';
import { createLogger } from '../src/log.js';
import { bytesOut } from '../src/metrics.js';
import { encodeEvent } from '../src/collector/event-json.js';
import { LineBuffer } from '../src/collector/line-buffer.js';
import { LineMarks } from '../src/collector/line-fields.js';
import { createFileSink } from '../src/sinks/file/index.js';
import { sampleContainers, sampleLine } from './samples.js';

const TOTAL = 1_000_000;
const BATCH = 1000;
const CONTAINERS = 20;
// Distinct batches kept in memory and cycled: 1,000,000 live events would
// measure the garbage collector more than the sink.
const POOL_BATCHES = 50;

function makeBatches(): LogEvent[][] {
  const metas = sampleContainers(CONTAINERS);
  const host = { name: 'bench-host' };
  const batches: LogEvent[][] = [];
  let n = 0;
  for (let b = 0; b < POOL_BATCHES; b++) {
    const batch: LogEvent[] = [];
    for (let i = 0; i < BATCH; i++, n++) {
      const event: LogEvent = {
        '@timestamp': formatNanoTime(1_795_000_000 + Math.floor(n / 1000), (n * 7919) % 1_000_000_000),
        message: sampleLine(n),
        host,
        clogs: { input: 'forward', seq: 1_795_000_000_000_000 + n, ordinal: 0 },
      };
      if (n % 50 === 0) event.clogs.tag = 'app.billing';
      else {
        event.stream = n % 9 === 0 ? 'stderr' : 'stdout';
        event.container = metas[n % CONTAINERS]!;
        event.clogs.tag = 'docker.' + metas[n % CONTAINERS]!.id!.slice(0, 12);
      }
      if (n % 4 === 0) {
        event.log = { level: n % 8 === 0 ? 'info' : 'error' };
        event.attrs = { pid: 4242, hostname: 'web-1', req: { method: 'GET', url: `/api/v1/orders/${n}` }, responseTime: n % 97 };
      }
      batch.push(event);
    }
    batches.push(batch);
  }
  return batches;
}

/**
 * CPU ns per event from LogEvent to bytes in a Buffer, the way the sink uses
 * them (CPU time, not wall time: it holds up better when others share the machine).
 */
function timeEncoder(batches: LogEvent[][], toBuffers: (batch: LogEvent[]) => Buffer[]): { nsPerEvent: number; bytes: number } {
  let bytes = 0;
  const cpu0 = process.cpuUsage();
  for (let done = 0; done < TOTAL; done += BATCH) {
    for (const b of toBuffers(batches[(done / BATCH) % POOL_BATCHES]!)) bytes += b.length;
  }
  const cpu = process.cpuUsage(cpu0);
  return { nsPerEvent: ((cpu.user + cpu.system) * 1000) / TOTAL, bytes };
}

const viaEncoder = (batch: LogEvent[]): Buffer[] => {
  const out = new LineBuffer();
  const marks = new LineMarks();
  for (const e of batch) encodeEvent(e, out, marks);
  return out.take();
};

const viaStringify = (batch: LogEvent[]): Buffer[] => {
  let text = '';
  for (const e of batch) text += JSON.stringify(e) + '\n';
  return [Buffer.from(text)];
};

async function timeSink(batches: LogEvent[][], inFlight: number): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'clogs-bench-file-'));
  try {
    const sink = createFileSink(fileSinkSchema.parse({ dir }), { log: createLogger('warn') });
    await sink.start();
    const bytesBefore = (await bytesOut.get()).values.find((v) => v.labels.sink === 'file')?.value ?? 0;
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    let next = 0;
    const worker = async (): Promise<void> => {
      // Rendered here, as the pipeline renders events an input hands in as objects.
      while (next < TOTAL / BATCH) await sink.write(EncodedBatch.of(batches[next++ % POOL_BATCHES]!));
    };
    await Promise.all(Array.from({ length: inFlight }, worker));
    await sink.close();
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu = process.cpuUsage(cpu0);
    const bytes = ((await bytesOut.get()).values.find((v) => v.labels.sink === 'file')?.value ?? 0) - bytesBefore;
    return (
      `file sink, fsync batch, ${inFlight} batch(es) of ${BATCH} in flight: ${Math.round(TOTAL / seconds).toLocaleString('en')} events/s, ` +
      `${(bytes / seconds / 1e6).toFixed(1)} MB/s (${(bytes / 1e6).toFixed(0)} MB in ${seconds.toFixed(2)} s, ` +
      `CPU ${((cpu.user + cpu.system) / 1e6).toFixed(2)} s)`
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run(): Promise<void> {
  const batches = makeBatches();
  // Warm both up before timing either.
  viaEncoder(batches[0]!);
  viaStringify(batches[0]!);
  const fast = timeEncoder(batches, viaEncoder);
  const plain = timeEncoder(batches, viaStringify);
  console.log(
    `encoder (event -> Buffer): ${fast.nsPerEvent.toFixed(0)} ns/event; JSON.stringify + Buffer.from: ${plain.nsPerEvent.toFixed(0)} ns/event ` +
      `(${(fast.bytes / TOTAL).toFixed(0)} bytes/line)`,
  );
  console.log(await timeSink(batches, 1));
  console.log(await timeSink(batches, 4));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await run();
