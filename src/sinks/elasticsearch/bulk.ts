/**
 * Rendered event lines → `_bulk` NDJSON: one `create` action line with a
 * deterministic `_id`, then the event's line as it is.
 *
 * The pair is built once, when the event enters the disk queue, and sent
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
import type { EncodedBatch } from '../../collector/encoded.js';
import type { ContainerMeta } from '../../collector/event.js';
import { forEachLine, LineFields } from '../../collector/line-fields.js';
import { sourceId } from '../../collector/source.js';
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
 * The `_id` of the line `fields` was read from, whose container (if any) is
 * `container`. Variable-length parts are length-prefixed so no choice of
 * message or tag can make two different lines hash the same input.
 */
export function documentIdOfLine(fields: LineFields, container: ContainerMeta | undefined): string {
  const source = sourceId(container, fields.tag(), fields.input());
  const level = fields.level() ?? '';
  const message = fields.message();
  const key =
    `${source.length}:${source}|${fields.timestamp()}|${fields.stream ?? ''}|${fields.ordinal}|${fields.piece < 0 ? '' : fields.piece}|` +
    `${level.length}:${level}|${message.length}:${message}|${fields.attrsJson() ?? ''}`;
  return hash('sha256', key, 'base64url').slice(0, ID_LENGTH);
}

/**
 * Rendered lines → bulk lines: each event's `create` action, then its line
 * exactly as the renderer wrote it.
 */
export class BulkEncoder {
  private readonly fields = new LineFields();
  private readonly actionPrefix: string | undefined;

  constructor(private readonly target: Target) {
    if (target.kind === 'data_stream') this.actionPrefix = `{"create":{"_index":${JSON.stringify(target.name)},"_id":"`;
  }

  /** The bulk lines of the batch's events, concatenated: two lines per event, each ending in "\n". */
  encode(batch: EncodedBatch): Buffer {
    const out: Buffer[] = [];
    for (const source of batch.sources()) {
      forEachLine(source.chunks(), this.fields, (f) => {
        out.push(Buffer.from(this.action(f, documentIdOfLine(f, source.container)), 'utf8'), f.buf.subarray(f.start, f.end + 1));
      });
    }
    return Buffer.concat(out);
  }

  private action(f: LineFields, id: string): string {
    if (this.actionPrefix !== undefined) return this.actionPrefix + id + '"}}\n';
    const index = indexName((this.target as { pattern: string }).pattern, f.timestamp());
    return `{"create":{"_index":${JSON.stringify(index)},"_id":"${id}"}}\n`;
  }
}
