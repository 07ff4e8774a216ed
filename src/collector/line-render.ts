/**
 * A complete line of text → its NDJSON event line, straight from its bytes,
 * for every input: the forward input's records (forward/packed-lines.ts) and
 * the Docker input's lines (docker/follower.ts) are written here, without a
 * LogEvent or a string of their own.
 *
 * The line is checked, escaped and copied in one pass; the date part of the
 * time is rendered once per second, and the stream/container/host/input part
 * once per container (once per tag for records without a container). A JSON line that json-members.ts can read has its
 * members copied out the same way, a logfmt line its pairs
 * (transforms/logfmt.ts LogfmtPairs), and a text line gets the level it
 * starts with (transforms/text-level.ts): the fields the Normalizer would
 * give it (normalize.ts), byte for byte, as test/unit/forward/packed-lines.test.ts
 * and test/unit/docker/follower-render.test.ts check against the general path.
 *
 * What only the Normalizer writes the same is refused (-1, nothing written):
 * a line the multiline stage holds or joins (`Normalizer.holds`), one over
 * `maxLineBytes`, control characters but tabs (terminal escapes, carriage
 * returns inside), malformed UTF-8, escapes to decode in a logfmt pair, a
 * repeated key. The caller hands such a line to `Normalizer.push` instead,
 * and since seq and ordinals are taken from the Normalizer as the line is
 * written, order and identity come out as if every line had gone there.
 */
import { put, putRange } from './byte-copy.js';
import type { EncodedBatch, EncodedSource } from './encoded.js';
import type { ContainerMeta, ContainerWithId as Container, Stream } from './event.js';
import { clogsHead, containerJson, hostJson, levelJson, LOG_LEVEL_OPEN, streamJson } from './event-json.js';
import { bytesEqual, plainWord, sameBytesAt, utf8End } from './json-bytes.js';
import { integerAt, JsonMembers, KIND_INTEGER, KIND_STRING } from './json-members.js';
import { parseJson, stringifyJson } from './json-values.js';
import { levelName } from './levels.js';
import { collectionCount, collectionHeaderBytes, isCollection, isMap, isStr, numberAt, SCALAR_BYTES, strEnd, strStart } from './msgpack-bytes.js';
import type { LineBuffer } from './line-buffer.js';
import { lineEnd } from './line-end.js';
import { LEVEL_KEYS, MESSAGE_KEYS, type Normalizer, type RawLine } from './normalize.js';
import { looseSourceName } from './source.js';
import { formatNanoTime } from './time.js';
import { LogfmtPairs } from './transforms/logfmt.js';
import { leadingLevelOfBytes } from './transforms/text-level.js';

const TIMESTAMP_OPEN = '{"@timestamp":"';
const MESSAGE_OPEN = Buffer.from('Z","message":');
const ORDINAL = Buffer.from(',"ordinal":');
const ATTRS_OPEN = Buffer.from(',"attrs":{');
const MESSAGE_KEY_BYTES = MESSAGE_KEYS.map((k) => Buffer.from(k));
const LEVEL_KEY_BYTES = LEVEL_KEYS.map((k) => Buffer.from(k));
/** Most pairs of a logfmt line written here (see logfmt()). */
const MAX_LOGFMT_PAIRS = 64;
/**
 * Bytes of a line besides its message and its stream/container/host/tag part,
 * at most: time, the message's quotes, seq and ordinal of up to 16 digits, `}}\n`.
 */
const FIXED_BYTES = TIMESTAMP_OPEN.length + 20 + 9 + MESSAGE_OPEN.length + 2 + 16 + ORDINAL.length + 16 + 3;

type Input = RawLine['input'];

/**
 * A forward record's other keys, which the Normalizer puts under attrs
 * before the line's own fields (normalize.ts, RawLine `extra`): per key,
 * EXTRA_SLOTS numbers in the memory of the line passed with them (key start
 * and end, value start and end, the value's kind), from `first` for `count`
 * keys. A string's value is its bytes; any other value is its msgpack bytes
 * (an integer of at most 32 bits, a float, true, false, nil, or a map or an
 * array of those and of strings, as msgpack-bytes.ts skipNested() took it).
 */
export interface ExtraFields {
  offsets: Int32Array;
  first: number;
  count: number;
}

export const EXTRA_SLOTS = 5;
export const EXTRA_STRING = 0;
export const EXTRA_NUMBER = 1;
export const EXTRA_TRUE = 2;
export const EXTRA_FALSE = 3;
export const EXTRA_NULL = 4;
export const EXTRA_NESTED = 5;
/**
 * The most keys a record, or a map under one of its keys, may have to be
 * written here: each is compared with those before it (a repeated key is the
 * general path's to write), so a map's cost grows with the square of its
 * keys. Measured on the worst of it, 8 MiB of records of 64 keys of 31
 * bytes that differ only in their last byte (top level or in a map): 0.5 s
 * here, against 0.3 s on the general path.
 */
export const MAX_WRITABLE_KEYS = 64;
/** The longest text of a number JSON.stringify writes (-1.2345678901234567e-308). */
const NUMBER_TEXT_BYTES = 24;
const TRUE = Buffer.from('true');
const FALSE = Buffer.from('false');
const NULL = Buffer.from('null');

const NO_EXTRAS: ExtraFields = { offsets: new Int32Array(0), first: 0, count: 0 };
const NOTHING = Buffer.alloc(0);
/** Tags whose lines' parts are kept: far more than the clients of one host use. */
const MAX_LOOSE_PARTS = 1024;
const PROTO_KEY = Buffer.from('__proto__');
/**
 * What is the same in every line of a container's stream (or of a tag's
 * records without a container) from one input under one tag: `,"stream":…,"container":{…},"host":{…}` (head), then
 * `,"clogs":{"input":…[,"tag":…],"seq":` (clogs), and the two together (line);
 * where the input's and the tag's strings end in `clogs` (tagEnd -1: no tag).
 */
interface Parts {
  line: Buffer;
  head: Buffer;
  clogs: Buffer;
  inputEnd: number;
  tagEnd: number;
  input: Input;
  tag: string | undefined;
}

interface ContainerParts {
  input: Input;
  tag: string | undefined;
  stdout: Parts | undefined;
  stderr: Parts | undefined;
}

export class LineRenderer {
  /**
   * The memory the lines are read from, whole, as a Buffer and a DataView:
   * a line comes as a view into it (a request, a socket read) and is read
   * at its offsets there, so the views are made once per memory, not once
   * per line (measured on the Docker input, one line per view: ~6 % of the
   * main thread in `new DataView`).
   */
  private srcMemory: ArrayBufferLike = new ArrayBuffer(0);
  private srcWhole: Buffer = Buffer.alloc(0);
  private srcView: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(0));
  /**
   * The view the last line came in and its offset in srcMemory, read once
   * per view: lines come in runs of one view (a request), and each read of a
   * Buffer's `buffer` or `byteOffset` costs about 11 ns (byte-copy.ts).
   */
  private srcLine: Buffer | undefined;
  private srcOffset = 0;
  /** The chunk being written, as a DataView: four bytes per write. */
  private dstView: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(0));
  private readonly partsByContainer = new WeakMap<ContainerMeta, ContainerParts>();
  private lastPartsContainer: Container | undefined;
  private lastPartsStream: Stream | undefined;
  private lastPartsInput: Input | undefined;
  private lastPartsTag: string | undefined;
  private lastParts: Parts = { line: Buffer.alloc(0), head: Buffer.alloc(0), clogs: Buffer.alloc(0), inputEnd: 0, tagEnd: -1, input: 'forward', tag: undefined };
  /** The parts of lines without a container, by input and tag; started over past MAX_LOOSE_PARTS. */
  private readonly looseParts = new Map<string, Parts>();
  // Where the line being written starts in its chunk, and where its fields
  // went there (-1: absent), for its LineMarks record (close()).
  private lineAt = 0;
  private messageEnd = 0;
  /**
   * Where the message starts in the chunk when it is the whole line, escaped
   * by string() (-1 otherwise), and the line's bytes in its memory: a record
   * key holding the line (a record without a container keeps its `log` under
   * attrs too) copies that string instead of escaping the line again.
   */
  private lineStringAt = -1;
  private lineStart = 0;
  private lineEnd = 0;
  private levelAt = -1;
  private levelEnd = -1;
  private attrsAt = -1;
  private clogsAt = 0;
  /** The record's other keys, for the line being written, and what to add to their offsets (its memory's offset). */
  private extras = NO_EXTRAS;
  private extrasShift = 0;
  private readonly members = new JsonMembers();
  /** The keys of the maps nested() is in, as start and end pairs, each map's from where its own begin. */
  private readonly nestedKeys: number[] = [];
  private readonly pairs = new LogfmtPairs();
  private lastSeq = Number.NaN;
  private readonly seqDigits = Buffer.alloc(24);
  private seqLength = 0;
  /**
   * `{"@timestamp":"` and the time to the second, of the last two seconds
   * rendered: requests read together from several containers (Message mode
   * in the order the requests came, Fluent Bit's mixed PackedForward) go back and forth
   * across a second's turn. Measured on the Message-mode bench with one
   * second kept: 1.3 % of the collector's CPU re-rendering them.
   */
  private prefixSec = Number.NaN;
  private prefix: Buffer = Buffer.alloc(0);
  private otherPrefixSec = Number.NaN;
  private otherPrefix: Buffer = Buffer.alloc(0);

  constructor(private readonly normalizer: Normalizer) {}

  /**
   * Writes the line `line[start, end)` (without its "\n"; a trailing "\r" is
   * dropped) of a container's stream, at `sec`.`nsec`, into `out`, and returns
   * its ordinal; -1 when it is the Normalizer's to write (nothing written).
   * Without a container (a forward client's record), the line has no stream
   * and is its tag's. `extras`: the record's other keys, at offsets of
   * `line`'s memory too.
   */
  line(
    line: Buffer,
    start: number,
    end: number,
    out: EncodedBatch,
    container: Container | undefined,
    stream: Stream | undefined,
    sec: number,
    nsec: number,
    input: Input,
    tag: string | undefined,
    extras: ExtraFields = NO_EXTRAS,
  ): number {
    end = lineEnd(line, start, end);
    const normalizer = this.normalizer;
    if (end - start > normalizer.maxLineBytes || normalizer.holds(container, tag, input, stream, line, start, end)) return -1;
    if (line !== this.srcLine) this.readFrom(line);
    const buf = this.srcWhole;
    const shift = this.srcOffset;
    start += shift;
    end += shift;
    this.lineStart = start;
    this.lineEnd = end;
    this.extras = extras;
    this.extrasShift = shift;
    let extrasLevel: string | undefined;
    if (extras.count > 0) {
      if (!this.extrasWritable()) return -1;
      extrasLevel = this.extrasLevel();
    }
    const source = out.source(container, looseSourceName(tag, input));
    const parts = this.parts(container, stream, input, tag);
    if (normalizer.parseJson && end > start && buf[start] === 0x7b /* { */ && buf[end - 1] === 0x7d /* } */) {
      return this.members.scan(buf, this.srcView, start, end) ? this.json(buf, start, end, source, parts, container, stream, sec, nsec, extrasLevel) : -1;
    }
    if (normalizer.parseLogfmt && this.pairs.read(buf, start, end)) return this.logfmt(buf, start, end, source, parts, container, stream, sec, nsec, extrasLevel);
    // The record's level comes before the one a text line starts with (normalize.ts).
    const level = extrasLevel ?? leadingLevelOfBytes(buf, start, end);
    return level === null ? -1 : this.plain(buf, start, end, source, parts, container, stream, sec, nsec, level);
  }

  /** Reads lines from `line`'s memory from now on. */
  private readFrom(line: Buffer): void {
    this.srcLine = line;
    this.srcOffset = line.byteOffset;
    const memory = line.buffer;
    if (memory === this.srcMemory) return;
    this.srcMemory = memory;
    this.srcWhole = Buffer.from(memory);
    this.srcView = new DataView(memory);
  }

  /**
   * Whether the record's other keys come out under attrs as the Normalizer
   * writes them, first and in their order: no key twice, none that an object
   * orders first (an array index) or treats apart (`__proto__`), and at most
   * MAX_WRITABLE_KEYS of them.
   */
  private extrasWritable(): boolean {
    const { offsets: e, first, count } = this.extras;
    if (count > MAX_WRITABLE_KEYS) return false;
    const buf = this.srcWhole;
    const shift = this.extrasShift;
    for (let i = first; i < first + count; i++) {
      const x = EXTRA_SLOTS * i;
      const at = e[x]! + shift;
      const len = e[x + 1]! + shift - at;
      if (isSpecialKey(buf, at, len)) return false;
      for (let j = first; j < i; j++) {
        const y = EXTRA_SLOTS * j;
        if (e[y + 1]! - e[y]! === len && sameBytesAt(buf, e[y]! + shift, at, len)) return false;
      }
    }
    return true;
  }

  /** The level a record's other key names, by the keys a JSON line's would (normalize.ts levelOf). */
  private extrasLevel(): string | undefined {
    const { offsets: e, first, count } = this.extras;
    const buf = this.srcWhole;
    const shift = this.extrasShift;
    for (const key of LEVEL_KEY_BYTES) {
      for (let i = first; i < first + count; i++) {
        const x = EXTRA_SLOTS * i;
        const at = e[x]! + shift;
        if (!bytesEqual(buf, at, e[x + 1]! + shift - at, key)) continue;
        const kind = e[x + 4];
        const value = kind === EXTRA_STRING ? buf.toString('utf8', e[x + 2]! + shift, e[x + 3]! + shift) : kind === EXTRA_NUMBER ? numberAt(buf, e[x + 2]! + shift) : undefined;
        const level = levelName(value);
        if (level !== undefined) return level;
        break;
      }
    }
    return undefined;
  }

  /** Whether one of the record's other keys is `len` bytes at `at` of the line's memory. */
  private isExtraKey(buf: Buffer, at: number, len: number): boolean {
    const { offsets: e, first, count } = this.extras;
    const shift = this.extrasShift;
    for (let i = first; i < first + count; i++) {
      const x = EXTRA_SLOTS * i;
      if (e[x + 1]! - e[x]! === len && sameBytesAt(buf, e[x]! + shift, at, len)) return true;
    }
    return false;
  }

  /** Bytes the record's other keys take under attrs, at most (each string escaped at twice its size). */
  private extrasRoom(): number {
    const { offsets: e, first, count } = this.extras;
    let n = 0;
    for (let i = first; i < first + count; i++) {
      const x = EXTRA_SLOTS * i;
      const kind = e[x + 4];
      const valueBytes = e[x + 3]! - e[x + 2]!;
      // A nested value's JSON: at most six bytes per msgpack byte (a 5-byte float32 writes up to 24).
      n += 2 * (e[x + 1]! - e[x]!) + (kind === EXTRA_STRING ? 2 * valueBytes : kind === EXTRA_NESTED ? 6 * valueBytes : NUMBER_TEXT_BYTES) + 6;
    }
    return n + ATTRS_OPEN.length + 1;
  }

  /**
   * The record's other keys as the first members of attrs, at `o`; returns
   * where they end, or -1 for a string only the Normalizer writes the same.
   */
  private extraMembers(buf: Buffer, dst: Buffer, o: number): number {
    const { offsets: e, first, count } = this.extras;
    const shift = this.extrasShift;
    for (let i = first; i < first + count && o >= 0; i++) {
      const x = EXTRA_SLOTS * i;
      o = this.attrsMember(dst, o, i === first);
      o = this.string(buf, e[x]! + shift, e[x + 1]! + shift, dst, o);
      if (o < 0) break;
      dst[o++] = 0x3a;
      const valueAt = e[x + 2]! + shift;
      const valueEnd = e[x + 3]! + shift;
      const kind = e[x + 4];
      if (kind === EXTRA_STRING) {
        if (this.lineStringAt >= 0 && valueAt === this.lineStart && valueEnd === this.lineEnd) {
          dst.copyWithin(o, this.lineStringAt, this.messageEnd);
          o += this.messageEnd - this.lineStringAt;
        } else {
          o = this.string(buf, valueAt, valueEnd, dst, o);
        }
      } else if (kind === EXTRA_NESTED) {
        this.nestedKeys.length = 0;
        o = this.nested(buf, valueAt, dst, o).o;
      } else {
        o = scalarJson(buf, valueAt, dst, o);
      }
    }
    return o;
  }

  /**
   * The map or array at `p` as JSON.stringify writes what the decoder makes
   * of it (msgpack.ts value()), at `o`: where it ends in both (o -1 for what
   * only the general path writes the same: a key an object orders first or
   * treats apart, a repeated key, a string with control characters or
   * malformed UTF-8). Scalars as extraMembers() writes them.
   */
  private nested(buf: Buffer, p: number, dst: Buffer, o: number): { p: number; o: number } {
    const b = buf[p]!;
    const n = collectionCount(buf, p);
    const map = isMap(b);
    p += collectionHeaderBytes(b);
    dst[o++] = map ? 0x7b : 0x5b;
    const keys = this.nestedKeys;
    const base = keys.length;
    for (let i = 0; i < n; i++) {
      if (i > 0) dst[o++] = 0x2c;
      if (map) {
        const keyAt = strStart(buf, p);
        const keyEnd = strEnd(buf, p);
        const len = keyEnd - keyAt;
        if (isSpecialKey(buf, keyAt, len)) return { p, o: -1 };
        for (let j = base; j < keys.length; j += 2) if (keys[j + 1]! - keys[j]! === len && sameBytesAt(buf, keys[j]!, keyAt, len)) return { p, o: -1 };
        keys.push(keyAt, keyEnd);
        o = this.string(buf, keyAt, keyEnd, dst, o);
        if (o < 0) return { p, o: -1 };
        dst[o++] = 0x3a;
        p = keyEnd;
      }
      const v = buf[p]!;
      if (isStr(v)) {
        const valueEnd = strEnd(buf, p);
        o = this.string(buf, strStart(buf, p), valueEnd, dst, o);
        p = valueEnd;
      } else if (isCollection(v)) {
        const inner = this.nested(buf, p, dst, o);
        p = inner.p;
        o = inner.o;
      } else {
        o = scalarJson(buf, p, dst, o);
        p += SCALAR_BYTES[v]!;
      }
      if (o < 0) return { p, o: -1 };
    }
    keys.length = base;
    dst[o++] = map ? 0x7d : 0x5d;
    return { p, o };
  }

  /**
   * A line of printable ASCII, tabs and well-formed UTF-8, written as a JSON
   * string, with the level it starts with; its ordinal, or -1 (nothing
   * written) for any other: other control characters (terminal escapes, carriage returns) and
   * malformed UTF-8 take the Normalizer's path.
   */
  private plain(buf: Buffer, start: number, end: number, source: EncodedSource, parts: Parts, container: Container | undefined, stream: Stream | undefined, sec: number, nsec: number, level: string | undefined): number {
    const lines = source.lines;
    // An escape doubles a byte at most.
    const extras = this.extras.count > 0;
    const dst = this.room(lines, FIXED_BYTES + 2 * (end - start) + parts.line.length + MAX_LEVEL_BYTES + (extras ? this.extrasRoom() : 0));
    const at = this.open(dst, lines.offset, sec, nsec);
    let o = this.string(buf, start, end, dst, at);
    if (o < 0) return -1;
    this.messageEnd = o;
    this.lineStringAt = at;
    if (extras) {
      o = this.extraMembers(buf, dst, this.headAndLevel(dst, o, parts, level));
      if (o < 0) return -1;
      dst[o++] = 0x7d;
      o = this.clogs(dst, o, parts);
    } else if (level === undefined) {
      this.clogsAt = o + parts.head.length;
      o = put(parts.line, dst, o);
    } else {
      o = this.headAndLevel(dst, o, parts, level);
      o = this.clogs(dst, o, parts);
    }
    return this.close(dst, o, source, parts, container, stream, sec, nsec);
  }

  /**
   * A logfmt line the pairs read, its fields as the Normalizer makes them of
   * it (normalize.ts structuredLine): message and level taken out by the keys
   * JSON lines use, the other pairs under attrs as strings; its ordinal, or
   * -1 (nothing written) for what only the Normalizer writes the same: escapes to decode,
   * a repeated key, a key an object orders first (an array index), control
   * characters or malformed UTF-8.
   */
  private logfmt(buf: Buffer, start: number, end: number, source: EncodedSource, parts: Parts, container: Container | undefined, stream: Stream | undefined, sec: number, nsec: number, extrasLevel: string | undefined): number {
    const pairs = this.pairs;
    const n = pairs.count;
    // Each pair is compared with every one before it: past MAX_LOGFMT_PAIRS
    // that is quadratic in the line (a 200 KB line took 1.5 s), where the
    // Normalizer's parse builds an object in linear time.
    if (n > MAX_LOGFMT_PAIRS) return -1;
    for (let i = 0; i < n; i++) {
      if (pairs.escaped[i] === 1 || isIndexKey(buf, pairs.keyAt[i]!, pairs.keyEnd[i]!)) return -1;
      for (let j = 0; j < i; j++) if (sameKey(buf, pairs, i, j)) return -1;
    }
    const extras = this.extras.count > 0;
    let message = -1;
    for (const key of MESSAGE_KEY_BYTES) if ((message = this.pairNamed(buf, key)) >= 0) break;
    let levelAt = -1;
    let level: string | undefined;
    for (const key of LEVEL_KEY_BYTES) {
      const i = this.pairNamed(buf, key);
      if (i < 0) continue;
      level = levelName(buf.toString('utf8', pairs.valueAt[i]!, pairs.valueEnd[i]!));
      if (level !== undefined) {
        levelAt = i;
        break;
      }
    }
    if (extras) {
      level ??= extrasLevel;
      // A pair under the key of one of the record's: the Normalizer keeps the record's place.
      for (let i = 0; i < n; i++) if (i !== message && i !== levelAt && this.isExtraKey(buf, pairs.keyAt[i]!, pairs.keyEnd[i]! - pairs.keyAt[i]!)) return -1;
    }
    const lines = source.lines;
    // The line escaped as the message (twice its size at most), and each pair
    // again under attrs: escaped, quoted and separated, at most three times its size.
    const dst = this.room(lines, FIXED_BYTES + 6 * (end - start) + parts.line.length + MAX_LEVEL_BYTES + 16 + (extras ? this.extrasRoom() : 0));
    let o = this.open(dst, lines.offset, sec, nsec);
    const at = o;
    o = message < 0 ? this.string(buf, start, end, dst, o) : this.string(buf, pairs.valueAt[message]!, pairs.valueEnd[message]!, dst, o);
    if (o < 0) return -1;
    this.messageEnd = o;
    if (message < 0) this.lineStringAt = at;
    o = this.headAndLevel(dst, o, parts, level);
    let first = true;
    if (extras) {
      o = this.extraMembers(buf, dst, o);
      first = false;
    }
    for (let i = 0; i < n && o >= 0; i++) {
      if (i === message || i === levelAt) continue;
      o = this.attrsMember(dst, o, first);
      first = false;
      o = this.string(buf, pairs.keyAt[i]!, pairs.keyEnd[i]!, dst, o);
      if (o < 0) break;
      dst[o++] = 0x3a;
      o = this.string(buf, pairs.valueAt[i]!, pairs.valueEnd[i]!, dst, o);
    }
    if (o < 0) return -1;
    if (!first) dst[o++] = 0x7d;
    o = this.clogs(dst, o, parts);
    return this.close(dst, o, source, parts, container, stream, sec, nsec);
  }

  /** The pair whose key is `key`; -1 if none. */
  private pairNamed(buf: Buffer, key: Buffer): number {
    const pairs = this.pairs;
    for (let i = 0; i < pairs.count; i++) if (bytesEqual(buf, pairs.keyAt[i]!, pairs.keyEnd[i]! - pairs.keyAt[i]!, key)) return i;
    return -1;
  }

  /**
   * Bytes [start, end) as a JSON string at `o`, as JSON.stringify writes
   * their text, and where it ends; -1 for bytes only the Normalizer writes the
   * same (control characters but tabs, malformed UTF-8). A negative `o` stays -1.
   */
  private string(buf: Buffer, start: number, end: number, dst: Buffer, o: number): number {
    if (o < 0) return -1;
    dst[o++] = 0x22;
    const src = this.srcView;
    const out = this.dstView;
    let p = start;
    while (p < end) {
      // Runs of bytes JSON leaves as they are, four at a time: measured on a
      // 120-byte line, 185 ns against 290 for a byte loop.
      for (; p + 4 <= end; p += 4, o += 4) {
        const x = src.getUint32(p);
        if (!plainWord(x)) break;
        out.setUint32(o, x);
      }
      if (p >= end) break;
      const b = buf[p]!;
      if (b >= 0x20 && b < 0x80) {
        if (b === 0x22 || b === 0x5c) dst[o++] = 0x5c;
        dst[o++] = b;
        p++;
      } else if (b === 0x09) {
        dst[o++] = 0x5c;
        dst[o++] = 0x74;
        p++;
      } else if (b < 0x20) {
        return -1;
      } else {
        const next = utf8End(buf, p, end);
        if (next < 0) return -1;
        while (p < next) dst[o++] = buf[p++]!;
      }
    }
    dst[o++] = 0x22;
    return o;
  }

  /** A JSON line json-members.ts accepted: message, level and the other fields copied out of it; its ordinal, or -1 for a level number written another way (30.0). */
  private json(buf: Buffer, start: number, end: number, source: EncodedSource, parts: Parts, container: Container | undefined, stream: Stream | undefined, sec: number, nsec: number, extrasLevel: string | undefined): number {
    const m = this.members;
    let message = -1;
    for (const key of MESSAGE_KEY_BYTES) {
      const i = m.find(buf, key);
      if (i >= 0 && m.kind[i] === KIND_STRING) {
        message = i;
        break;
      }
    }
    let levelAt = -1;
    let level: string | undefined;
    for (const key of LEVEL_KEY_BYTES) {
      const i = m.find(buf, key);
      if (i < 0) continue;
      const kind = m.kind[i];
      const at = m.valueAt[i]!;
      const valueEnd = m.valueEnd[i]!;
      if (kind === KIND_INTEGER) level = levelName(integerAt(buf, at, valueEnd));
      else if (kind === KIND_STRING) level = levelName(m.escaped[i] ? (JSON.parse(buf.toString('utf8', at, valueEnd)) as string) : buf.toString('utf8', at + 1, valueEnd - 1));
      // A number written another way (30.0, 3e1) may still name a level.
      else if (m.rewrite[i]) return -1;
      if (level !== undefined) {
        levelAt = i;
        break;
      }
    }
    let rewrites = false;
    for (let i = 0; i < m.count; i++) rewrites ||= m.rewrite[i] === 1;
    const extras = this.extras.count > 0;
    if (extras) {
      level ??= extrasLevel;
      for (let i = 0; i < m.count; i++) {
        if (i === message || i === levelAt) continue;
        const at = m.keyAt[i]!;
        const len = m.keyEnd[i]! - at;
        // A member under the key of one of the record's: the Normalizer keeps the
        // record's place. A key with escapes is compared by its bytes nowhere.
        if (hasBackslash(buf, at, at + len) || this.isExtraKey(buf, at, len)) return -1;
      }
    }
    const lines = source.lines;
    // The line escaped as the message, at most twice its size, when it has no
    // message field; a rewritten number can take five times its size (9e20).
    const dst = this.room(lines, FIXED_BYTES + (rewrites ? 6 : 3) * (end - start) + parts.head.length + parts.clogs.length + MAX_LEVEL_BYTES + (extras ? this.extrasRoom() : 0));
    let o = this.open(dst, lines.offset, sec, nsec);
    if (message >= 0) {
      o = this.value(buf, message, dst, o);
    } else {
      dst[o++] = 0x22;
      for (let p = start; p < end; p++) {
        const b = buf[p]!;
        if (b === 0x22 || b === 0x5c) dst[o++] = 0x5c;
        dst[o++] = b;
      }
      dst[o++] = 0x22;
    }
    this.messageEnd = o;
    o = this.headAndLevel(dst, o, parts, level);
    let first = true;
    if (extras) {
      o = this.extraMembers(buf, dst, o);
      if (o < 0) return -1;
      first = false;
    }
    for (let i = 0; i < m.count; i++) {
      if (i === message || i === levelAt) continue;
      o = this.attrsMember(dst, o, first);
      first = false;
      if (m.rewrite[i] === 0) {
        // Members in a row that are copied as they are go at once, with the
        // commas between them: the line has no whitespace outside strings.
        let last = i;
        while (last + 1 < m.count && last + 1 !== message && last + 1 !== levelAt && m.rewrite[last + 1] === 0) last++;
        o = this.copyOut(m.keyAt[i]! - 1, m.valueEnd[last]!, dst, o);
        i = last;
        continue;
      }
      // The key with its quotes and colon, then the value.
      o = this.copyOut(m.keyAt[i]! - 1, m.valueAt[i]!, dst, o);
      o = this.value(buf, i, dst, o);
    }
    if (!first) dst[o++] = 0x7d;
    o = this.clogs(dst, o, parts);
    return this.close(dst, o, source, parts, container, stream, sec, nsec);
  }

  /** Member `i`'s value as JSON.stringify writes it: copied, or parsed and written anew when json-members.ts marked it. */
  private value(buf: Buffer, i: number, dst: Buffer, o: number): number {
    const m = this.members;
    const at = m.valueAt[i]!;
    const end = m.valueEnd[i]!;
    if (m.rewrite[i] === 0) return this.copyOut(at, end, dst, o);
    return o + dst.write(stringifyJson(parseJson(buf.toString('utf8', at, end))), o, 'utf8');
  }

  /**
   * Bytes [start, end) of the lines' memory, as they are, at `o`. Measured
   * (2026-11-30): four bytes a step through DataViews take about 0.5 ns a
   * byte, a native copy about 47 ns whatever the size (mostly the view it
   * needs).
   */
  private copyOut(start: number, end: number, dst: Buffer, o: number): number {
    if (end - start < NATIVE_COPY_BYTES) return copyBytes(this.srcView, start, end, this.dstView, o);
    return putRange(this.srcMemory, start, end, dst, o);
  }

  /** `{"@timestamp":"…","message":` */
  private open(dst: Buffer, o: number, sec: number, nsec: number): number {
    this.lineAt = o;
    this.levelAt = this.levelEnd = this.attrsAt = this.lineStringAt = -1;
    if (sec !== this.prefixSec) {
      const prefix = sec === this.otherPrefixSec ? this.otherPrefix : Buffer.from(TIMESTAMP_OPEN + formatNanoTime(sec, 0).slice(0, 20));
      this.otherPrefixSec = this.prefixSec;
      this.otherPrefix = this.prefix;
      this.prefixSec = sec;
      this.prefix = prefix;
    }
    o = writePadded(dst, put(this.prefix, dst, o), nsec, 9);
    return copy(MESSAGE_OPEN, dst, o);
  }

  /** The numbers after `"seq":`, the end of the line, and the line marked; returns its ordinal. */
  private close(dst: Buffer, o: number, source: EncodedSource, parts: Parts, container: Container | undefined, stream: Stream | undefined, sec: number, nsec: number): number {
    const normalizer = this.normalizer;
    o = this.writeSeq(dst, o, normalizer.nextSeq());
    const seqEnd = o;
    o = copy(ORDINAL, dst, o);
    const ordinal = normalizer.ordinal(container, parts.tag, parts.input, stream, sec, nsec);
    o = writeUint(dst, o, ordinal);
    dst[o++] = 0x7d;
    dst[o++] = 0x7d;
    dst[o++] = 0x0a;
    source.lines.offset = o;
    source.lines.endLine();
    const at = this.lineAt;
    const clogsAt = this.clogsAt - at;
    source.marks.add(
      this.messageEnd - at,
      stream,
      this.levelAt < 0 ? -1 : this.levelAt - at,
      this.levelEnd < 0 ? -1 : this.levelEnd - at,
      this.attrsAt < 0 ? -1 : this.attrsAt - at,
      clogsAt,
      clogsAt + parts.inputEnd,
      parts.tagEnd < 0 ? -1 : clogsAt + parts.tagEnd,
      seqEnd - at,
      ordinal,
      -1,
      o - at,
    );
    return ordinal;
  }

  /** `,"stream":…,"container":{…},"host":{…}`, then `,"log":{…}` with a level. */
  private headAndLevel(dst: Buffer, o: number, parts: Parts, level: string | undefined): number {
    o = put(parts.head, dst, o);
    if (level === undefined) return o;
    const bytes = levelBytes(level);
    this.levelAt = o + LOG_LEVEL_OPEN.length;
    this.levelEnd = o + bytes.length - 1;
    return copy(bytes, dst, o);
  }

  /** What goes before a member of attrs: `,"attrs":{` before the first, else a comma. */
  private attrsMember(dst: Buffer, o: number, first: boolean): number {
    if (first) {
      this.attrsAt = o + ATTRS_OPEN.length - 1;
      return copy(ATTRS_OPEN, dst, o);
    }
    dst[o] = 0x2c;
    return o + 1;
  }

  /** `,"clogs":{"input":…[,"tag":…],"seq":` */
  private clogs(dst: Buffer, o: number, parts: Parts): number {
    this.clogsAt = o;
    return put(parts.clogs, dst, o);
  }

  /** `lines.room(n)`; `dstView` is then a DataView of the same chunk, for the writes of this record. */
  private room(lines: LineBuffer, n: number): Buffer {
    const dst = lines.room(n);
    this.dstView = lines.view;
    return dst;
  }

  /**
   * `seq` in decimal. Sequence numbers mostly go up by one from line to line:
   * the last one's digits are kept and counted up in place, which saves the
   * 16 divisions of writing it anew.
   */
  private writeSeq(dst: Buffer, o: number, seq: number): number {
    const digits = this.seqDigits;
    if (seq === this.lastSeq + 1) {
      let i = this.seqLength - 1;
      while (i >= 0 && digits[i] === 0x39) digits[i--] = 0x30;
      if (i >= 0) digits[i]!++;
      else this.seqLength = writeUint(digits, 0, seq);
    } else {
      this.seqLength = writeUint(digits, 0, seq);
    }
    this.lastSeq = seq;
    for (let i = 0; i < this.seqLength; i++) dst[o + i] = digits[i]!;
    return o + this.seqLength;
  }

  /** The constant parts of a source's lines on one stream from one input under one tag. */
  private parts(container: Container | undefined, stream: Stream | undefined, input: Input, tag: string | undefined): Parts {
    if (container === this.lastPartsContainer && stream === this.lastPartsStream && input === this.lastPartsInput && tag === this.lastPartsTag) return this.lastParts;
    let parts: Parts | undefined;
    if (container === undefined) {
      const key = `${input}\0${stream ?? ''}\0${tag === undefined ? '' : `\0${tag}`}`;
      parts = this.looseParts.get(key);
      if (parts === undefined) {
        if (this.looseParts.size >= MAX_LOOSE_PARTS) this.looseParts.clear();
        this.looseParts.set(key, (parts = this.newParts(undefined, stream, input, tag)));
      }
    } else {
      let m = this.partsByContainer.get(container);
      if (m === undefined || m.input !== input || m.tag !== tag) {
        m = { input, tag, stdout: undefined, stderr: undefined };
        this.partsByContainer.set(container, m);
      }
      parts = stream === 'stdout' ? m.stdout : m.stderr;
      if (parts === undefined) {
        parts = this.newParts(container, stream, input, tag);
        if (stream === 'stdout') m.stdout = parts;
        else m.stderr = parts;
      }
    }
    this.lastPartsContainer = container;
    this.lastPartsStream = stream;
    this.lastPartsInput = input;
    this.lastPartsTag = tag;
    return (this.lastParts = parts);
  }

  private newParts(container: Container | undefined, stream: Stream | undefined, input: Input, tag: string | undefined): Parts {
    const head = Buffer.concat([Buffer.from(streamJson(stream)), container === undefined ? NOTHING : containerJson(container), Buffer.from(hostJson(this.normalizer.hostField))]);
    const c = clogsHead(input, tag);
    const clogs = Buffer.from(c.json);
    return { line: Buffer.concat([head, clogs]), head, clogs, inputEnd: c.inputEnd, tagEnd: c.tagEnd, input, tag };
  }
}

/**
 * Bytes [start, end) of `src` to `dst` at `o`, four at a time. Not
 * Buffer#copy: with a range it costs ~175 ns a call here, a 120-byte line's
 * worth of this loop.
 */
function copyBytes(src: DataView, start: number, end: number, dst: DataView, o: number): number {
  for (; start + 4 <= end; start += 4, o += 4) dst.setUint32(o, src.getUint32(start));
  for (; start < end; start++, o++) dst.setUint8(o, src.getUint8(start));
  return o;
}

/** From this many bytes on, copyOut() makes a view and copies natively. */
const NATIVE_COPY_BYTES = 96;

/** Short constants: a loop beats the native copy's call cost. */
function copy(src: Buffer, dst: Buffer, o: number): number {
  for (let i = 0; i < src.length; i++) dst[o + i] = src[i]!;
  return o + src.length;
}

/** "00" to "99", back to back. */
const DIGIT_PAIRS = Buffer.from(Array.from({ length: 100 }, (_, i) => String(i).padStart(2, '0')).join(''));

/** `n` (0 <= n < 10^digits) in exactly `digits` digits. */
function writePadded(dst: Buffer, o: number, n: number, digits: number): number {
  // Two digits a step: half the divisions.
  let p = o + digits;
  while (p - o >= 2) {
    const r = n % 100;
    n = (n / 100) | 0;
    dst[--p] = DIGIT_PAIRS[2 * r + 1]!;
    dst[--p] = DIGIT_PAIRS[2 * r]!;
  }
  if (p > o) dst[o] = 0x30 + (n % 10);
  return o + digits;
}

/**
 * A non-negative safe integer in decimal, as JSON.stringify writes it. Split
 * in halves below 10^8 so the digit loop runs on small integers.
 */
function writeUint(dst: Buffer, o: number, n: number): number {
  // Most ordinals.
  if (n < 10) {
    dst[o] = 0x30 + n;
    return o + 1;
  }
  if (n >= 1e8) {
    const high = Math.floor(n / 1e8);
    return writePadded(dst, writeUint(dst, o, high), n - high * 1e8, 8);
  }
  let digits = 1;
  for (let x = n; x >= 10; x = (x / 10) | 0) digits++;
  return writePadded(dst, o, n, digits);
}

/**
 * `,"log":{"level":…}` of the level names seen, written once each. A level
 * is any short string (levels.ts), so the first few distinct ones are kept.
 */
const LEVEL_BYTES = new Map<string, Buffer>();
const MAX_LEVELS_KEPT = 64;
/** A level is at most 16 characters, each at most six bytes escaped, in `,"log":{"level":""}`. */
const MAX_LEVEL_BYTES = 16 * 6 + 20;

function levelBytes(level: string): Buffer {
  let bytes = LEVEL_BYTES.get(level);
  if (bytes === undefined) {
    bytes = Buffer.from(levelJson(level));
    if (LEVEL_BYTES.size < MAX_LEVELS_KEPT) LEVEL_BYTES.set(level, bytes);
  }
  return bytes;
}

/** Whether bytes [at, end) hold a backslash: a key's few bytes, read without a Buffer view per key. */
function hasBackslash(buf: Buffer, at: number, end: number): boolean {
  for (let i = at; i < end; i++) if (buf[i] === 0x5c) return true;
  return false;
}

/**
 * The msgpack nil, boolean or number at `p` (SCALAR_BYTES) as JSON.stringify
 * writes what the decoder makes of it (a number not finite: null), at `o`.
 */
function scalarJson(buf: Buffer, p: number, dst: Buffer, o: number): number {
  const b = buf[p]!;
  if (b === 0xc0) return copy(NULL, dst, o);
  if (b === 0xc2) return copy(FALSE, dst, o);
  if (b === 0xc3) return copy(TRUE, dst, o);
  const n = numberAt(buf, p);
  return o + dst.write(Number.isFinite(n) ? String(n) : 'null', o, 'latin1');
}

/** Whether a key is one an object orders first (an array index) or treats apart (`__proto__`). */
function isSpecialKey(buf: Buffer, at: number, len: number): boolean {
  return isIndexKey(buf, at, at + len) || bytesEqual(buf, at, len, PROTO_KEY);
}

/** Whether a key is an array index ("0" to "4294967294"), which a JavaScript object puts before its other keys. */
function isIndexKey(buf: Buffer, at: number, end: number): boolean {
  if (end - at > 10 || end === at) return false;
  for (let i = at; i < end; i++) if (buf[i]! < 0x30 || buf[i]! > 0x39) return false;
  if (buf[at] === 0x30 && end - at > 1) return false;
  return Number(buf.toString('latin1', at, end)) < 4294967295;
}

function sameKey(buf: Buffer, pairs: LogfmtPairs, i: number, j: number): boolean {
  const at = pairs.keyAt[i]!;
  const len = pairs.keyEnd[i]! - at;
  return pairs.keyEnd[j]! - pairs.keyAt[j]! === len && sameBytesAt(buf, pairs.keyAt[j]!, at, len);
}
