/**
 * Docker input, end to end: real containers (busybox, json-file) → the engine
 * → `clogs collect` (its own process, file sink with fsync per batch).
 *
 *   burst   N containers, each writes L lines of the realistic mix
 *           (samples.ts) as fast as `tail | head` can, all released at once
 *           (they wait for a go file on a mounted folder, so container
 *           start-up is not timed)
 *   rate    N containers at a fixed rate (R lines/s each, for S seconds), of
 *           the same mix
 * The collector runs with the multiline stage off, as in the forward
 * benchmark: a trace's lines stay an event each, and counting them tells
 * when a run is done.
 *   idle    N containers that wrote one line and sleep: the collector's RSS
 *           and CPU with them followed, and its RSS per followed container
 *
 * Reports lines/s collected (first line released → last line in the sink),
 * the collector's CPU seconds per 100,000 lines (/proc/<pid>/stat
 * utime+stime), its RSS (VmRSS now, VmHWM peak), and the lag between a line's
 * Docker timestamp and when the bench saw it in the sink files (polled every
 * 10 ms, so lags carry up to ~10 ms of polling), over all lines and over
 * those written after the first second (STEADY_AFTER_MS). The CPU is also
 * reported for the lines after the first WARM_UP_MS alone: a collector runs
 * for hours, and the first seconds of a run are its JIT compiling the read
 * path and the file sink creating every container's directory and file.
 * Everything shares the machine: dockerd, the containers, the collector and
 * this process.
 *
 *   npm run build && node dist/bench/docker.bench.js [burst|rate|idle|all] [containers]
 *   (containers: run only the burst or rate part with that many, 10 or 100)
 *   CLOGS_BENCH_DOCKER_LINES (lines per container in burst-10, default 20000;
 *   burst-100 writes a tenth of it per container)
 *   CLOGS_BENCH_DOCKER_RATE (rate-100: lines/s per container the loop aims
 *   at, default 50; what it reaches depends on how fast the machine forks:
 *   35 to 48 per container on the development VMs)
 *   CLOGS_BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=DIR" profiles the collector
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { isMissing } from '../src/errors.js';
import { cpuSeconds, memoryMb } from './proc.js';
import { sampleLine } from './samples.js';

const execFileP = promisify(execFile);
const CLI = join(process.cwd(), 'dist/src/clogs.cjs');
const IMAGE = 'clogs-busybox:latest';
const LINES = Number(process.env.CLOGS_BENCH_DOCKER_LINES ?? 20_000);
const RATE_100 = Number(process.env.CLOGS_BENCH_DOCKER_RATE ?? 50);
/**
 * The containers write the lines of samples.ts, from a file in the mounted
 * folder: /go/mix.txt. Each starts at a line of its own, MIX_STEP apart
 * modulo MIX_STARTS, so they do not all write the same line at once.
 */
const MIX_STEP = 97;
const MIX_STARTS = 5000;

/** How long the idle run watches the collector's CPU. */
const IDLE_CPU_MS = 10_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function docker(...args: string[]): Promise<string> {
  const { stdout } = await execFileP('docker', args, { maxBuffer: 16 * 1024 * 1024 });
  return stdout.trim();
}

interface Collector {
  child: ChildProcess;
  httpAddress: string;
  stop(): Promise<void>;
}

async function startCollector(files: string, state: string, config: string): Promise<Collector> {
  const nodeArgs = process.env.CLOGS_BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
  const child = spawn(process.execPath, [...nodeArgs, CLI, 'collect', '--config', config, '--forward', '127.0.0.1:0', '--http', '127.0.0.1:0', '--file', files, '--state', state], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('collector not ready after 30 s'));
    }, 30_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        const parsed = JSON.parse(line) as Record<string, unknown>;
        if (parsed.msg === 'ready') {
          clearTimeout(timer);
          resolve(parsed);
        }
      } catch {
        // not a log line
      }
    });
    child.once('exit', (code) => reject(new Error(`collector exited (${code}) before ready`)));
  });
  return {
    child,
    httpAddress: String(ready.http),
    stop: async () => {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    },
  };
}

async function followed(httpAddress: string): Promise<number> {
  const text = await (await fetch(`http://${httpAddress}/metrics`)).text();
  return Number(/^clogs_docker_containers_followed (\d+)/m.exec(text)?.[1] ?? 0);
}

/**
 * Reads the sink's NDJSON files as they grow: counts lines, and samples the
 * lag of every line (Docker timestamp → seen here).
 */
class SinkTail {
  private readonly offsets = new Map<string, number>();
  private readonly partial = new Map<string, string>();
  /** Files read to their end from their `.gz`. */
  private readonly finished = new Set<string>();
  count = 0;
  readonly lagsMs: number[] = [];
  /** Each line's Docker timestamp (ms), in the order of lagsMs. */
  readonly writtenMs: number[] = [];
  firstSeenMs = 0;
  lastSeenMs = 0;

  constructor(private readonly dir: string) {}

  poll(): void {
    const now = Date.now();
    const listed = new Set(this.files(this.dir));
    for (const file of listed) {
      let size: number;
      try {
        size = statSync(file).size;
      } catch (err) {
        if (isMissing(err)) continue;
        throw err;
      }
      const at = this.offsets.get(file) ?? 0;
      if (size <= at) continue;
      const buf = Buffer.allocUnsafe(size - at);
      const fd = openSync(file, 'r');
      const n = readSync(fd, buf, 0, buf.length, at);
      closeSync(fd);
      this.take(file, buf.subarray(0, n), now);
    }
    // A file the sink rotated away from (at midnight UTC) may have been
    // compressed and its plain copy removed before all of it was read: the
    // `.gz` holds the same bytes.
    for (const [file, at] of this.offsets) {
      if (listed.has(file) || this.finished.has(file) || !existsSync(`${file}.gz`)) continue;
      this.finished.add(file);
      this.take(file, gunzipSync(readFileSync(`${file}.gz`)).subarray(at), now);
    }
  }

  private take(file: string, bytes: Buffer, now: number): void {
    this.offsets.set(file, (this.offsets.get(file) ?? 0) + bytes.length);
    const text = (this.partial.get(file) ?? '') + bytes.toString('utf8');
    const lines = text.split('\n');
    this.partial.set(file, lines.pop()!);
    for (const line of lines) {
      const ts = /^\{"@timestamp":"([^"]+)"/.exec(line)?.[1];
      if (!ts || !line.includes('"input":"docker"')) continue;
      this.count++;
      if (this.firstSeenMs === 0) this.firstSeenMs = now;
      this.lastSeenMs = now;
      const written = tsMs(ts);
      this.lagsMs.push(now - written);
      this.writtenMs.push(written);
    }
  }

  private files(dir: string): string[] {
    const out: string[] = [];
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, entry.name);
      if (entry.isDirectory()) out.push(...this.files(p));
      else if (entry.name.endsWith('.ndjson')) out.push(p);
    }
    return out;
  }
}

/** ms since the epoch with the sub-millisecond part kept as a fraction. */
function tsMs(ts: string): number {
  return Date.parse(ts.slice(0, 19) + 'Z') + Number(ts.slice(20, 29)) / 1e6;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? NaN;
}

interface Setup {
  prefix: string;
  files: string;
  state: string;
  go: string;
  collector: Collector;
  tail: SinkTail;
  cleanup(): Promise<void>;
}

async function setup(part: string): Promise<Setup> {
  const prefix = `clogs-bench-${part}-${process.pid}`;
  const root = mkdtempSync(join(tmpdir(), `clogs-bench-docker-${part}-`));
  const files = join(root, 'files');
  const state = join(root, 'state');
  const go = join(root, 'go');
  const config = join(root, 'clogs.yaml');
  // Traces stay one line per record, as in the forward benchmark, so
  // counting lines tells when a run is done.
  writeFileSync(config, `docker:\n  include:\n    names: ["${prefix}*"]\nmultiline:\n  mode: off\n`);
  mkdirSync(files);
  mkdirSync(go);
  const collector = await startCollector(files, state, config);
  return {
    prefix,
    files,
    state,
    go,
    collector,
    tail: new SinkTail(files),
    cleanup: async () => {
      await collector.stop();
      const ids = (await docker('ps', '-aq', '--filter', `name=^/${prefix}`)).split('\n').filter(Boolean);
      for (let i = 0; i < ids.length; i += 50) await docker('rm', '-f', ...ids.slice(i, i + 50));
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** The mix for `perContainer` lines from any container's start. */
function writeMix(s: Setup, perContainer: number): void {
  const lines = Array.from({ length: perContainer + MIX_STARTS }, (_, i) => sampleLine(i));
  writeFileSync(join(s.go, 'mix.txt'), `${lines.join('\n')}\n`);
}

/** `text` as one word of a shell command. */
function shellQuote(text: string): string {
  return `'${text.replaceAll("'", "'\\''")}'`;
}

/** Container `i`'s `count` lines of the mix, on its stdout. */
function mixOf(i: number, count: number): string {
  return `tail -n +${((i * MIX_STEP) % MIX_STARTS) + 1} /go/mix.txt | head -n ${count}`;
}

/** Creates and starts containers with bounded parallelism (dockerd serializes much of it anyway); container `i` runs `script(i)`. */
async function startContainers(s: Setup, n: number, script: (i: number) => string): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      await docker('run', '-d', '--name', `${s.prefix}-${i}`, '-v', `${s.go}:/go:ro`, IMAGE, 'sh', '-c', script(i));
    }
  };
  await Promise.all(Array.from({ length: 6 }, worker));
  const deadline = Date.now() + 120_000;
  while ((await followed(s.collector.httpAddress)) < n) {
    if (Date.now() > deadline) throw new Error(`the collector follows fewer than ${n} containers after 120 s`);
    await sleep(200);
  }
}

/**
 * Lines written later than this after the go are the steady state: the
 * first second holds every container's first line, and with it the file
 * sink creating one directory and file per container (measured, rate 100:
 * p99 487 ms in the first tenth of the lines, 112-125 ms in each later tenth).
 */
const STEADY_AFTER_MS = 1000;

/**
 * CPU after this much of a run is its steady cost. Measured (perf over a
 * `rate 100` run, samples per second of the collector): 132 in the first
 * second after the go, TurboFan compiling much of it, 78 in the third, 56
 * in the eighth, 44-50 in the last three of ten.
 */
const WARM_UP_MS = 5000;

const waitForGo = 'while [ ! -e /go/go ]; do sleep 0.05; done; ';

async function measure(s: Setup, expected: number, timeoutMs: number): Promise<string> {
  const pid = s.collector.child.pid!;
  const cpu0 = cpuSeconds(pid);
  const t0 = Date.now();
  let warm: { cpu: ReturnType<typeof cpuSeconds>; count: number } | undefined;
  writeFileSync(join(s.go, 'go'), '');
  while (s.tail.count < expected) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`only ${s.tail.count} of ${expected} lines after ${timeoutMs} ms`);
    await sleep(10);
    s.tail.poll();
    if (warm === undefined && Date.now() - t0 >= WARM_UP_MS) warm = { cpu: cpuSeconds(pid), count: s.tail.count };
  }
  const seconds = (s.tail.lastSeenMs - t0) / 1000;
  const cpu1 = cpuSeconds(pid);
  const user = cpu1.user - cpu0.user;
  const system = cpu1.system - cpu0.system;
  const per100k = (x: number, lines = expected) => ((x * 100_000) / lines).toFixed(2);
  const warmLines = warm === undefined ? 0 : expected - warm.count;
  const steadyCpu =
    warm === undefined || warmLines < expected / 4
      ? ''
      : `; after the first ${WARM_UP_MS / 1000} s (${warmLines.toLocaleString('en')} lines): CPU ${per100k(cpu1.user + cpu1.system - warm.cpu.user - warm.cpu.system, warmLines)} s per 100k lines (user ${per100k(cpu1.user - warm.cpu.user, warmLines)}, system ${per100k(cpu1.system - warm.cpu.system, warmLines)})`;
  const mem = memoryMb(pid);
  const steady = s.tail.lagsMs.filter((_, i) => s.tail.writtenMs[i]! >= t0 + STEADY_AFTER_MS).sort((a, b) => a - b);
  const lags = s.tail.lagsMs.sort((a, b) => a - b);
  return (
    `${Math.round(expected / seconds).toLocaleString('en')} lines/s (${expected.toLocaleString('en')} in ${seconds.toFixed(2)} s), ` +
    `CPU ${per100k(user + system)} s per 100k lines (user ${per100k(user)}, system ${per100k(system)})${steadyCpu}, RSS ${mem.rssMb.toFixed(0)} MB (peak ${mem.peakMb.toFixed(0)} MB), ` +
    `lag p50 ${percentile(lags, 50).toFixed(0)} ms, p99 ${percentile(lags, 99).toFixed(0)} ms ` +
    `(lines written after the first second: p50 ${percentile(steady, 50).toFixed(0)} ms, p99 ${percentile(steady, 99).toFixed(0)} ms)`
  );
}

async function burst(n: number, perContainer: number): Promise<string> {
  const s = await setup(`burst${n}`);
  try {
    writeMix(s, perContainer);
    await startContainers(s, n, (i) => `${waitForGo}${mixOf(i, perContainer)}; sleep 3600`);
    return `burst, ${n} containers × ${perContainer} lines: ${await measure(s, n * perContainer, 600_000)}`;
  } finally {
    await s.cleanup();
  }
}

async function rate(n: number, perSecond: number, seconds: number): Promise<string> {
  const s = await setup(`rate${n}`);
  try {
    const count = perSecond * seconds;
    const pause = (10 / perSecond).toFixed(3);
    // A script per container: 10 lines with one `printf` (a builtin), then a
    // pause. A shell loop with one sleep per line would spend its time
    // forking, and one that reads the mix with `read` makes a syscall per byte.
    for (let i = 0; i < n; i++) {
      const from = (i * MIX_STEP) % MIX_STARTS;
      const rounds: string[] = [];
      for (let r = 0; r < count; r += 10) {
        const lines = Array.from({ length: Math.min(10, count - r) }, (_, k) => shellQuote(sampleLine(from + r + k)));
        rounds.push(`printf '%s\\n' ${lines.join(' ')}\nsleep ${pause}\n`);
      }
      writeFileSync(join(s.go, `write-${i}.sh`), rounds.join(''));
    }
    await startContainers(s, n, (i) => `${waitForGo}sh /go/write-${i}.sh; sleep 3600`);
    return `rate, ${n} containers × ~${perSecond} lines/s for ${seconds} s: ${await measure(s, n * perSecond * seconds, 600_000)}`;
  } finally {
    await s.cleanup();
  }
}

async function idle(n: number): Promise<string> {
  const s = await setup(`idle${n}`);
  try {
    await startContainers(s, n, () => 'echo "one line"; sleep 3600');
    await sleep(3000);
    const pid = s.collector.child.pid!;
    const cpu0 = cpuSeconds(pid);
    await sleep(IDLE_CPU_MS);
    const cpu1 = cpuSeconds(pid);
    const used = cpu1.user + cpu1.system - cpu0.user - cpu0.system;
    const mem = memoryMb(pid);
    return (
      `idle, ${n} containers followed by the collector: RSS ${mem.rssMb.toFixed(0)} MB (peak ${mem.peakMb.toFixed(0)} MB), ` +
      `CPU ${((used * 1000) / IDLE_CPU_MS).toFixed(3)} s per second over ${IDLE_CPU_MS / 1000} s`
    );
  } finally {
    await s.cleanup();
  }
}

/**
 * RSS moves with the garbage collector by more than a few idle followers
 * weigh, so the per-container figure is taken in a child process that can
 * force a collection: the input in-process, heap + external memory with 0
 * and then n idle containers followed.
 */
async function idlePerContainer(n: number): Promise<string> {
  const { stdout } = await execFileP(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), 'idle-child', String(n)], { maxBuffer: 1 << 20 });
  return stdout.trim();
}

async function idleChild(n: number): Promise<void> {
  const { Pipeline } = await import('../src/collector/pipeline.js');
  const { startDockerInput } = await import('../src/collector/docker/index.js');
  const { dockerSchema, multilineSchema } = await import('../src/config/schema.js');
  const { createLogger } = await import('../src/log.js');
  const { containersFollowed } = await import('../src/metrics.js');
  const gc = (globalThis as { gc?: () => void }).gc!;
  const used = () => {
    gc();
    gc();
    const m = process.memoryUsage();
    return { heap: m.heapUsed + m.external, rss: m.rss };
  };
  const prefix = `clogs-bench-idlechild-${process.pid}`;
  const state = mkdtempSync(join(tmpdir(), 'clogs-bench-idle-'));
  const pipeline = new Pipeline([{ name: 'null', start: async () => {}, write: async () => {}, close: async () => {} }]);
  const input = await startDockerInput(dockerSchema.parse({ include: { names: [`${prefix}*`] } }), {
    pipeline,
    log: createLogger('warn'),
    stateDir: state,
    hostName: 'bench',
    parseJson: true,
    parseLogfmt: true,
    stripAnsi: true,
    maxLineBytes: 1 << 20,
    multiline: multilineSchema.parse({}),
  });
  try {
    await sleep(1000);
    const before = used();
    let next = 0;
    await Promise.all(
      Array.from({ length: 6 }, async () => {
        while (next < n) await docker('run', '-d', '--name', `${prefix}-${next++}`, IMAGE, 'sh', '-c', 'echo "one line"; sleep 3600');
      }),
    );
    const deadline = Date.now() + 120_000;
    while ((await containersFollowed.get()).values[0]?.value !== n && Date.now() < deadline) await sleep(200);
    await sleep(2000);
    const after = used();
    console.log(
      `idle, ${n} containers followed (in-process, after gc): heap+external +${(((after.heap - before.heap) / n) / 1024).toFixed(1)} KB per followed container (RSS ${(before.rss / 2 ** 20).toFixed(0)} → ${(after.rss / 2 ** 20).toFixed(0)} MB)`,
    );
  } finally {
    await input?.stop();
    const ids = (await docker('ps', '-aq', '--filter', `name=^/${prefix}`)).split('\n').filter(Boolean);
    for (let i = 0; i < ids.length; i += 50) await docker('rm', '-f', ...ids.slice(i, i + 50));
    rmSync(state, { recursive: true, force: true });
  }
}

/**
 * In-process, CPU time: the frame parser alone and parser + Normalizer on
 * 200,000 multiplexed frames, fed one frame per read (Docker's live shape:
 * the engine flushes every message) and in 64 KiB reads (catching up).
 */
async function micro(): Promise<string[]> {
  const { LogStreamParser } = await import('../src/collector/docker/frames.js');
  const { Normalizer } = await import('../src/collector/normalize.js');
  const { formatNanoTime } = await import('../src/collector/time.js');
  const total = 200_000;
  const frames: Buffer[] = [];
  for (let i = 0; i < total; i++) {
    const body = Buffer.from(`${formatNanoTime(1_795_341_258 + Math.floor(i / 1000), (i % 1000) * 1_000_000 + 123)} ${sampleLine(i)}\n`);
    const header = Buffer.alloc(8);
    header[0] = i % 5 === 0 ? 2 : 1;
    header.writeUInt32BE(body.length, 4);
    frames.push(header, body);
  }
  const whole = Buffer.concat(frames);
  const perFrame: Buffer[] = [];
  for (let i = 0; i < frames.length; i += 2) perFrame.push(Buffer.concat([frames[i]!, frames[i + 1]!]));
  const big: Buffer[] = [];
  for (let at = 0; at < whole.length; at += 65536) big.push(whole.subarray(at, at + 65536));
  const meta = Object.freeze({ id: 'c'.repeat(64), name: 'bench' });
  const time = (chunks: Buffer[], normalize: boolean, expected = total): number => {
    const parser = new LogStreamParser({ tty: false, maxLineBytes: 1 << 20, onDaemonError: () => undefined });
    const norm = new Normalizer({ hostName: 'h', nextSeq: () => 1, parseJson: true, parseLogfmt: true, stripAnsi: true, maxLineBytes: 1 << 20, partialTimeoutMs: 5000, onTimeoutFlush: () => undefined });
    const t0 = process.cpuUsage();
    let n = 0;
    for (const c of chunks) {
      for (const line of parser.push(c)) {
        n++;
        if (normalize) norm.push({ input: 'docker', time: line.time, stream: line.stream, line: line.bytes, container: meta });
      }
    }
    const t = process.cpuUsage(t0);
    if (n !== expected) throw new Error(`parsed ${n} of ${expected}`);
    return ((t.user + t.system) * 1000) / expected;
  };
  time(perFrame.slice(0, 20_000), true, 20_000);
  return [
    `micro, frames only: ${time(perFrame, false).toFixed(0)} ns/line one frame per read, ${time(big, false).toFixed(0)} ns/line in 64 KiB reads`,
    `micro, frames + Normalizer: ${time(perFrame, true).toFixed(0)} ns/line one frame per read, ${time(big, true).toFixed(0)} ns/line in 64 KiB reads`,
  ];
}

export async function run(which: string = 'all', only?: number): Promise<void> {
  const part = (n: number) => only === undefined || only === n;
  if (which === 'all' || which === 'micro') for (const line of await micro()) console.log(line);
  await docker('image', 'inspect', IMAGE).catch(() => {
    throw new Error(`the ${IMAGE} image is missing: run scripts/docker.sh ensure`);
  });
  if (which === 'all' || which === 'burst') {
    if (part(10)) console.log(await burst(10, LINES));
    if (part(100)) console.log(await burst(100, Math.round(LINES / 10)));
  }
  if (which === 'all' || which === 'rate') {
    if (part(10)) console.log(await rate(10, 500, 10));
    if (part(100)) console.log(await rate(100, RATE_100, 20));
  }
  if (which === 'all' || which === 'idle') {
    console.log(await idle(100));
    console.log(await idlePerContainer(100));
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv[2] === 'idle-child') await idleChild(Number(process.argv[3]));
  else await run(process.argv[2], process.argv[3] === undefined ? undefined : Number(process.argv[3]));
}
