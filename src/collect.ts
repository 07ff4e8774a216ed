/**
 * `clogs collect`, the composition root: the one module that knows every
 * input, sink and the HTTP endpoint (they know only the pipeline's
 * interfaces). Builds them and the pipeline between them from a Config, runs
 * them, reloads them on SIGHUP and stops them in order on SIGTERM/SIGINT (inputs first, so everything they accepted reaches the sinks;
 * sinks last, so what is queued stays queued). The inputs also start last:
 * an HTTP port taken or a sink that cannot start fails the start before any
 * input took a line.
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
import { startForwardInput, type KeptConnections, type RunningForwardInput } from './collector/forward/index.js';
import { collectProcessMetrics } from './metrics.js';

type SinkKind = 'file' | 'elasticsearch';

interface Running {
  config: Config;
  inputs: RunningInput[];
  /** The forward input among them, whose connections a reload keeps. */
  forward: RunningForwardInput | undefined;
  /** The inputs' container directory, closed after them. */
  containers: { close(): void } | undefined;
}

/**
 * Keys a running collector cannot change: its own logger is made once, before
 * the config could be reloaded (Vector ignores its global options on reload
 * the same way).
 */
const RESTART_ONLY = ['log_level', 'log_format'] as const;

export class Collector {
  private running: Running | undefined;
  private http: { address: string; close(): Promise<void> } | undefined;
  private readonly pipeline = new Pipeline();
  /** Which config key each sink was made from, to keep those a reload leaves alone. */
  private readonly sinkKinds = new WeakMap<Sink, SinkKind>();
  /** The sinks' store read back, for the web page; replaced when a reload changes the sinks. */
  private store: Store | undefined;
  /** The start or reload under way, if any; it never rejects, so a failed one does not stop later reloads or stop(). */
  private changing: Promise<void> = Promise.resolve();
  /** Why no inputs run while `running` is undefined, for /readyz. */
  private down = 'collector starting';
  /** From the stop() call on, /readyz says so, also while it waits for a reload to end. */
  private stopping = false;

  constructor(private readonly log: Logger) {}

  /** Whether inputs and sinks run: false only once a reload failed and the config before it could not be started again either. */
  get isRunning(): boolean {
    return this.running !== undefined;
  }

  /** Starts everything; on failure stops what it started and rejects. stop() waits for it either way. */
  start(config: Config): Promise<void> {
    const started = this.startAll(config);
    this.changing = started.catch(() => undefined);
    return started;
  }

  private async startAll(config: Config): Promise<void> {
    collectProcessMetrics();
    // Before the inputs: /readyz answers (not ready) while they start, and a
    // taken HTTP port fails the start before a forward client got an ack.
    await this.startHttp(config);
    try {
      await this.bringUp(config, []);
    } catch (err) {
      await this.stopHttp();
      throw err;
    }
    const inputs = this.running!.inputs;
    const forward = inputs.find((i) => i.name === 'forward');
    const docker = inputs.find((i) => i.name === 'docker');
    this.log.info(
      { forward: forward?.address, docker: docker?.address, http: this.http?.address, sinks: this.pipeline.sinkList.map((s) => s.name), state: config.state_dir },
      'ready',
    );
  }

  /**
   * Applies a new config: inputs, sinks and the HTTP endpoint whose settings
   * changed are restarted, the rest keep running. Sinks are replaced under
   * running inputs, which wait meanwhile (Pipeline.replaceSinks): a forward
   * client keeps its connection through a change of sinks. Queued data stays
   * in the sinks' disk queues and the inputs' checkpoints, so nothing is lost
   * across the restart. When any part of the new config does not start (a
   * port taken, a state directory that cannot be written), what the reload
   * restarted runs with the config before it again, and the returned promise
   * rejects with the reason; when that does not start either, no input or
   * sink runs and isRunning is false.
   */
  reload(next: Config): Promise<void> {
    const applied = this.changing.then(() => this.applyReload(next));
    this.changing = applied.catch(() => undefined);
    return applied;
  }

  /** Waits for a start or reload under way, then stops everything: inputs, the HTTP endpoint, sinks. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.changing;
    const running = this.running;
    this.running = undefined;
    if (running) await this.stopInputs(running);
    await this.stopHttp();
    await this.closeSinks();
  }

  private async applyReload(next: Config): Promise<void> {
    const cur = this.running;
    if (!cur) {
      this.log.warn('config reload ignored: the collector is not running');
      return;
    }
    for (const key of RESTART_ONLY) {
      if (cur.config[key] !== next[key]) this.log.warn({ key, running: cur.config[key], next: next[key] }, 'config reload: this key takes effect at the next start');
    }
    const sinksChanged = !isDeepStrictEqual(cur.config.sinks, next.sinks) || cur.config.state_dir !== next.state_dir;
    const inputsChanged = !isDeepStrictEqual(inputSettings(cur.config), inputSettings(next));
    const httpChanged = !isDeepStrictEqual(cur.config.http, next.http);
    if (!inputsChanged && !sinksChanged && !httpChanged) {
      this.running = { ...cur, config: next };
      this.log.info('config reloaded: nothing to restart');
      return;
    }
    // The HTTP endpoint first, as at start: an address that cannot be bound
    // fails the reload before an input or sink of the running config stopped.
    // Its page reads the running sinks' store until the new sinks run.
    if (httpChanged) await this.restartHttp({ ...cur.config, http: next.http }, cur);
    if (inputsChanged) {
      // Inputs stop first so every event they accepted is written before a sink
      // goes away; the sources (Docker's driver, the engine API) resume from
      // where the acks and checkpoints left them.
      this.running = undefined;
      this.down = 'collector reloading';
      // Forward clients keep their connections, paused, for the next forward input (handover.ts).
      const kept = await this.stopInputs(cur, true);
      try {
        await this.bringUp(next, this.unchangedSinks(cur.config, next), kept);
      } catch (err) {
        this.log.error({ err }, 'config reload failed: starting the running config again');
        try {
          await this.restoreHttp(cur.config, httpChanged);
          await this.bringUp(cur.config, this.unchangedSinks(next, cur.config), kept);
        } catch (again) {
          await this.closeSinks();
          throw again;
        }
        throw err;
      } finally {
        // Those no forward input took (it is off now, or did not start).
        kept?.close();
      }
    } else if (sinksChanged) {
      await this.reloadSinks(cur, next, httpChanged);
    } else this.running = { ...cur, config: next };
    if (sinksChanged && this.http) await this.replaceStore(next);
    this.log.info(
      { restarted: [inputsChanged && 'inputs', sinksChanged && 'sinks', httpChanged && 'http'].filter(Boolean), sinks: this.pipeline.sinkList.map((s) => s.name) },
      'config reloaded',
    );
  }

  /**
   * The sinks of `next` in place of the running ones whose config changed,
   * under the running inputs. When they do not start, the running config's
   * start again in the same replace, so the writes held meanwhile go there.
   */
  private async reloadSinks(cur: Running, next: Config, httpChanged: boolean): Promise<void> {
    let failed: unknown;
    const keep = this.unchangedSinks(cur.config, next);
    try {
      await this.replaceSinks(keep, async () => {
        try {
          return await this.startSinks(next, keep);
        } catch (err) {
          failed = err;
          this.log.error({ err }, 'config reload failed: starting the running config again');
          return await this.startSinks(cur.config, keep);
        }
      });
    } catch (again) {
      this.running = undefined;
      this.down = 'collector reloading';
      await this.stopInputs(cur);
      throw again;
    }
    if (failed !== undefined) {
      try {
        await this.restoreHttp(cur.config, httpChanged);
      } catch (again) {
        // As restartHttp: a config that runs only in part is not the one before the reload.
        this.running = undefined;
        this.down = 'collector reloading';
        await this.stopInputs(cur);
        await this.closeSinks();
        throw again;
      }
      throw failed;
    }
    this.running = { ...cur, config: next };
  }

  /** Starts the sinks (but `keep`, which run) and the inputs of `config`; on failure leaves no sink or input running. */
  private async bringUp(config: Config, keep: readonly Sink[], kept?: KeptConnections): Promise<void> {
    await mkdir(config.state_dir, { recursive: true });
    await this.replaceSinks(keep, () => this.startSinks(config, keep));
    let started: Pick<Running, 'inputs' | 'forward' | 'containers'>;
    try {
      started = await this.startInputs(config, kept);
    } catch (err) {
      await this.closeSinks();
      throw err;
    }
    this.running = { config, ...started };
  }

  /** After a failed reload, the HTTP endpoint of the running config again, when the reload replaced it, and first, as at start. */
  private async restoreHttp(config: Config, replaced: boolean): Promise<void> {
    if (!replaced) return;
    await this.stopHttp();
    await this.startHttp(config);
  }

  /**
   * The HTTP endpoint of `config` in place of the one of `running`, which
   * starts again when it does not. Should that fail too, the inputs and sinks
   * of `running` stop as well: a config that runs only in part is not the
   * one before the reload, and isRunning then says so.
   */
  private async restartHttp(config: Config, running: Running): Promise<void> {
    await this.stopHttp();
    try {
      await this.startHttp(config);
    } catch (err) {
      this.log.error({ err }, 'config reload failed: starting the running HTTP endpoint again');
      try {
        await this.startHttp(running.config);
      } catch (again) {
        this.running = undefined;
        await this.stopInputs(running);
        await this.closeSinks();
        throw again;
      }
      throw err;
    }
  }

  private async startHttp(config: Config): Promise<void> {
    if (!config.http.enabled) return;
    this.store = await this.openStore(config);
    try {
      this.http = await startHttpServer(config.http, {
        log: this.log.child({ component: 'http' }),
        pipeline: this.pipeline,
        inputs: () => {
          if (this.stopping) return 'collector stopping';
          if (!this.running) return this.down;
          // Sinks replaced under running inputs: writes wait, as during a restart.
          return this.pipeline.isReplacing ? 'collector reloading' : this.running.inputs;
        },
        sinks: () => this.pipeline.sinkList,
        reader: {
          store: () => this.store,
          containerStates: () => containerStates(this.running?.config.docker ?? config.docker),
        },
      });
    } catch (err) {
      await this.stopHttp();
      throw err;
    }
  }

  /** The page reads what the sinks of `config` store. */
  private async replaceStore(config: Config): Promise<void> {
    const old = this.store;
    this.store = await this.openStore(config);
    await old?.close();
  }

  private async stopHttp(): Promise<void> {
    const [http, store] = [this.http, this.store];
    this.http = undefined;
    this.store = undefined;
    await http?.close();
    await store?.close();
  }

  private async openStore(config: Config): Promise<Store> {
    const log = this.log.child({ component: 'http' });
    return openStore(config, configuredStore(config), (message) => log.warn({ store: message }, 'reading the store'));
  }

  /** The sinks of `config`: those of `keep` (running, configured the same) and new ones, started. */
  private async startSinks(config: Config, keep: readonly Sink[]): Promise<Sink[]> {
    const kept = (kind: SinkKind): Sink | undefined => keep.find((s) => this.sinkKinds.get(s) === kind);
    const sinks: Sink[] = [];
    const fresh: Sink[] = [];
    const add = (kind: SinkKind, create: () => Sink): void => {
      let sink = kept(kind);
      if (!sink) {
        sink = create();
        this.sinkKinds.set(sink, kind);
        fresh.push(sink);
      }
      sinks.push(sink);
    };
    if (config.sinks.file.enabled) add('file', () => createFileSink(config.sinks.file, { log: this.log.child({ component: 'sink', sink: 'file' }) }));
    const es = config.sinks.elasticsearch;
    if (es) {
      // Loaded only when configured: the client is about 20 MB of the idle RSS.
      const { createElasticsearchSink } = await import('./sinks/elasticsearch/index.js');
      add('elasticsearch', () => createElasticsearchSink(es, { log: this.log.child({ component: 'sink', sink: 'elasticsearch' }), stateDir: config.state_dir }));
    }
    if (sinks.length === 0) {
      throw new ClogsError('CLOGS_CONFIG', 'no sink is enabled: enable sinks.file or configure sinks.elasticsearch (--file DIR, --es URL)');
    }
    const started = await Promise.allSettled(fresh.map((s) => s.start()));
    const failed = started.find((s) => s.status === 'rejected');
    if (failed) {
      for (const c of await Promise.allSettled(fresh.map((s) => s.close()))) if (c.status === 'rejected') this.log.error({ err: c.reason }, 'sink close failed');
      throw failed.reason;
    }
    return sinks;
  }

  /**
   * The running sinks that `next` configures as `cur` did: replacing the
   * others leaves them running (a file sink restarted reads every source's
   * tail for replays before its first writes).
   */
  private unchangedSinks(cur: Config, next: Config): Sink[] {
    const same: Record<SinkKind, boolean> = {
      file: isDeepStrictEqual(cur.sinks.file, next.sinks.file),
      elasticsearch: isDeepStrictEqual(cur.sinks.elasticsearch, next.sinks.elasticsearch) && cur.state_dir === next.state_dir,
    };
    return this.pipeline.sinkList.filter((s) => same[this.sinkKinds.get(s)!]);
  }

  /** The pipeline's sinks but `keep` closed, and replaced by what `open` returns (see Pipeline.replaceSinks). */
  private async replaceSinks(keep: readonly Sink[], open: () => Promise<readonly Sink[]>): Promise<void> {
    for (const err of await this.pipeline.replaceSinks(keep, open)) this.log.error({ err }, 'sink close failed');
  }

  private async closeSinks(): Promise<void> {
    await this.replaceSinks([], async () => []);
  }

  /**
   * Stops the inputs one after another, the last started first (see
   * startInputs()), then their container directory. `keepConnections`: the
   * forward input's are returned open, for the next one (a reload).
   */
  private async stopInputs(running: Pick<Running, 'inputs' | 'forward' | 'containers'>, keepConnections = false): Promise<KeptConnections | undefined> {
    let kept: KeptConnections | undefined;
    for (const input of [...running.inputs].reverse()) {
      try {
        if (keepConnections && input === running.forward) kept = await running.forward.stopKeepingConnections();
        else await input.stop();
      } catch (err) {
        this.log.error({ err, input: input.name }, 'input stop failed');
      }
    }
    running.containers?.close();
    return kept;
  }

  private async startInputs(config: Config, kept?: KeptConnections): Promise<Pick<Running, 'inputs' | 'forward' | 'containers'>> {
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
    let forward: RunningForwardInput | undefined;
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
      if (config.forward.enabled) inputs.push((forward = await startForwardInput(config.forward, deps('forward'), kept)));
    } catch (err) {
      await this.stopInputs({ inputs, forward, containers });
      throw err;
    }
    return { inputs, forward, containers };
  }
}

/** Every setting the inputs are built from: all but the sinks', the HTTP endpoint's and the collector's own log's. */
function inputSettings(config: Config): Omit<Config, 'sinks' | 'http' | (typeof RESTART_ONLY)[number]> {
  const { sinks: _sinks, http: _http, log_level: _level, log_format: _format, ...inputs } = config;
  return inputs;
}

function hostNameOf(config: Config): string {
  return config.host_name ?? hostname();
}
