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
 * A crash between storing a line and the client reading its ack brings the
 * request again, byte for byte, to the restarted collector, which holds that
 * line already: taken again, it would be in its event twice. So each stored
 * line names its request's chunk key, and lines are stored only once every
 * other record of their requests is durable (writes.ts): a request with a
 * stored line was written whole, and the restarted input acks its resend
 * without taking it again (`chunks()`, seeded into the ChunkLedger).
 *
 * A failed write loses no stored piece either: the client resends the
 * requests not acked, and the one with a line's last piece comes without the
 * pieces acked before it, whose joined line went out in the failed write.
 * The store keeps the pieces it made durable in memory too, and gives them
 * back (restore()) for the Normalizer to hold again. The lines of a trace
 * are not given back: a trace let go in a failed write loses its stored
 * lines from the resend, and they come out, as an event of their own, at the
 * next start.
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
import { removeIfPresent, syncDir } from '../../state-files.js';

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
  /** The chunk key (acks.ts) of the request that brought the line. */
  k?: string;
}

/** A line to keep: `id` names its event's file, `first` is that event's first line (or piece). */
export interface HeldLine {
  id: string;
  first: RawLine;
  line: RawLine;
  /** The chunk key of the request that brought `line`. */
  key: string;
}

/** A piece of a split line, kept under its partial id. */
export function pieceOf(raw: RawLine, key: string): HeldLine {
  return { id: raw.partial!.id, first: raw, line: raw, key };
}

interface HeldFile {
  path: string;
  /** The key its flushed event is recognised by. */
  match: string;
  /** Whether the file was created (and its name made durable). */
  created: boolean;
  /** The split-line pieces durable in it, oldest first: what restore() gives back. */
  pieces: RawLine[];
}

/** The id of the trace a line was held in, from the trace's first line. */
export function traceId(first: RawLine): string {
  return `trace\0${matchKeyOf(first)}`;
}

export class PartialStore {
  /** Partial or trace id → its file. */
  private readonly files = new Map<string, HeldFile>();
  /** Chunk keys of the requests whose lines were loaded. */
  private readonly loadedChunks = new Set<string>();
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
          const stored = JSON.parse(line) as StoredPiece;
          lines.push(toRawLine(stored));
          if (typeof stored.k === 'string') this.loadedChunks.add(stored.k);
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
        this.files.set(traceId(first), { path, match: matchKeyOf(first), created: true, pieces: [] });
        traces.push(...lines);
        continue;
      }
      lines.sort((a, b) => a.partial!.ordinal - b.partial!.ordinal);
      this.files.set(first.partial.id, { path, match: matchKeyOf(first), created: true, pieces: lines });
      pieces.push(...lines);
    }
    if (this.files.size > 0) this.log.info({ lines: traces.length + pieces.length, events: this.files.size }, 'loaded acked lines of split lines and traces');
    return [...traces, ...pieces];
  }

  /** Chunk keys of the requests whose lines load() found: written whole before the crash. */
  chunks(): ReadonlySet<string> {
    return this.loadedChunks;
  }

  /**
   * Once `after` resolves, appends lines to their event's files and fsyncs;
   * resolves once they are durable. A line whose event is written meanwhile
   * (complete(), completeFlushed()) is not stored: it is in that event.
   */
  persist(held: readonly HeldLine[], after: Promise<unknown>): Promise<void> {
    // Known at once, so that an event written while `after` is pending finds its file to forget.
    const byFile = new Map<HeldFile, HeldLine[]>();
    for (const h of held) {
      let file = this.files.get(h.id);
      if (file === undefined) this.files.set(h.id, (file = { path: join(this.dir, fileName(h.id)), match: matchKeyOf(h.first), created: false, pieces: [] }));
      let list = byFile.get(file);
      if (list === undefined) byFile.set(file, (list = []));
      list.push(h);
    }
    // Not waited for in the chain: `after` may wait on another connection's lines behind it.
    return after.then(() =>
      this.enqueue(async () => {
        let created = false;
        for (const [file, list] of byFile) {
          if (this.files.get(list[0]!.id) !== file) continue;
          const fh = await open(file.path, 'a');
          try {
            await fh.write(list.map((h) => JSON.stringify(toStored(h.line, h.key)) + '\n').join(''));
            await fh.datasync();
          } finally {
            await fh.close();
          }
          if (!file.created) created = file.created = true;
          for (const h of list) if (h.line.partial !== undefined) file.pieces.push(h.line);
        }
        // A new file's name must be durable too, or a crash could lose the whole file.
        if (created) await syncDir(this.dir);
      }),
    );
  }

  /**
   * The stored pieces of these split lines, in order: their joined lines went
   * out in a write that failed, and the resend of the request that completed
   * them brings only the pieces that were not acked before. The files stay
   * until the line is written (complete()).
   */
  restore(ids: readonly string[]): RawLine[] {
    const out: RawLine[] = [];
    for (const id of ids) {
      const file = this.files.get(id);
      if (file !== undefined) out.push(...file.pieces);
    }
    return out;
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

function toStored(p: RawLine, key: string): StoredPiece {
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
    k: key,
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
