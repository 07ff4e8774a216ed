/**
 * Pieces of split lines that were acked before their line was complete.
 *
 * Docker sends piece 1 of a long line with its own chunk and waits for the ack
 * before it sends piece 2, so a piece has to be acked while the Normalizer
 * still holds it in memory. To never ack what a crash could lose, such a piece
 * is appended (and fsync'd) to `<state>/forward-partials/<partial id>` before
 * the ack, and the file is deleted once the line has been written. At start
 * the files are read back into the Normalizer, so a piece 2 that comes after a
 * restart still finds piece 1 (or the timeout writes piece 1 alone).
 *
 * One NDJSON line per piece; a torn last line (crash during the append) was
 * never acked, and is skipped.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../log.js';
import type { LogEvent, Stream } from '../event.js';
import type { RawLine } from '../normalize.js';
import { formatNanoTime } from '../time.js';

interface StoredPiece {
  t: [number, number];
  s?: Stream;
  c?: { id?: string; name?: string };
  g?: string;
  p: { id: string; ordinal: number; last: boolean };
  /** The piece's bytes, base64. */
  l: string;
  x?: Record<string, unknown>;
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

  /** Creates the folder and returns the stored pieces, oldest first within each line. */
  async load(): Promise<RawLine[]> {
    await mkdir(this.dir, { recursive: true });
    const out: RawLine[] = [];
    for (const name of (await readdir(this.dir)).sort()) {
      const path = join(this.dir, name);
      const pieces: RawLine[] = [];
      for (const line of (await readFile(path, 'utf8')).split('\n')) {
        if (line === '') continue;
        try {
          pieces.push(toRawLine(JSON.parse(line) as StoredPiece));
        } catch {
          this.log.warn({ file: path }, 'skipping a torn line in a stored split-line piece');
        }
      }
      const first = pieces[0];
      if (first?.partial === undefined) {
        await unlink(path);
        continue;
      }
      pieces.sort((a, b) => a.partial!.ordinal - b.partial!.ordinal);
      this.files.set(first.partial.id, { path, match: matchKeyOf(first) });
      out.push(...pieces);
    }
    if (out.length > 0) this.log.info({ pieces: out.length, lines: this.files.size }, 'loaded acked pieces of split lines');
    return out;
  }

  /** Appends pieces to their line's file and fsyncs; resolves once they are durable. */
  persist(pieces: readonly RawLine[]): Promise<void> {
    return this.enqueue(async () => {
      const byId = new Map<string, RawLine[]>();
      for (const p of pieces) {
        const id = p.partial!.id;
        let list = byId.get(id);
        if (list === undefined) byId.set(id, (list = []));
        list.push(p);
      }
      let created = false;
      for (const [id, list] of byId) {
        let entry = this.files.get(id);
        if (entry === undefined) {
          entry = { path: join(this.dir, fileName(id)), match: matchKeyOf(list[0]!) };
          this.files.set(id, entry);
          created = true;
        }
        const fh = await open(entry.path, 'a');
        try {
          await fh.write(list.map((p) => JSON.stringify(toStored(p)) + '\n').join(''));
          await fh.datasync();
        } finally {
          await fh.close();
        }
      }
      // A new file's name must be durable too, or a crash could lose the whole file.
      if (created) await syncDir(this.dir);
    });
  }

  /** Deletes the files of lines that were written. */
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
   * Deletes the files of lines the Normalizer wrote out incomplete (timeout,
   * shutdown). Those events carry no partial id; they are recognised by
   * container, stream and timestamp, which all pieces of a line share.
   */
  completeFlushed(events: readonly LogEvent[]): Promise<void> {
    if (this.files.size === 0) return Promise.resolve();
    const flushed = new Set(events.map((e) => `${e.container?.id ?? ''}\0${e.stream ?? ''}\0${e['@timestamp']}`));
    const ids: string[] = [];
    for (const [id, entry] of this.files) if (flushed.has(entry.match)) ids.push(id);
    return this.complete(ids);
  }

  /** Held lines whose pieces are on disk. */
  get size(): number {
    return this.files.size;
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
    c: p.container ? { id: p.container.id, name: p.container.name } : undefined,
    g: p.tag,
    p: p.partial!,
    l: bytes.toString('base64'),
    x: p.extra,
  };
}

function toRawLine(s: StoredPiece): RawLine {
  if (typeof s.p?.id !== 'string' || typeof s.l !== 'string' || !Array.isArray(s.t)) throw new Error('not a stored piece');
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
  await Promise.all(paths.map((p) => unlink(p).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : Promise.reject(err)))));
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
