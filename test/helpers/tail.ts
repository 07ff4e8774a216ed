/**
 * Helpers for the tail, ps, search and HTTP endpoint tests: events built the
 * way the normalizer builds them, a file store written in the sink's layout,
 * and the built CLI run as a child process.
 */
import { spawn } from 'node:child_process';
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import fluentLogger from 'fluent-logger';
import { expect } from 'vitest';
import type { ContainerMeta, LogEvent, Stream } from '../../src/collector/event.js';
import { formatNanoTime } from '../../src/collector/time.js';
import type { LogReader } from '../../src/http/api.js';
import { fileName, sourceDirName } from '../../src/sinks/file/layout.js';
import { CLI } from './services.js';

/** For an HTTP server started in a test that reads no store: the page's API answers 503. */
export const NO_STORE: LogReader = { store: () => undefined, containerStates: async () => undefined };

export interface EventSpec {
  container?: ContainerMeta;
  tag?: string;
  /** Seconds since the epoch of the event's time; `nsec` adds nanoseconds. */
  sec: number;
  nsec?: number;
  seq: number;
  message: string;
  stream?: Stream;
  level?: string;
}

export function container(id: string, name: string, extra: Partial<ContainerMeta> = {}): ContainerMeta {
  return { id, name, image: { name: 'clogs-busybox:latest' }, ...extra };
}

/** A 64-hex-digit id that starts with `prefix`. */
export function fakeId(prefix: string): string {
  return (prefix + '0'.repeat(64)).slice(0, 64);
}

export function timestamp(sec: number, nsec = 0): string {
  return formatNanoTime(sec, nsec);
}

export function makeEvent(spec: EventSpec): LogEvent {
  const e: LogEvent = {
    '@timestamp': timestamp(spec.sec, spec.nsec ?? 0),
    message: spec.message,
    host: { name: 'test-host' },
    clogs: { input: spec.container ? 'docker' : 'forward', seq: spec.seq, ordinal: 0 },
  };
  if (spec.stream) e.stream = spec.stream;
  if (spec.container) e.container = spec.container;
  if (spec.level) e.log = { level: spec.level };
  if (spec.tag !== undefined) e.clogs.tag = spec.tag;
  return e;
}

/**
 * Appends events to a file store in the file sink's layout (one directory per
 * source, `<day>.<NNNN>.ndjson`), into file number `index` of `day`.
 */
export function appendToStore(dir: string, events: readonly LogEvent[], index = 0, day = '2026-11-22'): void {
  for (const e of events) {
    const sub = join(dir, sourceDirName(e));
    mkdirSync(sub, { recursive: true });
    appendFileSync(join(sub, fileName(day, index)), JSON.stringify(e) + '\n');
  }
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `node dist/src/clogs.cjs ARGS` to its end. */
export function runCli(args: readonly string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: opts.cwd ?? process.cwd(),
      env: { ...process.env, NO_COLOR: '', ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`clogs ${args.join(' ')} did not end within ${opts.timeoutMs ?? 30_000} ms; stdout: ${stdout}; stderr: ${stderr}`));
    }, opts.timeoutMs ?? 30_000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

export interface CliProcess {
  /** Everything printed so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves once stdout contains `text` (rejects after `timeoutMs`). */
  waitFor(text: string | RegExp, timeoutMs?: number): Promise<void>;
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** The non-empty lines of a command's output. */
export const outputLines = (text: string): string[] => text.split('\n').filter((l) => l !== '');

/**
 * A `tail -f -n 5` that started while a sender wrote `line 0` to
 * `line <total-1>`: once the last line showed and `settleMs` passed (for the
 * store follower to deliver what the live stream already showed), it printed
 * every line from about the 45th on, each once, in order, nothing on stderr,
 * and it did use the collector's live stream, not only the store.
 */
export async function expectFollowedIntoLive(tail: CliProcess, collectorLines: readonly Record<string, unknown>[], total: number, settleMs: number): Promise<void> {
  await tail.waitFor(`line ${total - 1}\n`);
  await new Promise((r) => setTimeout(r, settleMs));
  const out = outputLines(tail.stdout());
  const first = Number(out[0]!.split(' ')[1]);
  expect(first).toBeGreaterThanOrEqual(45);
  expect(out).toEqual(Array.from({ length: total - first }, (_, k) => `line ${first + k}`));
  expect(tail.stderr()).toBe('');
  expect(collectorLines.some((l) => l.msg === 'tail client subscribed')).toBe(true);
}

/** Starts `node dist/src/clogs.cjs ARGS` and leaves it running (`tail -f`). */
export function startCli(args: readonly string[], opts: { env?: NodeJS.ProcessEnv } = {}): CliProcess {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, NO_COLOR: '', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const waiters = new Set<() => void>();
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    for (const w of waiters) w();
  });
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal })),
  );
  return {
    stdout: () => out,
    stderr: () => err,
    waitFor: (text, timeoutMs = 15_000) =>
      new Promise<void>((resolve, reject) => {
        const test = () => (typeof text === 'string' ? out.includes(text) : text.test(out));
        if (test()) return resolve();
        const check = () => {
          if (!test()) return;
          cleanup();
          resolve();
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`timed out waiting for ${String(text)}; stdout so far: ${out}; stderr: ${err}`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
      }),
    stop: (signal = 'SIGINT') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** The real fluent-logger client, acked, with its own logging silenced. */
export function fluentSender(port: number): FluentSender {
  return fluentLogger.createFluentSender<Record<string, unknown>>('app', {
    host: '127.0.0.1',
    port,
    requireAckResponse: true,
    reconnectInterval: 100,
    internalLogger: { info: () => undefined, error: () => undefined },
  });
}

export type FluentSender = ReturnType<typeof fluentLogger.createFluentSender<Record<string, unknown>>>;

/** emit() as a promise: resolves once the collector acked the record. */
export function emitRecord(s: FluentSender, label: string, record: Record<string, unknown>): Promise<void> {
  return new Promise((resolve, reject) => s.emit(label, record, (err?: Error) => (err ? reject(err) : resolve())));
}

export function endSender(s: FluentSender): Promise<void> {
  return new Promise((resolve) => s.end(undefined as unknown as string, undefined as unknown as Record<string, unknown>, () => resolve()));
}
