/**
 * Between the followers and the pipeline: gathers the events of every
 * followed container into one batch, writes it, and — only once every sink
 * has it durably — moves the checkpoints past it.
 *
 *   followers ──add()──▶ [next batch] ──deferred write──▶ [written] ──sync──▶ checkpoint rename
 *
 * Every cycle writes its batch at once (deferred: the lines are in the files
 * and on `/tail`, not synced yet); a durable point every `durableMs` syncs
 * the sinks once for every batch since the last one and only then moves the
 * checkpoints past them. Measured (bench/docker.bench.ts rate, 100
 * containers): a synced write per container file and a checkpoint file per
 * 100 ms cycle were most of the collector's system time. A kill -9 keeps the
 * page cache: the restarted follower reads the unsynced batches again from
 * the checkpoint and the file sink's replay guard drops what its files
 * already end with (replay.ts); a power loss takes the unsynced lines and
 * the checkpoint behind them reads them again. Either way nothing is lost or
 * written twice. What is written and not durable is bounded by `maxBytes`
 * (a durable point comes sooner when it would exceed it).
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
  /** How often an idle collector looks for removed containers past their grace, to write a checkpoint without them. */
  heartbeatMs: number;
  /**
   * Least time between the starts of two writes. Each write costs two fsyncs
   * (sinks, checkpoint) whatever its size, so a steady trickle of lines is
   * gathered for this long instead of written one by one.
   */
  minCycleMs: number;
  /**
   * Longest time from a deferred write to its durable point (sinks synced,
   * checkpoint moved). 0: every cycle is one.
   */
  durableMs: number;
  /**
   * A write or sync failed: the events of these containers (in the failed
   * batch and the one filling behind it; after a failed sync, all written
   * since the last durable point) may be gone and must be read again from
   * their committed checkpoints.
   */
  onLost(containerIds: ReadonlySet<string>, err: unknown): void;
}

/** What a follower hands its events to: the Shipper, or the fluentd backfill gate in front of it. */
export interface LineSink {
  /** A container's lines, rendered, and its positions after them. Returns false when the follower should pause until `whenDrained`. */
  add(containerId: string, name: string, lines: EncodedBatch, streams: Positions): boolean;
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
   * The events, rendered before they are added (by the followers, or here
   * for loose ones): no LogEvent outlives the read that made it and
   * young-generation collections (bench/docker.bench.ts rate over 100
   * containers: the garbage collector's threads took about a fifth of the
   * collector's CPU when events were held until the write).
   */
  lines: EncodedBatch;
  events: number;
  /** Per container: where its log stands once these events are durable. */
  updates: Updates;
}

type Updates = Map<string, { name: string; streams: Positions }>;

const newBatch = (): Batch => ({ lines: new EncodedBatch(), events: 0, updates: new Map() });

// Measured: prom-client resolves label values on every inc(); the bound
// child skips that. Counted once per batch taken, not per read.
const eventsInDocker = eventsIn.labels({ input: 'docker' });

export class Shipper implements LineSink {
  private next = newBatch();
  private inFlight = false;
  private scheduled = false;
  private lastCycleAt = 0;
  private heartbeatDue = false;
  /** Written (deferred) since the last durable point: the positions its checkpoint takes, and their bytes. */
  private unsynced: Updates = new Map();
  private unsyncedBytes = 0;
  private durableDue = false;
  private durableTimer: NodeJS.Timeout | undefined;
  private readonly waiting = new Set<() => void>();
  private readonly parked = new Set<() => void>();
  private readonly idleWaiters: (() => void)[] = [];
  /** record() callers, each waiting for a durable point after its positions were added. */
  private durableWaiters: (() => void)[] = [];
  private readonly heartbeat: NodeJS.Timeout;

  constructor(private readonly opts: ShipperOptions) {
    this.heartbeat = setInterval(() => {
      if (!opts.store.hasExpired(Date.now())) return;
      this.heartbeatDue = true;
      this.schedule();
    }, opts.heartbeatMs);
    this.heartbeat.unref();
  }

  /**
   * Adds a container's lines and its positions after them. Returns false
   * when the filling batch is full: stop reading until `whenDrained`.
   */
  add(containerId: string, name: string, lines: EncodedBatch, streams: Positions): boolean {
    this.take(lines);
    this.next.updates.set(containerId, { name, streams });
    this.schedule();
    return this.hasRoom();
  }

  /**
   * Adds a container's positions with no events, and resolves once a
   * checkpoint holds them (or their write failed). Unlike drained(), this
   * does not wait for the other containers to go quiet.
   */
  record(containerId: string, name: string, streams: Positions): Promise<void> {
    return new Promise((resolve) => {
      this.durableWaiters.push(resolve);
      this.add(containerId, name, new EncodedBatch(), streams);
    });
  }

  /** Events with no checkpoint behind them (the Normalizer's timeout flush). */
  addLoose(events: LogEvent[]): void {
    this.take(renderEvents(events, this.opts.log));
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

  /** Resolves once everything added so far is written, synced and checkpointed (or failed). */
  drained(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    const done = new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    this.schedule();
    return done;
  }

  close(): void {
    clearInterval(this.heartbeat);
    clearTimeout(this.durableTimer);
  }

  private isIdle(): boolean {
    return !this.inFlight && !this.scheduled && this.next.events === 0 && this.next.updates.size === 0 && this.unsynced.size === 0;
  }

  /** Whether the next cycle is a durable point even when it writes nothing. */
  private durableWanted(): boolean {
    return (
      this.heartbeatDue ||
      this.durableDue ||
      this.idleWaiters.length > 0 ||
      this.durableWaiters.length > 0 ||
      this.opts.store.hasStaged() ||
      this.opts.durableMs === 0
    );
  }

  private take(lines: EncodedBatch): void {
    this.next.events += lines.count;
    this.next.lines.append(lines);
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
    const durable = this.durableWanted() || this.unsyncedBytes + batch.lines.bytes > this.opts.maxBytes;
    if (this.inFlight || (empty && !(durable && (this.unsynced.size > 0 || this.heartbeatDue || this.opts.store.hasStaged())))) {
      // A follower released for this cycle that parked again before it ran
      // (it read lately and found its socket empty) found it scheduled, and
      // waits for the next one: without it, until the next heartbeat, and a
      // line it is sent meanwhile waited as long (26 s, seen on a container
      // that wrote a line a second). Paced like a cycle that wrote: a
      // follower that parks again at once was released in a loop, a core
      // busy for one quiet container.
      if (!this.inFlight && this.parked.size > 0) {
        this.lastCycleAt = Date.now();
        this.schedule();
      }
      this.settleIdle();
      return;
    }
    this.inFlight = true;
    this.lastCycleAt = Date.now();
    if (batch.events > 0) eventsInDocker.inc(batch.events);
    this.next = newBatch();
    this.wakeWaiting();
    // Every record() so far added its positions to this batch, and this cycle is durable.
    const recorded = this.durableWaiters;
    this.durableWaiters = [];
    try {
      if (await this.write(batch) && durable) await this.makeDurable();
    } finally {
      this.inFlight = false;
      for (const fn of recorded) fn();
    }
    if (this.unsynced.size > 0 && this.durableTimer === undefined && !this.durableDue) {
      this.durableTimer = setTimeout(() => {
        this.durableTimer = undefined;
        this.durableDue = true;
        this.schedule();
      }, this.opts.durableMs);
    }
    if (this.next.events > 0 || this.next.updates.size > 0 || this.parked.size > 0 || (this.unsynced.size > 0 && this.durableWanted())) this.schedule();
    else this.settleIdle();
  }

  /** Writes the batch, deferred; false when the write failed (its containers are read again). */
  private async write(batch: Batch): Promise<boolean> {
    try {
      if (batch.events > 0) await this.opts.pipeline.write(batch.lines, { deferred: true });
    } catch (err) {
      this.lose(batch.updates.keys(), batch.events, err);
      return false;
    }
    for (const [id, u] of batch.updates) this.unsynced.set(id, u);
    this.unsyncedBytes += batch.lines.bytes;
    return true;
  }

  /** Syncs the sinks and moves the checkpoints past everything written so far. */
  private async makeDurable(): Promise<void> {
    const updates = this.unsynced;
    this.unsynced = new Map();
    this.unsyncedBytes = 0;
    this.durableDue = false;
    this.heartbeatDue = false;
    clearTimeout(this.durableTimer);
    this.durableTimer = undefined;
    // The checkpoint file is written and fsynced before the sinks sync, not
    // alongside: then the only step after they resolve is one rename, and a
    // kill between the two repeats at most what was written since the last
    // durable point.
    let prepared: PreparedCheckpoint | undefined;
    try {
      prepared = await this.opts.store.prepare(updates);
    } catch (err) {
      this.opts.log.error({ err }, 'docker checkpoint write failed');
      inputErrors.inc({ input: 'docker', reason: 'checkpoint' });
    }
    try {
      await this.opts.pipeline.sync();
    } catch (err) {
      // A failed sync may have lost any line written since the last durable point.
      prepared?.discard();
      this.lose(updates.keys(), 0, err);
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
    // The sinks have the events durably; only the record of it failed. Carry
    // the positions into the next checkpoint (a crash before then repeats lines).
    for (const [id, u] of updates) if (!this.unsynced.has(id)) this.unsynced.set(id, u);
  }

  /**
   * The events of these containers since their checkpoint may be gone: they,
   * and the filling batch's containers, are read again from it (lines of theirs
   * that did reach the sinks come twice).
   */
  private lose(lost: Iterable<string>, events: number, err: unknown): void {
    const ids = new Set<string>([...lost, ...this.next.updates.keys()]);
    for (const id of ids) this.unsynced.delete(id);
    this.opts.log.error({ err, containers: ids.size, events: events + this.next.events }, 'pipeline write failed; re-reading from checkpoints');
    inputErrors.inc({ input: 'docker', reason: 'sink' });
    this.next = newBatch();
    // Their positions went with the filling batch.
    for (const fn of this.durableWaiters.splice(0)) fn();
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

/**
 * Events the Normalizer made, rendered into `into`. One that breaks the
 * LogEvent type (a bug upstream) is left out, logged and counted; the
 * others are kept.
 */
export function renderEvents(events: readonly LogEvent[], log: Logger, into = new EncodedBatch()): EncodedBatch {
  into.addEach(events, (err) => {
    log.error({ err }, 'docker event could not be rendered; left out');
    inputErrors.inc({ input: 'docker', reason: 'render' });
  });
  return into;
}
