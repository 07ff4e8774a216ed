/**
 * Between the followers and the pipeline: gathers the events of every
 * followed container into one batch, writes it, and — only once every sink
 * has it durably — moves the checkpoints past it.
 *
 *   followers ──add()──▶ [next batch] ──write──▶ [in flight] ──durable──▶ checkpoint rename
 *
 * One batch is in flight at a time while the next one fills, its events
 * rendered as they come. When the next one is full (maxEvents, or maxBytes
 * of rendered lines) `add` returns false and the follower
 * pauses its HTTP stream until `whenDrained` calls it back, so the engine's
 * log readers never run ahead of the sinks. Bound: two batches, plus at most
 * one socket read per follower that was already under way.
 */
import type { Logger } from '../../log.js';
import { eventsIn, inputErrors } from '../../metrics.js';
import { EncodedBatch } from '../encoded.js';
import type { LogEvent } from '../event.js';
import type { Pipeline } from '../pipeline.js';
import type { CheckpointStore, Positions, PreparedCheckpoint } from './checkpoints.js';

export interface ShipperOptions {
  pipeline: Pipeline;
  store: CheckpointStore;
  log: Logger;
  maxEvents: number;
  maxBytes: number;
  /** How often an idle collector still rewrites the checkpoint file (its `aliveAt`). */
  heartbeatMs: number;
  /**
   * Least time between the starts of two writes. Each write costs two fsyncs
   * (sinks, checkpoint) whatever its size, so a steady trickle of lines is
   * gathered for this long instead of written one by one.
   */
  minCycleMs: number;
  /**
   * A write failed: the events of these containers (in the failed batch and
   * the one filling behind it) are gone from memory and must be read again
   * from their committed checkpoints.
   */
  onLost(containerIds: ReadonlySet<string>, err: unknown): void;
}

/** What a follower hands its events to: the Shipper, or the fluentd backfill gate in front of it. */
export interface LineSink {
  /** Returns false when the follower should pause until `whenDrained`. */
  add(containerId: string, name: string, events: LogEvent[], streams: Positions): boolean;
  hasRoom(): boolean;
  /** Calls `fn` once there is room again; returns a function that cancels it. */
  whenDrained(fn: () => void): () => void;
  /**
   * Calls `fn` just before the next batch is taken, so that what it reads
   * then joins that batch; returns a function that cancels it.
   */
  whenNextCycle(fn: () => void): () => void;
}

interface Batch {
  /**
   * The events, rendered as they are added: each LogEvent dies in the read
   * that made it, instead of being held until the write and outliving
   * young-generation collections (bench/docker.bench.ts rate over 100
   * containers: the garbage collector's threads took about a fifth of the
   * collector's CPU then).
   */
  lines: EncodedBatch;
  events: number;
  /** Per container: where its log stands once these events are durable. */
  updates: Map<string, { name: string; streams: Positions }>;
}

const newBatch = (): Batch => ({ lines: new EncodedBatch(), events: 0, updates: new Map() });

// Measured: prom-client resolves label values on every inc(); the bound
// child skips that on the per-read path.
const eventsInDocker = eventsIn.labels({ input: 'docker' });

export class Shipper implements LineSink {
  private next = newBatch();
  private inFlight = false;
  private scheduled = false;
  private lastCycleAt = 0;
  private heartbeatDue = false;
  private readonly waiting = new Set<() => void>();
  private readonly parked = new Set<() => void>();
  private readonly idleWaiters: (() => void)[] = [];
  private readonly heartbeat: NodeJS.Timeout;

  constructor(private readonly opts: ShipperOptions) {
    this.heartbeat = setInterval(() => {
      this.heartbeatDue = true;
      this.schedule();
    }, opts.heartbeatMs);
    this.heartbeat.unref();
  }

  /**
   * Adds a container's events and its positions after them. Returns false
   * when the filling batch is full: stop reading until `whenDrained`.
   */
  add(containerId: string, name: string, events: LogEvent[], streams: Positions): boolean {
    this.render(events);
    this.next.updates.set(containerId, { name, streams });
    this.schedule();
    return this.hasRoom();
  }

  /** Events with no checkpoint behind them (the Normalizer's timeout flush). */
  addLoose(events: LogEvent[]): void {
    this.render(events);
    this.schedule();
  }

  hasRoom(): boolean {
    return this.next.events < this.opts.maxEvents && this.next.lines.bytes < this.opts.maxBytes;
  }

  /** Calls `fn` once the filling batch has room again. Returns a function that cancels it. */
  whenDrained(fn: () => void): () => void {
    this.waiting.add(fn);
    return () => this.waiting.delete(fn);
  }

  whenNextCycle(fn: () => void): () => void {
    this.parked.add(fn);
    this.schedule();
    return () => this.parked.delete(fn);
  }

  /** Writes a checkpoint soon even without events (a removal to record). */
  touch(): void {
    this.heartbeatDue = true;
    this.schedule();
  }

  /** Resolves once everything added so far is written and checkpointed (or failed). */
  drained(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  close(): void {
    clearInterval(this.heartbeat);
  }

  private isIdle(): boolean {
    return !this.inFlight && !this.scheduled && this.next.events === 0 && this.next.updates.size === 0;
  }

  private render(events: readonly LogEvent[]): void {
    const batch = this.next;
    let rest = events;
    while (rest.length > 0) {
      try {
        batch.lines.add(rest);
        batch.events += rest.length;
        eventsInDocker.inc(rest.length);
        return;
      } catch (err) {
        // Only an event that breaks the LogEvent type (a bug upstream) gets
        // here: it is left out, the ones before it are in, the rest go on.
        const done = batch.lines.count - batch.events;
        batch.events += done;
        eventsInDocker.inc(done);
        this.opts.log.error({ err }, 'docker event could not be rendered; left out');
        inputErrors.inc({ input: 'docker', reason: 'render' });
        rest = rest.slice(done + 1);
      }
    }
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight) return;
    this.scheduled = true;
    const run = () => {
      this.scheduled = false;
      void this.cycle();
    };
    // Parked followers resume first; run() comes after the event loop's next
    // poll, so the lines their sockets held join this batch.
    const release = () => {
      this.releaseParked();
      setImmediate(run);
    };
    const wait = this.lastCycleAt + this.opts.minCycleMs - Date.now();
    if (wait > 0 && this.hasRoom()) setTimeout(release, wait);
    else setImmediate(release);
  }

  private async cycle(): Promise<void> {
    const batch = this.next;
    const empty = batch.events === 0 && batch.updates.size === 0;
    if (this.inFlight || (empty && !this.heartbeatDue && !this.opts.store.hasStaged())) {
      this.settleIdle();
      return;
    }
    this.inFlight = true;
    this.lastCycleAt = Date.now();
    this.heartbeatDue = false;
    this.next = newBatch();
    this.wakeWaiting();
    try {
      await this.write(batch);
    } finally {
      this.inFlight = false;
    }
    if (this.next.events > 0 || this.next.updates.size > 0 || this.parked.size > 0) this.schedule();
    else this.settleIdle();
  }

  private async write(batch: Batch): Promise<void> {
    // The checkpoint file is written and fsynced before the sinks start, not
    // alongside: then the only step after the sinks resolve is one rename,
    // and a kill between the two repeats at most this batch.
    let prepared: PreparedCheckpoint | undefined;
    try {
      prepared = await this.opts.store.prepare(batch.updates);
    } catch (err) {
      this.opts.log.error({ err }, 'docker checkpoint write failed');
      inputErrors.inc({ input: 'docker', reason: 'checkpoint' });
    }
    try {
      if (batch.events > 0) await this.opts.pipeline.write(batch.lines);
    } catch (err) {
      prepared?.discard();
      this.lose(batch, err);
      return;
    }
    if (prepared) {
      try {
        await prepared.commit();
        return;
      } catch (err) {
        this.opts.log.error({ err }, 'docker checkpoint write failed');
        inputErrors.inc({ input: 'docker', reason: 'checkpoint' });
      }
    }
    // The sinks have the events; only the record of it failed. Carry the
    // positions into the next checkpoint (a crash before then repeats lines).
    for (const [id, u] of batch.updates) if (!this.next.updates.has(id)) this.next.updates.set(id, u);
  }

  private lose(batch: Batch, err: unknown): void {
    const ids = new Set<string>([...batch.updates.keys(), ...this.next.updates.keys()]);
    this.opts.log.error({ err, containers: ids.size, events: batch.events + this.next.events }, 'pipeline write failed; re-reading from checkpoints');
    inputErrors.inc({ input: 'docker', reason: 'sink' });
    this.next = newBatch();
    this.opts.onLost(ids, err);
    this.wakeWaiting();
  }

  private releaseParked(): void {
    if (this.parked.size === 0) return;
    const fns = [...this.parked];
    this.parked.clear();
    for (const fn of fns) fn();
  }

  private wakeWaiting(): void {
    if (this.waiting.size === 0 || !this.hasRoom()) return;
    const fns = [...this.waiting];
    this.waiting.clear();
    for (const fn of fns) fn();
  }

  private settleIdle(): void {
    if (!this.isIdle()) return;
    for (const fn of this.idleWaiters.splice(0)) fn();
  }
}
