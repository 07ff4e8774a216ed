/**
 * Rendered event lines → `_bulk` NDJSON: one `create` action line with a
 * deterministic `_id` (document-id.ts), then the event's line as it is.
 *
 * The pair is built once, when the event enters the disk queue, and sent
 * as stored: the sender never parses or re-serializes a document, and a
 * replay after a crash sends byte-identical requests. A batch's bulk lines
 * are written into one buffer, sized up front: the queue appends it as one
 * record.
 */
import { put, putRange } from '../../collector/byte-copy.js';
import type { EncodedBatch } from '../../collector/encoded.js';
import { LineFields } from '../../collector/line-fields.js';
import { DocumentIds, ID_LENGTH } from './document-id.js';

/** Where documents go: one data stream, or an index per UTC day. */
export type Target =
  | { kind: 'data_stream'; name: string; dataset: string; namespace: string }
  | { kind: 'index'; pattern: string };

/** Where `cfg` (validated by config/schema.ts) sends documents. */
export function resolveTarget(cfg: { index?: string | undefined; data_stream: { dataset: string; namespace: string } }): Target {
  if (cfg.index !== undefined) return { kind: 'index', pattern: cfg.index };
  const { dataset, namespace } = cfg.data_stream;
  return { kind: 'data_stream', name: `logs-${dataset}-${namespace}`, dataset, namespace };
}

/** `clogs-%Y.%m.%d` + `2026-11-22T…` → `clogs-2026.11.22` (UTC, from the event's own time). */
export function indexName(pattern: string, timestamp: string): string {
  return pattern
    .replaceAll('%Y', timestamp.slice(0, 4))
    .replaceAll('%m', timestamp.slice(5, 7))
    .replaceAll('%d', timestamp.slice(8, 10));
}

const ACTION_END = Buffer.from('"}}\n');
/** Where the day is in a rendered `@timestamp`: `2026-11-22`. */
const DAY_LENGTH = 10;

/**
 * Rendered lines → bulk lines: each event's `create` action, then its line
 * exactly as the renderer wrote it.
 */
export class BulkEncoder {
  private readonly fields = new LineFields();
  private readonly ids = new DocumentIds();
  /** `{"create":{"_index":"…","_id":"` for the day in `day` (a data stream's is the same every day). */
  private actionStart: Buffer;
  private readonly day = Buffer.alloc(DAY_LENGTH);
  /** One action line's length: the same for every event, since the date placeholders have fixed widths. */
  private readonly actionLength: number;

  constructor(private readonly target: Target) {
    this.actionStart = target.kind === 'data_stream' ? actionStart(target.name) : this.dayAction('0000-00-00');
    this.actionLength = this.actionStart.length + ID_LENGTH + ACTION_END.length;
  }

  /**
   * The bulk lines of the batch's events, concatenated: two lines per event,
   * each ending in "\n", in a buffer from `alloc` (the queue lends its own).
   */
  encode(batch: EncodedBatch, alloc: (size: number) => Buffer = Buffer.allocUnsafe): Buffer {
    let size = 0;
    let count = 0;
    for (const source of batch.sources()) {
      size += source.bytes;
      count += source.count;
    }
    const out = alloc(size + count * this.actionLength);
    let pos = 0;
    // The chunk the lines come from, and where it starts in its memory (see byte-copy.ts).
    let chunk: Buffer | undefined;
    let memory: ArrayBufferLike = out.buffer;
    let offset = 0;
    for (const source of batch.sources()) {
      source.forEachLine(this.fields, (f) => {
        const start = this.target.kind === 'data_stream' ? this.actionStart : this.actionOfDay(f);
        pos = put(start, out, pos);
        this.ids.write(f, source.container, out, pos);
        pos = put(ACTION_END, out, pos + ID_LENGTH);
        if (f.buf !== chunk) {
          chunk = f.buf;
          memory = chunk.buffer;
          offset = chunk.byteOffset;
        }
        pos = putRange(memory, offset + f.start, offset + f.end + 1, out, pos);
      });
    }
    if (pos !== out.length) throw new Error(`bulk lines take ${pos} bytes, not the ${out.length} the batch's lines promised`);
    return out;
  }

  private actionOfDay(f: LineFields): Buffer {
    const at = f.timestampAt;
    if (f.buf.compare(this.day, 0, DAY_LENGTH, at, at + DAY_LENGTH) !== 0) {
      this.actionStart = this.dayAction(f.buf.toString('latin1', at, at + DAY_LENGTH));
    }
    return this.actionStart;
  }

  private dayAction(day: string): Buffer {
    this.day.write(day, 'latin1');
    return actionStart(indexName((this.target as { pattern: string }).pattern, day));
  }
}

function actionStart(index: string): Buffer {
  return Buffer.from(`{"create":{"_index":${JSON.stringify(index)},"_id":"`, 'utf8');
}
