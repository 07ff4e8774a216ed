/**
 * The forward input's ordinal counts across a stop and a crash, in
 * `<state>/forward-ordinals.ndjson`.
 *
 * A line's ordinal is part of its identity (the file sink's replay guard,
 * the Elasticsearch `_id`): it tells apart identical lines with the same
 * timestamp, which Docker's driver sends in whole seconds. An input that
 * counted from 0 again gave the next line carrying its source's last
 * timestamp the identity of one already stored: the file sink dropped it as
 * a replay and Elasticsearch answered 409, so an acked line was lost.
 * Counts saved at a stop covered a restart, not a crash: after kill -9 the
 * next identical line of that second was lost.
 *
 * So the counts that changed are appended before each write that holds the
 * lines they counted (into the page cache, which a killed process leaves
 * behind), and synced along with each write an ack waits on: whatever a
 * restart finds stored, the journal has counted at least as far. At start the
 * last count of each source and stream is taken back.
 *
 * A request the client sends again after the crash (its ack was lost) must
 * get the ordinals its first copy had, or the copy stored before the crash
 * and the resend are two lines (and a request written in slices, resumed
 * after its written records (progress.ts), would number the rest wrongly).
 * So for each request with a chunk, what its lines found their counters at
 * is appended too, under its chunk key, with how many of its records were
 * written (handed to the sinks) so far: its resend counts those records from
 * there with counters of its own (normalize.ts resendCounts()), and the
 * records after them, which no sink has, like any new line. That is kept per
 * segment: each slice (slices.ts) that counted on the shared counters, from
 * its first record, since a line of another request can take a number
 * between two slices. A resend that writes further than the copies before
 * it adds the segments of its own slices past them, so that a copy after it
 * counts those records as it did. Those are kept
 * for REMEMBER_MS, as long as the ChunkLedger remembers acked chunks, and at
 * most MAX_REQUESTS of them.
 *
 * The file is rewritten with what it must keep at start, at a stop, and once
 * it has grown by COMPACT_BYTES since the last rewrite.
 *
 * A journal that cannot be written (a full or failing state disk) does not
 * hold up the writes: it is logged, and only a crash before it works again
 * can give an identical line of that second the identity of a stored one.
 */
import { fdatasync, writeSync } from 'node:fs';
import { open, readFile, rename, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { isMissing } from '../../errors.js';
import type { Logger } from '../../log.js';
import { removeIfPresent, syncDir } from '../../state-files.js';
import { counterKey, type CapturedCounts, type OrdinalCount } from '../normalize.js';
import { REMEMBER_ACKED_MS } from './acks.js';

/** Grown by this much since its last rewrite, the journal is rewritten with what it must keep. */
export const COMPACT_BYTES = 4 * 1024 * 1024;
/**
 * Requests whose first counts are kept, oldest forgotten first: about 200
 * bytes for each of their slices (one per SLICE_ENTRIES records of
 * render-budget.ts, so most requests have one) in the file, and twice that
 * in memory. Docker's driver resends within seconds of reconnecting; at
 * 1,000 acked requests a second these cover half a minute.
 */
export const MAX_REQUESTS = 32_768;
const REMEMBER_MS = REMEMBER_ACKED_MS;
/** A journal that could not be opened or rewritten is tried again this much later. */
const RETRY_MS = 10_000;
const FILE = 'forward-ordinals.ndjson';
/** Where a stop of an earlier version saved the counts: taken back once, then removed. */
const LEGACY_FILE = 'forward-ordinals.json';

const isCount = (c: unknown): c is OrdinalCount => {
  const o = c as OrdinalCount;
  return typeof o?.source === 'string' && typeof o.timestamp === 'string' && Number.isInteger(o.count) && (o.stream === undefined || o.stream === 'stdout' || o.stream === 'stderr');
};
const lineOf = (counts: readonly OrdinalCount[]): string => `${JSON.stringify(counts)}\n`;
/** A request's line: `{"k": chunk key, "f": first record of a segment, "b": its counts before, "n": records written}`. */
const requestLineOf = (key: string, from: number, counts: readonly OrdinalCount[], records: number): string =>
  `${JSON.stringify({ k: key, f: from, b: counts, n: records })}\n`;

/**
 * The key the Normalizer captures a request's counts under (captureCounts()):
 * its chunk key and the record its segment starts at. Chunk keys may hold
 * any character; the number after the last NUL is the record.
 */
export function segmentKey(key: string, from: number): string {
  return `${key}\0${from}`;
}
function splitSegmentKey(captured: string): [string, number] {
  const cut = captured.lastIndexOf('\0');
  return [captured.slice(0, cut), Number(captured.slice(cut + 1))];
}

/** Where the counts come from: the input's Normalizer (with trackOrdinals). */
export interface OrdinalCounts {
  /** Those that changed since the last call. */
  changedOrdinals(): OrdinalCount[];
  /** All of them. */
  ordinalCounts(): OrdinalCount[];
  /** What the requests counted since the last call found their counters at. */
  capturedCounts(): CapturedCounts[];
}

/** What connections use of the journal. */
export type OrdinalRecords = Pick<OrdinalJournal, 'record' | 'sync' | 'countsBefore' | 'rendered'>;

/**
 * What copies of a request found their counters at, and how many of its
 * records were written (handed to the sinks). A copy that went further than
 * the copies before it counted the records past them with the shared
 * counters: those are a segment of their own, from that record on.
 */
export interface FirstCopy {
  /** By first record, in order; each runs to the next, the last to `records`. */
  segments: Array<{ from: number; counts: OrdinalCount[] }>;
  records: number;
}

interface RequestCounts extends FirstCopy {
  at: number;
}

export class OrdinalJournal {
  private handle: FileHandle | undefined;
  private bytes = 0;
  /** The rewrite under way: appends meanwhile go to both files (see append()). */
  private rewriting: Promise<void> | undefined;
  private appendedWhileRewriting: string[] = [];
  private syncing: Promise<void> | undefined;
  private syncAgain = false;
  /** The fdatasync under way: a rewrite closes the old file only after it. */
  private datasync: Promise<void> = Promise.resolve();
  /** A write failed and was logged: logged again only once one succeeded. */
  private failing = false;
  /** A write stopped part-way: the next line starts on a line of its own. */
  private torn = false;
  /** Lines written since the last sync began: a sync without any costs a thread-pool round trip for nothing. */
  private unsynced = false;
  /** Chunk key → what the request's lines found their counters at; oldest first. */
  private readonly requests = new Map<string, RequestCounts>();
  /** Requests rendered further since the last record(): how far. */
  private renderedSince = new Map<string, number>();
  /** The file's size after the last rewrite: the next comes COMPACT_BYTES later. */
  private rewrittenBytes = 0;
  /** With no file open (it could not be), when to try again. */
  private retryAt = 0;
  private closed = false;

  constructor(
    private readonly dir: string,
    private readonly counts: OrdinalCounts,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** What the first copy of the request with this chunk key found its counters at and wrote, if known. */
  countsBefore(key: string): FirstCopy | undefined {
    return this.requests.get(key);
  }

  /** The request with this chunk key has its first `records` records rendered: written with the next write, journaled with it. */
  rendered(key: string, records: number): void {
    if (records > (this.renderedSince.get(key) ?? 0)) this.renderedSince.set(key, records);
  }

  private get path(): string {
    return join(this.dir, FILE);
  }

  /**
   * The counts the last run left: per source and stream the journal's last,
   * over what a stop of an earlier version saved. Damaged lines are skipped
   * (logged); a torn last line is what a crash cut short.
   */
  async load(): Promise<OrdinalCount[]> {
    const counts = new Map<string, OrdinalCount>();
    const take = (line: unknown): boolean => {
      if (Array.isArray(line) && line.every(isCount)) {
        for (const c of line) counts.set(counterKey(c.source, c.stream), c);
        return true;
      }
      const { k, f, b, n } = (line ?? {}) as { k?: unknown; f?: unknown; b?: unknown; n?: unknown };
      if (typeof k !== 'string' || !Number.isInteger(n)) return false;
      // How far a request got: it has its segments already, unless it was forgotten.
      if (f === undefined && b === undefined) {
        const known = this.requests.get(k);
        if (known !== undefined) known.records = Math.max(known.records, n as number);
        return true;
      }
      if (!Number.isInteger(f) || !Array.isArray(b) || !b.every(isCount)) return false;
      const r = this.remember(k, f as number, b)?.[0];
      if (r !== undefined) r.records = Math.max(r.records, n as number);
      return true;
    };
    const legacy = await this.read(join(this.dir, LEGACY_FILE));
    if (legacy !== undefined) {
      let ok = false;
      try {
        ok = take((JSON.parse(legacy) as { ordinals?: unknown }).ordinals);
      } catch {
        ok = false;
      }
      if (!ok) this.log.warn({ path: join(this.dir, LEGACY_FILE) }, 'the ordinals of the last stop are damaged; counting from 0');
    }
    const text = await this.read(this.path);
    if (text !== undefined) {
      const lines = text.split('\n');
      // After the last "\n": empty, or a line a crash cut short.
      lines.pop();
      let damaged = 0;
      for (const line of lines) {
        try {
          if (!take(JSON.parse(line))) damaged++;
        } catch {
          damaged++;
        }
      }
      if (damaged > 0) this.log.warn({ path: this.path, lines: damaged }, 'skipped damaged lines of the ordinal journal');
    }
    return [...counts.values()];
  }

  /** Starts the journal afresh with the counts taken back, and removes an earlier version's file. */
  async open(): Promise<void> {
    try {
      await this.rewrite(this.counts.ordinalCounts());
    } catch (err) {
      // The input starts all the same; record() tries again.
      this.failed(err);
      this.retryAt = this.now() + RETRY_MS;
      return;
    }
    await removeIfPresent(join(this.dir, LEGACY_FILE));
  }

  /** Appends the counts that changed, and what requests found: before the write of the lines they counted. */
  record(): void {
    const changed = this.counts.changedOrdinals();
    const captured = this.counts.capturedCounts();
    let line = changed.length === 0 ? '' : lineOf(changed);
    // Counts new to a segment first, then how far each request got: a restart reads them in that order.
    const segments: Array<[string, number, OrdinalCount[]]> = [];
    for (const { key: captureKey, counts } of captured) {
      const [key, from] = splitSegmentKey(captureKey);
      const added = this.remember(key, from, counts)?.[1];
      if (added !== undefined && added.length > 0) segments.push([key, from, added]);
    }
    for (const [key, from, counts] of segments) line += requestLineOf(key, from, counts, this.requests.get(key)?.records ?? 0);
    for (const [key, records] of this.renderedSince) {
      const r = this.requests.get(key);
      if (r !== undefined && records > r.records) {
        r.records = records;
        line += `${JSON.stringify({ k: key, n: records })}\n`;
      }
    }
    this.renderedSince.clear();
    // Until the rewritten file replaces this one, a crash leaves this one:
    // the line goes to both.
    if (line !== '' && this.rewriting !== undefined) this.appendedWhileRewriting.push(line);
    if (this.handle === undefined) {
      // No file: a rewrite makes one, with every count and request this line holds.
      if (!this.closed && this.rewriting === undefined && this.now() >= this.retryAt) this.startRewrite();
      return;
    }
    if (line === '') return;
    this.write(line);
    if (this.bytes > this.rewrittenBytes + COMPACT_BYTES && this.rewriting === undefined) this.startRewrite();
  }

  private startRewrite(): void {
    this.rewriting = this.rewrite(this.counts.ordinalCounts())
      // A file open stays, with every line: they went to both. The next try comes later.
      .catch((err: unknown) => {
        this.rewrittenBytes = this.bytes;
        this.retryAt = this.now() + RETRY_MS;
        this.failed(err);
      })
      .finally(() => {
        this.rewriting = undefined;
        this.appendedWhileRewriting = [];
      });
  }

  /** Resolves once what was appended is durable, or could not be made so (logged). */
  sync(): Promise<void> {
    if (this.syncing !== undefined) {
      this.syncAgain = true;
      return this.syncing;
    }
    const run = async (): Promise<void> => {
      do {
        this.syncAgain = false;
        await this.rewriting;
        const fd = this.handle?.fd;
        if (fd === undefined || !this.unsynced) return;
        this.unsynced = false;
        this.datasync = new Promise<void>((resolve) =>
          fdatasync(fd, (err) => {
            if (err) this.failed(err);
            resolve();
          }),
        );
        await this.datasync;
      } while (this.syncAgain);
    };
    this.syncing = run().finally(() => (this.syncing = undefined));
    return this.syncing;
  }

  /** Rewrites the journal with the counts alone and closes it: at a stop. */
  async close(): Promise<void> {
    this.closed = true;
    await this.rewriting;
    await this.syncing;
    this.counts.changedOrdinals();
    await this.rewrite(this.counts.ordinalCounts());
    const handle = this.handle;
    this.handle = undefined;
    await handle?.close();
  }

  /** A new file holding `counts`, synced and renamed over the journal, then appended to: the lines appended meanwhile follow. */
  private async rewrite(counts: readonly OrdinalCount[]): Promise<void> {
    this.forgetOld();
    let text = counts.length === 0 ? '' : lineOf(counts);
    for (const [key, r] of this.requests) for (const seg of r.segments) text += requestLineOf(key, seg.from, seg.counts, r.records);
    const tmp = `${this.path}.tmp`;
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(text);
      await fh.datasync();
      await rename(tmp, this.path);
    } catch (err) {
      await fh.close();
      throw err;
    }
    const old = this.handle;
    this.handle = fh;
    this.bytes = this.rewrittenBytes = Buffer.byteLength(text);
    this.torn = false;
    for (const line of this.appendedWhileRewriting) this.write(line);
    this.appendedWhileRewriting = [];
    await this.datasync;
    await old?.close();
    // In place for this process either way; a power cut before the directory is synced may bring back the old file, without what came after the rewrite.
    await syncDir(this.dir).catch((err: unknown) => this.failed(err));
  }

  /**
   * Keeps what a request found; a request counted in several turns (slices,
   * a resend) keeps the first count of each source and stream. Returns the
   * request and the counts new to its segment; nothing for a later segment
   * of a request it does not know (forgotten).
   */
  private remember(key: string, from: number, counts: readonly OrdinalCount[]): [RequestCounts, OrdinalCount[]] | undefined {
    let r = this.requests.get(key);
    if (r === undefined) {
      // A later segment of a request forgotten meanwhile: without its first, a copy after it would count those records afresh.
      if (from > 0) return undefined;
      if (this.requests.size >= MAX_REQUESTS) this.requests.delete(this.requests.keys().next().value!);
      this.requests.set(key, (r = { segments: [], records: 0, at: this.now() }));
    }
    let seg = r.segments.find((g) => g.from === from);
    if (seg === undefined) {
      seg = { from, counts: [] };
      r.segments.push(seg);
      r.segments.sort((a, b) => a.from - b.from);
    }
    const known = seg.counts;
    const added = counts.filter((c) => !known.some((k) => k.source === c.source && k.stream === c.stream));
    known.push(...added);
    return [r, added];
  }

  private forgetOld(): void {
    const oldest = this.now() - REMEMBER_MS;
    for (const [key, r] of this.requests) {
      if (r.at >= oldest) break;
      this.requests.delete(key);
    }
  }

  private write(line: string): void {
    if (this.handle === undefined) return;
    const text = this.torn ? `\n${line}` : line;
    try {
      const n = writeSync(this.handle.fd, text);
      this.bytes += n;
      this.unsynced = true;
      if (n < Buffer.byteLength(text)) throw new Error(`wrote ${n} of ${Buffer.byteLength(text)} bytes`);
      this.torn = false;
      this.failing = false;
    } catch (err) {
      this.torn = true;
      this.failed(err);
    }
  }

  private failed(err: unknown): void {
    if (this.failing) return;
    this.failing = true;
    this.log.error({ err, path: this.path }, 'could not write the ordinal journal; after a crash, identical lines of one second may take stored lines\' identities');
  }

  private async read(path: string): Promise<string | undefined> {
    try {
      return await readFile(path, 'utf8');
    } catch (err) {
      if (!isMissing(err)) this.log.warn({ err, path }, 'could not read the ordinals of the last run; counting from 0');
      return undefined;
    }
  }
}
