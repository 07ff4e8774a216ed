/**
 * Where the fields of a rendered event line are, without parsing it.
 *
 * Every event is rendered once, to the NDJSON line event-json.ts (and the
 * line renderer, line-render.ts, byte for byte the same) writes, with its fields in one
 * fixed order:
 *
 *   {"@timestamp":"<30>","message":"…"[,"stream":"…"][,"container":{…}],"host":{…}
 *   [,"log":{["level":"…"]}][,"attrs":{…}],"clogs":{"input":"…"[,"tag":"…"],"seq":N,"ordinal":N[,"piece":N]}}
 *
 * Readers downstream of the renderer (the Elasticsearch `_id`, `/tail`
 * filters, the Docker backfill match, the file sink's replay guard) need a
 * few of those fields, not an object graph. Whoever writes a line knows
 * where it put them: it keeps their offsets beside the line (LineMarks, one
 * record per line), and readers take them from there (forEachLine), reading
 * the bytes only of the strings they compare. Measured on the Elasticsearch
 * sink's encoder, `_id` included, over 200,000 lines of the bench's mix
 * rendered by the forward input (4 runs in turn): 1.6-2.4 µs a line with
 * the marks, against 2.5-3.5 µs finding the fields by scanning each line.
 *
 * LineFields.read() finds the same fields by scanning a line's bytes, for
 * lines that come without their marks: the tail of a file the file sink
 * wrote (its replay guard), and in tests, which check that both agree. A
 * line of any other shape makes read() throw rather than guess.
 */
import type { Stream } from './event.js';

const TIMESTAMP_AT = '{"@timestamp":"'.length;
export const TIMESTAMP_LENGTH = '2026-01-02T03:04:05.123456789Z'.length;
const MESSAGE_AT = TIMESTAMP_AT + TIMESTAMP_LENGTH + '","message":'.length;

const STREAM_KEY = Buffer.from(',"stream":');
const CONTAINER_KEY = Buffer.from(',"container":');
const HOST_KEY = Buffer.from(',"host":');
const LOG_KEY = Buffer.from(',"log":{');
const LEVEL_KEY = Buffer.from('"level":');
const ATTRS_KEY = Buffer.from(',"attrs":');
const CLOGS_KEY = Buffer.from(',"clogs":{"input":');
const TAG_KEY = Buffer.from(',"tag":');
const SEQ_KEY = Buffer.from(',"seq":');
const ORDINAL_KEY = Buffer.from(',"ordinal":');
const PIECE_KEY = Buffer.from(',"piece":');
const STDOUT = Buffer.from('"stdout"');
const STDERR = Buffer.from('"stderr"');

const STREAM_NONE = 0;
const STREAM_STDOUT = 1;
const STREAM_STDERR = 2;

// One line's record in LineMarks: offsets from the line's first byte, -1 for
// a field the line does not have.
const M_MESSAGE_END = 0;
const M_STREAM = 1;
const M_LEVEL_AT = 2;
const M_LEVEL_END = 3;
const M_ATTRS_AT = 4;
/** Where `,"clogs":{"input":` starts (attrs end there). */
const M_CLOGS_AT = 5;
const M_INPUT_END = 6;
const M_TAG_END = 7;
const M_SEQ_END = 8;
const M_ORDINAL = 9;
/** -1 unless clogs cut the line into pieces. */
const M_PIECE = 10;
/** Bytes of the line, "\n" included. */
const M_LENGTH = 11;
const SLOTS = 12;
const NO_MARKS = new Int32Array(0);

/**
 * Where the fields of each line of an EncodedSource are, in the lines' order:
 * SLOTS int32 per line, written by the renderer as it writes the line.
 * Int32Array rather than an array of numbers: half the memory per line,
 * next to lines of 110 bytes and more (150 in bench tiny).
 */
export class LineMarks {
  private slots = NO_MARKS;
  /** Lines marked. */
  count = 0;

  /**
   * The record of the line just written: offsets from its first byte (-1:
   * absent) of the message's end, the level's JSON string, the attrs object,
   * `,"clogs":{"input":`, the ends of the input and tag strings and of seq,
   * then ordinal, piece (-1: none) and the line's length with its "\n".
   */
  add(
    messageEnd: number,
    stream: Stream | undefined,
    levelAt: number,
    levelEnd: number,
    attrsAt: number,
    clogsAt: number,
    inputEnd: number,
    tagEnd: number,
    seqEnd: number,
    ordinal: number,
    piece: number,
    length: number,
  ): void {
    const s = this.count * SLOTS;
    if (s + SLOTS > this.slots.length) this.grow(s + SLOTS);
    const m = this.slots;
    m[s + M_MESSAGE_END] = messageEnd;
    m[s + M_STREAM] = stream === 'stdout' ? STREAM_STDOUT : stream === 'stderr' ? STREAM_STDERR : STREAM_NONE;
    m[s + M_LEVEL_AT] = levelAt;
    m[s + M_LEVEL_END] = levelEnd;
    m[s + M_ATTRS_AT] = attrsAt;
    m[s + M_CLOGS_AT] = clogsAt;
    m[s + M_INPUT_END] = inputEnd;
    m[s + M_TAG_END] = tagEnd;
    m[s + M_SEQ_END] = seqEnd;
    m[s + M_ORDINAL] = ordinal;
    m[s + M_PIECE] = piece;
    m[s + M_LENGTH] = length;
    this.count++;
  }

  /** The record of the line `fields` holds, as the next line's. */
  addFields(f: LineFields): void {
    const at = f.start;
    this.add(
      f.messageEnd - at,
      f.stream,
      f.levelAt < 0 ? -1 : f.levelAt - at,
      f.levelEnd < 0 ? -1 : f.levelEnd - at,
      f.attrsAt < 0 ? -1 : f.attrsAt - at,
      f.inputAt - CLOGS_KEY.length - at,
      f.inputEnd - at,
      f.tagEnd < 0 ? -1 : f.tagEnd - at,
      f.seqEnd - at,
      f.ordinal,
      f.piece,
      f.end + 1 - at,
    );
  }

  /** Another buffer's records, after these (its lines were moved after these lines). */
  append(other: LineMarks): void {
    if (other.count === 0) return;
    const s = this.count * SLOTS;
    const n = other.count * SLOTS;
    if (s + n > this.slots.length) this.grow(s + n);
    this.slots.set(other.slots.subarray(0, n), s);
    this.count += other.count;
  }

  /** Line `i`'s fields, for the line that starts at `start` of `buf`; returns where the next line starts. */
  read(i: number, buf: Buffer, start: number, f: LineFields): number {
    // A line without its marks would be read with another's, or not at all.
    if (i >= this.count) throw new Error(`line ${i} of ${this.count} marked lines: a line was written without its marks`);
    const m = this.slots;
    const s = i * SLOTS;
    f.buf = buf;
    f.start = start;
    const next = start + m[s + M_LENGTH]!;
    f.end = next - 1;
    f.messageAt = start + MESSAGE_AT;
    f.messageEnd = start + m[s + M_MESSAGE_END]!;
    const stream = m[s + M_STREAM];
    f.stream = stream === STREAM_STDOUT ? 'stdout' : stream === STREAM_STDERR ? 'stderr' : undefined;
    const levelAt = m[s + M_LEVEL_AT]!;
    f.levelAt = levelAt < 0 ? -1 : start + levelAt;
    f.levelEnd = levelAt < 0 ? -1 : start + m[s + M_LEVEL_END]!;
    const clogsAt = start + m[s + M_CLOGS_AT]!;
    const attrsAt = m[s + M_ATTRS_AT]!;
    f.attrsAt = attrsAt < 0 ? -1 : start + attrsAt;
    f.attrsEnd = attrsAt < 0 ? -1 : clogsAt;
    f.inputAt = clogsAt + CLOGS_KEY.length;
    f.inputEnd = start + m[s + M_INPUT_END]!;
    const tagEnd = m[s + M_TAG_END]!;
    f.tagAt = tagEnd < 0 ? -1 : f.inputEnd + TAG_KEY.length;
    f.tagEnd = tagEnd < 0 ? -1 : start + tagEnd;
    f.seqAt = (tagEnd < 0 ? f.inputEnd : f.tagEnd) + SEQ_KEY.length;
    f.seqEnd = start + m[s + M_SEQ_END]!;
    f.ordinal = m[s + M_ORDINAL]!;
    f.piece = m[s + M_PIECE]!;
    return next;
  }

  /** How many lines, from line `i`, `bytes` of lines hold. */
  linesIn(i: number, bytes: number): number {
    const m = this.slots;
    let n = 0;
    for (let left = bytes; left > 0; n++) {
      if (i + n >= this.count) throw new Error(`line ${i + n} of ${this.count} marked lines: a line was written without its marks`);
      left -= m[(i + n) * SLOTS + M_LENGTH]!;
    }
    return n;
  }

  private grow(need: number): void {
    const length = Math.max(need, this.slots.length * 2, SLOTS * 16);
    // A view of a Buffer: small ones are cut from Node's shared pool, where
    // an Int32Array of its own is a separate allocation for the collector
    // to track (one per container per batch: 1.4 % of the main thread in a
    // Message-mode profile from 20 containers). Node keeps pool slices 8-aligned.
    const bytes = Buffer.allocUnsafe(length * 4);
    const grown = new Int32Array(bytes.buffer, bytes.byteOffset, length);
    grown.set(this.slots.subarray(0, this.count * SLOTS));
    this.slots = grown;
  }
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** One line's field positions; LineMarks.read() and read() refill the same object line after line. */
export class LineFields {
  buf: Buffer = Buffer.alloc(0);
  /** The line: its first byte, and the index of its closing `}` plus one (the "\n" is not part of it). */
  start = 0;
  end = 0;
  /** The message's JSON string, quotes included. */
  messageAt = 0;
  messageEnd = 0;
  stream: Stream | undefined;
  /** The level's JSON string, quotes included; -1 without a level. */
  levelAt = -1;
  levelEnd = -1;
  /** The attrs object; -1 without attrs. */
  attrsAt = -1;
  attrsEnd = -1;
  /** `clogs.input`'s JSON string, quotes included. */
  inputAt = 0;
  inputEnd = 0;
  /** The tag's JSON string, quotes included; -1 without a tag. */
  tagAt = -1;
  tagEnd = -1;
  seqAt = 0;
  seqEnd = 0;
  ordinal = 0;
  /** -1 unless clogs cut the line into pieces. */
  piece = -1;

  /** Reads the line of `buf` from `start` to its "\n" (or to `end`); returns where the next line starts. */
  read(buf: Buffer, start: number, end = buf.length): number {
    let nl = buf.indexOf(0x0a, start);
    if (nl < 0 || nl > end) nl = end;
    this.buf = buf;
    this.start = start;
    this.end = nl;
    let p = start + MESSAGE_AT;
    this.messageAt = p;
    p = this.messageEnd = stringEnd(buf, p, nl);

    this.stream = undefined;
    if (at(buf, p, STREAM_KEY)) {
      p += STREAM_KEY.length;
      const e = stringEnd(buf, p, nl);
      this.stream = at(buf, p, STDOUT) ? 'stdout' : at(buf, p, STDERR) ? 'stderr' : (JSON.parse(buf.toString('utf8', p, e)) as Stream);
      p = e;
    }
    if (at(buf, p, CONTAINER_KEY)) p = objectEnd(buf, p + CONTAINER_KEY.length, nl);
    if (!at(buf, p, HOST_KEY)) throw malformed(buf, start, nl, 'host');
    p = objectEnd(buf, p + HOST_KEY.length, nl);

    this.levelAt = this.levelEnd = -1;
    if (at(buf, p, LOG_KEY)) {
      p += LOG_KEY.length;
      if (at(buf, p, LEVEL_KEY)) {
        this.levelAt = p + LEVEL_KEY.length;
        p = this.levelEnd = stringEnd(buf, this.levelAt, nl);
      }
      if (buf[p] !== 0x7d) throw malformed(buf, start, nl, 'log');
      p++;
    }
    // The clogs object is last, and its key cannot occur unescaped in any
    // string before it; inside attrs it can (a record with its own "clogs"),
    // so it is looked for from the end.
    const clogsAt = buf.lastIndexOf(CLOGS_KEY, nl);
    if (clogsAt < p) throw malformed(buf, start, nl, 'clogs');
    this.attrsAt = this.attrsEnd = -1;
    if (at(buf, p, ATTRS_KEY)) {
      this.attrsAt = p + ATTRS_KEY.length;
      this.attrsEnd = clogsAt;
    } else if (p !== clogsAt) {
      throw malformed(buf, start, nl, 'attrs');
    }
    this.inputAt = clogsAt + CLOGS_KEY.length;
    p = this.inputEnd = stringEnd(buf, this.inputAt, nl);
    this.tagAt = this.tagEnd = -1;
    if (at(buf, p, TAG_KEY)) {
      this.tagAt = p + TAG_KEY.length;
      p = this.tagEnd = stringEnd(buf, this.tagAt, nl);
    }
    if (!at(buf, p, SEQ_KEY)) throw malformed(buf, start, nl, 'clogs.seq');
    this.seqAt = p += SEQ_KEY.length;
    p = this.seqEnd = digitsEnd(buf, p);
    if (!at(buf, p, ORDINAL_KEY)) throw malformed(buf, start, nl, 'clogs.ordinal');
    p += ORDINAL_KEY.length;
    let e = digitsEnd(buf, p);
    this.ordinal = decimal(buf, p, e);
    this.piece = -1;
    if (at(buf, e, PIECE_KEY)) {
      p = e + PIECE_KEY.length;
      e = digitsEnd(buf, p);
      this.piece = decimal(buf, p, e);
    }
    return nl + 1;
  }

  /** Where `@timestamp`'s TIMESTAMP_LENGTH characters start. */
  get timestampAt(): number {
    return this.start + TIMESTAMP_AT;
  }

  /** `@timestamp`, 30 characters. */
  timestamp(): string {
    const at = this.start + TIMESTAMP_AT;
    return this.buf.toString('latin1', at, at + TIMESTAMP_LENGTH);
  }

  message(): string {
    return stringValue(this.buf, this.messageAt, this.messageEnd);
  }

  level(): string | undefined {
    return this.levelAt < 0 ? undefined : stringValue(this.buf, this.levelAt, this.levelEnd);
  }

  input(): string {
    return stringValue(this.buf, this.inputAt, this.inputEnd);
  }

  tag(): string | undefined {
    return this.tagAt < 0 ? undefined : stringValue(this.buf, this.tagAt, this.tagEnd);
  }

  /** The attrs object's JSON as rendered (JSON.stringify of the attrs), or undefined. */
  attrsJson(): string | undefined {
    return this.attrsAt < 0 ? undefined : this.buf.toString('utf8', this.attrsAt, this.attrsEnd);
  }

  seq(): string {
    return this.buf.toString('latin1', this.seqAt, this.seqEnd);
  }

  /** The line without its "\n". */
  line(): Buffer {
    return this.buf.subarray(this.start, this.end);
  }
}

const LINE_OPEN = Buffer.from('{"@timestamp":"');

/**
 * The `@timestamp` of the line starting at `start`, read without reading the
 * rest (it comes first, at a fixed place); undefined for a line of another
 * shape.
 */
export function timestampOf(buf: Buffer, start: number, end: number): string | undefined {
  const from = start + TIMESTAMP_AT;
  if (from + TIMESTAMP_LENGTH > end || !at(buf, start, LINE_OPEN)) return undefined;
  return buf.toString('latin1', from, from + TIMESTAMP_LENGTH);
}

/**
 * Each line of `chunks` (whole lines, as an EncodedSource holds them), its
 * fields taken from `marks`, into `fields` in turn. `skip`: chunks whose
 * lines are passed over unread.
 */
export function forEachLine(chunks: readonly Buffer[], marks: LineMarks, fields: LineFields, fn: (fields: LineFields) => void, skip?: (chunk: Buffer) => boolean): void {
  let i = 0;
  for (const chunk of chunks) {
    if (skip?.(chunk) === true) {
      i += marks.linesIn(i, chunk.length);
      continue;
    }
    for (let p = 0; p < chunk.length; i++) {
      p = marks.read(i, chunk, p, fields);
      fn(fields);
    }
  }
}

function at(buf: Buffer, p: number, token: Buffer): boolean {
  if (p + token.length > buf.length) return false;
  for (let i = 0; i < token.length; i++) if (buf[p + i] !== token[i]) return false;
  return true;
}

/** The index after the JSON string that opens at `p`. */
function stringEnd(buf: Buffer, p: number, limit: number): number {
  if (buf[p] !== QUOTE) throw malformed(buf, p, limit, 'a string');
  let q = p + 1;
  for (;;) {
    q = buf.indexOf(QUOTE, q);
    if (q < 0 || q >= limit) throw malformed(buf, p, limit, 'the end of a string');
    let backslashes = 0;
    while (buf[q - 1 - backslashes] === BACKSLASH) backslashes++;
    if ((backslashes & 1) === 0) return q + 1;
    q++;
  }
}

/** The index after the JSON object that opens at `p`. */
function objectEnd(buf: Buffer, p: number, limit: number): number {
  if (buf[p] !== 0x7b) throw malformed(buf, p, limit, 'an object');
  let depth = 0;
  for (let q = p; q < limit; ) {
    const c = buf[q]!;
    if (c === QUOTE) {
      q = stringEnd(buf, q, limit);
      continue;
    }
    if (c === 0x7b || c === 0x5b) depth++;
    else if ((c === 0x7d || c === 0x5d) && --depth === 0) return q + 1;
    q++;
  }
  throw malformed(buf, p, limit, 'the end of an object');
}

function digitsEnd(buf: Buffer, p: number): number {
  let q = p;
  while (q < buf.length && buf[q]! >= 0x30 && buf[q]! <= 0x39) q++;
  return q;
}

function decimal(buf: Buffer, p: number, e: number): number {
  let n = 0;
  for (let q = p; q < e; q++) n = n * 10 + (buf[q]! - 0x30);
  return n;
}

function stringValue(buf: Buffer, at: number, end: number): string {
  // Without a backslash the bytes between the quotes are the string's UTF-8.
  if (!buf.subarray(at + 1, end - 1).includes(BACKSLASH)) return buf.toString('utf8', at + 1, end - 1);
  return JSON.parse(buf.toString('utf8', at, end)) as string;
}

function malformed(buf: Buffer, start: number, end: number, what: string): Error {
  const line = buf.toString('utf8', start, Math.min(end, start + 200));
  return new Error(`not a line clogs rendered: expected ${what} in ${JSON.stringify(line)}`);
}
