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
 */
import type { ContainerMeta, Stream } from '../event.js';
import type { RawLine } from '../normalize.js';
import { nowNanoTime } from '../time.js';
import type { ForwardEntry, ForwardRecord } from './messages.js';

/** Containers whose metadata object is kept for reuse; far more than one host runs. */
const MAX_CONTAINERS = 4096;

const LINE_KEYS = ['message', 'log', 'msg'] as const;

interface KnownContainer {
  id: string;
  rawName: string | undefined;
  meta: ContainerMeta & { readonly id: string };
}

export class RecordMapper {
  /** One frozen ContainerMeta per container id (and name as sent), shared by all its events: serializers cache by identity. */
  private readonly containers = new Map<string, KnownContainer>();
  private last: KnownContainer | undefined;
  /** Changes whenever a container's object is dropped or replaced: callers caching one compare it. */
  generation = 0;

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
  container(id: string, rawName: string | undefined): ContainerMeta & { readonly id: string } {
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
    const name = rawName?.startsWith('/') ? rawName.slice(1) : rawName;
    const entry = { id, rawName, meta: Object.freeze(name === undefined ? { id } : { id, name }) };
    if (known !== undefined) this.generation++;
    else if (this.containers.size >= MAX_CONTAINERS) {
      this.containers.delete(this.containers.keys().next().value!);
      this.generation++;
    }
    this.containers.set(id, entry);
    this.last = entry;
    return entry.meta;
  }
}

/** Every key of a record, Docker's fixed ones included, as plain values. */
function allKeys(rec: ForwardRecord): Record<string, unknown> {
  const fixed: Array<[string, string | Buffer | undefined]> = [
    ['container_id', rec.containerId],
    ['container_name', rec.containerName],
    ['source', rec.source],
    ['log', rec.log],
    ['partial_message', rec.partialMessage],
    ['partial_id', rec.partialId],
    ['partial_ordinal', rec.partialOrdinal],
    ['partial_last', rec.partialLast],
  ];
  let out = rec.rest;
  for (const [k, v] of fixed) {
    if (v === undefined) continue;
    out ??= {};
    out[k] = typeof v === 'string' ? v : v.toString('utf8');
  }
  return out ?? {};
}

function lineOf(fields: Record<string, unknown>): string {
  for (const k of LINE_KEYS) {
    const v = fields[k];
    if (typeof v === 'string') return v;
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  }
  return JSON.stringify(fields);
}
