/**
 * Which containers are followed, and keeping that true while containers come
 * and go and the engine restarts.
 *
 *   connect ─▶ GET /events (type container) ──▶ start / die / destroy / rename
 *      │                                              │
 *      └────▶ GET /containers/json?all=1 ─ reconcile ─┴─▶ ensure(id) ─▶ Follower
 *      ▲
 *      └── jittered backoff ◀── events stream or socket lost
 *
 * The engine replays only its last 256 events and nothing across its own
 * restart, so every (re)connect lists all containers and reconciles rather
 * than trusting replay. Events are subscribed to before the list is taken, so
 * nothing falls between the two. Work on one container is serialized.
 */
import type Docker from 'dockerode';
import type { Logger } from '../../log.js';
import { containersFollowed, inputErrors } from '../../metrics.js';
import type { LogEvent } from '../event.js';
import { LineRenderer } from '../line-render.js';
import type { Normalizer } from '../normalize.js';
import { formatNanoTime, nowNanoTime } from '../time.js';
import type { BackfillGate } from './backfill.js';
import type { CheckpointStore, Positions } from './checkpoints.js';
import { EventStreamParser, WATCHED_ACTIONS, type ContainerEvent } from './events.js';
import { containerEvents, reconnectDelay } from './engine.js';
import type { ContainerFilter } from './filters.js';
import { Follower, type FollowerDeps } from './follower.js';
import type { OpenLogs } from './log-stream.js';
import { API_TIMEOUT_MS, listedSubject, type ContainerInfo, type MetadataCache } from './metadata.js';
import type { Shipper } from './shipper.js';

export interface DiscoveryDeps {
  docker: Docker;
  openLogs: OpenLogs;
  cache: MetadataCache;
  store: CheckpointStore;
  shipper: Shipper;
  normalizer: Normalizer;
  filter: ContainerFilter;
  log: Logger;
  maxLineBytes: number;
  /** Whether containers with this log driver are followed. */
  followsDriver(driver: string): boolean;
  /**
   * A stopped container with no checkpoint is read only if it stopped after
   * this (ms): when clogs first ran with its state directory. Older ones were
   * history before clogs was watching; a later one was missed by a run that
   * stopped or died before it followed it (a job that exited just before a
   * restart), and is read in full.
   */
  horizonMs: number;
  /** Present when `fluentd_backfill` is on: fluentd-driver containers go through it. */
  backfill?: BackfillGate;
}

const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 30_000;
/** Inspects in flight at once while reconciling hundreds of containers. */
const RECONCILE_CONCURRENCY = 8;

export class Discovery {
  private readonly followers = new Map<string, Follower>();
  private readonly locks = new Map<string, Promise<void>>();
  private readonly retryTimers = new Map<string, NodeJS.Timeout>();
  /** Failures in a row of containers without a follower, while their retry is due. */
  private readonly unfollowedFailures = new Map<string, number>();
  private readonly ignored = new Set<string>();
  private connectedNow = false;
  private stopping = false;
  private eventsAbort: AbortController | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private reconnectDelay = 0;
  private readonly followerDeps: FollowerDeps;
  private readonly backfillDeps: FollowerDeps | undefined;

  constructor(private readonly deps: DiscoveryDeps) {
    this.followerDeps = {
      openLogs: deps.openLogs,
      normalizer: deps.normalizer,
      renderer: new LineRenderer(deps.normalizer),
      log: deps.log,
      maxLineBytes: deps.maxLineBytes,
      sink: deps.shipper,
      perLine: false,
      onEnded: (f, how, err) => this.onEnded(f, how, err),
    };
    this.backfillDeps = deps.backfill ? { ...this.followerDeps, sink: deps.backfill, perLine: true } : undefined;
  }

  get connected(): boolean {
    return this.connectedNow;
  }

  /** Connects and reconciles once; when the engine does not answer, keeps trying in the background. */
  async start(): Promise<void> {
    if (!(await this.connect())) this.scheduleReconnect();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.reconnectTimer);
    for (const t of this.retryTimers.values()) clearTimeout(t);
    this.retryTimers.clear();
    this.unfollowedFailures.clear();
    this.eventsAbort?.abort();
    await Promise.all([...this.locks.values()]);
    for (const f of this.followers.values()) f.stop();
    this.updateGauge();
  }

  /** Containers whose stream is open now. */
  following(): number {
    let n = 0;
    for (const f of this.followers.values()) if (f.state === 'following') n++;
    return n;
  }

  /** Traces the Normalizer let go on its timeout: each to its follower, which moves its checkpoint past them. */
  released(events: LogEvent[]): void {
    const byContainer = new Map<string, LogEvent[]>();
    for (const e of events) {
      const id = e.container?.id ?? '';
      let list = byContainer.get(id);
      if (list === undefined) byContainer.set(id, (list = []));
      list.push(e);
    }
    for (const [id, list] of byContainer) {
      const f = this.followers.get(id);
      if (f) f.released(list);
      else this.deps.shipper.addLoose(list);
    }
  }

  /** A failed pipeline write lost these containers' recent events: read them again from the checkpoints. */
  rewind(ids: ReadonlySet<string>): void {
    for (const id of ids) {
      const f = this.followers.get(id);
      if (!f) continue;
      this.deps.backfill?.drop(id);
      f.rewind(this.deps.store.get(id)?.streams ?? {});
      f.failures++;
      this.retryLater(f.id, f.failures);
    }
    this.updateGauge();
  }

  private async connect(): Promise<boolean> {
    if (this.stopping) return false;
    // Kept before the request, which has no timeout: a stop() while a slow
    // or hung engine has not answered aborts it instead of leaving its
    // stream open for the life of the process once it does answer.
    const ac = new AbortController();
    this.eventsAbort = ac;
    let body: NodeJS.ReadableStream;
    try {
      body = await containerEvents(this.deps.docker, WATCHED_ACTIONS, ac.signal);
    } catch (err) {
      if (this.eventsAbort === ac) this.eventsAbort = undefined;
      if (!this.stopping) this.deps.log.warn({ err: brief(err) }, 'docker engine not reachable');
      return false;
    }
    // Stopped as the engine answered: the abort closes the answer's stream.
    if (this.stopping) {
      ac.abort();
      return false;
    }
    const parser = new EventStreamParser();
    const lost = (err?: unknown) => {
      if (this.eventsAbort !== ac || this.stopping) return;
      this.eventsAbort = undefined;
      ac.abort();
      this.connectedNow = false;
      this.updateGauge();
      this.deps.log.warn({ err: err === undefined ? undefined : brief(err) }, 'docker engine connection lost');
      this.scheduleReconnect();
    };
    body.on('data', (chunk: Buffer) => {
      let events: ContainerEvent[];
      try {
        events = parser.push(chunk);
      } catch (err) {
        inputErrors.inc({ input: 'docker', reason: 'malformed' });
        lost(err);
        return;
      }
      for (const e of events) this.onEvent(e);
    });
    body.once('end', () => lost());
    body.once('error', (err: Error) => lost(err));
    try {
      await this.reconcile();
    } catch (err) {
      this.deps.log.warn({ err: brief(err) }, 'docker engine: listing containers failed');
      if (this.eventsAbort === ac) this.eventsAbort = undefined;
      ac.abort();
      return false;
    }
    if (this.eventsAbort !== ac) return false;
    this.connectedNow = true;
    this.reconnectDelay = 0;
    this.deps.log.info({ following: this.following() }, 'docker engine connected');
    return true;
  }

  private scheduleReconnect(): void {
    if (this.stopping) return;
    this.reconnectDelay = reconnectDelay(this.reconnectDelay);
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => {
      void this.connect().then((ok) => {
        if (!ok) this.scheduleReconnect();
      });
    }, jitter(this.reconnectDelay));
  }

  private async reconcile(): Promise<void> {
    const list = await this.deps.docker.listContainers({ all: true, abortSignal: AbortSignal.timeout(API_TIMEOUT_MS) });
    const seen = new Set<string>();
    const todo: string[] = [];
    for (const c of list) {
      const subject = listedSubject(c);
      seen.add(subject.id);
      this.deps.store.markPresent(subject.id);
      const rejected = this.deps.filter(subject);
      if (rejected) {
        this.notFollowed(subject.id, subject.name, rejected);
        continue;
      }
      todo.push(subject.id);
    }
    for (const id of [...this.followers.keys()]) if (!seen.has(id)) this.withLock(id, async () => this.removed(id));
    for (const id of [...this.unfollowedFailures.keys()]) if (!seen.has(id)) this.clearRetry(id);
    // Removed while the events connection was down: no destroy event forgets them.
    for (const id of [...this.ignored]) {
      if (seen.has(id)) continue;
      this.ignored.delete(id);
      this.deps.cache.forget(id);
    }
    for (const id of this.deps.store.ids()) if (!seen.has(id)) this.deps.store.markRemoved(id);
    if (this.deps.store.hasStaged()) this.deps.shipper.touch();
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < todo.length && !this.stopping) {
        const id = todo[next++]!;
        await this.withLock(id, () => this.ensure(id, 'reconcile'));
      }
    };
    await Promise.all(Array.from({ length: RECONCILE_CONCURRENCY }, worker));
  }

  private onEvent(e: ContainerEvent): void {
    if (this.stopping) return;
    switch (e.action) {
      case 'start':
      case 'die':
      case 'rename':
        // A container that started and died before its start event was
        // handled is read to its end all the same.
        void this.withLock(e.id, () => this.ensure(e.id, 'event'));
        return;
      case 'destroy':
        void this.withLock(e.id, async () => this.removed(e.id));
        return;
      case 'pause':
      case 'unpause':
        // The log stream stays open while paused; nothing to do.
        this.deps.log.debug({ container: e.id.slice(0, 12), action: e.action }, 'container event');
        return;
    }
  }

  /** Makes the follower of one container match the container's state. */
  private async ensure(id: string, cause: 'reconcile' | 'event' | 'retry'): Promise<void> {
    if (this.stopping) return;
    const current = this.followers.get(id);
    const info = await this.deps.cache.refresh(id);
    if (!info) {
      this.removed(id);
      return;
    }
    if (current) current.info = info;
    // Checked again here: a rename can move a container in or out of the filters.
    const rejected = this.deps.filter(info);
    if (rejected) {
      this.notFollowed(id, info.name, rejected);
      return;
    }
    this.ignored.delete(id);
    if (current?.state === 'following') return;
    if (!this.deps.followsDriver(info.logDriver)) {
      this.notFollowed(id, info.name, `log driver ${info.logDriver}`);
      return;
    }
    let f = current;
    if (!f) {
      const cp = this.deps.store.get(id);
      if (!cp && !info.running && cause === 'reconcile' && info.finishedAtMs < this.deps.horizonMs) return;
      f = await this.createFollower(info, cp?.streams);
      if (this.stopping) return;
      this.followers.set(id, f);
    }
    // Read to its end, unless it ran again since: a short run (a cron-style
    // `docker start`) can start and stop before either event's inspect.
    if (f.state === 'done' && !info.running && info.finishedAtMs === f.finishedRun) return;
    if (info.running || f.state === 'done') f.finalRead = false;
    this.clearRetry(id);
    await f.start();
    this.updateGauge();
  }

  private async createFollower(info: ContainerInfo, checkpoint: Positions | undefined): Promise<Follower> {
    if (info.logDriver !== 'fluentd' || !this.deps.backfill || !this.backfillDeps) return new Follower(info, checkpoint ?? {}, this.followerDeps);
    this.deps.backfill.watch(info.id);
    if (checkpoint) return new Follower(info, checkpoint, this.backfillDeps);
    // Without a checkpoint the forward input has had everything so far:
    // start from now, and make that start durable before following, so that
    // a gap after it (clogs down, even killed a moment later) is read back
    // on the next start. Left to the next durable point, up to a second
    // later, a kill before it lost the gap.
    const now = nowNanoTime();
    const ts = formatNanoTime(now.sec, now.nsec);
    const start: Positions = { stdout: { ts, lines: 0, ords: 0 }, stderr: { ts, lines: 0, ords: 0 } };
    await this.deps.shipper.record(info.id, info.name, start);
    return new Follower(info, start, this.backfillDeps);
  }

  private onEnded(f: Follower, how: 'eof' | 'error', err: unknown): void {
    this.updateGauge();
    const opening = f.opening;
    void this.withLock(f.id, async () => {
      // Reopened meanwhile (a die event's ensure() got the lock first, or the
      // final read below): the newer stream reports its own end. Taken for it,
      // this end finished the final read before it had read the last line.
      if (this.stopping || this.followers.get(f.id) !== f || f.opening !== opening) return;
      let info: ContainerInfo | undefined;
      try {
        info = await this.deps.cache.refresh(f.id);
      } catch (inspectErr) {
        // The engine itself is gone; the reconnect's reconcile restarts this one.
        f.failures++;
        if (this.connectedNow) this.retryLater(f.id, f.failures);
        this.deps.log.debug({ container: f.id.slice(0, 12), err: brief(inspectErr) }, 'container inspect failed');
        return;
      }
      if (!info) {
        this.removed(f.id);
        return;
      }
      f.info = info;
      if (how === 'eof' && !info.running) {
        // The engine can end a followed stream before it has written the
        // container's last line without "\n" (Docker 20.10: its follow ends
        // when the container does, the copier flushes that line after): read
        // the stopped container once more from the position before taking
        // its log as read to its end. At once: once inspect said stopped,
        // that line was there in every probe (35 of 35 on Docker 20.10), and
        // a container run with --rm takes its log with it a moment later.
        // A run that started and stopped while the final read was open (its
        // start event found the follower following) is read by another one.
        if (!f.finalRead || info.finishedAtMs !== f.finishedRun) {
          f.finalRead = true;
          f.finishedRun = info.finishedAtMs;
          f.keepUnfinished();
          await f.start();
          this.updateGauge();
          return;
        }
        f.finish();
        this.updateGauge();
        this.deps.log.debug({ container: f.id.slice(0, 12) }, 'container stopped; log read to its end');
        return;
      }
      if (how === 'error') {
        inputErrors.inc({ input: 'docker', reason: 'stream' });
        this.deps.log.warn({ container: f.id.slice(0, 12), name: info.name, err: brief(err) }, 'container log stream failed; retrying');
      }
      // EOF of a running container: it was restarted between our reads, or
      // the engine closed the stream. Follow again, backing off if it repeats.
      f.failures++;
      this.retryLater(f.id, f.failures);
    });
  }

  /** ensure() again after a backoff for the `failures`-th failure in a row. */
  private retryLater(id: string, failures: number): void {
    if (this.stopping) return;
    clearTimeout(this.retryTimers.get(id));
    const delay = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** Math.max(0, failures - 1));
    const timer = setTimeout(() => {
      this.retryTimers.delete(id);
      void this.withLock(id, () => this.ensure(id, 'retry'));
    }, jitter(delay));
    this.retryTimers.set(id, timer);
  }

  private clearRetry(id: string): void {
    const t = this.retryTimers.get(id);
    if (t) clearTimeout(t);
    this.retryTimers.delete(id);
    this.unfollowedFailures.delete(id);
  }

  /**
   * The container is gone; its checkpoint is kept for `removed_grace`. A
   * stream still open is read to its end first: the engine serves it after
   * the removal (`docker run --rm`, `compose down`), and its end comes back
   * here through onEnded(), whose inspect finds nothing. The follower then
   * finishes: what it read is all there will be.
   */
  private removed(id: string): void {
    const f = this.followers.get(id);
    if (f?.state === 'following') return;
    if (f) {
      f.finish();
      this.followers.delete(id);
      this.deps.log.debug({ container: id.slice(0, 12) }, 'container removed');
    }
    this.clearRetry(id);
    this.ignored.delete(id);
    this.deps.backfill?.unwatch(id);
    this.deps.cache.forget(id);
    if (this.deps.store.get(id)) {
      this.deps.store.markRemoved(id);
      this.deps.shipper.touch();
    } else if (f) {
      // Its first positions are still on their way to a checkpoint.
      this.deps.store.markRemoved(id);
    }
    this.updateGauge();
  }

  private notFollowed(id: string, name: string, reason: string): void {
    const f = this.followers.get(id);
    if (f) {
      f.stop();
      this.followers.delete(id);
      this.clearRetry(id);
      this.updateGauge();
    }
    if (this.ignored.has(id)) return;
    this.ignored.add(id);
    this.deps.log.debug({ container: id.slice(0, 12), name, reason }, 'container not followed');
  }

  private withLock(id: string, fn: () => Promise<void>): Promise<void> {
    const prev = this.locks.get(id) ?? Promise.resolve();
    const run = prev.then(fn).catch((err: unknown) => {
      this.deps.log.warn({ container: id.slice(0, 12), err: brief(err) }, 'docker container handling failed');
      // The events connection is up, or being reconciled: a lost one's reconcile tries everything again.
      if (this.eventsAbort === undefined) return;
      const f = this.followers.get(id);
      if (f) {
        if (f.state === 'following') return;
        f.failures++;
        this.retryLater(id, f.failures);
        return;
      }
      // Not followed yet (its inspect failed): no later event may come for
      // it, and the next reconcile is only at a reconnect.
      const failures = (this.unfollowedFailures.get(id) ?? 0) + 1;
      this.unfollowedFailures.set(id, failures);
      this.retryLater(id, failures);
    });
    this.locks.set(id, run);
    void run.then(() => {
      if (this.locks.get(id) === run) this.locks.delete(id);
    });
    return run;
  }

  private updateGauge(): void {
    containersFollowed.set(this.following());
  }
}

/** ±25 %, so hundreds of followers (or collectors) do not retry in step. */
function jitter(ms: number): number {
  return Math.round(ms * (0.75 + Math.random() * 0.5));
}

/** Errors from dockerode carry the whole request; keep what helps. */
function brief(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  const e = err as Error & { statusCode?: number; code?: string; json?: unknown };
  return { message: e.message, code: e.code, statusCode: e.statusCode };
}
