/**
 * Documents Elasticsearch rejected for good (a 400 mapping conflict, a
 * document that alone exceeds the request size) leave the queue only after
 * they are fsync'd here, one NDJSON line each, with the reason:
 *
 *   {"time":"…","status":400,"error":{"type":"document_parsing_exception",…},
 *    "index":"logs-clogs-default","_id":"…","event":{…the document…}}
 *
 * The file is what the user replays after fixing the mapping, so the event
 * is kept exactly as it was sent. It grows without bound: rejections are
 * rare, counted (clogs_sink_dead_lettered_total) and logged with their
 * sources, and a file the user must notice is better than a cap that drops
 * them.
 */
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { sourceName } from '../../collector/source.js';

export interface Rejected {
  /** The queue entry: action line and document line. */
  entry: Buffer;
  status: number;
  error: unknown;
}

export class DeadLetterFile {
  private handle: FileHandle | undefined;
  private writing: Promise<unknown> = Promise.resolve();
  /** The size to cut the file back to before the next append: a failed append's cut failed too. */
  private cutTo: number | undefined;

  constructor(readonly path: string) {}

  /**
   * Appends the rejected documents and fsyncs; resolves with the source of
   * each (container name, else id, else tag, else input) for the warning.
   */
  write(rejected: readonly Rejected[]): Promise<string[]> {
    const run = this.writing.then(() => this.append(rejected));
    this.writing = run.catch(() => undefined);
    return run;
  }

  async close(): Promise<void> {
    await this.writing;
    await this.handle?.close();
    this.handle = undefined;
  }

  /**
   * Appends whole lines, or fails (and the batch stays queued) with none of
   * them left in the file: a half line would make the next one unreadable.
   */
  private async append(rejected: readonly Rejected[]): Promise<string[]> {
    if (!this.handle) {
      await mkdir(dirname(this.path), { recursive: true });
      this.handle = await open(this.path, 'a');
    }
    const handle = this.handle;
    if (this.cutTo !== undefined) {
      await handle.truncate(this.cutTo);
      this.cutTo = undefined;
    }
    const time = new Date().toISOString();
    const sources: string[] = [];
    let out = '';
    for (const r of rejected) {
      const text = r.entry.toString('utf8');
      const nl = text.indexOf('\n');
      const doc = text.slice(nl + 1).trimEnd();
      const target = parseAction(text.slice(0, nl));
      sources.push(sourceOf(doc));
      out += `{"time":"${time}","status":${r.status},"error":${JSON.stringify(r.error ?? null)},"index":${JSON.stringify(target.index)},"_id":${JSON.stringify(target.id)},"event":${doc}}\n`;
    }
    const bytes = Buffer.from(out);
    // Asked each time: the user may empty the file once they replayed it.
    const before = (await handle.stat()).size;
    try {
      let written = 0;
      while (written < bytes.length) {
        // A write may take fewer bytes than asked without an error: the file size limit or a quota reached part-way.
        const { bytesWritten } = await handle.write(bytes, written, bytes.length - written);
        if (bytesWritten <= 0) throw new Error(`write wrote ${bytesWritten} bytes`);
        written += bytesWritten;
      }
      await handle.datasync();
    } catch (err) {
      this.cutTo = before;
      await handle.truncate(before).then(
        () => (this.cutTo = undefined),
        () => undefined,
      );
      throw err;
    }
    return sources;
  }
}

function parseAction(line: string): { index: string | null; id: string | null } {
  try {
    const op = Object.values(JSON.parse(line) as Record<string, { _index?: string; _id?: string }>)[0];
    return { index: op?._index ?? null, id: op?._id ?? null };
  } catch {
    return { index: null, id: null };
  }
}

function sourceOf(doc: string): string {
  const text = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
  try {
    const e = JSON.parse(doc) as { container?: { name?: unknown; id?: unknown }; clogs?: { tag?: unknown; input?: unknown } };
    const name = text(e.container?.name);
    const id = text(e.container?.id);
    return sourceName({ ...(name ? { name } : {}), ...(id ? { id } : {}) }, text(e.clogs?.tag), text(e.clogs?.input) ?? 'unknown');
  } catch {
    return 'unknown';
  }
}
