/**
 * Decoded forward records → the Normalizer's RawLine.
 *
 * Docker's fluentd driver sends `container_id`, `container_name` (with
 * Docker's leading `/`), `source`, `log`, the `partial_*` keys of split lines
 * (all strings), and configured labels and env vars as extra top-level keys
 * (test/fixtures/docker/MANIFEST.md §1). Any other record (an app
 * logging `{level, msg}` through fluent-logger) has no container: its line is
 * its `message`, `log` or `msg`, or else the record's JSON, and all its keys
 * are kept under `extra`, which the Normalizer puts under `attrs`.
 *
 * With a container directory (../containers.ts), a container's object also
 * has its image, labels and compose project/service. The first line of a
 * container the directory does not know waits for its lookup, at most
 * LOOKUP_WAIT_MS (lookupWait); later lines get the metadata once it is in.
 */
import { containerName, type ContainerDirectory } from '../containers.js';
import type { ContainerMeta, ContainerWithId as Container, Stream } from '../event.js';
import { IntegerText, stringifyJson } from '../json-values.js';
import type { RawLine } from '../normalize.js';
import { nowNanoTime } from '../time.js';
import type { ForwardEntry, ForwardRecord } from './messages.js';

/** Containers whose metadata object is kept for reuse; far more than one host runs. */
const MAX_CONTAINERS = 4096;

/** The keys a record without a container has its line under, first found first (lineOf()); packed-lines.ts reads them so too. */
export const LINE_KEYS = ['message', 'log', 'msg'] as const;

/**
 * How long the first line of an unknown container waits for its metadata:
 * a local engine answers an inspect in a few ms; a busy one must not hold
 * the client's ack longer than this.
 */
export const LOOKUP_WAIT_MS = 250;

interface KnownContainer {
  id: string;
  rawName: string | undefined;
  meta: Container;
}

export class RecordMapper {
  /** One frozen ContainerMeta per container id (and name as sent), shared by all its events: serializers cache by identity. */
  private readonly containers = new Map<string, KnownContainer>();
  private last: KnownContainer | undefined;
  /** Changes whenever a container's object is dropped or replaced: callers caching one compare it. */
  generation = 0;
  /** Lookups lines wait for, by container id, until the container's object is built; `true` once the wait is over. */
  private readonly waits = new Map<string, Promise<void> | true>();
  private readonly unsubscribe: (() => void) | undefined;

  constructor(private readonly directory?: ContainerDirectory) {
    this.unsubscribe = directory?.subscribe((id) => this.changed(id));
  }

  close(): void {
    this.unsubscribe?.();
  }

  /** Whether containers get metadata from a directory, and their first lines may wait for it. */
  get enriches(): boolean {
    return this.directory !== undefined;
  }

  /**
   * What the first line of this container waits for, if it is not known yet:
   * its lookup, bounded by LOOKUP_WAIT_MS. Undefined when there is nothing to
   * wait for.
   */
  lookupWait(id: string): Promise<void> | undefined {
    const directory = this.directory;
    if (directory === undefined || this.last?.id === id || this.containers.has(id) || directory.known(id) !== undefined) return undefined;
    const waiting = this.waits.get(id);
    if (waiting !== undefined) return waiting === true ? undefined : waiting;
    const lookup = directory.lookup(id);
    if (lookup === undefined) return undefined;
    let timer: NodeJS.Timeout | undefined;
    const bounded: Promise<void> = Promise.race([lookup, new Promise<void>((resolve) => (timer = setTimeout(resolve, LOOKUP_WAIT_MS)))]).then(() => {
      clearTimeout(timer);
      if (this.waits.get(id) === bounded) this.waits.set(id, true);
    });
    if (this.waits.size >= MAX_CONTAINERS) this.waits.delete(this.waits.keys().next().value!);
    this.waits.set(id, bounded);
    return bounded;
  }

  toRawLine(entry: ForwardEntry, tag: string): RawLine {
    const rec = entry.record;
    // Fluentd replaces a time of 0 with the time of receipt (in_forward normalize_event_stream).
    const time = entry.time.sec === 0 && entry.time.nsec === 0 ? nowNanoTime() : entry.time;
    if (rec.containerId !== undefined && rec.log !== undefined) {
      let stream: Stream | undefined;
      let extra = rec.rest;
      if (rec.source === 'stdout' || rec.source === 'stderr') stream = rec.source;
      else if (rec.source !== undefined) extra = { ...extra, source: rec.source };
      const partial =
        rec.partialMessage === 'true' && rec.partialId !== undefined
          ? { id: rec.partialId, ordinal: Number(rec.partialOrdinal) || 0, last: rec.partialLast === 'true' }
          : undefined;
      return {
        input: 'forward',
        time,
        stream,
        line: rec.log,
        container: this.container(rec.containerId, rec.containerName),
        tag,
        partial,
        extra,
      };
    }
    const extra = allKeys(rec);
    return { input: 'forward', time, stream: undefined, line: lineOf(extra), container: undefined, tag, partial: undefined, extra };
  }

  /** The one ContainerMeta of this container id and name (as sent, with Docker's `/`). */
  container(id: string, rawName: string | undefined): Container {
    const last = this.last;
    // Measured: records of one container come in runs; comparing with the
    // last one skips hashing the 64-char id, 1.8% of the collector's CPU.
    if (last !== undefined && last.id === id && last.rawName === rawName) return last.meta;
    const known = this.containers.get(id);
    // A renamed container gets a new object; the old one stays with the events that have it.
    if (known !== undefined && known.rawName === rawName) {
      this.last = known;
      return known.meta;
    }
    const name = rawName === undefined ? undefined : containerName(rawName);
    this.waits.delete(id);
    const entry = { id, rawName, meta: withName(id, name, this.directory?.known(id)) };
    if (known !== undefined) this.generation++;
    else if (this.containers.size >= MAX_CONTAINERS) {
      this.containers.delete(this.containers.keys().next().value!);
      this.generation++;
    }
    this.containers.set(id, entry);
    this.last = entry;
    return entry.meta;
  }

  /** The directory's metadata of a container changed: its next line builds its object anew. */
  private changed(id: string): void {
    const known = this.containers.get(id);
    if (known === undefined) return;
    this.containers.delete(id);
    if (this.last === known) this.last = undefined;
    this.generation++;
  }
}

/**
 * The container's object: the directory's own when the name is the one sent
 * (one object per container, whichever input made the event), else a copy
 * with the name sent.
 */
function withName(id: string, name: string | undefined, known: ContainerMeta | undefined): Container {
  if (known === undefined) return Object.freeze(name === undefined ? { id } : { id, name });
  if (known.id === id && known.name === name) return known as Container;
  const meta: { -readonly [K in keyof ContainerMeta]: ContainerMeta[K] } = { id };
  if (name !== undefined) meta.name = name;
  if (known.image !== undefined) meta.image = known.image;
  if (known.labels !== undefined) meta.labels = known.labels;
  if (known.compose !== undefined) meta.compose = known.compose;
  return Object.freeze(meta) as Container;
}

/** One promise for the lookups a request waits for; undefined for none. */
export function waitAll(waits: Promise<void>[] | undefined): Promise<void> | undefined {
  return waits === undefined ? undefined : Promise.all(waits).then(() => undefined);
}

/**
 * Every key of a record, Docker's fixed ones included, as plain values.
 * Key by key, with no table of pairs: this runs for every record without a
 * container that the fast path (packed-lines.ts) leaves. Measured, toRawLine on 3M `{level, msg}` records: 116-135 ns
 * and 200-330 scavenges, against 189-292 ns and 2,065 with nine arrays a
 * record.
 */
function allKeys(rec: ForwardRecord): Record<string, unknown> {
  let out = withKey(rec.rest, 'container_id', rec.containerId);
  out = withKey(out, 'container_name', rec.containerName);
  out = withKey(out, 'source', rec.source);
  out = withKey(out, 'log', rec.log);
  out = withKey(out, 'partial_message', rec.partialMessage);
  out = withKey(out, 'partial_id', rec.partialId);
  out = withKey(out, 'partial_ordinal', rec.partialOrdinal);
  out = withKey(out, 'partial_last', rec.partialLast);
  return out ?? {};
}

function withKey(out: Record<string, unknown> | undefined, key: string, value: string | Buffer | undefined): Record<string, unknown> | undefined {
  if (value === undefined) return out;
  out ??= {};
  out[key] = typeof value === 'string' ? value : value.toString('utf8');
  return out;
}

function lineOf(fields: Record<string, unknown>): string {
  for (const k of LINE_KEYS) {
    const v = fields[k];
    if (typeof v === 'string') return v;
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    if (v instanceof IntegerText) return v.digits;
  }
  return stringifyJson(fields);
}
