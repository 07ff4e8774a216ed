/**
 * Terminal escapes, logfmt and leading levels through the real collector
 * process and the real Docker engine, on both inputs: one container read by
 * the Docker input (json-file driver), the same output from one using the
 * fluentd driver (forward input, PackedForward fast path included).
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LogEvent } from '../../src/collector/event.js';
import { readFileStore, readFileStoreLines, startCollector, tempDir, type RunningCollector } from '../helpers/services.js';
import { ensureBusyboxImage, removeContainers, requireDockerEngine, runContainer, uniquePrefix, waitExited } from '../helpers/docker.js';
import { until } from '../helpers/until.js';

const prefix = uniquePrefix('text');
const dirs: string[] = [];
let collector: RunningCollector;
let files: string;

/** What the containers print: escapes written with printf, as coloured programs write them. */
const SCRIPT = [
  String.raw`printf '\033[31mERROR\033[0m disk full\n'`,
  String.raw`printf '\033]0;build title\007\033[1;32mdone\033[0m\n'`,
  String.raw`printf 'downloading  10%%\rdownloading  55%%\rdownloading 100%%\n'`,
  String.raw`printf '2026-11-29 12:00:00.123  WARN 1 --- [main] c.e.App : slow query\n'`,
  String.raw`printf 'I1129 12:00:00.000000       1 server.go:42] started\n'`,
  String.raw`printf 'time=2026-11-29T12:00:00Z level=error msg="quoted \\"x\\" text" code=42\n'`,
  String.raw`printf 'user said error occurred\n'`,
  String.raw`printf 'retries=3\n'`,
  String.raw`printf '{"level":"info","time":1700000000123456789,"message":"zerolog line"}\n'`,
  String.raw`printf 'tail \033[3\n'`,
  String.raw`printf '\033[33mWARNING\033[0m: low memory\n' >&2`,
].join('; ');

const EXPECTED_STDOUT: Array<Partial<LogEvent>> = [
  { message: 'ERROR disk full', log: { level: 'error' } },
  { message: 'done' },
  { message: 'downloading 100%' },
  { message: '2026-11-29 12:00:00.123  WARN 1 --- [main] c.e.App : slow query', log: { level: 'warn' } },
  { message: 'I1129 12:00:00.000000       1 server.go:42] started', log: { level: 'info' } },
  { message: 'quoted "x" text', log: { level: 'error' }, attrs: { time: '2026-11-29T12:00:00Z', code: '42' } },
  { message: 'user said error occurred' },
  { message: 'retries=3' },
  { message: 'zerolog line', log: { level: 'info' }, attrs: { time: 1700000000123456789 } },
  { message: 'tail ' },
];

beforeAll(async () => {
  await requireDockerEngine();
  ensureBusyboxImage();
  files = tempDir('text-files');
  const state = tempDir('text-state');
  const etc = tempDir('text-config');
  dirs.push(files, state, etc);
  const config = join(etc, 'clogs.yaml');
  writeFileSync(config, `docker:\n  include:\n    names: ["${prefix}*"]\n`);
  collector = await startCollector(['--config', config, '--forward', '127.0.0.1:0', '--http', '127.0.0.1:0', '--file', files, '--state', state]);
});

afterAll(async () => {
  await collector?.stop();
  await removeContainers(prefix);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A container's events, in the order the collector numbered them, once all eleven are stored. */
async function eventsOf(id: string): Promise<LogEvent[]> {
  let events: LogEvent[] = [];
  await until('all eleven lines stored', () => (events = readFileStore(files).filter((e) => e.container?.id === id)).length >= 11, 30_000);
  return events.sort((a, b) => a.clogs.seq - b.clogs.seq);
}

function expectCleaned(events: LogEvent[], input: 'docker' | 'forward'): void {
  expect(events).toHaveLength(11);
  expect(events.every((e) => e.clogs.input === input)).toBe(true);
  const out = events.filter((e) => e.stream === 'stdout');
  expect(out.map(({ message, log, attrs }) => ({ message, log, attrs }))).toEqual(EXPECTED_STDOUT.map(({ message, log, attrs }) => ({ message, log, attrs })));
  expect(events.filter((e) => e.stream === 'stderr').map(({ message, log }) => ({ message, log }))).toEqual([{ message: 'WARNING: low memory', log: { level: 'warn' } }]);
  // JSON.parse above rounds the time as the test's own literal does: its digits are checked in the stored text.
  const id = events[0]!.container!.id!;
  expect(readFileStoreLines(files).filter((l) => l.includes(id) && l.includes('zerolog line')).map((l) => /"time":(\d+)/.exec(l)?.[1])).toEqual(['1700000000123456789']);
}

describe('text lines from real containers, on both inputs', () => {
  it('the Docker input strips escapes, parses logfmt and reads leading levels', async () => {
    const name = `${prefix}-follow`;
    const id = await runContainer(name, SCRIPT);
    await waitExited(name);
    expectCleaned(await eventsOf(id), 'docker');
  });

  it('the forward input does the same for the fluentd driver', async () => {
    const name = `${prefix}-fluentd`;
    const id = await runContainer(name, SCRIPT, {
      args: ['--log-driver=fluentd', '--log-opt', `fluentd-address=127.0.0.1:${collector.forwardPort()}`],
    });
    await waitExited(name);
    expectCleaned(await eventsOf(id), 'forward');
  });
});
