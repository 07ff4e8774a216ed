/**
 * PackedForward entries → NDJSON lines, straight from the msgpack bytes; so
 * too runs of Message-mode requests as they were read (checkMessages()).
 *
 * The common record, Docker's keys (`container_id`, `container_name`,
 * `source`, `log`) with a stdout or stderr line of text (printable ASCII,
 * tabs, well-formed UTF-8), becomes its line without a string or an object
 * of its own: the date part of the time is rendered once per second, the
 * stream/container/host/tag part once per container, and the line's bytes
 * are checked, escaped and copied in one pass. A JSON line that
 * json-members.ts can read has its members copied out the same way, a
 * logfmt line its pairs (transforms/logfmt.ts LogfmtPairs), and a text line
 * gets the level it starts with (transforms/text-level.ts).
 *
 * Any other record takes the general path in place (decoder.ts, records.ts,
 * the Normalizer, event-json.ts), and any other line, or one the multiline
 * stage holds (`Normalizer.holds`), goes through the Normalizer
 * from the offsets already found, so order, seq and ordinals come
 * out exactly as if every record had taken the general path;
 * test/unit/forward/packed-lines.test.ts compares the two byte for byte.
 *
 * Measured (bench/forward.bench.ts `micro`, CPU per record, framing and
 * decoding the request included): 0.6-0.85 µs for a plain line, 1.4-1.5 µs
 * for a pino JSON line, against 3.4-4.6 µs on the general path.
 */
import type { EncodedBatch, EncodedSource } from '../encoded.js';
import type { LineBuffer } from '../line-buffer.js';
import type { ContainerMeta, LogEvent, Stream } from '../event.js';
import { clogsHead, containerJson, hostJson, levelJson, streamJson } from '../event-json.js';
import { plainWord, utf8End } from '../json-bytes.js';
import { integerAt, JsonMembers, KIND_INTEGER, KIND_STRING } from '../json-members.js';
import { levelName } from '../levels.js';
import type { HoldWatcher } from '../multiline/stage.js';
import { LEVEL_KEYS, MESSAGE_KEYS, type Normalizer } from '../normalize.js';
import { looseSourceName } from '../source.js';
import { formatNanoTime } from '../time.js';
import { LogfmtPairs } from '../transforms/logfmt.js';
import { leadingLevelOfBytes } from '../transforms/text-level.js';
import { bytesEqual, checkEntries, decodeEntryAt, decodeMessageAt, K_CONTAINER_ID, K_CONTAINER_NAME, K_LOG, K_SOURCE, keyKind, type DecodeCache } from './decoder.js';
import { FLUENT_SIGNAL_LOGS, type DecodeLimits, type ForwardEntry } from './messages.js';
import { utf8 } from './msgpack.js';
import { waitAll, type RecordMapper } from './records.js';

const STDOUT = Buffer.from('stdout');
const STDERR = Buffer.from('stderr');

const TIMESTAMP_OPEN = '{"@timestamp":"';
const MESSAGE_OPEN = Buffer.from('Z","message":');
const ORDINAL = Buffer.from(',"ordinal":');
const ATTRS_OPEN = Buffer.from(',"attrs":{');
const MESSAGE_KEY_BYTES = MESSAGE_KEYS.map((k) => Buffer.from(k));
const LEVEL_KEY_BYTES = LEVEL_KEYS.map((k) => Buffer.from(k));
/**
 * Bytes of a line besides its message and its stream/container/host/tag part,
 * at most: time, the message's quotes, seq and ordinal of up to 16 digits, `}}\n`.
 */
const FIXED_BYTES = TIMESTAMP_OPEN.length + 20 + 9 + MESSAGE_OPEN.length + 2 + 16 + ORDINAL.length + 16 + 3;

type Container = ContainerMeta & { readonly id: string };

/** A container id and name as bytes, and the object the mapper gave for them. */
interface KnownContainer {
  id: DataView<ArrayBufferLike>;
  /** Undefined: records without container_name. */
  name: DataView<ArrayBufferLike> | undefined;
  container: Container;
}

/** Containers kept by their bytes; past this many the map starts over (the mapper keeps its own). */
const MAX_KNOWN_CONTAINERS = 4096;

/** A tag as bytes, and its string. */
interface KnownTag {
  bytes: Buffer;
  tag: string;
}

/** Slots of the tags kept by a hash of their bytes (a power of two). */
const TAG_SLOTS = 4096;

// What plan() keeps per entry, SLOTS numbers from the entry's first. ID_AT is
// -1 for an entry that takes the general path.
const SEC = 0;
const NSEC = 1;
const ID_AT = 2;
const ID_END = 3;
const NAME_AT = 4;
const NAME_END = 5;
const STREAM = 6;
const LOG_AT = 7;
const LOG_END = 8;
/** Where the next entry starts. */
const END = 9;
const SLOTS = 10;
const STREAM_STDOUT = 1;
const STREAM_STDERR = 2;

/**
 * Entries of the general path decoded ahead of rendering, at most: a plan
 * stops at this many, and encodeSlice() plans again to finish its slice.
 * Decoded objects held for a whole slice outlive young-generation
 * collections and are promoted. Measured on bench tiny's two connections of
 * `[0, {}]` entries, which all take the general path: with a slice's 10,000
 * decoded ahead, each scavenge kept 1.5 MB and promoted 576 KB; with 512,
 * 420 KB and 160 KB, and peak RSS went from 211-217 MB to 183-206 MB.
 */
const GENERAL_AHEAD = 512;

/**
 * What is the same in every line of a container's stream under one tag:
 * `,"stream":…,"container":{…},"host":{…}` (head), then `,"clogs":{"input":"forward","tag":…,"seq":`
 * (clogs), and the two together (line).
 */
interface Parts {
  line: Buffer;
  head: Buffer;
  clogs: Buffer;
}

interface ContainerParts {
  tag: string;
  stdout: Parts | undefined;
  stderr: Parts | undefined;
}

export interface PackedLinesDeps {
  normalizer: Normalizer;
  mapper: RecordMapper;
  limits: DecodeLimits;
  cache: DecodeCache;
}

export class PackedLineEncoder {
  private readonly normalizer: Normalizer;
  private readonly mapper: RecordMapper;
  private readonly limits: DecodeLimits;
  private readonly cache: DecodeCache;

  /**
   * Per entry of the request being encoded, SLOTS numbers; see plan().
   * Int32: offsets read back as doubles would make every byte access with
   * them a slow keyed load.
   */
  private slots = new Int32Array(SLOTS * 1024);
  /** The entries that take the general path, decoded. */
  private readonly general: ForwardEntry[] = [];
  /** Per entry of a run of Message-mode requests being encoded, its request's tag. */
  private readonly tags: string[] = [];
  /** What the slots hold: `plannedCount` entries of this stream from `plannedAt`. */
  private plannedStream: Buffer | undefined;
  private plannedAt = 0;
  private plannedCount = 0;
  /** Records the last encodeSlice() rendered. */
  sliced = 0;

  /**
   * Containers by a hash of their id's bytes, so a record finds its container
   * without a string: PackedForward requests from Fluent Bit or Fluentd mix
   * containers record by record. Measured on the bench's 20 containers in
   * turn: a string and a copy per record were 8 % of the fast path's CPU.
   */
  private readonly byIdBytes = new Map<number, KnownContainer[]>();
  private lastKnown: KnownContainer | undefined;
  /** The request being rendered, and the chunk being written, as DataViews: four bytes per read or write. */
  private srcView: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(0));
  private dstView: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(0));
  private byIdGeneration = 0;
  /**
   * Tags by a hash of their bytes, one per slot (a tag that lands on
   * another's slot replaces it): Message-mode requests from several
   * containers, each with its own tag, come interleaved on one connection.
   */
  private readonly tagSlots: Array<KnownTag | undefined> = new Array<KnownTag | undefined>(TAG_SLOTS).fill(undefined);
  private readonly partsByContainer = new WeakMap<ContainerMeta, ContainerParts>();
  private lastPartsContainer: Container | undefined;
  private lastPartsStream: Stream | undefined;
  private lastPartsTag: string | undefined;
  private lastParts: Parts = { line: Buffer.alloc(0), head: Buffer.alloc(0), clogs: Buffer.alloc(0) };
  private readonly members = new JsonMembers();
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

  constructor(deps: PackedLinesDeps) {
    this.normalizer = deps.normalizer;
    this.mapper = deps.mapper;
    this.limits = deps.limits;
    this.cache = deps.cache;
  }

  /**
   * Reads every entry of `stream` before any is rendered: a malformed one (the
   * general decoder throws) refuses the whole request before the Normalizer
   * saw any of it. Keeps its reading of the first slice (`maxEntries`, or
   * fewer: see GENERAL_AHEAD) for encodeSlice() to go on with.
   */
  check(stream: Buffer, maxEntries: number): void {
    const pos = this.plan(stream, 0, maxEntries, false);
    // Several slices: the rest is read without keeping any of it (kept
    // records would outlive young-generation collections, and be promoted).
    if (pos < stream.length) checkEntries(stream.subarray(pos), this.limits, this.cache);
  }

  /**
   * Reads the Message-mode requests of `run` (whole requests back to back, as
   * the Framer cut them; at most `maxEntries`), each as the entry it carries,
   * and returns the part of `run` that is to be rendered together: up to the
   * first request that is in another mode or has an option that makes it a
   * request of its own (a chunk to ack, a signal other than logs), or that is
   * malformed. That one is left to be read on its own; when it is the first,
   * the part is empty, or this throws (malformed). Keeps its reading for
   * encodeSlice() with the part as its stream and no tag: each entry has its
   * request's.
   */
  checkMessages(run: Buffer, maxEntries: number): Buffer {
    const end = this.plan(run, 0, maxEntries, true);
    const part = end === run.length ? run : run.subarray(0, end);
    this.plannedStream = part;
    return part;
  }

  /**
   * The lookups of containers the slice of `stream` from `pos` names and the
   * mapper does not know yet (records.ts lookupWait), read before the slice is
   * rendered; encodeSlice() then renders what was read here. An entry naming
   * the same container as the one before it is passed over by comparing bytes.
   */
  lookups(stream: Buffer, pos: number, tag: string | undefined, maxEntries: number): Promise<void> | undefined {
    if (!this.mapper.enriches) return undefined;
    if (stream !== this.plannedStream || pos !== this.plannedAt) this.plan(stream, pos, maxEntries, tag === undefined);
    this.srcView = new DataView(stream.buffer, stream.byteOffset, stream.byteLength);
    const count = this.plannedCount;
    const slots = this.slots;
    const src = this.srcView;
    let waits: Promise<void>[] | undefined;
    let prevAt = -1;
    let prevLength = -1;
    for (let i = 0, s = 0, g = 0; i < count; i++, s += SLOTS) {
      const at = slots[s + ID_AT]!;
      let id: string | undefined;
      if (at < 0) {
        const { record } = this.general[g++]!;
        if (record.log !== undefined) id = record.containerId;
      } else {
        const length = slots[s + ID_END]! - at;
        if (length === prevLength && sameBytes(src, at, src, prevAt, length)) continue;
        prevAt = at;
        prevLength = length;
        // A container a line was rendered for has nothing to wait for.
        if (this.known(src, at, slots[s + ID_END]!, slots[s + NAME_AT]!, slots[s + NAME_END]!) !== undefined) continue;
        id = stream.toString('utf8', at, at + length);
      }
      const wait = id === undefined ? undefined : this.mapper.lookupWait(id);
      if (wait !== undefined) (waits ??= []).push(wait);
    }
    return waitAll(waits);
  }

  /**
   * Renders the entries of `stream` from `pos` on into `out`, until
   * `maxEntries` are rendered or they took `maxBytes`, and returns where the
   * next entry starts (`stream.length` after the last). `tag`: the stream's,
   * or undefined for the part of a run checkMessages() returned, each of
   * whose entries has its request's. `general` takes an entry the fast path
   * does not (split lines, extra keys, other shapes) and returns its events.
   * The stream must have passed check() or checkMessages(). `watch` learns
   * which lines the Normalizer holds (see HoldWatcher).
   */
  encodeSlice(
    stream: Buffer,
    pos: number,
    tag: string | undefined,
    out: EncodedBatch,
    general: (entry: ForwardEntry, tag: string) => readonly LogEvent[],
    maxEntries: number,
    maxBytes: number,
    watch?: HoldWatcher,
  ): number {
    const messages = tag === undefined;
    if (stream !== this.plannedStream || pos !== this.plannedAt) this.plan(stream, pos, maxEntries, messages);
    this.srcView = new DataView(stream.buffer, stream.byteOffset, stream.byteLength);
    const tags = this.tags;
    const limit = out.bytes + maxBytes;
    let next = pos;
    let rendered = 0;
    for (;;) {
      this.plannedStream = undefined;
      const slots = this.slots;
      const count = Math.min(this.plannedCount, maxEntries - rendered);
      let i = 0;
      for (let s = 0, g = 0; i < count && out.bytes < limit; i++, s += SLOTS) {
        const entryTag = tag ?? tags[i]!;
        if (slots[s + ID_AT]! < 0) out.add(general(this.general[g++]!, entryTag));
        else this.render(stream, s, entryTag, out, watch);
        next = slots[s + END]!;
      }
      rendered += i;
      if (i < this.plannedCount || rendered >= maxEntries || out.bytes >= limit || next >= stream.length) break;
      // The plan stopped at GENERAL_AHEAD: the slice reads on, up to entries
      // that name containers being looked up (their plan is kept for the
      // lookups() before the next slice).
      this.plan(stream, next, maxEntries - rendered, messages);
      if (this.lookups(stream, next, tag, maxEntries - rendered) !== undefined) break;
    }
    this.sliced = rendered;
    if (this.plannedStream === undefined) this.general.length = 0;
    return next;
  }

  /**
   * Reads up to `limit` entries from `pos` into the slots (and the general
   * ones, decoded, into `general`); returns where the next entry starts.
   * `messages`: the stream is Message-mode requests (see checkMessages()),
   * read up to the first that is not to be rendered with the others.
   */
  private plan(stream: Buffer, pos: number, limit: number, messages: boolean): number {
    this.general.length = 0;
    this.plannedStream = stream;
    this.plannedAt = pos;
    let count = 0;
    for (; pos < stream.length && count < limit && this.general.length < GENERAL_AHEAD; count++) {
      const s = count * SLOTS;
      if (this.slots.length < s + SLOTS) {
        const grown = new Int32Array(this.slots.length * 2);
        grown.set(this.slots);
        this.slots = grown;
      }
      const next = messages ? this.readMessage(stream, pos, s, count) : this.read(stream, pos, s);
      if (next >= 0) {
        pos = next;
      } else if (messages) {
        const end = this.generalMessage(stream, pos, count);
        if (end < 0) break;
        this.slots[s + ID_AT] = -1;
        pos = end;
      } else {
        const { entry, end } = decodeEntryAt(stream, pos, this.limits, this.cache);
        this.general.push(entry);
        this.slots[s + ID_AT] = -1;
        pos = end;
      }
      this.slots[s + END] = pos;
    }
    this.plannedCount = count;
    return pos;
  }

  /**
   * Decodes the request at `pos` of a run, the `i`th, into `general` and
   * returns where it ends; -1 when it is not to be rendered with the requests
   * before it. Throws when the first is malformed; a malformed one after it
   * is left to be read, and refused, on its own.
   */
  private generalMessage(run: Buffer, pos: number, i: number): number {
    let message: ReturnType<typeof decodeMessageAt>;
    try {
      message = decodeMessageAt(run, pos, this.limits, this.cache);
    } catch (err) {
      if (i === 0) throw err;
      return -1;
    }
    if (message === undefined || message.option.chunk !== undefined || message.option.signal !== FLUENT_SIGNAL_LOGS) return -1;
    this.general.push(message.entry);
    this.tags[i] = message.tag;
    return message.end;
  }

  /**
   * Reads the entry at `pos` into the slots at `s` when it has the fast
   * path's shape and returns where the next entry starts; -1 otherwise.
   */
  private read(buf: Buffer, pos: number, s: number): number {
    return buf[pos] === 0x92 ? this.readPair(buf, pos + 1, s) : -1;
  }

  /**
   * Reads the Message-mode request at `pos`, the `i`th of a run, into the
   * slots at `s` and its tag into `tags`, when its entry has the fast path's
   * shape and its option is empty, and returns where it ends; -1 otherwise.
   */
  private readMessage(buf: Buffer, pos: number, s: number, i: number): number {
    const n = buf[pos];
    if ((n !== 0x93 && n !== 0x94) || pos + 2 > buf.length) return -1;
    const t = buf[pos + 1]!;
    let tagAt: number;
    if ((t & 0xe0) === 0xa0) tagAt = pos + 2;
    else if (t === 0xd9 && pos + 3 <= buf.length) tagAt = pos + 3;
    else return -1;
    const tagEnd = tagAt + (t === 0xd9 ? buf[pos + 2]! : t & 0x1f);
    let p = this.readPair(buf, tagEnd, s);
    if (p < 0) return -1;
    if (n === 0x94) {
      const o = buf[p];
      // `{}` or nil: a request with any option is decoded in full.
      if (o !== 0x80 && o !== 0xc0) return -1;
      p++;
    }
    this.tags[i] = this.tagOf(buf, tagAt, tagEnd);
    return p;
  }

  /**
   * Reads the `time, record` at `p` (an entry's items) into the slots at `s`
   * when they have the fast path's shape and returns where they end; -1
   * otherwise.
   */
  private readPair(buf: Buffer, p: number, s: number): number {
    const end = buf.length;
    if (p + 11 > end) return -1;
    const t = buf[p]!;
    let sec: number;
    let nsec = 0;
    if ((t === 0xd7 && buf[p + 1] === 0) || (t === 0xc7 && buf[p + 1] === 8 && buf[p + 2] === 0)) {
      p += t === 0xd7 ? 2 : 3;
      if (p + 8 > end) return -1;
      sec = buf.readUInt32BE(p);
      nsec = buf.readUInt32BE(p + 4);
      p += 8;
    } else if (t === 0xd2 || t === 0xce) {
      // Whole seconds: Docker's driver sends an int32 unless fluentd-sub-second-precision is on.
      if (p + 5 > end) return -1;
      sec = t === 0xd2 ? buf.readInt32BE(p + 1) : buf.readUInt32BE(p + 1);
      if (sec < 0) return -1;
      p += 5;
    } else {
      return -1;
    }
    // Out of range, or 0 (replaced by the time of receipt): the general path decides.
    if (nsec > 999_999_999 || (sec === 0 && nsec === 0)) return -1;
    const m = buf[p];
    if (m === undefined || (m & 0xf0) !== 0x80) return -1;
    const keys = m & 0x0f;
    if (keys > this.limits.maxRecordKeys) return -1;
    p++;
    let idAt = -1;
    let idEnd = -1;
    let nameAt = -1;
    let nameEnd = -1;
    let sourceAt = -1;
    let sourceEnd = -1;
    let logAt = -1;
    let logEnd = -1;
    for (let i = 0; i < keys; i++) {
      const k = buf[p];
      if (k === undefined || (k & 0xe0) !== 0xa0) return -1;
      const keyAt = p + 1;
      const keyLen = k & 0x1f;
      p = keyAt + keyLen;
      // A str or bin value.
      const v = buf[p];
      let at: number;
      let len: number;
      if (v === undefined) return -1;
      if ((v & 0xe0) === 0xa0) {
        at = p + 1;
        len = v & 0x1f;
      } else if (v === 0xd9 || v === 0xc4) {
        if (p + 2 > end) return -1;
        at = p + 2;
        len = buf[p + 1]!;
      } else if (v === 0xda || v === 0xc5) {
        if (p + 3 > end) return -1;
        at = p + 3;
        len = buf.readUInt16BE(p + 1);
      } else if (v === 0xdb || v === 0xc6) {
        if (p + 5 > end) return -1;
        at = p + 5;
        len = buf.readUInt32BE(p + 1);
      } else {
        return -1;
      }
      p = at + len;
      if (p > end) return -1;
      // Any other key, split-line keys included, leaves the record to the general path.
      switch (keyKind(buf, keyAt, keyLen)) {
        case K_LOG:
          logAt = at;
          logEnd = p;
          break;
        case K_SOURCE:
          sourceAt = at;
          sourceEnd = p;
          break;
        case K_CONTAINER_ID:
          idAt = at;
          idEnd = p;
          break;
        case K_CONTAINER_NAME:
          nameAt = at;
          nameEnd = p;
          break;
        default:
          return -1;
      }
    }
    if (idAt < 0 || logAt < 0) return -1;
    let stream: number;
    if (bytesEqual(buf, sourceAt, sourceEnd - sourceAt, STDOUT)) stream = STREAM_STDOUT;
    else if (bytesEqual(buf, sourceAt, sourceEnd - sourceAt, STDERR)) stream = STREAM_STDERR;
    else return -1;
    const slots = this.slots;
    // Stored as int32, read back unsigned.
    slots[s + SEC] = sec | 0;
    slots[s + NSEC] = nsec;
    slots[s + ID_AT] = idAt;
    slots[s + ID_END] = idEnd;
    slots[s + NAME_AT] = nameAt;
    slots[s + NAME_END] = nameEnd;
    slots[s + STREAM] = stream;
    slots[s + LOG_AT] = logAt;
    slots[s + LOG_END] = logEnd;
    return p;
  }

  /** The entry read() put in the slots at `s`, into `out`. */
  private render(buf: Buffer, s: number, tag: string, out: EncodedBatch, watch: HoldWatcher | undefined): void {
    const slots = this.slots;
    const sec = slots[s + SEC]! >>> 0;
    const nsec = slots[s + NSEC]!;
    const container = this.container(buf, slots[s + ID_AT]!, slots[s + ID_END]!, slots[s + NAME_AT]!, slots[s + NAME_END]!);
    const stream: Stream = slots[s + STREAM] === STREAM_STDOUT ? 'stdout' : 'stderr';
    const logAt = slots[s + LOG_AT]!;
    const logEnd = slots[s + LOG_END]!;
    let end = logEnd;
    if (end > logAt && buf[end - 1] === 0x0d) end--;
    const normalizer = this.normalizer;
    if (end - logAt <= normalizer.maxLineBytes && !normalizer.holds(container, stream, buf, logAt, end)) {
      const source = out.source(container, looseSourceName(tag, 'forward'));
      const parts = this.parts(container, stream, tag);
      let done: boolean;
      if (normalizer.parseJson && end > logAt && buf[logAt] === 0x7b /* { */ && buf[end - 1] === 0x7d /* } */) {
        done = this.members.scan(buf, this.srcView, logAt, end) && this.json(buf, logAt, end, source, parts, container, stream, sec, nsec);
      } else if (normalizer.parseLogfmt && this.pairs.read(buf, logAt, end)) {
        done = this.logfmt(buf, logAt, end, source, parts, container, stream, sec, nsec);
      } else {
        const level = leadingLevelOfBytes(buf, logAt, end);
        done = level !== null && this.plain(buf, logAt, end, source, parts, container, stream, sec, nsec, level);
      }
      if (done) return;
    }
    out.add(
      normalizer.push({
        input: 'forward',
        time: { sec, nsec },
        stream,
        line: buf.toString('utf8', logAt, logEnd),
        container,
        tag,
        partial: undefined,
        extra: undefined,
      }, watch),
    );
  }

  /**
   * A line of printable ASCII, tabs and well-formed UTF-8, written as a JSON
   * string, with the level it starts with; false (nothing written) for any
   * other: other control characters (terminal escapes, carriage returns) and
   * malformed UTF-8 take the Normalizer's path.
   */
  private plain(buf: Buffer, start: number, end: number, source: EncodedSource, parts: Parts, container: Container, stream: Stream, sec: number, nsec: number, level: string | undefined): boolean {
    const lines = source.lines;
    // An escape doubles a byte at most.
    const dst = this.room(lines, FIXED_BYTES + 2 * (end - start) + parts.line.length + MAX_LEVEL_BYTES);
    let o = this.string(buf, start, end, dst, this.open(dst, lines.offset, sec, nsec));
    if (o < 0) return false;
    if (level === undefined) {
      dst.set(parts.line, o);
      o += parts.line.length;
    } else {
      o = headAndLevel(dst, o, parts, level);
      dst.set(parts.clogs, o);
      o += parts.clogs.length;
    }
    this.close(dst, o, source, container, stream, sec, nsec);
    return true;
  }

  /**
   * A logfmt line the pairs read, its fields as the Normalizer makes them of
   * it (normalize.ts structuredLine): message and level taken out by the keys
   * JSON lines use, the other pairs under attrs as strings. False (nothing
   * written) for what only the Normalizer writes the same: escapes to decode,
   * a repeated key, a key an object orders first (an array index), control
   * characters or malformed UTF-8.
   */
  private logfmt(buf: Buffer, start: number, end: number, source: EncodedSource, parts: Parts, container: Container, stream: Stream, sec: number, nsec: number): boolean {
    const pairs = this.pairs;
    const n = pairs.count;
    for (let i = 0; i < n; i++) {
      if (pairs.escaped[i] === 1 || isIndexKey(buf, pairs.keyAt[i]!, pairs.keyEnd[i]!)) return false;
      for (let j = 0; j < i; j++) if (sameKey(buf, pairs, i, j)) return false;
    }
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
    const lines = source.lines;
    // The line escaped as the message (twice its size at most), and each pair
    // again under attrs: escaped, quoted and separated, at most three times its size.
    const dst = this.room(lines, FIXED_BYTES + 6 * (end - start) + parts.line.length + MAX_LEVEL_BYTES + 16);
    let o = this.open(dst, lines.offset, sec, nsec);
    o = message < 0 ? this.string(buf, start, end, dst, o) : this.string(buf, pairs.valueAt[message]!, pairs.valueEnd[message]!, dst, o);
    if (o < 0) return false;
    o = headAndLevel(dst, o, parts, level);
    let first = true;
    for (let i = 0; i < n && o >= 0; i++) {
      if (i === message || i === levelAt) continue;
      o = attrsMember(dst, o, first);
      first = false;
      o = this.string(buf, pairs.keyAt[i]!, pairs.keyEnd[i]!, dst, o);
      if (o < 0) break;
      dst[o++] = 0x3a;
      o = this.string(buf, pairs.valueAt[i]!, pairs.valueEnd[i]!, dst, o);
    }
    if (o < 0) return false;
    if (!first) dst[o++] = 0x7d;
    dst.set(parts.clogs, o);
    o += parts.clogs.length;
    this.close(dst, o, source, container, stream, sec, nsec);
    return true;
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

  /** A JSON line json-members.ts accepted: message, level and the other fields copied out of it. */
  private json(buf: Buffer, start: number, end: number, source: EncodedSource, parts: Parts, container: Container, stream: Stream, sec: number, nsec: number): boolean {
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
      else if (m.rewrite[i]) return false;
      if (level !== undefined) {
        levelAt = i;
        break;
      }
    }
    let rewrites = false;
    for (let i = 0; i < m.count; i++) rewrites ||= m.rewrite[i] === 1;
    const lines = source.lines;
    // The line escaped as the message, at most twice its size, when it has no
    // message field; a rewritten number can take five times its size (9e20).
    const dst = this.room(lines, FIXED_BYTES + (rewrites ? 6 : 3) * (end - start) + parts.head.length + parts.clogs.length + MAX_LEVEL_BYTES);
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
    o = headAndLevel(dst, o, parts, level);
    let first = true;
    for (let i = 0; i < m.count; i++) {
      if (i === message || i === levelAt) continue;
      o = attrsMember(dst, o, first);
      first = false;
      // The key with its quotes and colon, then the value.
      o = copyBytes(this.srcView, m.keyAt[i]! - 1, m.valueAt[i]!, this.dstView, o);
      o = this.value(buf, i, dst, o);
    }
    if (!first) dst[o++] = 0x7d;
    dst.set(parts.clogs, o);
    o += parts.clogs.length;
    this.close(dst, o, source, container, stream, sec, nsec);
    return true;
  }

  /** Member `i`'s value as JSON.stringify writes it: copied, or parsed and written anew when json-members.ts marked it. */
  private value(buf: Buffer, i: number, dst: Buffer, o: number): number {
    const m = this.members;
    const at = m.valueAt[i]!;
    const end = m.valueEnd[i]!;
    if (m.rewrite[i] === 0) return copyBytes(this.srcView, at, end, this.dstView, o);
    return o + dst.write(JSON.stringify(JSON.parse(buf.toString('utf8', at, end))), o, 'utf8');
  }

  /** `{"@timestamp":"…","message":` */
  private open(dst: Buffer, o: number, sec: number, nsec: number): number {
    if (sec !== this.prefixSec) {
      const prefix = sec === this.otherPrefixSec ? this.otherPrefix : Buffer.from(TIMESTAMP_OPEN + formatNanoTime(sec, 0).slice(0, 20));
      this.otherPrefixSec = this.prefixSec;
      this.otherPrefix = this.prefix;
      this.prefixSec = sec;
      this.prefix = prefix;
    }
    dst.set(this.prefix, o);
    o = writePadded(dst, o + this.prefix.length, nsec, 9);
    return copy(MESSAGE_OPEN, dst, o);
  }

  /** The numbers after `"seq":`, the end of the line, and the line counted in. */
  private close(dst: Buffer, o: number, source: EncodedSource, container: Container, stream: Stream, sec: number, nsec: number): void {
    const normalizer = this.normalizer;
    o = this.writeSeq(dst, o, normalizer.nextSeq());
    o = copy(ORDINAL, dst, o);
    o = writeUint(dst, o, normalizer.ordinal(container, stream, sec, nsec));
    dst[o++] = 0x7d;
    dst[o++] = 0x7d;
    dst[o++] = 0x0a;
    source.lines.offset = o;
    source.lines.endLine();
    source.count++;
  }

  /** `lines.room(n)`; `dstView` is then a DataView of the same chunk, for the writes of this record. */
  private room(lines: LineBuffer, n: number): Buffer {
    const dst = lines.room(n);
    this.dstView = lines.view;
    return dst;
  }

  /** The record's container, as records.ts maps it; compared by bytes with the last one first. */
  private container(buf: Buffer, idAt: number, idEnd: number, nameAt: number, nameEnd: number): Container {
    const known = this.known(this.srcView, idAt, idEnd, nameAt, nameEnd);
    if (known !== undefined) return known.container;
    const rawName = nameAt < 0 ? undefined : this.cache.containerName.get(buf, nameAt, nameEnd);
    const container = this.mapper.container(buf.toString('utf8', idAt, idEnd), rawName);
    // The mapper may have replaced objects while finding this one.
    if (this.byIdGeneration !== this.mapper.generation) return container;
    if (this.byIdBytes.size >= MAX_KNOWN_CONTAINERS) this.byIdBytes.clear();
    const key = idKey(this.srcView, idAt, idEnd);
    let list = this.byIdBytes.get(key);
    if (list === undefined) this.byIdBytes.set(key, (list = []));
    const entry = { id: copyView(buf, idAt, idEnd), name: nameAt < 0 ? undefined : copyView(buf, nameAt, nameEnd), container };
    list.push(entry);
    this.lastKnown = entry;
    return container;
  }

  /** The container kept for these id and name bytes of `src`, if any. */
  private known(src: DataView, idAt: number, idEnd: number, nameAt: number, nameEnd: number): KnownContainer | undefined {
    if (this.byIdGeneration !== this.mapper.generation) {
      // Some container's object was replaced (renamed, metadata arrived): ask the mapper again.
      this.byIdGeneration = this.mapper.generation;
      this.byIdBytes.clear();
      this.lastKnown = undefined;
    }
    const len = idEnd - idAt;
    // Records come in runs of one container's: the last one first.
    const last = this.lastKnown;
    if (last !== undefined && this.sameContainer(last, src, idAt, len, nameAt, nameEnd)) return last;
    const list = this.byIdBytes.get(idKey(src, idAt, idEnd));
    if (list === undefined) return undefined;
    for (const k of list) {
      if (this.sameContainer(k, src, idAt, len, nameAt, nameEnd)) {
        this.lastKnown = k;
        return k;
      }
    }
    return undefined;
  }

  /** The tag these bytes spell. */
  private tagOf(buf: Buffer, at: number, end: number): string {
    // FNV-1a.
    let h = 0x811c9dc5;
    for (let i = at; i < end; i++) h = Math.imul(h ^ buf[i]!, 0x01000193);
    const slot = h & (TAG_SLOTS - 1);
    const len = end - at;
    const kept = this.tagSlots[slot];
    if (kept !== undefined && bytesEqual(buf, at, len, kept.bytes)) return kept.tag;
    const known = { bytes: Buffer.from(buf.subarray(at, end)), tag: utf8(buf, at, end) };
    this.tagSlots[slot] = known;
    return known.tag;
  }

  private sameContainer(k: KnownContainer, src: DataView, idAt: number, len: number, nameAt: number, nameEnd: number): boolean {
    return (
      k.id.byteLength === len &&
      sameBytes(src, idAt, k.id, 0, len) &&
      (nameAt < 0 ? k.name === undefined : k.name !== undefined && nameEnd - nameAt === k.name.byteLength && sameBytes(src, nameAt, k.name, 0, nameEnd - nameAt))
    );
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

  /** The constant parts of a container's lines on one stream under one tag. */
  private parts(container: Container, stream: Stream, tag: string): Parts {
    if (container === this.lastPartsContainer && stream === this.lastPartsStream && tag === this.lastPartsTag) return this.lastParts;
    let m = this.partsByContainer.get(container);
    if (m === undefined || m.tag !== tag) {
      m = { tag, stdout: undefined, stderr: undefined };
      this.partsByContainer.set(container, m);
    }
    let parts = stream === 'stdout' ? m.stdout : m.stderr;
    if (parts === undefined) {
      const head = Buffer.concat([Buffer.from(streamJson(stream)), containerJson(container), Buffer.from(hostJson(this.normalizer.hostField))]);
      const clogs = Buffer.from(clogsHead('forward', tag));
      parts = { line: Buffer.concat([head, clogs]), head, clogs };
      if (stream === 'stdout') m.stdout = parts;
      else m.stderr = parts;
    }
    this.lastPartsContainer = container;
    this.lastPartsStream = stream;
    this.lastPartsTag = tag;
    return (this.lastParts = parts);
  }
}

/** What byIdBytes keys a container id on: its first and last four bytes and its length. */
function idKey(src: DataView, at: number, end: number): number {
  const len = end - at;
  return len >= 4 ? src.getUint32(at) ^ src.getUint32(end - 4) ^ len : len;
}

function copyView(buf: Buffer, start: number, end: number): DataView<ArrayBufferLike> {
  const copy = Buffer.from(buf.subarray(start, end));
  return new DataView(copy.buffer, copy.byteOffset, copy.byteLength);
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

/** Whether `len` bytes at `a` and at `b` are the same, four at a time. */
function sameBytes(a: DataView, at: number, b: DataView, bt: number, len: number): boolean {
  let i = 0;
  for (; i + 4 <= len; i += 4) if (a.getUint32(at + i) !== b.getUint32(bt + i)) return false;
  for (; i < len; i++) if (a.getUint8(at + i) !== b.getUint8(bt + i)) return false;
  return true;
}

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

/** `,"stream":…,"container":{…},"host":{…}`, then `,"log":{…}` with a level. */
function headAndLevel(dst: Buffer, o: number, parts: Parts, level: string | undefined): number {
  dst.set(parts.head, o);
  o += parts.head.length;
  return level === undefined ? o : copy(levelBytes(level), dst, o);
}

/** What goes before a member of attrs: `,"attrs":{` before the first, else a comma. */
function attrsMember(dst: Buffer, o: number, first: boolean): number {
  if (first) return copy(ATTRS_OPEN, dst, o);
  dst[o] = 0x2c;
  return o + 1;
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
  return pairs.keyEnd[j]! - pairs.keyAt[j]! === len && buf.compare(buf, pairs.keyAt[j]!, pairs.keyEnd[j]!, at, at + len) === 0;
}
