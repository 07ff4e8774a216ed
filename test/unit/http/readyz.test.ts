/**
 * /readyz of a real Collector while its inputs are down: a reload restarting
 * them and a stop. A forward client that had an ack and never closes its
 * side holds the forward input's stop for its close grace (1 s), long enough
 * to ask.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Collector } from '../../../src/collect.js';
import { encodeMsgpack } from '../../../src/collector/forward/encode.js';
import { loadConfig } from '../../../src/config/load.js';
import type { Config } from '../../../src/config/schema.js';
import { memoryLogger } from '../../helpers/elasticsearch.js';
import { until } from '../../helpers/until.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Readiness {
  ready: boolean;
  inputs: Record<string, boolean>;
  not_ready: string[];
}

async function readyz(http: string): Promise<{ status: number; body: Readiness }> {
  const res = await fetch(`http://${http}/readyz`);
  return { status: res.status, body: (await res.json()) as Readiness };
}

/** Resolves true once a TCP connection to `port` is refused. */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

/**
 * A forward client that keeps its side open after the collector's FIN. It
 * has had an ack: a client without acks is closed at once, with no grace.
 */
function halfOpenClient(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    socket.once('connect', () => socket.write(encodeMsgpack(['half-open', 1795341190, { log: 'acked' }, { chunk: 'half-open-1' }])));
    socket.once('data', () => resolve(socket));
    socket.once('error', reject);
  });
}

async function started(extra = ''): Promise<{ collector: Collector; config: (extra: string) => Config; http: string; forwardPort: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'clogs-readyz-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'clogs.yaml');
  const config = (more: string): Config => {
    writeFileSync(
      file,
      `state_dir: ${dir}/state\ndocker:\n  enabled: false\nforward:\n  listen: 127.0.0.1:0\n  enrich: "off"\nsinks:\n  file:\n    dir: ${dir}/data\nhttp:\n  listen: 127.0.0.1:0\n${more}`,
    );
    return loadConfig({ file, env: {} });
  };
  const { log, lines } = memoryLogger();
  const collector = new Collector(log);
  cleanups.push(() => collector.stop());
  await collector.start(config(extra));
  const ready = lines.find((l) => l.msg === 'ready') as { http: string; forward: string };
  return { collector, config, http: ready.http, forwardPort: Number(ready.forward.split(':').pop()) };
}

describe('/readyz of the collector', () => {
  it('is not ready while a reload restarts the inputs', async () => {
    const { collector, config, http, forwardPort } = await started();
    expect(await readyz(http)).toEqual({ status: 200, body: { ready: true, inputs: { forward: true }, sinks: { file: true }, not_ready: [] } });

    const client = await halfOpenClient(forwardPort);
    cleanups.push(() => void client.destroy());
    const reloaded = collector.reload(config('parse_json: false\n'));
    await until('the forward port to close', () => refused(forwardPort));
    expect(await readyz(http)).toEqual({ status: 503, body: { ready: false, inputs: {}, sinks: { file: true }, not_ready: ['collector reloading'] } });

    await reloaded;
    expect(await readyz(http)).toMatchObject({ status: 200, body: { ready: true, inputs: { forward: true } } });
  });

  it('is not ready while the collector stops', async () => {
    const { collector, http, forwardPort } = await started();
    const client = await halfOpenClient(forwardPort);
    cleanups.push(() => void client.destroy());
    const stopped = collector.stop();
    await until('the forward port to close', () => refused(forwardPort));
    expect(await readyz(http)).toEqual({ status: 503, body: { ready: false, inputs: {}, sinks: { file: true }, not_ready: ['collector stopping'] } });
    await stopped;
  });
});
