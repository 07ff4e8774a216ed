/**
 * Losing the engine: clogs talks to the real engine through a unix-socket
 * relay that the test can cut (every connection dropped, nothing listening:
 * what a daemon restart looks like from the client) and bring back.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDockerInput } from '../../src/collector/docker/index.js';
import { connectEngine, DEFAULT_ENGINE } from '../../src/collector/docker/engine.js';
import { Pipeline } from '../../src/collector/pipeline.js';
import { dockerSchema, multilineSchema } from '../../src/config/schema.js';
import { createLogger } from '../../src/log.js';
import { ensureBusyboxImage, removeContainers, requireDockerEngine, runContainer, uniquePrefix, waitExited, CaptureSink } from '../helpers/docker.js';
import { until } from '../helpers/until.js';

const log = createLogger(process.env.CLOGS_TEST_LOG ?? 'silent');
const prefix = uniquePrefix('reconnect');
const dir = mkdtempSync(join(tmpdir(), 'clogs-reconnect-'));

class Relay {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  constructor(readonly path: string) {}

  async up(): Promise<void> {
    const server = createServer((client) => {
      const engine = createConnection('/var/run/docker.sock');
      this.sockets.add(client).add(engine);
      client.pipe(engine).pipe(client);
      const drop = () => {
        client.destroy();
        engine.destroy();
        this.sockets.delete(client);
        this.sockets.delete(engine);
      };
      client.on('error', drop).on('close', drop);
      engine.on('error', drop).on('close', drop);
    });
    await new Promise<void>((resolve) => server.listen(this.path, resolve));
    this.server = server;
  }

  async down(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    if (server) await new Promise((resolve) => server.close(resolve));
  }
}

beforeAll(async () => {
  await requireDockerEngine();
  ensureBusyboxImage();
});

afterAll(async () => {
  await removeContainers(prefix);
  rmSync(dir, { recursive: true, force: true });
});

describe('Docker input when the engine goes away', () => {
  it('uses the local socket unless told otherwise, and only then gives up when nothing answers', async () => {
    expect(connectEngine({}, {})).toMatchObject({ address: DEFAULT_ENGINE, explicit: false });
    expect(connectEngine({}, { DOCKER_HOST: 'tcp://10.1.2.3:2375' })).toMatchObject({ address: 'tcp://10.1.2.3:2375', explicit: true });
    const disabled = await startDockerInput(dockerSchema.parse({ enabled: false }), {
      pipeline: new Pipeline([new CaptureSink()]),
      log,
      stateDir: dir,
      hostName: 'h',
      parseJson: false,
      parseLogfmt: true,
      stripAnsi: true,
      maxLineBytes: 1 << 20,
      multiline: multilineSchema.parse({}),
    });
    expect(disabled).toBeUndefined();
  });

  it('keeps retrying an explicitly configured engine, and loses nothing across a connection loss', async () => {
    const relay = new Relay(join(dir, 'engine.sock'));
    const capture = new CaptureSink();
    const input = await startDockerInput(dockerSchema.parse({ host: `unix://${relay.path}`, include: { names: [`${prefix}*`] } }), {
      pipeline: new Pipeline([capture]),
      log,
      stateDir: join(dir, 'state'),
      hostName: 'h',
      parseJson: false,
      parseLogfmt: true,
      stripAnsi: true,
      maxLineBytes: 1 << 20,
      multiline: multilineSchema.parse({}),
    });
    try {
      expect(input).toBeDefined();
      expect(input!.address).toBe(`unix://${relay.path}`);
      expect(input!.ready()).toBe(false);
      await relay.up();
      await until('connected', () => input!.ready());

      const n = 1500;
      const name = `${prefix}-steady`;
      const id = await runContainer(name, `i=1; while [ $i -le ${n} ]; do echo "n $i"; i=$((i+1)); sleep 0.005; done`);
      const mine = () => capture.events.filter((e) => e.container?.id === id);
      await until('first lines', () => mine().length > 100);
      await relay.down();
      await new Promise((r) => setTimeout(r, 300));
      expect(input!.ready()).toBe(false);
      await new Promise((r) => setTimeout(r, 1500));
      await relay.up();
      await until('reconnected', () => input!.ready());
      await waitExited(name, 120_000);
      await until('all lines', () => mine().length >= n);
      await new Promise((r) => setTimeout(r, 300));
      expect(mine().map((e) => e.message)).toEqual(Array.from({ length: n }, (_, i) => `n ${i + 1}`));
    } finally {
      await input?.stop();
      await relay.down();
    }
  });
});
