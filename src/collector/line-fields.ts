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
 * filters, the Docker backfill match) need a few of those fields, not an
 * object graph: they read them here from the bytes, and decode only the
 * strings they compare. Measured against JSON.parse of the line, which the
 * pipeline did for every live subscriber and every sink but the file sink:
 * see bench/forward.bench.ts `tail` and `es`.
 *
 * Only lines clogs rendered are read here: a line of any other shape is a
 * bug upstream, and read() throws rather than guess.
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

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** One line's field positions; read() refills the same object line after line. */
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

/** Each line of `chunks` (whole lines, as an EncodedSource holds them), read into `fields` in turn. */
export function forEachLine(chunks: readonly Buffer[], fields: LineFields, fn: (fields: LineFields) => void): void {
  for (const chunk of chunks) {
    for (let p = 0; p < chunk.length; ) {
      p = fields.read(chunk, p);
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
