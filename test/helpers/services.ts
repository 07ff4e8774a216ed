/**
 * Starting and checking the real things the integration tests talk to.
 * scripts/test.sh installs and starts Docker and Elasticsearch; when one is
 * missing these helpers throw, so the tests that need it fail loudly.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { gunzipSync } from 'node:zlib';
import type { LogEvent } from '../../src/collector/event.js';
import { BUSYBOX_IMAGE, docker } from './docker.js';

export { BUSYBOX_IMAGE as TEST_IMAGE, docker } from './docker.js';
export const CLI = join(process.cwd(), 'dist/src/clogs.cjs');

export async function requireDocker(): Promise<void> {
  try {
    await docker('image', 'inspect', BUSYBOX_IMAGE);
  } catch (err) {
    throw new Error(`Docker engine or the ${BUSYBOX_IMAGE} image is missing: run scripts/docker.sh ensure (${(err as Error).message.split('\n')[0]})`);
  }
}

export const ES_URL = process.env.CLOGS_TEST_ES_URL ?? 'http://127.0.0.1:9200';

export async function requireElasticsearch(url = ES_URL): Promise<void> {
  try {
    const res = await fetch(`${url}/_cluster/health?wait_for_status=yellow&timeout=30s`);
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
  } catch (err) {
    throw new Error(`Elasticsearch is not reachable at ${url}: run scripts/elasticsearch.sh ensure (${(err as Error).message})`);
  }
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `clogs-${prefix}-`));
}

export interface ReadyLine {
  forward?: string;
  http?: string;
  docker?: string;
  sinks: string[];
}

export interface RunningCollector {
  process: ChildProcess;
  ready: ReadyLine;
  /** Every pino line the collector printed so far. */
  lines: Record<string, unknown>[];
  forwardPort(): number;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Spawns `clogs collect ARGS` and resolves once it logged its ready line. */
export function startCollector(args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunningCollector> {
  const child = spawn(process.execPath, [CLI, 'collect', ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Record<string, unknown>[] = [];
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`collector not ready after 30 s; stderr: ${stderr}`));
    }, 30_000);
    createInterface({ input: child.stdout }).on('line', (line) => {
      let parsed: Record<string, unknown>;
      try {
        parsed = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      lines.push(parsed);
      if (parsed.msg !== 'ready') return;
      clearTimeout(timer);
      const ready = parsed as unknown as ReadyLine;
      resolve({
        process: child,
        ready,
        lines,
        forwardPort: () => Number(ready.forward!.split(':').pop()),
        stop: (signal = 'SIGTERM') => {
          if (child.exitCode === null && child.signalCode === null) child.kill(signal);
          return exited;
        },
      });
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`collector exited (${code}) before ready; stderr: ${stderr}; stdout: ${JSON.stringify(lines)}`));
    });
  });
}

/** Every event in a file-sink directory, whatever its layout, in file order (a rotated file may be gzipped). */
export function readFileStore(dir: string): LogEvent[] {
  return readFileStoreLines(dir).map((line) => JSON.parse(line) as LogEvent);
}

/** Every whole line of the file store under `dir`, as text. */
export function readFileStoreLines(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith('.ndjson') || name.endsWith('.ndjson.gz')) {
        const text = name.endsWith('.gz') ? gunzipSync(readFileSync(p)).toString('utf8') : readFileSync(p, 'utf8');
        // Text after the last newline is a line the sink is writing right now.
        for (const line of text.slice(0, text.lastIndexOf('\n') + 1).split('\n')) if (line) out.push(line);
      }
    }
  };
  walk(dir);
  return out;
}
