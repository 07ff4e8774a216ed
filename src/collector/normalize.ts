/**
 * Turns what an input read (a line with its time, stream and container) into
 * the shared LogEvent: puts Docker's split lines back together, strips the
 * carriage return a TTY adds and terminal escapes (transforms/ansi.ts), parses
 * JSON log lines (pino, bunyan, zap, logrus) and logfmt lines
 * (transforms/logfmt.ts), reads the level a text line starts with
 * (transforms/text-level.ts), and numbers each line (seq for order, ordinal
 * for identity).
 *
 * Bytes of a split line are joined before UTF-8 decoding, because Docker cuts
 * at 16 KiB byte offsets and can split a multi-byte character in two.
 */
import type { ContainerMeta, LogEvent, Stream } from './event.js';
import { levelName } from './levels.js';
import { sourceId } from './source.js';
import { formatNanoTime, parseRfc3339, type NanoTime } from './time.js';
import { stripTerminal } from './transforms/ansi.js';
import { parseLogfmt, startsWithPair } from './transforms/logfmt.js';
import { hasLeadingLevel, leadingLevel } from './transforms/text-level.js';

export interface RawLine {
  input: 'forward' | 'docker';
  time: NanoTime;
  stream?: Stream;
  /** The line without its trailing newline. */
  line: Buffer | string;
  container?: ContainerMeta;
  tag?: string;
  /** Docker's split-line metadata (fluentd driver `partial_*` keys). */
  partial?: { id: string; ordinal: number; last: boolean };
  /** Record keys the input did not map; they end up under `attrs`. */
  extra?: Record<string, unknown>;
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
  /** Receives split lines flushed by the timeout. */
  onTimeoutFlush(events: LogEvent[]): void;
}

/** The last time a source and stream carried, and how many lines carried it. */
interface Ordinal {
  sec: number;
  nsec: number;
  count: number;
}

interface StreamOrdinals {
  stdout: Ordinal;
  stderr: Ordinal;
  none: Ordinal;
}

/** A parsed JSON or logfmt line: what becomes `message`, `log.level` and `attrs`. */
export interface JsonLine {
  message: string | undefined;
  level: string | undefined;
  fields: Record<string, unknown>;
}

interface PendingLine {
  first: RawLine;
  pieces: Buffer[];
  bytes: number;
  lastOrdinal: number;
  since: number;
}

/** Where a JSON line keeps its message, by priority. */
export const MESSAGE_KEYS = ['msg', 'message', 'MESSAGE', 'M'] as const;
/** Where a JSON line keeps its level, by priority. */
export const LEVEL_KEYS = ['level', 'severity', 'lvl', 'L'] as const;

export class Normalizer {
  private readonly host: { name: string };
  private readonly pendingLines = new Map<string, PendingLine>();
  /**
   * Per source and stream: the last timestamp seen and how many lines carried
   * it. Keyed by the container object when there is one, so the hot path
   * builds no key string. Measured: a string key per event cost 6.6% of the
   * collector's CPU in the forward bench.
   */
  private readonly containerOrdinals = new WeakMap<ContainerMeta, StreamOrdinals>();
  private readonly otherOrdinals = new Map<string, StreamOrdinals>();
  /** The same objects by source name, for seedOrdinal. */
  private readonly bySource = new Map<string, StreamOrdinals>();
  /** Checkpointed ordinals, taken over when their source's first line comes. */
  private readonly seeds = new Map<string, Ordinal>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: NormalizerOptions) {
    this.host = { name: opts.hostName };
  }

  /** The `host` object every event shares. */
  get hostField(): { name: string } {
    return this.host;
  }

  get parseJson(): boolean {
    return this.opts.parseJson;
  }

  get maxLineBytes(): number {
    return this.opts.maxLineBytes;
  }

  nextSeq(): number {
    return this.opts.nextSeq();
  }

  /**
   * Whether a stage would change or hold the line in bytes [start, end) of
   * `buf` (without its trailing CR), which the forward fast path
   * (forward/packed-lines.ts) would otherwise render as it is. Lines with
   * terminal escapes or a `\r` never get that far: both of its renderers
   * refuse control bytes.
   */
  needsStages(_container: ContainerMeta, _stream: Stream, buf: Buffer, start: number, end: number): boolean {
    return (this.opts.parseLogfmt && startsWithPair(buf, start, end)) || hasLeadingLevel(buf, start, end);
  }

  push(raw: RawLine): LogEvent[] {
    if (raw.partial) return this.pushPiece(raw, raw.partial);
    return this.build(raw, typeof raw.line === 'string' ? raw.line : raw.line.toString('utf8'));
  }

  /** Split lines waiting for their last piece. */
  pending(): number {
    return this.pendingLines.size;
  }

  /** Writes out every held split line as it is (shutdown, container exit). */
  flushAll(): LogEvent[] {
    const out: LogEvent[] = [];
    for (const [key, p] of this.pendingLines) {
      this.pendingLines.delete(key);
      out.push(...this.finish(p));
    }
    this.stopTimerIfIdle();
    return out;
  }

  /** Writes out the held split lines of one source (a container that exited). */
  flushSource(source: string): LogEvent[] {
    const out: LogEvent[] = [];
    for (const [key, p] of this.pendingLines) {
      if (sourceOf(p.first) !== source) continue;
      this.pendingLines.delete(key);
      out.push(...this.finish(p));
    }
    this.stopTimerIfIdle();
    return out;
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
      this.seeds.set(`${source}\0${stream ?? ''}`, { sec: time.sec, nsec: time.nsec, count });
      return;
    }
    const ord = ordinalOf(streams, stream);
    ord.sec = time.sec;
    ord.nsec = time.nsec;
    ord.count = count;
  }

  /**
   * The ordinal of the next line of a container's stream at this time, for
   * inputs that render lines without going through push (forward/packed-lines.ts).
   */
  ordinal(container: ContainerMeta & { readonly id: string }, stream: Stream, sec: number, nsec: number): number {
    return countOrdinal(ordinalOf(this.containerStreams(container, container.id), stream), sec, nsec);
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private pushPiece(raw: RawLine, partial: NonNullable<RawLine['partial']>): LogEvent[] {
    const key = `${sourceOf(raw)}\0${raw.stream ?? ''}\0${partial.id}`;
    const bytes = typeof raw.line === 'string' ? Buffer.from(raw.line, 'utf8') : raw.line;
    let p = this.pendingLines.get(key);
    if (!p) {
      p = { first: raw, pieces: [], bytes: 0, lastOrdinal: 0, since: Date.now() };
      this.pendingLines.set(key, p);
      this.startTimer();
    }
    p.pieces.push(bytes);
    p.bytes += bytes.length;
    p.lastOrdinal = partial.ordinal;
    if (!partial.last) return [];
    this.pendingLines.delete(key);
    this.stopTimerIfIdle();
    return this.finish(p);
  }

  private finish(p: PendingLine): LogEvent[] {
    const joined = p.pieces.length === 1 ? p.pieces[0]! : Buffer.concat(p.pieces, p.bytes);
    return this.build(p.first, joined);
  }

  private build(raw: RawLine, text: string | Buffer): LogEvent[] {
    const line = typeof text === 'string' ? text : text.toString('utf8');
    const unterminated = line.endsWith('\r') ? line.slice(0, -1) : line;
    const stripped = this.opts.stripAnsi ? stripTerminal(unterminated) : unterminated;
    const timestamp = formatNanoTime(raw.time.sec, raw.time.nsec);
    const ordinal = this.nextOrdinal(raw);
    if (stripped.length * 3 > this.opts.maxLineBytes && Buffer.byteLength(stripped) > this.opts.maxLineBytes) {
      // The pieces are one line: they share its ordinal and differ by `piece`.
      return cutUtf8(Buffer.from(stripped, 'utf8'), this.opts.maxLineBytes).map((piece, i) =>
        this.event(raw, timestamp, ordinal, piece.toString('utf8'), i),
      );
    }
    return [this.event(raw, timestamp, ordinal, stripped, undefined)];
  }

  private nextOrdinal(raw: RawLine): number {
    const source = sourceOf(raw);
    let streams: StreamOrdinals | undefined;
    if (raw.container) streams = this.containerStreams(raw.container, source);
    else {
      streams = this.otherOrdinals.get(source);
      if (!streams) this.otherOrdinals.set(source, (streams = this.newStreams(source)));
    }
    return countOrdinal(ordinalOf(streams, raw.stream), raw.time.sec, raw.time.nsec);
  }

  private containerStreams(container: ContainerMeta, source: string): StreamOrdinals {
    let streams = this.containerOrdinals.get(container);
    if (!streams) this.containerOrdinals.set(container, (streams = this.newStreams(source)));
    return streams;
  }

  /** A source's first line: start from what seedOrdinal recorded for it, if anything. */
  private newStreams(source: string): StreamOrdinals {
    const take = (stream: string): Ordinal => {
      const key = `${source}\0${stream}`;
      const seed = this.seeds.get(key);
      this.seeds.delete(key);
      return seed ?? { sec: Number.NaN, nsec: 0, count: 0 };
    };
    const streams = { stdout: take('stdout'), stderr: take('stderr'), none: take('') };
    this.bySource.set(source, streams);
    return streams;
  }

  private event(raw: RawLine, timestamp: string, ordinal: number, line: string, piece: number | undefined): LogEvent {

    let message = line;
    let level: string | undefined;
    let attrs: Record<string, unknown> | undefined = raw.extra;
    // A piece of a cut line is no whole JSON or logfmt line, and only the first starts the line.
    const parsed = (this.opts.parseJson ? parseJsonLine(line) : undefined) ?? (this.opts.parseLogfmt && piece === undefined ? parseLogfmtLine(line) : undefined);
    if (parsed !== undefined) {
      message = parsed.message ?? line;
      level = parsed.level;
      attrs = attrs ? { ...attrs, ...parsed.fields } : parsed.fields;
    }
    if (level === undefined && raw.extra) level = levelOf(raw.extra, false);
    if (level === undefined && parsed === undefined && !piece) level = leadingLevel(line);

    const event: LogEvent = { '@timestamp': timestamp, message, host: this.host, clogs: { input: raw.input, seq: this.opts.nextSeq(), ordinal } };
    if (raw.stream) event.stream = raw.stream;
    if (raw.container) event.container = raw.container;
    if (level !== undefined) event.log = { level };
    if (attrs && hasKeys(attrs)) event.attrs = attrs;
    if (raw.tag !== undefined) event.clogs.tag = raw.tag;
    if (piece !== undefined) event.clogs.piece = piece;
    return event;
  }

  private startTimer(): void {
    if (this.timer) return;
    const every = Math.max(50, Math.min(1000, this.opts.partialTimeoutMs / 4));
    this.timer = setInterval(() => this.flushExpired(), every);
    this.timer.unref();
  }

  private stopTimerIfIdle(): void {
    if (this.pendingLines.size === 0) this.close();
  }

  private flushExpired(): void {
    const deadline = Date.now() - this.opts.partialTimeoutMs;
    const out: LogEvent[] = [];
    for (const [key, p] of this.pendingLines) {
      if (p.since > deadline) continue;
      this.pendingLines.delete(key);
      out.push(...this.finish(p));
    }
    this.stopTimerIfIdle();
    if (out.length > 0) this.opts.onTimeoutFlush(out);
  }
}

function ordinalOf(streams: StreamOrdinals, stream: string | undefined): Ordinal {
  return stream === 'stdout' ? streams.stdout : stream === 'stderr' ? streams.stderr : streams.none;
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

function hasKeys(o: object): boolean {
  for (const _ in o) return true;
  return false;
}

function sourceOf(raw: RawLine): string {
  return sourceId(raw.container, raw.tag, raw.input);
}

function parseObject(line: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(line);
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
    let end = start + max;
    // Back up over continuation bytes (10xxxxxx) to a character boundary.
    while (end > start && (bytes[end]! & 0xc0) === 0x80) end--;
    if (end === start) end = start + max;
    out.push(bytes.subarray(start, end));
    start = end;
  }
  out.push(bytes.subarray(start));
  return out;
}
