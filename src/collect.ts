/**
 * `clogs collect`, the composition root: the one module that knows every
 * input, sink and the HTTP endpoint (they know only the pipeline's
 * interfaces). Builds them and the pipeline between them from a Config, runs
 * them, reloads them on SIGHUP and stops them in order on SIGTERM/SIGINT (inputs first, so everything they accepted reaches the sinks;
 * sinks last, so what is queued stays queued).
 */
import { mkdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { isDeepStrictEqual } from 'node:util';
import type { Config } from './config/schema.js';
import type { Logger } from './log.js';
import { ClogsError } from './errors.js';
import type { Sink } from './sinks/sink.js';
import { createFileSink } from './sinks/file/index.js';
import { startHttpServer } from './http/server.js';
import { containerStates } from './tail/ps.js';
import type { Store } from './tail/store.js';
import { configuredStore, openStore } from './tail/target.js';
import { Pipeline } from './collector/pipeline.js';
import type { InputDeps, RunningInput } from './collector/input.js';
import { startForwardInput } from './collector/forward/index.js';
import { collectProcessMetrics } from './metrics.js';

interface Running {
  config: Config;
  sinks: Sink[];
  inputs: RunningInput[];
  /** The inputs' container directory, closed after them. */
  containers: { close(): void } | undefined;
}

export class Collector {
  private running: Running | undefined;
  private http: { address: string; close(): Promise<void> } | undefined;
  private readonly pipeline = new Pipeline([]);
  /** The sinks' store read back, for the web page; replaced when a reload changes the sinks. */
  private store: Store | undefined;
  private reloading: Promise<void> = Promise.resolve();

  constructor(private readonly log: Logger) {}

  async start(config: Config): Promise<void> {
    collectProcessMetrics();
    await mkdir(config.state_dir, { recursive: true });
    const sinks = await this.startSinks(config);
    this.pipeline.replaceSinks(sinks);
    let started: Pick<Running, 'inputs' | 'containers'>;
    try {
      started = await this.startInputs(config);
    } catch (err) {
      await Promise.allSettled(sinks.map((s) => s.close()));
      throw err;
    }
    const { inputs } = started;
    this.running = { config, sinks, ...started };
    if (config.http.enabled) {
      this.store = await this.openStore(config);
      this.http = await startHttpServer(config.http, {
        log: this.log.child({ component: 'http' }),
        pipeline: this.pipeline,
        inputs: () => this.running?.inputs ?? [],
        sinks: () => this.pipeline.sinkList,
        reader: {
          store: () => this.store,
          containerStates: () => containerStates(this.running?.config.docker ?? config.docker),
        },
      });
    }
    const forward = inputs.find((i) => i.name === 'forward');
    const docker = inputs.find((i) => i.name === 'docker');
    this.log.info(
      { forward: forward?.address, docker: docker?.address, http: this.http?.address, sinks: sinks.map((s) => s.name), state: config.state_dir },
      'ready',
    );
  }

  /**
   * Applies a new config: inputs and sinks whose settings changed are restarted,
   * the rest keep running. Queued data stays in the sinks' disk queues and the
   * inputs' checkpoints, so nothing is lost across the restart.
   */
  reload(next: Config): Promise<void> {
    this.reloading = this.reloading.then(() => this.applyReload(next));
    return this.reloading;
  }

  async stop(): Promise<void> {
    await this.reloading;
    const running = this.running;
    this.running = undefined;
    if (!running) return;
    await this.stopInputs(running.inputs);
    running.containers?.close();
    await this.http?.close();
    await this.store?.close();
    const closed = await Promise.allSettled(running.sinks.map((s) => s.close()));
    for (const c of closed) if (c.status === 'rejected') this.log.error({ err: c.reason }, 'sink close failed');
  }

  private async applyReload(next: Config): Promise<void> {
    const cur = this.running;
    if (!cur) return;
    const sinksChanged = !isDeepStrictEqual(cur.config.sinks, next.sinks) || cur.config.state_dir !== next.state_dir;
    const inputsChanged =
      sinksChanged ||
      !isDeepStrictEqual(cur.config.forward, next.forward) ||
      !isDeepStrictEqual(cur.config.docker, next.docker) ||
      cur.config.parse_json !== next.parse_json ||
      cur.config.parse_logfmt !== next.parse_logfmt ||
      cur.config.strip_ansi !== next.strip_ansi ||
      cur.config.max_line_size !== next.max_line_size ||
      cur.config.host_name !== next.host_name;
    if (!inputsChanged) {
      this.running = { ...cur, config: next };
      this.log.info('config reloaded: nothing to restart');
      return;
    }
    // Inputs stop first so every event they accepted is written before a sink
    // goes away; the sources (Docker's driver, the engine API) resume from
    // where the acks and checkpoints left them.
    await this.stopInputs(cur.inputs);
    cur.containers?.close();
    let sinks = cur.sinks;
    if (sinksChanged) {
      await Promise.allSettled(cur.sinks.map((s) => s.close()));
      sinks = await this.startSinks(next);
      this.pipeline.replaceSinks(sinks);
      if (this.http) {
        const old = this.store;
        this.store = await this.openStore(next);
        await old?.close();
      }
    }
    this.running = { config: next, sinks, ...(await this.startInputs(next)) };
    this.log.info({ restarted: sinksChanged ? 'inputs and sinks' : 'inputs', sinks: sinks.map((s) => s.name) }, 'config reloaded');
  }

  private async openStore(config: Config): Promise<Store> {
    const log = this.log.child({ component: 'http' });
    return openStore(config, configuredStore(config), (message) => log.warn({ store: message }, 'reading the store'));
  }

  private async startSinks(config: Config): Promise<Sink[]> {
    const sinks: Sink[] = [];
    if (config.sinks.file.enabled) sinks.push(createFileSink(config.sinks.file, { log: this.log.child({ component: 'sink', sink: 'file' }) }));
    if (config.sinks.elasticsearch) {
      // Loaded only when configured: the client is about 20 MB of the idle RSS.
      const { createElasticsearchSink } = await import('./sinks/elasticsearch/index.js');
      sinks.push(
        createElasticsearchSink(config.sinks.elasticsearch, {
          log: this.log.child({ component: 'sink', sink: 'elasticsearch' }),
          stateDir: config.state_dir,
          hostName: hostNameOf(config),
        }),
      );
    }
    if (sinks.length === 0) {
      throw new ClogsError('CLOGS_CONFIG', 'no sink is enabled: enable sinks.file or configure sinks.elasticsearch (--file DIR, --es URL)');
    }
    const started = await Promise.allSettled(sinks.map((s) => s.start()));
    const failed = started.find((s) => s.status === 'rejected');
    if (failed) {
      await Promise.allSettled(sinks.map((s) => s.close()));
      throw failed.reason;
    }
    return sinks;
  }

  /** Stops the inputs one after another, the last started first (see startInputs()). */
  private async stopInputs(inputs: readonly RunningInput[]): Promise<void> {
    for (const input of [...inputs].reverse()) {
      await input.stop().catch((err: unknown) => this.log.error({ err, input: input.name }, 'input stop failed'));
    }
  }

  private async startInputs(config: Config): Promise<Pick<Running, 'inputs' | 'containers'>> {
    // Loaded only when used: dockerode is about 12 MB of the idle RSS.
    const containers =
      config.forward.enabled && config.forward.enrich === 'auto'
        ? await (await import('./collector/docker/directory.js')).openContainerDirectory(config.docker, this.log.child({ component: 'containers' }))
        : undefined;
    const deps = (name: string): InputDeps => ({
      pipeline: this.pipeline,
      log: this.log.child({ component: name }),
      stateDir: config.state_dir,
      hostName: hostNameOf(config),
      parseJson: config.parse_json,
      parseLogfmt: config.parse_logfmt,
      stripAnsi: config.strip_ansi,
      maxLineBytes: config.max_line_size,
      ...(containers ? { containers } : {}),
      multiline: config.multiline,
    });
    const inputs: RunningInput[] = [];
    // The Docker input starts first and stops last: its backfill gate matches
    // the lines it reads against the forward input's deliveries, from the
    // first one (a driver flushing its buffer as the forward port opens)
    // to the last (written while the forward input stops), and keeps the
    // unmatched ones for the next start when it stops.
    try {
      if (config.docker.enabled) {
        const { startDockerInput } = await import('./collector/docker/index.js');
        const docker = await startDockerInput(config.docker, deps('docker'));
        if (docker) inputs.push(docker);
      }
      if (config.forward.enabled) inputs.push(await startForwardInput(config.forward, deps('forward')));
    } catch (err) {
      await this.stopInputs(inputs);
      containers?.close();
      throw err;
    }
    return { inputs, containers };
  }
}

function hostNameOf(config: Config): string {
  return config.host_name ?? hostname();
}
