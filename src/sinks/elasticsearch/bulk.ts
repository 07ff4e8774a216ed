/**
 * LogEvent → `_bulk` NDJSON: one `create` action line and one document line
 * per event, with a deterministic `_id`.
 *
 * The pair is rendered once, when the event enters the disk queue, and sent
 * as stored: the sender never parses or re-serializes a document, and a
 * replay after a crash sends byte-identical requests.
 *
 * `_id` rule (docs/elasticsearch.md, "Exactly once"): a hash of what identifies
 * the line itself, never of when or how often clogs saw it:
 *   source (container id, else forward tag, else input) · `@timestamp` with
 *   nanoseconds · stream · `clogs.ordinal` · `clogs.piece` · `log.level` ·
 *   message · attrs (the rest of the record or parsed JSON line).
 * `clogs.seq` and `host.name` are left out on purpose: they differ between a
 * first delivery and a redelivery of the same line.
 */
import { hash } from 'node:crypto';
import type { ContainerMeta, LogEvent } from '../../collector/event.js';
import { eventSourceId } from '../../collector/source.js';
import { ClogsError } from '../../errors.js';

/** Where documents go: one data stream, or an index per UTC day. */
export type Target =
  | { kind: 'data_stream'; name: string; dataset: string; namespace: string }
  | { kind: 'index'; pattern: string };

/** Characters Elasticsearch refuses in index names (MetadataCreateIndexService.validateIndexOrAliasName). */
const BAD_INDEX_CHARS = /[\\/*?"<>| ,#:A-Z]/;

export function resolveTarget(cfg: { index?: string | undefined; data_stream: { dataset: string; namespace: string } }): Target {
  if (cfg.index === undefined) {
    const { dataset, namespace } = cfg.data_stream;
    return { kind: 'data_stream', name: `logs-${dataset}-${namespace}`, dataset, namespace };
  }
  const pattern = cfg.index;
  const sample = indexName(pattern, '2026-01-02T00:00:00.000000000Z');
  if (pattern.length === 0 || BAD_INDEX_CHARS.test(sample) || /^[-_+.]/.test(sample) || /%[^Ymd]/.test(pattern)) {
    throw new ClogsError(
      'CLOGS_CONFIG',
      `sinks.elasticsearch.index: ${JSON.stringify(pattern)} is not a valid index pattern: use lowercase letters, digits, "-", "_", "." ` +
        `and the placeholders %Y %m %d, like "clogs-%Y.%m.%d"`,
    );
  }
  return { kind: 'index', pattern };
}

/** `clogs-%Y.%m.%d` + `2026-11-22T…` → `clogs-2026.11.22` (UTC, from the event's own time). */
export function indexName(pattern: string, timestamp: string): string {
  return pattern
    .replaceAll('%Y', timestamp.slice(0, 4))
    .replaceAll('%m', timestamp.slice(5, 7))
    .replaceAll('%d', timestamp.slice(8, 10));
}

/** 22 base64url characters = 132 bits of SHA-256: collisions are out of reach for any log volume. */
const ID_LENGTH = 22;

/**
 * The `_id` of an event. Variable-length parts are length-prefixed so no
 * choice of message or tag can make two different lines hash the same input.
 */
export function documentId(event: LogEvent, attrsJson: string | undefined): string {
  const source = eventSourceId(event);
  const level = event.log?.level ?? '';
  const key =
    `${source.length}:${source}|${event['@timestamp']}|${event.stream ?? ''}|${event.clogs.ordinal}|${event.clogs.piece ?? ''}|` +
    `${level.length}:${level}|${event.message.length}:${event.message}|${attrsJson ?? ''}`;
  return hash('sha256', key, 'base64url').slice(0, ID_LENGTH);
}

/**
 * Renders events to bulk lines. Keeps the JSON of each container's metadata,
 * which inputs share per container and never mutate (ContainerMeta), so it is
 * rendered once per container instead of once per line.
 */
export class BulkEncoder {
  private readonly containerJson = new WeakMap<ContainerMeta, string>();
  private readonly actionPrefix: string | undefined;
  private lastHostName = '';
  private lastHostJson = '';

  constructor(private readonly target: Target) {
    if (target.kind === 'data_stream') this.actionPrefix = `{"create":{"_index":${JSON.stringify(target.name)},"_id":"`;
  }

  /** The bulk lines of `events`, concatenated: two lines per event, each ending in "\n". */
  encode(events: readonly LogEvent[]): Buffer {
    let out = '';
    for (const event of events) out += this.encodeOne(event);
    return Buffer.from(out, 'utf8');
  }

  encodeOne(event: LogEvent): string {
    const attrsJson = event.attrs === undefined ? undefined : JSON.stringify(event.attrs);
    const id = documentId(event, attrsJson);
    const action =
      this.actionPrefix !== undefined
        ? this.actionPrefix + id + '"}}\n'
        : `{"create":{"_index":${JSON.stringify(indexName((this.target as { pattern: string }).pattern, event['@timestamp']))},"_id":"${id}"}}\n`;
    return action + this.document(event, attrsJson) + '\n';
  }

  /** The document line, fields in a fixed order. */
  private document(event: LogEvent, attrsJson: string | undefined): string {
    let doc = `{"@timestamp":"${event['@timestamp']}","message":${JSON.stringify(event.message)}`;
    if (event.stream !== undefined) doc += `,"stream":"${event.stream}"`;
    if (event.container !== undefined) doc += `,"container":${this.container(event.container)}`;
    doc += `,"host":${this.host(event.host.name)}`;
    if (event.log !== undefined) doc += `,"log":${JSON.stringify(event.log)}`;
    if (attrsJson !== undefined) doc += `,"attrs":${attrsJson}`;
    return doc + `,"clogs":${JSON.stringify(event.clogs)}}`;
  }

  private container(meta: ContainerMeta): string {
    let json = this.containerJson.get(meta);
    if (json === undefined) {
      json = JSON.stringify(meta);
      this.containerJson.set(meta, json);
    }
    return json;
  }

  private host(name: string): string {
    if (name !== this.lastHostName) {
      this.lastHostName = name;
      this.lastHostJson = JSON.stringify({ name });
    }
    return this.lastHostJson;
  }
}
