/**
 * Where each container's log was read up to, kept across restarts so clogs
 * neither loses nor repeats a line.
 *
 * A position is per container and stream: the last emitted Docker timestamp
 * (9 fractional digits, as the engine prints it) and how many lines were
 * emitted at exactly that timestamp (pieces of a split line share one, and
 * whole-second clocks repeat them). A restart asks the engine for
 * `since=<sec.nsec of the earliest stream position>` — inclusive, nanosecond
 * precision (fixtures/docker/api/f-since-probe.json) — and skips what was
 * already emitted. Per stream, because the engine stamps stdout and stderr in
 * separate goroutines: within one stream timestamps only grow, across the two
 * they may interleave out of order.
 *
 * All containers live in one file, replaced atomically (write a temp file,
 * fsync, rename). The temp file is written before the sinks get the batch,
 * and renamed as soon as they all have it durably: a kill -9 between the two
 * leaves the previous checkpoint, never one ahead of the sinks, and costs at
 * most that one batch written again.
 */
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../log.js';
import type { Stream } from '../event.js';
import { parseDockerTime } from './frames.js';
import { isMissing } from '../../errors.js';
import { syncDir } from '../../state-files.js';

export interface StreamPosition {
  /** Docker's timestamp of the last emitted line. */
  ts: string;
  /** Lines emitted at exactly `ts`: the ones to skip on resume. */
  lines: number;
  /** Events the Normalizer numbered at `ts` (a line cut into pieces makes several): seeds its ordinals. */
  ords: number;
}

export type Positions = Partial<Record<Stream, StreamPosition>>;

export interface CheckpointEntry {
  streams: Positions;
  /** For people reading the file. */
  name?: string;
  /** When the container was seen removed (ms); forgotten `removed_grace` later. */
  removedAt?: number;
}

interface CheckpointFile {
  version: 1;
  /** When clogs first ran with this state (ms since the epoch); absent in files of releases before it. */
  firstRunAt?: number;
  /** The last time a running clogs wrote this file (ms since the epoch): releases before firstRunAt read it as theirs. */
  aliveAt: number;
  containers: Record<string, CheckpointEntry>;
}

const FILE = 'checkpoints.json';
const DIR_SYNC_INTERVAL_MS = 1000;

/** A checkpoint written to its temp file, waiting for the sinks. */
export interface PreparedCheckpoint {
  /** The sinks have the batch: make the new checkpoint the current one (a rename). */
  commit(): Promise<void>;
  /** The batch failed: keep the previous checkpoint. */
  discard(): void;
}

type StagedChange = { removedAt: number } | 'restore';

export class CheckpointStore {
  private entries: Map<string, CheckpointEntry>;
  /** `"id":{…}` of every entry, so a checkpoint re-renders only what changed. */
  private fragments: Map<string, string>;
  private readonly staged = new Map<string, StagedChange>();
  /**
   * Removals of containers whose first positions were not in a checkpoint
   * yet (a `docker run --rm` gone within a second of its first line): the
   * mark goes on the entry those positions make, when they come within the
   * grace. Not staged: nothing is to be written for them until then.
   */
  private readonly removedBeforeEntry = new Map<string, number>();
  private preparing = false;
  /** The removal of a discarded checkpoint's temp file, which the next one reuses. */
  private discarded: Promise<void> = Promise.resolve();
  private dirSync: Promise<void> | undefined;
  private lastDirSync = 0;

  private constructor(
    private readonly dir: string,
    entries: Map<string, CheckpointEntry>,
    /**
     * When clogs first ran with this state directory: a container that
     * stopped before it, and has no entry, is history, not followed.
     */
    readonly firstRunAt: number,
    private readonly graceMs: number,
    private readonly log: Logger,
  ) {
    this.entries = entries;
    this.fragments = new Map([...entries].map(([id, e]) => [id, `${JSON.stringify(id)}:${JSON.stringify(e)}`]));
  }

  static async open(dir: string, graceMs: number, log: Logger): Promise<CheckpointStore> {
    await mkdir(dir, { recursive: true });
    let text: string;
    try {
      text = await readFile(join(dir, FILE), 'utf8');
    } catch (err) {
      if (!isMissing(err)) throw err;
      return CheckpointStore.first(dir, graceMs, log);
    }
    let parsed: CheckpointFile;
    try {
      parsed = JSON.parse(text) as CheckpointFile;
      if (parsed.version !== 1 || typeof parsed.containers !== 'object') throw new Error(`unknown layout (version ${String(parsed.version)})`);
    } catch (err) {
      // Only a foreign or hand-edited file gets here: ours are replaced by rename.
      const aside = join(dir, `${FILE}.unreadable-${Date.now()}`);
      await rename(join(dir, FILE), aside);
      log.error({ err, movedTo: aside }, 'docker checkpoint file unreadable; starting without checkpoints');
      return CheckpointStore.first(dir, graceMs, log);
    }
    // A release before firstRunAt took the last run's life as the horizon: its best guess.
    return new CheckpointStore(dir, new Map(Object.entries(parsed.containers)), parsed.firstRunAt ?? parsed.aliveAt, graceMs, log);
  }

  /**
   * A store with no checkpoint yet writes one at once, holding only this
   * run's start: a run killed before its first durable point still leaves
   * it, and the next runs read in full the containers that stopped since
   * (discovery.ts, horizonMs) instead of taking them for history. Without
   * it, runs that were each killed within a second of following a
   * container left no file, and the run after them never read the rest of
   * that container's log once it had stopped (docker-kill.test.ts).
   */
  private static async first(dir: string, graceMs: number, log: Logger): Promise<CheckpointStore> {
    const store = new CheckpointStore(dir, new Map(), Date.now(), graceMs, log);
    await (await store.prepare(new Map())).commit();
    return store;
  }

  get(id: string): CheckpointEntry | undefined {
    return this.entries.get(id);
  }

  ids(): string[] {
    return [...this.entries.keys()];
  }

  /** Whether the next checkpoint would forget a removed container: its grace is over. */
  hasExpired(now: number): boolean {
    for (const e of this.entries.values()) if (e.removedAt !== undefined && now - e.removedAt > this.graceMs) return true;
    return false;
  }

  /** Goes into the next checkpoint written. */
  markRemoved(id: string, at = Date.now()): void {
    const entry = this.entries.get(id);
    if (entry === undefined) this.removedBeforeEntry.set(id, at);
    else if (entry.removedAt === undefined) this.staged.set(id, { removedAt: at });
  }

  /** The container exists after all (it came back in a list): cancels a removal mark. */
  markPresent(id: string): void {
    this.removedBeforeEntry.delete(id);
    if (this.entries.get(id)?.removedAt !== undefined || this.staged.has(id)) this.staged.set(id, 'restore');
  }

  hasStaged(): boolean {
    return this.staged.size > 0;
  }

  /**
   * Writes (and fsyncs) the temp file of the checkpoint that `updates` lead
   * to. One at a time: the caller commits or discards before the next.
   */
  async prepare(updates: ReadonlyMap<string, { name: string; streams: Positions }>): Promise<PreparedCheckpoint> {
    if (this.preparing) throw new Error('CheckpointStore.prepare: the previous checkpoint is neither committed nor discarded');
    this.preparing = true;
    const now = Date.now();
    const staged = new Map(this.staged);
    this.staged.clear();
    const next = new Map(this.entries);
    const fragments = new Map(this.fragments);
    const set = (id: string, e: CheckpointEntry) => {
      next.set(id, e);
      fragments.set(id, `${JSON.stringify(id)}:${JSON.stringify(e)}`);
    };
    for (const [id, change] of staged) {
      const cur = next.get(id);
      if (!cur) continue;
      if (change === 'restore') set(id, withoutRemoved(cur));
      else set(id, { ...cur, removedAt: change.removedAt });
    }
    // Positions keep a removal mark: they are of lines read before the
    // container went, shipped in the same or a later cycle. Only a container
    // seen again (markPresent) loses its mark.
    for (const [id, u] of updates) {
      const cur = next.get(id);
      const removedAt = cur === undefined ? this.removedBeforeEntry.get(id) : undefined;
      set(id, { ...cur, name: u.name, streams: { ...cur?.streams, ...u.streams }, ...(removedAt === undefined ? {} : { removedAt }) });
    }
    for (const [id, at] of this.removedBeforeEntry) if (now - at > this.graceMs) this.removedBeforeEntry.delete(id);
    for (const [id, e] of next) {
      if (e.removedAt !== undefined && now - e.removedAt > this.graceMs) {
        next.delete(id);
        fragments.delete(id);
      }
    }
    // Measured: with hundreds of containers, re-rendering only the entries
    // that changed keeps this well under the cost of one fsync.
    const text = `{"version":1,"firstRunAt":${this.firstRunAt},"aliveAt":${now},"containers":{${[...fragments.values()].join(',')}}}`;
    const tmp = join(this.dir, `${FILE}.tmp`);
    // Still under way, it would remove this checkpoint's file before the rename.
    await this.discarded;
    try {
      const fh = await open(tmp, 'w');
      try {
        await fh.writeFile(text);
        await fh.sync();
      } finally {
        await fh.close();
      }
    } catch (err) {
      this.preparing = false;
      this.restage(staged);
      throw err;
    }
    let settled = false;
    return {
      commit: async () => {
        if (settled) return;
        settled = true;
        try {
          await rename(tmp, join(this.dir, FILE));
        } catch (err) {
          this.preparing = false;
          this.restage(staged);
          throw err;
        }
        this.entries = next;
        this.fragments = fragments;
        // Their first entries are in now: marked already, or, removed while
        // this checkpoint was being written, marked in the next.
        for (const [id, at] of this.removedBeforeEntry) {
          if (!next.has(id)) continue;
          this.removedBeforeEntry.delete(id);
          this.markRemoved(id, at);
        }
        this.preparing = false;
        this.syncDirSoon();
      },
      discard: () => {
        if (settled) return;
        settled = true;
        this.preparing = false;
        this.restage(staged);
        this.discarded = unlink(tmp).catch(() => undefined);
      },
    };
  }

  private restage(staged: Map<string, StagedChange>): void {
    for (const [id, change] of staged) if (!this.staged.has(id)) this.staged.set(id, change);
  }

  /**
   * Makes the renames survive a power loss, at most once a second: a process
   * crash needs nothing more, and a power loss then costs at most a second of
   * repeated lines (the previous checkpoint), never lost ones.
   */
  private syncDirSoon(): void {
    if (this.dirSync) return;
    const wait = Math.max(0, this.lastDirSync + DIR_SYNC_INTERVAL_MS - Date.now());
    this.dirSync = new Promise<void>((resolve) => setTimeout(resolve, wait).unref())
      .then(() => syncDir(this.dir))
      .catch((err: unknown) => this.log.debug({ err }, 'docker checkpoint directory fsync failed'))
      .finally(() => {
        this.lastDirSync = Date.now();
        this.dirSync = undefined;
      });
  }
}

function withoutRemoved(e: CheckpointEntry): CheckpointEntry {
  const { removedAt: _removed, ...rest } = e;
  return rest;
}

/** `2026-11-22T09:54:18.128352973Z` → `1795341258.128352973`, the engine's `since` format. */
export function sinceParam(ts: string): string {
  const t = parseDockerTime(ts);
  if (!t) throw new Error(`not a Docker timestamp: ${ts}`);
  return `${t.sec}.${String(t.nsec).padStart(9, '0')}`;
}

/** The `since` that covers every stream's position: the earliest one. */
export function resumeSince(positions: Positions): string | undefined {
  let min: string | undefined;
  for (const p of Object.values(positions)) if (p && (min === undefined || p.ts < min)) min = p.ts;
  return min === undefined ? undefined : sinceParam(min);
}

/**
 * Drops the lines a resumed read returns that were emitted before. Timestamps
 * are fixed-width RFC 3339 UTC, so string order is time order.
 *
 * A resumed read starts with the checkpoint's own line. When it does not
 * (json-file rotated it away while clogs was down), lines between it and the
 * oldest one left may be gone: `onGap` says so.
 */
export class ResumeFilter {
  private readonly left = new Map<Stream, { ts: string; skip: number; lines: number; seen: boolean }>();

  constructor(
    positions: Positions,
    private readonly onGap?: (stream: Stream, checkpoint: string, first: string) => void,
  ) {
    for (const [stream, p] of Object.entries(positions) as [Stream, StreamPosition | undefined][]) {
      if (p) this.left.set(stream, { ts: p.ts, skip: p.lines, lines: p.lines, seen: false });
    }
  }

  admit(stream: Stream, ts: string): boolean {
    const p = this.left.get(stream);
    if (!p) return true;
    if (ts < p.ts) {
      p.seen = true;
      return false;
    }
    if (ts === p.ts && p.skip > 0) {
      p.seen = true;
      p.skip--;
      return false;
    }
    if (!p.seen && p.lines > 0 && ts > p.ts) this.onGap?.(stream, p.ts, ts);
    // Past the checkpoint: from here on every line of this stream is new.
    this.left.delete(stream);
    return true;
  }
}

/** Moves a position past one emitted line. */
export function recordLine(positions: Positions, stream: Stream, ts: string): void {
  const p = positions[stream];
  if (p && p.ts === ts) p.lines++;
  else positions[stream] = { ts, lines: 1, ords: 0 };
}

/** Notes the ordinal the Normalizer gave an event at `ts`. */
export function recordOrdinal(positions: Positions, stream: Stream, ts: string, ordinal: number): void {
  const p = positions[stream];
  if (p && p.ts === ts && ordinal + 1 > p.ords) p.ords = ordinal + 1;
}

export function copyPositions(positions: Positions): Positions {
  const out: Positions = {};
  for (const [stream, p] of Object.entries(positions) as [Stream, StreamPosition | undefined][]) if (p) out[stream] = { ...p };
  return out;
}
