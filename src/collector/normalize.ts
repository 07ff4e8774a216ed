/**
 * Turns what an input read (a line with its time, stream and container) into
 * the shared LogEvent: puts Docker's split lines back together (one longer
 * than maxLineBytes is written in parts as its pieces come), joins the
 * lines of a stack trace (multiline/stage.ts), strips the carriage return a
 * TTY adds and terminal escapes (transforms/ansi.ts), parses JSON log lines
 * (pino, bunyan, zap, logrus) and logfmt lines (transforms/logfmt.ts), reads
 * the level a text line starts with (transforms/text-level.ts), and numbers
 * each event (seq for order, ordinal for identity).
 *
 * Bytes of a split line are joined before UTF-8 decoding, because Docker cuts
 * at 16 KiB byte offsets and can split a multi-byte character in two.
 */
import type { Logger } from '../log.js';
import type { ContainerMeta, ContainerWithId, LogEvent, Stream } from './event.js';
import { levelName } from './levels.js';
import { stripEol } from './line-end.js';
import { utf8CutPoint } from './json-bytes.js';
import { parseJson } from './json-values.js';
import type { MultilineSettings } from '../config/schema.js';
import { configMode, ModeTable } from './multiline/modes.js';
import { MultilineStage, type HoldWatcher, type Released } from './multiline/stage.js';
import { sourceId } from './source.js';
import { formatNanoTime, parseRfc3339, type NanoTime } from './time.js';
import { stripTerminal } from './transforms/ansi.js';
import { parseLogfmt } from './transforms/logfmt.js';
import { leadingLevel } from './transforms/text-level.js';

export interface RawLine {
  input: 'forward' | 'docker';
  time: NanoTime;
  /**
   * `time` as formatNanoTime renders it, when the input already has it (the
   * Docker engine's fixed-width prefix): measured, rendering it again per
   * line was one of the larger items of the Docker input's read path.
   */
  timestamp?: string;
  stream?: Stream;
  /** The line without its trailing newline. */
  line: Buffer | string;
  container?: ContainerMeta;
  tag?: string;
  /**
   * Docker's split-line metadata (fluentd driver `partial_*` keys). `part`:
   * for a piece stored before a restart (forward/partials.ts), which part of
   * an overlong line it is in (see PieceWatcher); absent for the first.
   */
  partial?: { id: string; ordinal: number; last: boolean; part?: number };
  /** Record keys the input did not map; they end up under `attrs`. */
  extra?: Record<string, unknown>;
  /**
   * A later part of a line cut at max_line_size: its start is in the part
   * before, so it is no JSON or logfmt line, has no level of its own, and
   * opens no trace.
   */
  continued?: boolean;
}

export interface NormalizerOptions {
  hostName: string;
  nextSeq(): number;
  parseJson: boolean;
  /** Parse logfmt lines (`level=info msg="..." key=value`) like JSON lines. */
  parseLogfmt: boolean;
  /** Remove terminal escape sequences and `\r` redraws from lines. */
  stripAnsi: boolean;
  /** Longest line kept whole; longer ones become several events with `clogs.piece`. */
  maxLineBytes: number;
  /** A split line whose last piece has not come after this long is written as it is. */
  partialTimeoutMs: number;
  /**
   * Receives split lines and held traces flushed by their timeouts; `cuts`:
   * the split lines among them, each written up to a part (see PieceWatcher);
   * `traces`: the first lines of the traces held before that are let go;
   * `held`: lines a trace opened by the flush holds (a line the closing trace
   * had taken tentatively, or a part of a split line written), with that
   * trace's first line: they are in none of the events.
   */
  onTimeoutFlush(events: LogEvent[], cuts: readonly LineCut[], traces: readonly RawLine[], held: readonly HeldPair[]): void;
  /** Joining stack traces; without it every line is an event of its own. */
  multiline?: MultilineSettings;
  /** Keep the counters that changed, for changedOrdinals(): an input that journals them (forward/ordinal-journal.ts). */
  trackOrdinals?: boolean;
  /** Where a bad `clogs.multiline` label is reported (once per label value). */
  log?: Logger;
}

/** The last time a source and stream carried, and how many lines carried it. */
interface Ordinal {
  sec: number;
  nsec: number;
  count: number;
  /** Changed since changedOrdinals() last took it (with trackOrdinals). */
  changed: boolean;
  /** The request whose rendering last captured it (captureCounts()). */
  capturedFor?: string;
}

/** What a request's first line of each source and stream found its counter at (captureCounts()). */
export interface CapturedCounts {
  key: string;
  counts: OrdinalCount[];
}

interface StreamOrdinals {
  stdout: Ordinal;
  stderr: Ordinal;
  none: Ordinal;
}

/** How many lines of a source's stream carried its last timestamp: what seedOrdinal takes back. */
export interface OrdinalCount {
  source: string;
  stream: Stream | undefined;
  timestamp: string;
  count: number;
}

/** A parsed JSON or logfmt line: what becomes `message`, `log.level` and `attrs`. */
export interface JsonLine {
  message: string | undefined;
  level: string | undefined;
  fields: Record<string, unknown>;
}

interface PendingLine {
  source: string;
  /** Its partial id. */
  id: string;
  /** The first piece of the part being joined; undefined right after a cut. */
  first: RawLine | undefined;
  pieces: Buffer[];
  bytes: number;
  lastOrdinal: number;
  since: number;
  /** How many times the line was cut at maxLineBytes so far: the part being joined. */
  part: number;
}

/**
 * Told which pieces of split lines the Normalizer keeps across calls, for an
 * input that acks a piece before its line is written (forward/partials.ts
 * keeps them durable). A split line longer than maxLineBytes is written in
 * parts as its pieces come, each part one line (cut further into
 * `clogs.piece` events like any long line), so what is held for a line
 * never grows past maxLineBytes and a piece.
 */
export interface PieceWatcher {
  /** `raw`, a piece of a split line, is held, in part `part` of its line. */
  heldPiece(raw: RawLine, part: number): void;
  /**
   * The pieces of split line `id` up to part `part` are in the events just
   * returned; `whole`: its last piece came, nothing of it is held any more.
   */
  releasedPieces(id: string, part: number, whole: boolean): void;
}

/** A line held in the trace that `first` opens. */
export interface HeldPair {
  first: RawLine;
  line: RawLine;
}

/** Split line `id`, written up to and including part `part`. */
export interface LineCut {
  id: string;
  part: number;
}

/** What an input that acks before its events are written learns of held lines: traces and split lines. */
export interface LineWatcher extends HoldWatcher, PieceWatcher {}

/**
 * Sources whose ordinals are kept by name. Every source that ever wrote a
 * line used to keep its entry, so a host running short-lived containers (a CI
 * runner) grew the maps without end. Past this many the oldest is forgotten:
 * a container still writing keeps counting through its object
 * (containerOrdinals); a forgotten source that writes again counts afresh,
 * which changes an identity only if its next line carries the very
 * timestamp of its last one.
 */
export const MAX_SOURCES_BY_NAME = 16_384;

/**
 * Bytes of split-line pieces held, all lines together (or maxLineBytes, when
 * larger), past which the line a piece comes to is cut at once (written as
 * it is so far; it goes on in a new part): each line holds less than
 * maxLineBytes and a piece, but a client can open any number of them. The
 * line a piece comes to, not the one held longest: a line is cut only by a
 * request that brings its own pieces, never by another connection's.
 */
export const MAX_HELD_PIECE_BYTES = 16 * 1024 * 1024;
/**
 * What a held piece, and a held line, weigh besides their bytes (the Buffer,
 * the entry, its key): counted as bytes, empty pieces fill the bound too
 * (200,000 one-byte pieces held 143 MB, counted as 200 KB).
 */
const PIECE_COST = 256;

/** What a held line counts toward MAX_HELD_PIECE_BYTES: its bytes, and PIECE_COST per piece and for itself. */
function costOf(p: PendingLine): number {
  return p.bytes + PIECE_COST * (1 + p.pieces.length);
}

/** Where a JSON line keeps its message, by priority. */
export const MESSAGE_KEYS = ['msg', 'message', 'MESSAGE', 'M'] as const;
/** Where a JSON line keeps its level, by priority: `log.level` is the dotted key ECS loggers (ecs-logging, Log4j2's EcsLayout) write. */
export const LEVEL_KEYS = ['level', 'severity', 'lvl', 'L', 'log.level'] as const;

export class Normalizer {
  private readonly host: { name: string };
  /** Split lines waiting for their last piece. */
  private readonly pendingLines = new Map<string, PendingLine>();
  /** Bytes of their pieces. */
  private heldPieceBytes = 0;
  /**
   * Per source and stream: the last timestamp seen and how many lines carried
   * it. Keyed by the container object when there is one, so the hot path
   * builds no key string. Measured: a string key per event cost 6.6% of the
   * collector's CPU in the forward bench.
   */
  private readonly containerOrdinals = new WeakMap<ContainerMeta, StreamOrdinals>();
  private lastContainer: ContainerMeta | undefined;
  private lastStreams: StreamOrdinals | undefined;
  private readonly otherOrdinals = new Map<string, StreamOrdinals>();
  /** The same objects by source name, for seedOrdinal. */
  private readonly bySource = new Map<string, StreamOrdinals>();
  /** Checkpointed ordinals, taken over when their source's first line comes. */
  private readonly seeds = new Map<string, Ordinal>();
  /** With trackOrdinals: the counters changed since changedOrdinals(), with their source and stream. */
  private changed: Array<{ source: string; stream: Stream | undefined; ord: Ordinal }> = [];
  /** The request whose lines are being counted, while captureCounts() says so, and what they found. */
  private captureKey: string | undefined;
  private captured = new Map<string, OrdinalCount[]>();
  /** A resend's own counters, while countWith() says so. */
  private resend: ResendCounts | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly multiline: MultilineStage | undefined;

  constructor(private readonly opts: NormalizerOptions) {
    this.host = { name: opts.hostName };
    const ml = opts.multiline;
    // Even with `mode: off` a container's label can turn it on.
    if (ml !== undefined) {
      const modes = new ModeTable(configMode(ml), (container, value, reason) =>
        opts.log?.warn({ container: container.id?.slice(0, 12), label: value, reason }, 'ignoring a bad clogs.multiline label; the multiline config applies'),
      );
      this.multiline = new MultilineStage({ timeoutMs: ml.timeout, maxLines: ml.max_lines, maxBytes: ml.max_bytes }, modes);
    }
  }

  /** The `host` object every event shares. */
  get hostField(): { name: string } {
    return this.host;
  }

  get parseJson(): boolean {
    return this.opts.parseJson;
  }

  get parseLogfmt(): boolean {
    return this.opts.parseLogfmt;
  }

  get maxLineBytes(): number {
    return this.opts.maxLineBytes;
  }

  nextSeq(): number {
    return this.opts.nextSeq();
  }

  /**
   * The events a line completes (none while it is held). `watch` learns which
   * lines stay held in a trace after the call (see HoldWatcher).
   */
  push(raw: RawLine, watch?: LineWatcher): LogEvent[] {
    if (raw.partial) return this.pushPiece(raw, raw.partial, watch, true);
    return this.line(raw, raw.line, watch);
  }

  /**
   * Whether the multiline stage would hold this line or join it to others:
   * the renderer (line-render.ts), which writes lines without push, hands
   * such a line to push instead. `buf[start, end)` is the line without its
   * "\n" and trailing CR.
   */
  holds(container: ContainerWithId | undefined, tag: string | undefined, input: RawLine['input'], stream: Stream | undefined, buf: Buffer, start: number, end: number): boolean {
    return this.multiline !== undefined && this.multiline.concerns(container, tag, input, stream, buf, start, end);
  }

  /**
   * After a write that failed (forward/requests.ts), puts back what was held
   * before the requests the client sends again:
   * - forgets the traces held for the sources and streams of `dropTracesOf`
   *   (lines of traces concerned): they may hold lines of those requests,
   *   which would be taken twice;
   * - forgets what is held for the split lines `released` (written whole or
   *   in part by that write);
   * - takes back `lines`, the stored (acked) lines of the traces and split
   *   lines concerned, traces first, so that the resent lines find them. A
   *   trace that took the joined line of a split line the write let go was
   *   dropped with the others: it is rebuilt without that line, which comes
   *   again with the resent last piece.
   * Returns the events that taking them back lets go (a stored line that
   * opened a trace lets the one before it go): they are written like
   * timeout flushes.
   */
  restoreHeld(dropTracesOf: readonly RawLine[], released: ReadonlySet<string>, lines: readonly RawLine[]): LogEvent[] {
    for (const raw of dropTracesOf) this.multiline?.dropHeld(sourceOf(raw), raw.stream);
    for (const [key, p] of this.pendingLines) if (released.has(p.id)) this.forget(key);
    const out: LogEvent[] = [];
    for (const raw of lines) {
      if (raw.partial === undefined) {
        out.push(...this.line(raw, raw.line, undefined));
        continue;
      }
      // Stored pieces are never last ones, and those of one part hold less than maxLineBytes: nothing goes out here.
      this.pushPiece(raw, raw.partial, undefined, false);
    }
    return out;
  }

  /** Split lines waiting for their last piece, and traces being held. */
  pending(): number {
    return this.pendingLines.size + (this.multiline?.size ?? 0);
  }

  /** The first line of the trace held for a source and stream, if one is. */
  heldFirst(source: string, stream: Stream | undefined): RawLine | undefined {
    return this.multiline?.heldFirst(source, stream);
  }

  /** Whether `first` is the first line of a trace held now. */
  holdsTrace(first: RawLine): boolean {
    return this.multiline !== undefined && this.multiline.heldFirst(sourceOf(first), first.stream) === first;
  }

  /** Writes out every held split line and trace as it is (shutdown). */
  flushAll(): LogEvent[] {
    return this.flushWhere(undefined);
  }

  /** Writes out the held split lines and traces of one source (a container that exited). */
  flushSource(source: string): LogEvent[] {
    return this.flushWhere(source);
  }

  /** Forgets the traces held for a source: its input reads those lines again from an older position. */
  dropSource(source: string): void {
    this.multiline?.dropSource(source);
    this.stopTimerIfIdle();
  }

  /**
   * Continues ordinals from a checkpoint: `count` lines of this source and
   * stream were already emitted at `timestamp`.
   */
  seedOrdinal(source: string, stream: string | undefined, timestamp: string, count: number): void {
    const time = parseRfc3339(timestamp);
    if (time === undefined) return;
    const streams = this.bySource.get(source);
    if (!streams) {
      this.seeds.set(counterKey(source, stream), { sec: time.sec, nsec: time.nsec, count, changed: false });
      return;
    }
    const ord = ordinalOf(streams, stream);
    ord.sec = time.sec;
    ord.nsec = time.nsec;
    ord.count = count;
  }

  /**
   * The counts of the sources kept by name, and the seeds no line took yet,
   * for an input that stops to hand to its next start (seedOrdinal). A seed
   * not taken still counts: Docker's driver in async mode sends lines it
   * buffered with their first time, after any number of quick restarts. At
   * most as many as sources are kept by name, the sources' own first.
   */
  ordinalCounts(): OrdinalCount[] {
    const out: OrdinalCount[] = [];
    const max = 3 * MAX_SOURCES_BY_NAME;
    const add = (source: string, stream: Stream | undefined, o: Ordinal): void => {
      if (hasCounted(o) && out.length < max) out.push(countOf(source, stream, o));
    };
    for (const [source, streams] of this.bySource) {
      add(source, 'stdout', streams.stdout);
      add(source, 'stderr', streams.stderr);
      add(source, undefined, streams.none);
    }
    for (const [key, seed] of this.seeds) {
      const cut = key.lastIndexOf('\0');
      const stream = key.slice(cut + 1);
      add(key.slice(0, cut), stream === 'stdout' || stream === 'stderr' ? stream : undefined, seed);
    }
    return out;
  }

  /**
   * The ordinal of the next line of a source's stream at this time, for the
   * renderer, which writes lines without push (line-render.ts).
   */
  ordinal(container: ContainerWithId | undefined, tag: string | undefined, input: RawLine['input'], stream: Stream | undefined, sec: number, nsec: number): number {
    return countOrdinal(this.counterFor(sourceId(container, tag, input), container, stream), sec, nsec);
  }

  /**
   * Until called again with undefined, the lines counted are those of the
   * request with chunk key `key`: what its first line of each source and
   * stream finds the counter at is kept for capturedCounts() (with
   * trackOrdinals). Given back to resendCounts(), a resend of the request
   * counts its lines as the first copy did.
   */
  captureCounts(key: string | undefined): void {
    this.captureKey = key;
  }

  /** What the requests counted since the last call found their counters at (see captureCounts()). */
  capturedCounts(): CapturedCounts[] {
    if (this.captured.size === 0) return [];
    const out = [...this.captured].map(([key, counts]) => ({ key, counts }));
    this.captured = new Map();
    return out;
  }

  /**
   * The counters a resend of a request counts with (see countWith()),
   * starting where its first copy's found them (capturedCounts()).
   */
  resendCounts(first: readonly OrdinalCount[]): ResendCounts {
    return new ResendCounts(first);
  }

  /**
   * Until called again with undefined, lines count with `resend`'s counters
   * instead of the shared ones (those of the records its first copy
   * rendered: they get the ordinals they had). The shared counters are left
   * as they are: other requests of the same sources count on past all of
   * them, as they did past the first copy.
   */
  countWith(resend: ResendCounts | undefined): void {
    this.resend = resend;
  }

  /**
   * The counters that changed since the last call (trackOrdinals), as
   * ordinalCounts() gives them: what a journal appends so that a restart
   * after a crash counts on from them.
   */
  changedOrdinals(): OrdinalCount[] {
    const out: OrdinalCount[] = [];
    for (const { source, stream, ord } of this.changed) {
      ord.changed = false;
      if (hasCounted(ord)) out.push(countOf(source, stream, ord));
    }
    this.changed = [];
    return out;
  }

  /** Notes a counter about to count a line: changed (changedOrdinals()), and first of its request (captureCounts()). */
  private track(source: string, stream: Stream | undefined, ord: Ordinal): void {
    if (!ord.changed) {
      ord.changed = true;
      this.changed.push({ source, stream, ord });
    }
    const key = this.captureKey;
    if (key !== undefined && ord.capturedFor !== key) {
      ord.capturedFor = key;
      let counts = this.captured.get(key);
      if (counts === undefined) this.captured.set(key, (counts = []));
      // A request rendered in slices between other requests' comes back to a counter: its first count stays.
      if (!counts.some((c) => c.source === source && c.stream === stream)) counts.push(countOf(source, stream, ord));
    }
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private flushWhere(source: string | undefined): LogEvent[] {
    const out: LogEvent[] = [];
    for (const [key, p] of this.pendingLines) {
      if (source !== undefined && p.source !== source) continue;
      this.forget(key);
      out.push(...this.finish(p, undefined));
    }
    if (this.multiline !== undefined) {
      const released: Released[] = [];
      if (source === undefined) this.multiline.flushAll(released);
      else this.multiline.flushSource(source, released);
      out.push(...this.buildAll(released));
    }
    this.stopTimerIfIdle();
    return out;
  }

  /** `bounded`: whether the bound for all lines together applies (not to pieces taken back, which were held before). */
  private pushPiece(raw: RawLine, partial: NonNullable<RawLine['partial']>, watch: LineWatcher | undefined, bounded: boolean): LogEvent[] {
    const key = pieceKey(raw, partial);
    const bytes = typeof raw.line === 'string' ? Buffer.from(raw.line, 'utf8') : raw.line;
    let p = this.pendingLines.get(key);
    // A piece this line holds already: the request that brought it is being
    // sent again, its write having failed (forward/writes.ts). Docker numbers
    // a line's pieces from 1; a sender that does not (0) is taken as it comes.
    if (p !== undefined && partial.ordinal > 0 && partial.ordinal <= p.lastOrdinal) return [];
    if (!p) {
      p = { source: sourceOf(raw), id: partial.id, first: undefined, pieces: [], bytes: 0, lastOrdinal: 0, since: Date.now(), part: partial.part ?? 0 };
      this.heldPieceBytes += costOf(p);
      this.pendingLines.set(key, p);
      this.startTimer();
      if (p.part > 0) this.reserveOrdinals(raw, p.part);
    }
    p.first ??= raw;
    p.pieces.push(bytes);
    p.bytes += bytes.length;
    this.heldPieceBytes += bytes.length + PIECE_COST;
    p.lastOrdinal = partial.ordinal;
    // partial_timeout counts from the last piece: a long line sent piece by piece, each acked, may take longer.
    p.since = Date.now();
    if (partial.last) {
      this.forget(key);
      this.stopTimerIfIdle();
      // An empty last piece right after a cut ends the line written already (Docker ends a line of whole pieces so).
      const events = p.part > 0 && p.bytes === 0 ? [] : this.finish(p, watch);
      watch?.releasedPieces(partial.id, p.part, true);
      return events;
    }
    // Long enough to be cut anyway, or past the bound for all lines: written now.
    if (p.bytes >= this.opts.maxLineBytes || (bounded && this.heldPieceBytes > Math.max(MAX_HELD_PIECE_BYTES, this.opts.maxLineBytes))) {
      return this.cut(p, watch, true);
    }
    watch?.heldPiece(raw, p.part);
    return [];
  }

  /**
   * Writes what a split line holds as a line of its own; the line goes on in
   * a new part. `carry`: a character its last bytes begin goes on with the
   * next part, whole (Docker cuts pieces at byte offsets); at a timeout
   * nothing may come to complete it.
   */
  private cut(p: PendingLine, watch: LineWatcher | undefined, carry: boolean): LogEvent[] {
    const joined = joinedOf(p);
    const at = carry ? utf8CutPoint(joined, joined.length) : joined.length;
    const first = p.first;
    const events = first === undefined ? [] : this.line(partOf(first, p.part), at === joined.length ? joined : joined.subarray(0, at), watch);
    watch?.releasedPieces(p.id, p.part, false);
    // The carried bytes stay held, in memory only: stored, they went with their piece's part (a crash loses that one character).
    const rest = joined.length - at;
    this.heldPieceBytes -= costOf(p);
    p.first = rest > 0 ? first : undefined;
    // Copied: a view would keep the whole part in memory.
    p.pieces = rest > 0 ? [Buffer.from(joined.subarray(at))] : [];
    p.bytes = rest;
    this.heldPieceBytes += costOf(p);
    p.part++;
    return events;
  }

  /** Drops a split line from those held (its pieces go out, or are taken again). */
  private forget(key: string): void {
    const p = this.pendingLines.get(key);
    if (p === undefined) return;
    this.pendingLines.delete(key);
    this.heldPieceBytes -= costOf(p);
  }

  /** The part of a split line held so far, as one line; none right after a cut. */
  private finish(p: PendingLine, watch: HoldWatcher | undefined): LogEvent[] {
    if (p.first === undefined) return [];
    return this.line(partOf(p.first, p.part), joinedOf(p), watch);
  }

  /** A complete line: through the multiline stage when it concerns it, else straight to its event. */
  private line(raw: RawLine, line: Buffer | string, watch: HoldWatcher | undefined): LogEvent[] {
    // Cut before the stage sees the line: its rules look at how a line ends,
    // and would not take one with the "\n" a Fluent Bit or Fluentd record keeps.
    const text = stripEol(typeof line === 'string' ? line : line.toString('utf8'));
    const ml = this.multiline;
    if (ml === undefined || !ml.concerns(raw.container, raw.tag, raw.input, raw.stream, text, 0, text.length)) return this.build(raw, text, false);
    // A split line's pieces are one line from here on; its first piece's RawLine stands for it.
    const whole = raw.partial === undefined ? raw : { ...raw, line, partial: undefined };
    const released: Released[] = [];
    ml.push(whole, text, released, watch);
    if (ml.size > 0) this.startTimer();
    else this.stopTimerIfIdle();
    return this.buildAll(released);
  }

  private buildAll(released: Released[]): LogEvent[] {
    if (released.length === 1) return this.build(released[0]!.first, released[0]!.text, released[0]!.truncated);
    const out: LogEvent[] = [];
    for (const r of released) for (const e of this.build(r.first, r.text, r.truncated)) out.push(e);
    return out;
  }

  /** `text`: a line without its end of line, or the lines of a trace joined. */
  private build(raw: RawLine, text: string, truncated: boolean): LogEvent[] {
    const stripped = this.opts.stripAnsi ? stripTerminal(text) : text;
    const timestamp = raw.timestamp ?? formatNanoTime(raw.time.sec, raw.time.nsec);
    const ordinal = this.nextOrdinal(raw);
    if (stripped.length * 3 > this.opts.maxLineBytes && Buffer.byteLength(stripped) > this.opts.maxLineBytes) {
      // The pieces are one line: they share its ordinal and differ by `piece`.
      return cutUtf8(Buffer.from(stripped, 'utf8'), this.opts.maxLineBytes).map((piece, i) =>
        this.event(raw, timestamp, ordinal, piece.toString('utf8'), i, truncated),
      );
    }
    return [this.event(raw, timestamp, ordinal, stripped, undefined, truncated)];
  }

  private nextOrdinal(raw: RawLine): number {
    return countOrdinal(this.ordinalFor(raw), raw.time.sec, raw.time.nsec);
  }

  /** The ordinal counter of the line's source and stream. */
  private ordinalFor(raw: RawLine): Ordinal {
    return this.counterFor(sourceOf(raw), raw.container, raw.stream);
  }

  /**
   * The counter a line of `source` counts with, the one rule for both ways
   * lines are counted: a resend's own, else the shared one, noted as about to
   * change (see changedOrdinals()).
   */
  private counterFor(source: string, container: ContainerMeta | undefined, stream: Stream | undefined): Ordinal {
    if (this.resend !== undefined) return this.resend.counter(source, stream);
    const ord = ordinalOf(container ? this.containerStreams(container, source) : this.looseStreams(source), stream);
    if (this.opts.trackOrdinals === true) this.track(source, stream, ord);
    return ord;
  }

  /**
   * A split line taken back in part `parts` after a restart: its earlier
   * parts were written before it, as lines at its time (Docker gives every
   * piece of a line the same one), with the ordinals below this part's.
   * Counted so, the part written again has the identity it had.
   */
  private reserveOrdinals(raw: RawLine, parts: number): void {
    const ord = this.ordinalFor(raw);
    if (ord.sec !== raw.time.sec || ord.nsec !== raw.time.nsec) {
      ord.sec = raw.time.sec;
      ord.nsec = raw.time.nsec;
      ord.count = 0;
    }
    ord.count = Math.max(ord.count, parts);
  }

  /** The ordinals of a source without a container (its tag, else its input). */
  private looseStreams(source: string): StreamOrdinals {
    let streams = this.otherOrdinals.get(source);
    if (!streams) this.otherOrdinals.set(source, (streams = this.newStreams(source)));
    return streams;
  }

  private containerStreams(container: ContainerMeta, source: string): StreamOrdinals {
    // Lines come in runs of one container's: the last answer, before the WeakMap.
    if (container === this.lastContainer) return this.lastStreams!;
    let streams = this.containerOrdinals.get(container);
    if (!streams) {
      // A container whose object was replaced (its metadata came, it was
      // renamed) counts on: the ordinal is part of its lines' identity.
      streams = this.bySource.get(source) ?? this.newStreams(source);
      this.containerOrdinals.set(container, streams);
    }
    this.lastContainer = container;
    this.lastStreams = streams;
    return streams;
  }

  /** A source's first line: start from what seedOrdinal recorded for it, if anything. */
  private newStreams(source: string): StreamOrdinals {
    const take = (stream: Stream | undefined): Ordinal => {
      const key = counterKey(source, stream);
      const seed = this.seeds.get(key);
      this.seeds.delete(key);
      return seed ?? { sec: Number.NaN, nsec: 0, count: 0, changed: false };
    };
    const streams = { stdout: take('stdout'), stderr: take('stderr'), none: take(undefined) };
    if (this.bySource.size >= MAX_SOURCES_BY_NAME) {
      const oldest = this.bySource.keys().next().value!;
      this.bySource.delete(oldest);
      this.otherOrdinals.delete(oldest);
    }
    this.bySource.set(source, streams);
    return streams;
  }

  private event(raw: RawLine, timestamp: string, ordinal: number, line: string, piece: number | undefined, truncated: boolean): LogEvent {

    let message = line;
    let level: string | undefined;
    let attrs: Record<string, unknown> | undefined = raw.extra;
    // A piece of a cut line is no whole JSON or logfmt line, and only the first starts the line.
    const whole = piece === undefined && raw.continued !== true;
    const parsed = (this.opts.parseJson && whole ? parseJsonLine(line) : undefined) ?? (this.opts.parseLogfmt && whole ? parseLogfmtLine(line) : undefined);
    if (parsed !== undefined) {
      message = parsed.message ?? line;
      level = parsed.level;
      attrs = attrs ? { ...attrs, ...parsed.fields } : parsed.fields;
    }
    if (level === undefined && raw.extra) level = levelOf(raw.extra, false);
    if (level === undefined && parsed === undefined && !piece && raw.continued !== true) level = leadingLevel(line);

    const event: LogEvent = { '@timestamp': timestamp, message, host: this.host, clogs: { input: raw.input, seq: this.opts.nextSeq(), ordinal } };
    if (raw.stream) event.stream = raw.stream;
    if (raw.container) event.container = raw.container;
    if (level !== undefined) event.log = { level };
    if (attrs && hasKeys(attrs)) event.attrs = attrs;
    if (raw.tag !== undefined) event.clogs.tag = raw.tag;
    if (piece !== undefined) event.clogs.piece = piece;
    if (truncated) event.clogs.truncated = true;
    return event;
  }

  private startTimer(): void {
    if (this.timer) return;
    const shortest = Math.min(this.opts.partialTimeoutMs, this.multiline?.timeoutMs ?? Infinity);
    const every = Math.max(50, Math.min(1000, shortest / 4));
    this.timer = setInterval(() => this.flushExpired(), every);
    this.timer.unref();
  }

  private stopTimerIfIdle(): void {
    if (this.pending() === 0) this.close();
  }

  private flushExpired(): void {
    const now = Date.now();
    const deadline = now - this.opts.partialTimeoutMs;
    // A split line written at its timeout may close a trace too, not only the trace's own timeout.
    const heldBefore = this.multiline?.heldFirsts() ?? [];
    const out: LogEvent[] = [];
    const cuts: LineCut[] = [];
    const held: HeldPair[] = [];
    // No request brings these lines: the input stores what the flush leaves held from here.
    const watch: LineWatcher = { held: (first, line) => held.push({ first, line }), released: () => undefined, heldPiece: () => undefined, releasedPieces: () => undefined };
    for (const [key, p] of this.pendingLines) {
      if (p.since > deadline) continue;
      // Idle since it was written (or cut): forgotten. A line of empty
      // pieces is written like any other: its record was acked.
      if (p.first === undefined) {
        this.forget(key);
        continue;
      }
      // Written as a part, the line kept for one more timeout: a piece that
      // comes late goes on in the next part, apart from the pieces stored
      // for this one (which the input forgets by part, not by line).
      cuts.push({ id: p.id, part: p.part });
      out.push(...this.cut(p, watch, false));
      p.since = now;
    }
    if (this.multiline !== undefined && this.multiline.size > 0) {
      const released: Released[] = [];
      this.multiline.flushExpired(now, released, watch);
      out.push(...this.buildAll(released));
    }
    this.stopTimerIfIdle();
    // Only what is still held after the flush: a trace it opened and closed again is in `out`.
    const stillHeld = held.filter((h) => this.holdsTrace(h.first));
    if (out.length > 0 || cuts.length > 0) this.opts.onTimeoutFlush(out, cuts, heldBefore.filter((first) => !this.holdsTrace(first)), stillHeld);
  }
}

/** Which held split line a piece belongs to: its source, stream and partial id. */
function pieceKey(raw: RawLine, partial: NonNullable<RawLine['partial']>): string {
  return `${sourceOf(raw)}\0${raw.stream ?? ''}\0${partial.id}`;
}

function ordinalOf(streams: StreamOrdinals, stream: string | undefined): Ordinal {
  return stream === 'stdout' ? streams.stdout : stream === 'stderr' ? streams.stderr : streams.none;
}

/**
 * A resend's counters: per source and stream, from where its first copy's
 * counter was (a source its first copy did not count starts afresh, as it
 * did).
 */
export class ResendCounts {
  private readonly counters = new Map<string, Ordinal>();

  constructor(first: readonly OrdinalCount[]) {
    for (const c of first) {
      const time = parseRfc3339(c.timestamp);
      if (time !== undefined) this.counters.set(counterKey(c.source, c.stream), { sec: time.sec, nsec: time.nsec, count: c.count, changed: false });
    }
  }

  counter(source: string, stream: Stream | undefined): Ordinal {
    const key = counterKey(source, stream);
    let ord = this.counters.get(key);
    if (ord === undefined) this.counters.set(key, (ord = { sec: Number.NaN, nsec: 0, count: 0, changed: false }));
    return ord;
  }
}

/** The one key of a source's counter for a stream: seeds, resends and the forward input's journal. */
export function counterKey(source: string, stream: string | undefined): string {
  return `${source}\0${stream ?? ''}`;
}

/** Whether a counter has counted a line since it was made. */
function hasCounted(ord: Ordinal): boolean {
  return ord.count > 0 && !Number.isNaN(ord.sec);
}

/** A counter as a count; one that never counted a line is count 0 at the epoch. */
function countOf(source: string, stream: Stream | undefined, ord: Ordinal): OrdinalCount {
  const counted = !Number.isNaN(ord.sec);
  return { source, stream, timestamp: formatNanoTime(counted ? ord.sec : 0, counted ? ord.nsec : 0), count: counted ? ord.count : 0 };
}

function countOrdinal(ord: Ordinal, sec: number, nsec: number): number {
  if (ord.sec === sec && ord.nsec === nsec) return ord.count++;
  ord.sec = sec;
  ord.nsec = nsec;
  ord.count = 1;
  return 0;
}

/**
 * A line that is a JSON object (pino, bunyan, zap, logrus): its message and
 * level taken out of its fields. Undefined for any other line.
 */
export function parseJsonLine(line: string): JsonLine | undefined {
  // Measured: the first-character test keeps JSON.parse off plain lines,
  // which are most lines; a failed parse costs ~10x a successful check.
  if (line.charCodeAt(0) !== 123 /* { */ || line.charCodeAt(line.length - 1) !== 125 /* } */) return undefined;
  const fields = parseObject(line);
  return fields && structuredLine(fields);
}

/** A logfmt line (transforms/logfmt.ts) read like a JSON line; undefined for any other line. */
function parseLogfmtLine(line: string): JsonLine | undefined {
  const fields = parseLogfmt(line);
  return fields && structuredLine(fields);
}

/** A structured line's fields: the message and level taken out by the keys JSON lines use. */
function structuredLine(fields: Record<string, unknown>): JsonLine {
  let message: string | undefined;
  for (const k of MESSAGE_KEYS) {
    const v = fields[k];
    if (typeof v === 'string') {
      message = v;
      delete fields[k];
      break;
    }
  }
  return { message, level: levelOf(fields), fields };
}

/** The pieces a split line holds, as one buffer. */
function joinedOf(p: PendingLine): Buffer {
  return p.pieces.length === 1 ? p.pieces[0]! : Buffer.concat(p.pieces, p.bytes);
}

/** The line of part `part` of a split line, whose first piece is `first`: after the first part, a continuation. */
function partOf(first: RawLine, part: number): RawLine {
  return part === 0 ? first : { ...first, continued: true };
}

function hasKeys(o: object): boolean {
  for (const _ in o) return true;
  return false;
}

function sourceOf(raw: RawLine): string {
  return sourceId(raw.container, raw.tag, raw.input);
}

function parseObject(line: string): Record<string, unknown> | undefined {
  try {
    const v = parseJson(line);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Reads (and, for a parsed line, removes) the level field. */
function levelOf(fields: Record<string, unknown>, remove = true): string | undefined {
  for (const k of LEVEL_KEYS) {
    const level = levelName(fields[k]);
    if (level !== undefined) {
      if (remove) delete fields[k];
      return level;
    }
  }
  return undefined;
}

/** Cuts bytes into pieces of at most `max` bytes, never inside a UTF-8 character. */
function cutUtf8(bytes: Buffer, max: number): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  while (bytes.length - start > max) {
    let end = utf8CutPoint(bytes, start + max);
    if (end <= start) end = start + max;
    out.push(bytes.subarray(start, end));
    start = end;
  }
  out.push(bytes.subarray(start));
  return out;
}
