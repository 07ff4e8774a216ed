/**
 * What a forward benchmark sends to: `clogs collect` with the file sink, or
 * Fluent Bit (in_forward → out_file, the reference peer) on the same bytes.
 * Both are child processes whose CPU and memory the bench reads from /proc, and
 * both write one line per record under `dataDir`, which `DiskLines` counts:
 * end to end means the last line on disk, for both.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, readSync, closeSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

export interface Receiver {
  name: string;
  pid: number;
  port: number;
  /** The collector's HTTP endpoint, for clogs. */
  http?: string;
  /** The newest warning or error the collector logged, for clogs. */
  lastWarning?(): string | undefined;
  dataDir: string;
  stop(): Promise<void>;
}

const CLI = join(process.cwd(), 'dist/src/clogs.cjs');

async function stopChild(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  await exited;
}

/** `clogs collect --no-docker` with the file sink (fsync per batch, as shipped) and `args` on top. */
export async function startClogs(args: readonly string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Receiver> {
  const root = mkdtempSync(join(tmpdir(), 'clogs-bench-'));
  const dataDir = join(root, 'data');
  const nodeArgs = process.env.CLOGS_BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
  const child = spawn(
    process.execPath,
    [...nodeArgs, CLI, 'collect', '--no-docker', '--forward', '127.0.0.1:0', '--file', dataDir, '--state', join(root, 'state'), '--http', '127.0.0.1:0', ...args],
    // Traces stay one line per record, as Fluent Bit writes them, so counting
    // lines tells when a run is done; `micro` measures the multiline stage.
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, CLOGS_MULTILINE_MODE: 'off', ...env } },
  );
  let warning: string | undefined;
  const ready = await new Promise<{ forward: string; http: string }>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.includes('"msg":"ready"')) resolve(JSON.parse(line) as { forward: string; http: string });
      else if (/^\{"level":(?:[4-9]\d)/.test(line)) warning = line;
    });
    child.once('exit', (code) => reject(new Error(`clogs exited with ${code} before it was ready`)));
  });
  return {
    name: 'clogs',
    pid: child.pid!,
    port: Number(ready.forward.split(':').pop()),
    http: ready.http,
    lastWarning: () => warning,
    dataDir,
    stop: async () => {
      await stopChild(child, 'SIGTERM');
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** Fluent Bit: `FLUENT_BIT`, else the copy the tests run (test/tools/fluent-bit). */
export function fluentBitBinary(): string {
  return process.env.FLUENT_BIT || resolve(process.cwd(), 'test/tools/fluent-bit/fluent-bit');
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}

async function accepting(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise<boolean>((r) => {
      const s = connect({ host: '127.0.0.1', port }, () => (s.destroy(), r(true)));
      s.once('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`fluent-bit did not listen on ${port}`);
}

/** Fluent Bit's forward input → file output: the configuration its README gives for this comparison. */
export async function startFluentBit(binary: string): Promise<Receiver> {
  const root = mkdtempSync(join(tmpdir(), 'clogs-bench-fluent-bit-'));
  const dataDir = join(root, 'out');
  mkdirSync(dataDir);
  const port = await freePort();
  const conf = join(root, 'fluent-bit.conf');
  writeFileSync(
    conf,
    ['[SERVICE]', '    flush 1', '    log_level warn', '[INPUT]', '    name forward', '    listen 127.0.0.1', `    port ${port}`, '[OUTPUT]', '    name file', '    match *', `    path ${dataDir}`, ''].join('\n'),
  );
  const child = spawn(binary, ['--quiet', '-c', conf], { stdio: ['ignore', 'ignore', 'inherit'] });
  child.once('error', (err) => process.stderr.write(`fluent-bit: ${err.message}\n`));
  await accepting(port);
  return {
    name: 'fluent-bit',
    pid: child.pid!,
    port,
    dataDir,
    stop: async () => {
      // Measured already; SIGTERM would wait out Fluent Bit's 5 s grace period.
      await stopChild(child, 'SIGKILL');
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** Counts the lines written under a folder so far, reading only the bytes added since the last call. */
export class DiskLines {
  private readonly offsets = new Map<string, number>();
  private readonly chunk = Buffer.alloc(1 << 20);
  count = 0;

  constructor(private readonly dir: string) {}

  poll(): number {
    this.walk(this.dir);
    return this.count;
  }

  private walk(dir: string): void {
    if (!existsSync(dir)) return;
    for (const name of readdirSync(dir)) {
      // A compressed file holds lines already counted while it was plain, and
      // one being compressed (`.tmp`) has newline bytes that are no lines.
      if (name.endsWith('.gz') || name.endsWith('.tmp')) continue;
      const path = join(dir, name);
      const st = statSync(path, { throwIfNoEntry: false });
      // Gone since readdir: compressed, its lines counted while it was plain.
      if (st === undefined) continue;
      if (st.isDirectory()) this.walk(path);
      else if (st.size > (this.offsets.get(path) ?? 0)) this.readNew(path, st.size);
    }
  }

  private readNew(path: string, size: number): void {
    let at = this.offsets.get(path) ?? 0;
    const fd = openSync(path, 'r');
    try {
      while (at < size) {
        const n = readSync(fd, this.chunk, 0, Math.min(this.chunk.length, size - at), at);
        if (n === 0) break;
        for (let i = this.chunk.indexOf(10); i >= 0 && i < n; i = this.chunk.indexOf(10, i + 1)) this.count++;
        at += n;
      }
    } finally {
      closeSync(fd);
    }
    this.offsets.set(path, at);
  }
}
