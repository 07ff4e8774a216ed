/**
 * What the Normalizer holds that was acked before its event was written:
 * pieces of split lines, and the lines of a stack trace being joined.
 *
 * Docker sends piece 1 of a long line with its own chunk and waits for the ack
 * before it sends piece 2, and likewise sends the first line of a trace and
 * waits before it sends the next; so a line has to be acked while the
 * Normalizer still holds it in memory. To never ack what a crash could lose,
 * such a line is appended (and fsync'd) to a file of its event under
 * `<state>/forward-partials/` before the ack (named for the partial id, or
 * for the trace's first line), and the file is deleted once the event has
 * been written. At start the files are read back into the Normalizer, traces
 * first, so a piece 2 or the next line of a trace that comes after a restart
 * still finds what came before (or the timeout writes it as it is). A trace
 * written just before a crash, whose file was not deleted yet, is written
 * again with the same identity (its first line's), which the sinks dedupe.
 *
 * One NDJSON line per held line; a torn last line (crash during the append)
 * was never acked, and is skipped.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../log.js';
import type { ContainerMeta, LogEvent, Stream } from '../event.js';
import type { RawLine } from '../normalize.js';
import { formatNanoTime } from '../time.js';
import { removeIfPresent, syncDir } from '../state-files.js';

interface StoredPiece {
  t: [number, number];
  s?: Stream;
  c?: ContainerMeta;
  g?: string;
  /** A piece of a split line: its partial metadata. */
  p?: { id: string; ordinal: number; last: boolean };
  /** A line of a trace being joined. */
  h?: 1;
  /** The line's bytes, base64. */
  l: string;
  x?: Record<string, unknown>;
}

/** A line to keep: `id` names its event's file, `first` is that event's first line (or piece). */
export interface HeldLine {
  id: string;
  first: RawLine;
  line: RawLine;
}

/** A piece of a split line, kept under its partial id. */
export function pieceOf(raw: RawLine): HeldLine {
  return { id: raw.partial!.id, first: raw, line: raw };
}

/** The id of the trace a line was held in, from the trace's first line. */
export function traceId(first: RawLine): string {
  return `trace\0${matchKeyOf(first)}`;
}

export class PartialStore {
  /** partial id → its file and the key its flushed event is recognised by. */
  private readonly files = new Map<string, { path: string; match: string }>();
  /** One operation at a time, in call order: a delete never overtakes the append it follows. */
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly dir: string,
    private readonly log: Logger,
  ) {}

  /**
   * Creates the folder and returns the stored lines in the order the
   * Normalizer takes them: the lines of each trace, then each split line's
   * pieces, oldest first.
   */
  async load(): Promise<RawLine[]> {
    await mkdir(this.dir, { recursive: true });
    const traces: RawLine[] = [];
    const pieces: RawLine[] = [];
    for (const name of (await readdir(this.dir)).sort()) {
      const path = join(this.dir, name);
      const lines: RawLine[] = [];
      for (const line of (await readFile(path, 'utf8')).split('\n')) {
        if (line === '') continue;
        try {
          lines.push(toRawLine(JSON.parse(line) as StoredPiece));
        } catch {
          this.log.warn({ file: path }, 'skipping a torn line in a stored held line');
        }
      }
      const first = lines[0];
      if (first === undefined) {
        await unlink(path);
        continue;
      }
      if (first.partial === undefined) {
        this.files.set(traceId(first), { path, match: matchKeyOf(first) });
        traces.push(...lines);
        continue;
      }
      lines.sort((a, b) => a.partial!.ordinal - b.partial!.ordinal);
      this.files.set(first.partial.id, { path, match: matchKeyOf(first) });
      pieces.push(...lines);
    }
    if (this.files.size > 0) this.log.info({ lines: traces.length + pieces.length, events: this.files.size }, 'loaded acked lines of split lines and traces');
    return [...traces, ...pieces];
  }

  /** Appends lines to their event's file and fsyncs; resolves once they are durable. */
  persist(held: readonly HeldLine[]): Promise<void> {
    return this.enqueue(async () => {
      const byId = new Map<string, HeldLine[]>();
      for (const h of held) {
        let list = byId.get(h.id);
        if (list === undefined) byId.set(h.id, (list = []));
        list.push(h);
      }
      let created = false;
      for (const [id, list] of byId) {
        let entry = this.files.get(id);
        if (entry === undefined) {
          entry = { path: join(this.dir, fileName(id)), match: matchKeyOf(list[0]!.first) };
          this.files.set(id, entry);
          created = true;
        }
        const fh = await open(entry.path, 'a');
        try {
          await fh.write(list.map((h) => JSON.stringify(toStored(h.line)) + '\n').join(''));
          await fh.datasync();
        } finally {
          await fh.close();
        }
      }
      // A new file's name must be durable too, or a crash could lose the whole file.
      if (created) await syncDir(this.dir);
    });
  }

  /** Deletes the files of events that were written. */
  complete(ids: readonly string[]): Promise<void> {
    const paths: string[] = [];
    for (const id of ids) {
      const entry = this.files.get(id);
      if (entry === undefined) continue;
      this.files.delete(id);
      paths.push(entry.path);
    }
    return paths.length === 0 ? Promise.resolve() : this.enqueue(() => removeAll(paths));
  }

  /**
   * Deletes the files of events the Normalizer let go on its own (timeout,
   * shutdown). Those events carry no partial id; they are recognised by
   * container, stream and timestamp, which all pieces of a line share and a
   * trace takes from its first line.
   */
  completeFlushed(events: readonly LogEvent[]): Promise<void> {
    if (this.files.size === 0) return Promise.resolve();
    const flushed = new Set(events.map((e) => `${e.container?.id ?? ''}\0${e.stream ?? ''}\0${e['@timestamp']}`));
    const ids: string[] = [];
    for (const [id, entry] of this.files) if (flushed.has(entry.match)) ids.push(id);
    return this.complete(ids);
  }

  private enqueue(op: () => Promise<void>): Promise<void> {
    const result = this.chain.then(op);
    this.chain = result.catch(() => undefined);
    return result;
  }
}

function matchKeyOf(p: RawLine): string {
  return `${p.container?.id ?? ''}\0${p.stream ?? ''}\0${formatNanoTime(p.time.sec, p.time.nsec)}`;
}

/** Docker's partial ids are 64 hex digits; anything else is hashed, so no id can name a path. */
function fileName(id: string): string {
  return /^[A-Za-z0-9_-]{1,128}$/.test(id) ? id : createHash('sha256').update(id).digest('hex');
}

function toStored(p: RawLine): StoredPiece {
  const bytes = typeof p.line === 'string' ? Buffer.from(p.line, 'utf8') : p.line;
  return {
    t: [p.time.sec, p.time.nsec],
    s: p.stream,
    // All of it: a `clogs.multiline` label decides how the line is joined after a restart.
    c: p.container,
    g: p.tag,
    p: p.partial,
    h: p.partial === undefined ? 1 : undefined,
    l: bytes.toString('base64'),
    x: p.extra,
  };
}

function toRawLine(s: StoredPiece): RawLine {
  if ((typeof s.p?.id !== 'string' && s.h !== 1) || typeof s.l !== 'string' || !Array.isArray(s.t)) throw new Error('not a stored line');
  return {
    input: 'forward',
    time: { sec: s.t[0], nsec: s.t[1] },
    stream: s.s,
    line: Buffer.from(s.l, 'base64'),
    container: s.c ? Object.freeze({ ...s.c }) : undefined,
    tag: s.g,
    partial: s.p,
    extra: s.x,
  };
}

async function removeAll(paths: readonly string[]): Promise<void> {
  await Promise.all(paths.map(removeIfPresent));
}
