/**
 * The forward-protocol input: Docker's fluentd log driver, fluent-logger,
 * Fluent Bit and Fluentd send here.
 *
 *   socket ─ connection.ts ─ requests.ts ─ slices.ts ──────────── writes.ts ─ Pipeline
 *      ▲      (its life)      framer.ts     packed-lines.ts          │            │
 *      │                      decoder.ts    records.ts, Normalizer   │            │ durable
 *      └────────────────── ack (acks.ts) ◄───────────────────────────┴────────────┘
 *
 * One Normalizer for the whole input, so the pieces of a split line find each
 * other even when Docker resends on a new connection; one ChunkLedger, so a
 * resent chunk is acked without being written twice. With a container
 * directory (InputDeps.containers), records.ts gives Docker's records their
 * container's image and labels.
 */
import { join } from 'node:path';
import type { Socket } from 'node:net';
import type { ForwardConfig } from '../../config/schema.js';
import { eventsIn, inputErrors } from '../../metrics.js';
import type { LogEvent } from '../event.js';
import { ChunkPool } from '../chunk-pool.js';
import { sharedNormalizerOptions, type InputDeps, type RunningInput } from '../input.js';
import { Normalizer, type HeldPair, type LineCut } from '../normalize.js';
import { ChunkLedger } from './acks.js';
import { ForwardConnection, type ConnectionContext } from './connection.js';
import { KeptConnections, type KeptSocket } from './handover.js';
import { PartialStore, traceId } from './partials.js';
import { DecodeCache } from './decoder.js';
import { DeferredSync } from './deferred-sync.js';
import { PackedLineEncoder } from './packed-lines.js';
import { OrdinalJournal } from './ordinal-journal.js';
import { RequestProgress } from './progress.js';
import { RecordMapper } from './records.js';
import { RENDER_BUDGET_BYTES, RenderBudget } from './render-budget.js';
import { listen, type Listener } from './server.js';

export interface RunningForwardInput extends RunningInput {
  /** Rendered bytes in flight, all connections together. */
  readonly budget: RenderBudget;
  /**
   * Stops as stop() does, but keeps its connections open for the input a
   * reload starts next (handover.ts): give them to startForwardInput(), or
   * close them.
   */
  stopKeepingConnections(): Promise<KeptConnections>;
}

export type { KeptConnections } from './handover.js';

/** `kept`: connections of the input a reload stopped, taken over once this one listens, when it admits clients as that one did. */
export async function startForwardInput(cfg: ForwardConfig, deps: InputDeps, kept?: KeptConnections): Promise<RunningForwardInput> {
  const input = new ForwardInput(cfg, deps, kept?.ledger);
  await input.start(kept);
  return input;
}

class ForwardInput implements RunningForwardInput {
  readonly name = 'forward';
  private listener: Listener | undefined;
  private readonly ctx: ConnectionContext;
  readonly budget = new RenderBudget(RENDER_BUDGET_BYTES);
  private readonly connections = new Set<ForwardConnection>();
  /** Writes of split lines and traces the Normalizer let go on its own (timeout). */
  private readonly flushes = new Set<Promise<void>>();
  /** One of them failed: its stored lines stay for the next start. */
  private flushFailed = false;
  private nextConnId = 1;
  private stopping: Promise<void> | undefined;
  private readonly ordinals: OrdinalJournal;

  /** `ledger`: the acked chunks of the input a reload stopped (handover.ts). */
  constructor(
    private readonly cfg: ForwardConfig,
    private readonly deps: InputDeps,
    ledger = new ChunkLedger(),
  ) {
    const normalizer = new Normalizer({
      ...sharedNormalizerOptions(deps),
      partialTimeoutMs: cfg.partial_timeout,
      trackOrdinals: true,
      onTimeoutFlush: (events, cuts, traces, held) => this.writeFlushed(events, cuts, traces.map(traceId), held),
    });
    const limits = { maxFrameSize: cfg.max_frame_size, maxRecordKeys: cfg.max_record_keys };
    const mapper = new RecordMapper(deps.containers);
    const ordinals = (this.ordinals = new OrdinalJournal(deps.stateDir, normalizer, deps.log));
    this.ctx = {
      limits,
      pipeline: deps.pipeline,
      normalizer,
      mapper,
      packedLines: new PackedLineEncoder({ normalizer, mapper, limits, cache: new DecodeCache() }),
      ledger,
      partials: new PartialStore(join(deps.stateDir, 'forward-partials'), deps.log),
      budget: this.budget,
      // As much as the budget lets be in flight: what one turn of it takes.
      chunks: new ChunkPool(RENDER_BUDGET_BYTES),
      syncs: new DeferredSync(deps.pipeline, ordinals, deps.log),
      progress: new RequestProgress(join(deps.stateDir, 'forward-progress'), deps.log),
      ordinals,
      handshake: cfg.shared_key
        ? { sharedKey: cfg.shared_key, selfHostname: cfg.self_hostname ?? deps.hostName, users: cfg.users }
        : undefined,
      log: deps.log,
      // Connections are live: split lines are forgotten by part, not by match key (see writeHeld()).
      writeHeld: (events, traces) => this.writeFlushed(events, [], traces, []),
    };
  }

  get address(): string {
    return this.listener?.address ?? '';
  }

  async start(kept?: KeptConnections): Promise<void> {
    await this.ctx.progress.load();
    const { normalizer, partials } = this.ctx;
    for (const o of await this.ordinals.load()) normalizer.seedOrdinal(o.source, o.stream, o.timestamp, o.count);
    await this.ordinals.open();
    const events = (await partials.load()).flatMap((line) => normalizer.push(line));
    const done = partials.tracesNotHeld(undefined, (first) => normalizer.holdsTrace(first));
    if (events.length > 0 || done.length > 0) this.writeFlushed(events, [], done, []);
    for (const key of this.ctx.partials.chunks()) this.ctx.ledger.remember(key);
    this.listener = await listen(this.cfg, this.deps.log, (socket) => this.onSocket(socket));
    const taken = kept?.takeFor(this.cfg, this.listener) ?? [];
    for (const k of taken) this.onSocket(k.socket, k);
    this.deps.log.info(
      { address: this.listener.address, tls: this.cfg.tls !== undefined, handshake: this.ctx.handshake !== undefined, ...(kept ? { keptConnections: taken.length } : {}) },
      'forward input listening',
    );
  }

  ready(): boolean {
    return this.listener !== undefined && this.stopping === undefined;
  }

  stop(): Promise<void> {
    this.stopping ??= this.shutdown(false).then(() => undefined);
    return this.stopping;
  }

  async stopKeepingConnections(): Promise<KeptConnections> {
    const listener = this.listener ?? { address: '', tlsDigest: undefined };
    if (this.stopping !== undefined) {
      await this.stopping;
      return new KeptConnections([], this.ctx.ledger, this.cfg, listener, this.deps.log);
    }
    const kept = this.shutdown(true);
    this.stopping = kept.then(() => undefined);
    return new KeptConnections(await kept, this.ctx.ledger, this.cfg, listener, this.deps.log);
  }

  private onSocket(socket: Socket, kept?: KeptSocket): void {
    if (this.stopping !== undefined) {
      socket.destroy();
      return;
    }
    // The listener counts only the sockets it accepted itself, not those taken over at a reload.
    if (this.connections.size >= this.cfg.max_connections) {
      this.deps.log.warn({ remote: socket.remoteAddress, max_connections: this.cfg.max_connections, keptAtReload: kept !== undefined }, 'refusing forward connection: max_connections reached');
      inputErrors.inc({ input: 'forward', reason: 'connection_limit' });
      socket.destroy();
      return;
    }
    const conn = new ForwardConnection(socket, this.ctx, this.nextConnId++, kept);
    this.connections.add(conn);
    void conn.closed.then(() => this.connections.delete(conn));
  }

  private writeFlushed(events: LogEvent[], cuts: readonly LineCut[], traces: readonly string[], held: readonly HeldPair[]): void {
    const done = this.writeHeld(events, cuts, traces, held).catch((err: unknown) => {
      this.flushFailed = true;
      this.deps.log.error({ err, events: events.length }, 'could not write split lines or traces let go outside a request');
    });
    this.flushes.add(done);
    void done.finally(() => this.flushes.delete(done));
  }

  /**
   * Writes events the Normalizer let go without a request, then forgets the
   * stored lines they hold: the parts of split lines written (`cuts`) and
   * the traces let go (`traces`, their ids). First it stores the lines a
   * trace opened by the flush holds (`held`): they were stored only in the
   * files about to be forgotten, as a line of the trace let go or a piece.
   */
  private async writeHeld(events: LogEvent[], cuts: readonly LineCut[], traces: readonly string[], held: readonly HeldPair[]): Promise<void> {
    if (held.length > 0) await this.ctx.partials.persist(held.map(({ first, line }) => ({ id: traceId(first), first, line, key: '' })), Promise.resolve());
    if (events.length > 0) {
      eventsIn.inc({ input: 'forward' }, events.length);
      this.ordinals.record();
      await Promise.all([this.ctx.pipeline.write(events), this.ordinals.sync()]);
    }
    if (cuts.length > 0) await this.ctx.partials.cut(cuts);
    if (traces.length > 0) await this.ctx.partials.complete(traces);
  }

  /** `keep`: connections are released (ForwardConnection.release()) rather than closed; returns those. */
  private async shutdown(keep: boolean): Promise<KeptSocket[]> {
    await this.listener?.close();
    const connections = [...this.connections];
    const kept = keep ? (await Promise.all(connections.map((c) => c.release()))).filter((k) => k !== undefined) : [];
    if (!keep) await Promise.all(connections.map((c) => c.shutdown()));
    const { normalizer } = this.ctx;
    const held = normalizer.flushAll();
    try {
      await this.writeHeld(held, [], [], []);
      await Promise.all(this.flushes);
      // A reload may keep the sinks: what requests without acks wrote is synced now, not by a timer this input no longer runs.
      await this.ctx.syncs.flush();
      // Every held line is in the events written.
      if (!this.flushFailed) await this.ctx.partials.completeAll();
    } catch (err) {
      // The stop failed: so does the reload, and nothing takes these over.
      for (const k of kept) k.socket.destroy();
      throw err;
    } finally {
      // Also after a failed write: what it held is stored and comes again with later ordinals, never an earlier line's.
      await this.ordinals.close().catch((err: unknown) =>
        this.deps.log.warn({ err }, 'could not rewrite the ordinal journal at the stop; the next start reads it as it is'),
      );
      normalizer.close();
      this.ctx.mapper.close();
    }
    this.deps.log.info({ flushedHeldEvents: held.length, ...(keep ? { keptConnections: kept.length } : {}) }, 'forward input stopped');
    return kept;
  }
}
