/**
 * The kill test: the real collector process follows a container that writes
 * numbered lines steadily; it is killed with SIGKILL at random moments and
 * started again each time (and the container is restarted once in the
 * middle). At the end every number is in the file sink once, in order.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LogEvent } from '../../src/collector/event.js';
import { readFileStore, startCollector, tempDir, type RunningCollector } from '../helpers/services.js';
import { until } from '../helpers/until.js';
import { docker, ensureBusyboxImage, removeContainers, requireDockerEngine, runContainer, uniquePrefix, waitExited } from '../helpers/docker.js';

const prefix = uniquePrefix('kill');
const dirs: string[] = [];

beforeAll(async () => {
  await requireDockerEngine();
  ensureBusyboxImage();
});

/** Every collector a test started: one that failed halfway leaves none running. */
const started: RunningCollector[] = [];

afterAll(async () => {
  for (const c of started) await c.stop('SIGKILL');
  await removeContainers(prefix);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Numbered lines from 1 to n. The counter lives in the container's own
 * filesystem and SIGTERM only ends the loop between iterations, so a
 * `docker restart` continues the numbering instead of repeating it.
 */
const counterScript = (n: number) =>
  `trap 'stop=1' TERM; i=$(cat /count 2>/dev/null || echo 1); ` +
  `while [ -z "$stop" ] && [ $i -le ${n} ]; do echo "n $i"; i=$((i+1)); echo $i > /count; sleep 0.005; done`;

interface Run {
  files: string;
  state: string;
  config: string;
}

function newRun(): Run {
  const files = tempDir('kill-files');
  const state = tempDir('kill-state');
  const etc = tempDir('kill-config');
  dirs.push(files, state, etc);
  const config = join(etc, 'clogs.yaml');
  writeFileSync(config, `docker:\n  include:\n    names: ["${prefix}*"]\n`);
  return { files, state, config };
}

async function collector(run: Run): Promise<RunningCollector> {
  const c = await startCollector(['--config', run.config, '--forward', '127.0.0.1:0', '--http', '127.0.0.1:0', '--file', run.files, '--state', run.state]);
  started.push(c);
  return c;
}

function numbersIn(events: LogEvent[], id: string): number[] {
  return events.filter((e) => e.container?.id === id).map((e) => Number(/^n (\d+)$/.exec(e.message)?.[1] ?? NaN));
}

const identity = (e: LogEvent) => `${e['@timestamp']} ${e.stream} ${e.clogs.ordinal}`;

/**
 * The numbers the sink holds, each event identity counted once, and the
 * replays: events the sink stored twice under one identity. A kill after the
 * file sink wrote a batch but before the checkpoint moved makes the input send
 * that batch again; the file sink drops it (replay.ts), so there must be none.
 * A repeat under a different identity would be a real duplicate and shows up
 * in the numbers.
 */
function distinctNumbers(events: LogEvent[], id: string): { numbers: number[]; replays: string[] } {
  const seen = new Set<string>();
  const numbers: number[] = [];
  const replays: string[] = [];
  for (const e of events) {
    if (e.container?.id !== id) continue;
    const key = identity(e);
    if (seen.has(key)) {
      replays.push(`${e.message} @ ${key}`);
      continue;
    }
    seen.add(key);
    numbers.push(Number(/^n (\d+)$/.exec(e.message)?.[1] ?? NaN));
  }
  return { numbers, replays };
}

async function finishAndRead(run: Run, id: string, n: number): Promise<{ numbers: number[]; replays: string[] }> {
  const c = await collector(run);
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline && numbersIn(readFileStore(run.files), id).length < n) await sleep(200);
  await sleep(500);
  expect(await c.stop('SIGTERM')).toBe(0);
  const result = distinctNumbers(readFileStore(run.files), id);
  expect(result.replays).toEqual([]);
  return result;
}

/** Covers the waits inside a test (the container's exit, finishAndRead), so a failure shows what is missing rather than a timeout. */
const KILL_TEST_TIMEOUT_MS = 240_000;

describe('Docker input under kill -9', () => {
  it('reads a container that stopped while clogs was down, after a run killed before its first durable point', async () => {
    const n = 300;
    const run = newRun();
    const name = `${prefix}-early`;
    const c = await collector(run);
    const id = await runContainer(name, counterScript(n));
    // The first lines are written at once, their checkpoint only at the durable point a second later.
    await until('the first line in the file sink', () => numbersIn(readFileStore(run.files), id).length > 0, 30_000);
    await c.stop('SIGKILL');
    await waitExited(name, 120_000);
    const { numbers } = await finishAndRead(run, id, n);
    expect(numbers).toEqual(Array.from({ length: n }, (_, i) => i + 1));
  }, KILL_TEST_TIMEOUT_MS);

  it('reads a job that stopped before any run followed it, though a later run checkpointed after its stop', async () => {
    const run = newRun();
    const svc = `${prefix}-svc`;
    const job = `${prefix}-svc-job`;
    const include = (names: string): void => writeFileSync(run.config, `docker:\n  include:\n    names: ["${names}"]\n`);
    const svcId = await runContainer(svc, 'i=0; while true; do echo "svc $i"; i=$((i+1)); sleep 0.2; done');
    const linesOf = (id: string): string[] => readFileStore(run.files).filter((e) => e.container?.id === id).map((e) => e.message);
    include(`${prefix}-svc*`);
    let c = await collector(run);
    await until('a line of the service', () => linesOf(svcId).length > 0, 30_000);
    expect(await c.stop('SIGTERM')).toBe(0);
    // The job runs and stops while no run follows it: here the next run's
    // filter leaves it out, as a run stopped just after the job exited
    // stopped before following it.
    const jobId = await runContainer(job, 'echo one; echo two');
    await waitExited(job);
    include(svc);
    c = await collector(run);
    const seen = linesOf(svcId).length;
    await until('new lines of the service', () => linesOf(svcId).length > seen + 5, 30_000);
    expect(await c.stop('SIGTERM')).toBe(0);
    include(`${prefix}-svc*`);
    c = await collector(run);
    await until("the job's lines", () => linesOf(jobId).length === 2, 30_000, () => linesOf(jobId));
    expect(linesOf(jobId)).toEqual(['one', 'two']);
    expect(await c.stop('SIGTERM')).toBe(0);
  }, KILL_TEST_TIMEOUT_MS);

  it('loses and repeats nothing when the collector is killed at random moments', async () => {
    const n = 2500;
    const seed = Date.now() % 100_000;
    const rnd = seeded(seed);
    const run = newRun();
    const name = `${prefix}-steady`;
    let c = await collector(run);
    const id = await runContainer(name, counterScript(n));
    const kills: number[] = [];
    for (let k = 0; k < 8; k++) {
      const wait = 200 + Math.floor(rnd() * 1500);
      await sleep(wait);
      kills.push(wait);
      await c.stop('SIGKILL');
      if (k % 3 === 2) await sleep(Math.floor(rnd() * 1000));
      c = await collector(run);
    }
    await c.stop('SIGKILL');
    await waitExited(name, 120_000);
    const { numbers } = await finishAndRead(run, id, n);
    expect({ seed, kills, count: numbers.length, numbers }).toEqual({ seed, kills, count: n, numbers: Array.from({ length: n }, (_, i) => i + 1) });
  }, KILL_TEST_TIMEOUT_MS);

  it('loses and repeats nothing across kills and a docker restart of the container', async () => {
    const n = 2000;
    const seed = (Date.now() + 1) % 100_000;
    const rnd = seeded(seed);
    const run = newRun();
    const name = `${prefix}-restarted`;
    let c = await collector(run);
    const id = await runContainer(name, counterScript(n));
    for (let k = 0; k < 6; k++) {
      await sleep(200 + Math.floor(rnd() * 1200));
      if (k === 2) await docker('restart', '-t', '5', name);
      await c.stop('SIGKILL');
      if (k === 3) await docker('restart', '-t', '5', name);
      c = await collector(run);
    }
    await c.stop('SIGKILL');
    await waitExited(name, 120_000);
    const { numbers } = await finishAndRead(run, id, n);
    expect({ seed, count: numbers.length, numbers }).toEqual({ seed, count: n, numbers: Array.from({ length: n }, (_, i) => i + 1) });
  }, KILL_TEST_TIMEOUT_MS);
});
