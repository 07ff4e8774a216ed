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
 * for the trace: an id of its own, in the order traces open, since two
 * traces of a source can open in the same second), and the file is deleted
 * once the event has been written. At start the files are read back into the
 * Normalizer, traces first and in the order they opened, so a piece 2 or the
 * next line of a trace that comes after a restart still finds what came
 * before (or the timeout writes it as it is). A trace written just before a
 * crash, whose file was not deleted yet, is written again with the same
 * identity (its first line's), which the sinks dedupe.
 *
 * A crash between storing a line and the client reading its ack brings the
 * request again, byte for byte, to the restarted collector, which holds that
 * line already: taken again, it would be in its event twice. So each stored
 * line names its request's chunk key, and lines are stored only once every
 * other record of their requests is durable (writes.ts): a request with a
 * stored line was written whole, and the restarted input acks its resend
 * without taking it again (`chunks()`, seeded into the ChunkLedger).
 *
 * A failed write loses no stored line either: the client resends the
 * requests not acked, and the one with a line's last piece (or the line that
 * let a trace go) comes without the lines acked before it, whose event went
 * out in the failed write. The store keeps the lines it made durable in
 * memory too, and gives them back (restore()) for the Normalizer to hold
 * again, as it held them before those requests (normalize.ts restoreHeld()).
 *
 * A split line longer than max_line_size is written in parts as its pieces
 * come (normalize.ts PieceWatcher); once a part's events are written, its
 * pieces leave the file (cut(): rewritten through a temporary file, or
 * deleted), so a file holds at most one part, as the Normalizer does. As for
 * a line written whole (complete()), the request whose events hold the part
 * is acked only after that (writes.ts): a crash in between brings the
 * request again, not the pieces stored before it.
 *
 * One NDJSON line per held line; a torn last line (crash during the append)
 * was never acked, and is skipped.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdir, open, readFile, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../log.js';
import type { ContainerMeta, Stream } from '../event.js';
import { parseJson, stringifyJson } from '../json-values.js';
import type { LineCut, RawLine } from '../normalize.js';
import { compareNanoTime } from '../time.js';
import { removeIfPresent, replaceFile, syncDir } from '../../state-files.js';

/** In a trace's id: Docker's partial ids are hex, and a client's would need a NUL to look like one. */
const TRACE_PREFIX = 'trace\0';
/** Its file's name; a partial id named so is hashed like any other unusual one. */
const TRACE_FILE_PREFIX = 'trace-';
/** replaceFile()'s temporary file: never a held line of its own. */
const TMP_SUFFIX = '.tmp';

interface StoredPiece {
  t: [number, number];
  s?: Stream;
  c?: ContainerMeta;
  g?: string;
  /** A piece of a split line: its partial metadata. */
  p?: { id: string; ordinal: number; last: boolean };
  /** A line of a trace being joined. */
  h?: 1;
  /** The part of its split line a piece is in (normalize.ts PieceWatcher), when not the first. */
  q?: number;
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
  /** The chunk key of the request that brought `line`; '' when a timeout flush left it held anew (no request waits on it). */
  key: string;
  /** A piece's part of its split line. */
  part?: number;
}

/** A piece of a split line, in part `part` of it, kept under its partial id. */
export function pieceOf(raw: RawLine, key: string, part: number): HeldLine {
  return { id: raw.partial!.id, first: raw, line: raw, key, part };
}

interface StoredLine {
  /** With its part, for a piece (see withPart()). */
  line: RawLine;
  key: string;
  part: number;
}

interface HeldFile {
  path: string;
  /** Whether the file was created (and its name made durable). */
  created: boolean;
  /** The lines durable in it, oldest first: what restore() gives back. */
  lines: StoredLine[];
  /** persist() calls for it not done yet: while any is, a cut() that leaves it empty keeps it known. */
  persisting: number;
}

function isTraceId(id: string): boolean {
  return id.startsWith(TRACE_PREFIX);
}

const traceIds = new WeakMap<RawLine, string>();
let tracesOpened = 0;

/**
 * The id of the trace whose first line is `first`: the multiline stage keeps
 * that object while it holds the trace, and the store gives it back at
 * load() and restore(), so the id lasts as long as the trace is held.
 */
export function traceId(first: RawLine): string {
  let id = traceIds.get(first);
  if (id === undefined) {
    // Its file's name sorts in the order traces opened (a second's traces tie on time at load()); the random part keeps names apart if the clock goes back.
    const opened = `${String(Date.now()).padStart(15, '0')}-${String(tracesOpened++).padStart(12, '0')}`;
    traceIds.set(first, (id = `${TRACE_PREFIX}${opened}-${randomUUID()}`));
  }
  return id;
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
    const traces: StoredLine[][] = [];
    const pieces: RawLine[] = [];
    for (const name of (await readdir(this.dir)).sort()) {
      const path = join(this.dir, name);
      // A rewrite a crash cut short (cut()): the file it was to replace is still whole.
      if (name.endsWith(TMP_SUFFIX)) {
        await unlink(path);
        continue;
      }
      const lines: StoredLine[] = [];
      for (const line of (await readFile(path, 'utf8')).split('\n')) {
        if (line === '') continue;
        try {
          const stored = parseJson(line) as StoredPiece;
          const part = stored.q ?? 0;
          lines.push({ line: withPart(toRawLine(stored), part), key: stored.k ?? '', part });
          if (typeof stored.k === 'string' && stored.k !== '') this.loadedChunks.add(stored.k);
        } catch {
          this.log.warn({ file: path }, 'skipping a torn line in a stored held line');
        }
      }
      const first = lines[0]?.line;
      if (first === undefined) {
        await unlink(path);
        continue;
      }
      if (first.partial === undefined) {
        this.files.set(traceId(first), { path, created: true, lines, persisting: 0 });
        traces.push(lines);
        continue;
      }
      lines.sort((a, b) => a.part - b.part || a.line.partial!.ordinal - b.line.partial!.ordinal);
      this.files.set(first.partial.id, { path, created: true, lines, persisting: 0 });
      pieces.push(...lines.map((l) => l.line));
    }
    // Oldest first: a trace written just before a crash comes back before the
    // one its last line opened; traces of one second keep their files' order
    // (names sort as they opened: see traceId()).
    traces.sort((a, b) => compareNanoTime(a[0]!.line.time, b[0]!.line.time));
    const traceLines = traces.flatMap((lines) => lines.map((l) => l.line));
    if (this.files.size > 0) this.log.info({ lines: traceLines.length + pieces.length, events: this.files.size }, 'loaded acked lines of split lines and traces');
    return [...traceLines, ...pieces];
  }

  /** Chunk keys of the requests whose lines load() found: written whole before the crash. */
  chunks(): ReadonlySet<string> {
    return this.loadedChunks;
  }

  /**
   * Once `after` resolves, appends lines to their event's files and fsyncs;
   * resolves once they are durable. A line whose event is written meanwhile
   * (complete(), completeAll()) is not stored: it is in that event.
   */
  persist(held: readonly HeldLine[], after: Promise<unknown>): Promise<void> {
    // Known at once, so that an event written while `after` is pending finds its file to forget.
    const byFile = new Map<HeldFile, HeldLine[]>();
    for (const h of held) {
      let file = this.files.get(h.id);
      if (file === undefined) this.files.set(h.id, (file = { path: join(this.dir, fileName(h.id)), created: false, lines: [], persisting: 0 }));
      let list = byFile.get(file);
      if (list === undefined) byFile.set(file, (list = []));
      list.push(h);
    }
    for (const file of byFile.keys()) file.persisting++;
    const done = (): void => {
      for (const file of byFile.keys()) file.persisting--;
    };
    // Not waited for in the chain: `after` may wait on another connection's lines behind it.
    return after.then(
      () => this.enqueue(() => this.append(byFile).finally(done)),
      (err: unknown) => {
        done();
        // Created for these lines alone: a resend opens its trace under a new id.
        for (const [file, list] of byFile) {
          const id = list[0]!.id;
          if (!file.created && file.lines.length === 0 && file.persisting === 0 && this.files.get(id) === file) this.files.delete(id);
        }
        throw err;
      },
    );
  }

  /** Appends lines to their files (the part of persist() that runs in the chain). */
  private async append(byFile: ReadonlyMap<HeldFile, HeldLine[]>): Promise<void> {
    let created = false;
    for (const [file, list] of byFile) {
      if (this.files.get(list[0]!.id) !== file) continue;
      const lines = list.map((h): StoredLine => ({ line: withPart(h.line, h.part ?? 0), key: h.key, part: h.part ?? 0 }));
      const fh = await open(file.path, 'a');
      try {
        await fh.write(lines.map(storedText).join(''));
        await fh.datasync();
      } finally {
        await fh.close();
      }
      if (!file.created) created = file.created = true;
      file.lines.push(...lines);
    }
    // A new file's name must be durable too, or a crash could lose the whole file.
    if (created) await syncDir(this.dir);
  }

  /**
   * The stored lines of these traces and split lines (their events went out
   * in a write that failed, or hold lines of requests sent again): the
   * traces' first, then the split lines', each oldest first, and the lines
   * of each in order. The files stay until the events are written.
   */
  restore(ids: readonly string[]): RawLine[] {
    const held = [...new Set(ids)].flatMap((id) => {
      const file = this.files.get(id);
      return file === undefined || file.lines.length === 0 ? [] : [{ trace: isTraceId(id), lines: file.lines }];
    });
    held.sort((a, b) => Number(b.trace) - Number(a.trace) || compareNanoTime(a.lines[0]!.line.time, b.lines[0]!.line.time));
    return held.flatMap((h) => h.lines.map((p) => p.line));
  }

  /**
   * Forgets the stored pieces of the parts that were written (a split line
   * cut at maxLineBytes goes on in a new part): the file is rewritten with
   * the pieces of later parts, or deleted when there are none, so what is
   * stored for a line stays within one part, as what is held does.
   */
  cut(cuts: readonly LineCut[]): Promise<void> {
    // Forgotten at once, so that a restore() before the rewrite does not give back what was written.
    const changed: { id: string; file: HeldFile }[] = [];
    for (const { id, part } of cuts) {
      const file = this.files.get(id);
      if (file === undefined) continue;
      const keep = file.lines.filter((p) => p.part > part);
      if (keep.length === file.lines.length && keep.length > 0) continue;
      file.lines = keep;
      changed.push({ id, file });
    }
    if (changed.length === 0) return Promise.resolve();
    return this.enqueue(async () => {
      for (const { id, file } of changed) {
        // The pieces now, not at the call: an append in between went into the file and into `lines`.
        if (file.lines.length > 0) {
          await replaceFile(file.path, file.lines.map(storedText).join(''), true);
          // The rename must be durable too, or a power cut could bring the written parts back.
          await syncDir(this.dir);
        } else {
          if (file.created) await removeIfPresent(file.path);
          file.created = false;
          // Nothing of the line is stored or on its way: forgotten, as complete() does (a line cut by its timeout may never end).
          if (file.persisting === 0 && this.files.get(id) === file) this.files.delete(id);
        }
      }
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
   * Of the traces `ids` (all, when undefined), those whose first line the
   * Normalizer took back and does not hold (`holds`): it let them go, or
   * never held them again (its multiline settings changed), so their files
   * go once the events that let them go are written.
   */
  tracesNotHeld(ids: readonly string[] | undefined, holds: (first: RawLine) => boolean): string[] {
    return (ids ?? [...this.files.keys()]).filter((id) => {
      const first = isTraceId(id) ? this.files.get(id)?.lines[0]?.line : undefined;
      return first !== undefined && !holds(first);
    });
  }

  /** Deletes every file: the events of all held lines were written (shutdown). */
  completeAll(): Promise<void> {
    return this.complete([...this.files.keys()]);
  }

  private enqueue(op: () => Promise<void>): Promise<void> {
    const result = this.chain.then(op);
    this.chain = result.catch(() => undefined);
    return result;
  }
}

/** Docker's partial ids are 64 hex digits; anything else is hashed, so no id can name a path. */
function fileName(id: string): string {
  if (isTraceId(id)) return `${TRACE_FILE_PREFIX}${id.slice(TRACE_PREFIX.length)}`;
  return /^[A-Za-z0-9_-]{1,128}$/.test(id) && !id.startsWith(TRACE_FILE_PREFIX) ? id : createHash('sha256').update(id).digest('hex');
}

/** A held line as one NDJSON line of its file; a record's long integers stay integers (json-values.ts). */
function storedText({ line, key, part }: StoredLine): string {
  return stringifyJson(toStored(line, key, part)) + '\n';
}

function toStored(p: RawLine, key: string, part: number): StoredPiece {
  const bytes = typeof p.line === 'string' ? Buffer.from(p.line, 'utf8') : p.line;
  return {
    t: [p.time.sec, p.time.nsec],
    s: p.stream,
    // All of it: a `clogs.multiline` label decides how the line is joined after a restart.
    c: p.container,
    g: p.tag,
    p: p.partial === undefined ? undefined : { id: p.partial.id, ordinal: p.partial.ordinal, last: p.partial.last },
    h: p.partial === undefined ? 1 : undefined,
    q: part > 0 ? part : undefined,
    l: bytes.toString('base64'),
    x: p.extra,
    k: key,
  };
}

/** A stored piece as the Normalizer takes it back: with the part it was in. */
function withPart(line: RawLine, part: number): RawLine {
  return part === 0 ? line : { ...line, partial: { ...line.partial!, part } };
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
