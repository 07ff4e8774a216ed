/**
 * `fluentd_backfill`: a container logging through Docker's fluentd driver to
 * clogs' forward input loses what it writes while clogs is down (async mode,
 * container exits before the driver reconnects: fixtures MANIFEST f3). With
 * the backfill on, the Docker input reads those lines back from the engine's
 * dual-logging cache and writes only the ones the forward input never got.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningInput } from '../../src/collector/input.js';
import { startDockerInput } from '../../src/collector/docker/index.js';
import { startForwardInput } from '../../src/collector/forward/index.js';
import { Pipeline } from '../../src/collector/pipeline.js';
import { dockerSchema, forwardSchema, multilineSchema } from '../../src/config/schema.js';
import { createLogger } from '../../src/log.js';
import { ensureBusyboxImage, removeContainers, requireDockerEngine, runContainer, uniquePrefix, waitExited, CaptureSink } from '../helpers/docker.js';
import { readFileStore, startCollector, type RunningCollector } from '../helpers/services.js';
import { until } from '../helpers/until.js';

const log = createLogger(process.env.CLOGS_TEST_LOG ?? 'silent');
const prefix = uniquePrefix('backfill');
const dir = mkdtempSync(join(tmpdir(), 'clogs-backfill-'));

const counter = 'i=1; while [ $i -le 30 ]; do echo "b $i"; i=$((i+1)); sleep 0.1; done';
const fluentdTo = (port: number) => ['--log-driver=fluentd', '--log-opt', `fluentd-address=127.0.0.1:${port}`, '--log-opt', 'fluentd-async=true', '--log-opt', 'fluentd-sub-second-precision=true'];

async function startBoth(capture: CaptureSink, listen: string): Promise<{ forward: RunningInput; docker: RunningInput }> {
  const pipeline = new Pipeline([capture]);
  const deps = (name: string) => ({ pipeline, log: log.child({ component: name }), stateDir: join(dir, 'state'), hostName: 'h', parseJson: true, parseLogfmt: true, stripAnsi: true, maxLineBytes: 1 << 20, multiline: multilineSchema.parse({}) });
  const forward = await startForwardInput(forwardSchema.parse({ listen }), deps('forward'));
  const docker = await startDockerInput(dockerSchema.parse({ fluentd_backfill: true, include: { names: [`${prefix}*`] } }), deps('docker'));
  if (!docker) throw new Error('docker input did not start');
  return { forward, docker };
}

beforeAll(async () => {
  await requireDockerEngine();
  ensureBusyboxImage();
});

/** Collectors started as processes: one a failed test left running is stopped here. */
const started: RunningCollector[] = [];

afterAll(async () => {
  for (const c of started) await c.stop('SIGKILL');
  await removeContainers(prefix);
  rmSync(dir, { recursive: true, force: true });
});

describe('fluentd-driver backfill', () => {
  it('fills the gap left while clogs was down, without repeating what the forward input delivered', async () => {
    const first = new CaptureSink();
    let inputs = await startBoth(first, '127.0.0.1:0');
    const port = Number(inputs.forward.address.split(':').pop());
    const name = `${prefix}-async`;
    const id = await runContainer(name, counter, { args: fluentdTo(port) });
    await until('some lines through the forward input', () => first.events.filter((e) => e.container?.id === id).length >= 8, 40_000);
    // clogs goes down; the container finishes while nothing listens, so the
    // driver discards the rest of its buffer.
    await inputs.forward.stop();
    await inputs.docker.stop();
    await waitExited(name);
    await new Promise((r) => setTimeout(r, 500));
    const before = first.events.filter((e) => e.container?.id === id);
    // At shutdown the Docker input writes nothing the forward input did not
    // deliver: an async driver may still send it after the restart.
    expect(before.every((e) => e.clogs.input === 'forward')).toBe(true);
    expect(before.length).toBeLessThan(30);

    const second = new CaptureSink();
    inputs = await startBoth(second, `127.0.0.1:${port}`);
    try {
      // Lines read back wait 15 s for a forward delivery before they are written.
      await until('the backfill', () => before.length + second.events.filter((e) => e.container?.id === id).length >= 30, 40_000);
      await new Promise((r) => setTimeout(r, 1000));
      const after = second.events.filter((e) => e.container?.id === id);
      expect(after.every((e) => e.clogs.input === 'docker')).toBe(true);
      expect([...before, ...after].map((e) => e.message)).toEqual(Array.from({ length: 30 }, (_, i) => `b ${i + 1}`));
    } finally {
      await inputs.forward.stop();
      await inputs.docker.stop();
    }
  }, 120_000);

  it('fills the gap after a run that was killed just after it first saw the container', async () => {
    const files = join(dir, 'early-files');
    const state = join(dir, 'early-state');
    const config = join(dir, 'early.yaml');
    writeFileSync(config, `log_level: debug\ndocker:\n  fluentd_backfill: true\n  include:\n    names: ["${prefix}*"]\n`);
    const args = (forward: string) => ['--config', config, '--forward', forward, '--http', '127.0.0.1:0', '--file', files, '--state', state];
    const first = await startCollector(args('127.0.0.1:0'));
    started.push(first);
    const port = first.forwardPort();
    const name = `${prefix}-early`;
    const id = await runContainer(name, counter, { args: fluentdTo(port) });
    // Followed from the moment it was first seen: that start must already be durable.
    await until('the Docker input following the container', () => first.lines.some((l) => l.msg === 'following container log' && l.container === id.slice(0, 12)), 30_000);
    await first.stop('SIGKILL');
    await waitExited(name);
    const messages = () => readFileStore(files).filter((e) => e.container?.id === id).map((e) => e.message);
    expect(messages().length).toBeLessThan(30);

    const second = await startCollector(args(`127.0.0.1:${port}`));
    started.push(second);
    // Lines read back wait 15 s for a forward delivery before they are written.
    await until('the backfill', () => messages().length >= 30, 60_000);
    await new Promise((r) => setTimeout(r, 1000));
    expect(await second.stop()).toBe(0);
    expect(messages()).toEqual(Array.from({ length: 30 }, (_, i) => `b ${i + 1}`));
  }, 120_000);

  it('removes the memory of deliveries an earlier run left when the backfill is off', async () => {
    const state = join(dir, 'off-state');
    const memory = join(state, 'docker', 'backfill-delivered.json');
    mkdirSync(join(state, 'docker'), { recursive: true });
    writeFileSync(memory, JSON.stringify({ deliveries: [['c'.repeat(64), 'k', Date.now()]] }));
    const deps = { pipeline: new Pipeline([new CaptureSink()]), log, stateDir: state, hostName: 'h', parseJson: true, parseLogfmt: true, stripAnsi: true, maxLineBytes: 1 << 20, multiline: multilineSchema.parse({}) };
    const docker = await startDockerInput(dockerSchema.parse({ fluentd_backfill: false, include: { names: [`${prefix}-none`] } }), deps);
    if (!docker) throw new Error('docker input did not start');
    await docker.stop();
    expect(existsSync(memory)).toBe(false);
  });
});
