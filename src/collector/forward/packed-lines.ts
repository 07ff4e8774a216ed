/**
 * PackedForward entries → NDJSON lines, straight from the msgpack bytes; so
 * too runs of Message-mode requests as they were read (checkMessages()).
 *
 * The common records are read here in place (offsets into the request) and
 * their lines written by the renderer every input shares (line-render.ts),
 * without a string or an object of their own:
 * - Docker's keys (`container_id`, `container_name`, `source`, `log`) with a
 *   stdout or stderr line, and other keys (what the driver's `labels`, `env`
 *   and `env-regex` options add); the container is found by its id's bytes;
 * - a record without a container whose line is a string under `message`,
 *   `log` or `msg` (Fluent Bit's tail lines, fluent-logger's
 *   `{message, level, ms}`): the line of its tag, every key under attrs.
 * Other keys may hold strings, integers of at most 32 bits, floats, booleans,
 * nil, and maps and arrays of those (Fluent Bit's `kubernetes` map).
 *
 * Any other record takes the general path in place (decoder.ts, records.ts,
 * the Normalizer, event-json.ts), and any line the renderer refuses goes
 * through the Normalizer from the offsets already found, so order, seq and
 * ordinals come out exactly as if every record had taken the general path;
 * test/unit/forward/packed-lines.test.ts compares the two byte for byte.
 *
 * Measured (bench/forward.bench.ts `micro`, CPU per record, framing and
 * decoding the request included): 0.6-0.85 µs for a plain line, 1.4-1.5 µs
 * for a pino JSON line, against 3.4-4.6 µs on the general path.
 */
import type { EncodedBatch } from '../encoded.js';
import type { ContainerWithId as Container, LogEvent, Stream } from '../event.js';
import { bytesEqual } from '../json-bytes.js';
import { EXTRA_FALSE, EXTRA_NESTED, EXTRA_NULL, EXTRA_NUMBER, EXTRA_SLOTS, EXTRA_STRING, EXTRA_TRUE, LineRenderer, MAX_WRITABLE_KEYS, type ExtraFields } from '../line-render.js';
import { SCALAR_BYTES, skipNested, valueEnd, type NestingLimits } from '../msgpack-bytes.js';
import type { LineWatcher, Normalizer } from '../normalize.js';
import { checkEntries, decodeEntryAt, decodeMessageAt, K_CONTAINER_ID, K_CONTAINER_NAME, K_LOG, K_OTHER, K_SOURCE, keyKind, MAX_ID_BYTES, type DecodeCache } from './decoder.js';
import { FLUENT_SIGNAL_LOGS, type DecodeLimits, type ForwardEntry } from './messages.js';
import { utf8 } from './msgpack.js';
import { LINE_KEYS, waitAll, type RecordMapper } from './records.js';

const STDOUT = Buffer.from('stdout');
const STDERR = Buffer.from('stderr');

/**
 * A container id and name as bytes, and the object the mapper gave for them.
 * The copies are kept with their lengths: in Node 20's optimized code, a
 * DataView's byteLength is a call to a builtin, once a record here.
 */
interface KnownContainer {
  id: DataView<ArrayBufferLike>;
  idLength: number;
  /** Undefined: records without container_name. */
  name: DataView<ArrayBufferLike> | undefined;
  nameLength: number;
  container: Container;
}

/** Containers kept by their bytes; past this many the map starts over (the mapper keeps its own). */
const MAX_KNOWN_CONTAINERS = 4096;
/** Most containers kept under one idKey (see container()). */
const MAX_SAME_ID_KEY = 8;
const KNOWN_SLOTS = 256;

/** A tag as bytes, and its string. */
interface KnownTag {
  /** A copy of the tag's bytes, and their length (see KnownContainer). */
  bytes: DataView;
  length: number;
  tag: string;
}

/** Slots of the tags kept by a hash of their bytes (a power of two). */
const TAG_SLOTS = 4096;

// What plan() keeps per entry, SLOTS numbers from the entry's first. ID_AT is
// GENERAL for an entry that takes the general path, NO_CONTAINER for a record
// without a container (its keys all under EXTRA_*, STREAM 0).
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
/** Where the entry (in Message mode, its request) starts. */
const AT = 10;
/** The record's other keys (EXTRA_COUNT of them from EXTRA_FIRST in `extras`). */
const EXTRA_FIRST = 11;
const EXTRA_COUNT = 12;
const SLOTS = 13;
const STREAM_STDOUT = 1;
const STREAM_STDERR = 2;
/**
 * How deep maps and arrays under a record's key are read here; deeper ones
 * take the general path (which refuses past msgpack.ts MAX_DEPTH).
 */
const MAX_NESTING = 8;
/**
 * The largest map or array under a key read here: the renderer reserves six
 * times its bytes for its JSON (line-render.ts extrasRoom()), where it mostly
 * takes two. Fluent Bit's kubernetes map is a few hundred bytes.
 */
const MAX_NESTED_BYTES = 64 * 1024;
const GENERAL = -1;
const NO_CONTAINER = -2;
const LINE_KEY_BYTES = LINE_KEYS.map((k) => Buffer.from(k));
// Docker's keys, as keyKind() matched them whole.
const NAME_KEY_LENGTH = 'container_name'.length;
const SOURCE_KEY_LENGTH = 'source'.length;
const LOG_KEY_LENGTH = 'log'.length;

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
  /** Per other key of the planned records, EXTRA_SLOTS numbers: its key's bytes, its value's, its kind (ExtraFields). */
  private extras = new Int32Array(EXTRA_SLOTS * 64);
  private extraCount = 0;
  /** The other keys of the entry being rendered, as the renderer takes them. */
  private readonly entryExtras: ExtraFields = { offsets: this.extras, first: 0, count: 0 };
  /** Per entry of a run of Message-mode requests being encoded, its request's tag. */
  private readonly tags: string[] = [];
  /**
   * Per planned entry, the container lookups() found for its id and name
   * bytes, if it looked: render() takes it without comparing them again.
   * Message-mode runs name a different container from one request to the
   * next, where the last one kept does not help.
   */
  private readonly plannedKnown: Array<KnownContainer | undefined> = [];
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
  /**
   * The last container found under each of KNOWN_SLOTS slots of its idKey:
   * Message mode interleaves containers record by record, and each lookup
   * in byIdBytes cost about as much as rendering a short line's fields.
   */
  private readonly knownSlots: Array<KnownContainer | undefined> = new Array<KnownContainer | undefined>(KNOWN_SLOTS).fill(undefined);
  /**
   * The stream being read, and a DataView of it for reading its numbers:
   * under 1 ns a read, against about 7 ns for a Buffer's own read methods
   * (byte-copy.ts says why).
   */
  private srcStream: Buffer | undefined;
  private srcView: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(0));
  private byIdGeneration = 0;
  /**
   * Tags by a hash of their bytes, one per slot (a tag that lands on
   * another's slot replaces it): Message-mode requests from several
   * containers, each with its own tag, come interleaved on one connection.
   */
  private readonly tagSlots: Array<KnownTag | undefined> = new Array<KnownTag | undefined>(TAG_SLOTS).fill(undefined);
  private lastTag: KnownTag | undefined;
  private readonly renderer: LineRenderer;
  /** What a record's maps and arrays may hold to be read here. */
  private readonly nesting: NestingLimits;

  constructor(deps: PackedLinesDeps) {
    this.normalizer = deps.normalizer;
    this.mapper = deps.mapper;
    this.limits = deps.limits;
    this.nesting = { depth: MAX_NESTING, items: deps.limits.maxRecordKeys, mapKeys: MAX_WRITABLE_KEYS };
    this.cache = deps.cache;
    this.renderer = new LineRenderer(deps.normalizer);
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
   * Reads the Message-mode requests of `run` (requests back to back, as the
   * Framer cut them or as a read brought them, the last one maybe cut short;
   * at most `maxEntries`), each as the entry it carries, and returns the part
   * of `run` that is to be rendered together: up to the first request that
   * is in another mode or has an option that makes it a request of its own (a
   * chunk to ack, a signal other than logs), that is malformed, or that `run`
   * does not hold whole. That one is left to be read on its own; when it is
   * the first, the part is empty, or this throws (malformed). Keeps its
   * reading for encodeSlice() with the part as its stream and no tag: each
   * entry has its request's.
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
    const count = this.plannedCount;
    const slots = this.slots;
    const src = this.srcView;
    // Found anew: an object found by an earlier call may have been replaced since.
    this.plannedKnown.length = 0;
    let waits: Promise<void>[] | undefined;
    let prevAt = -1;
    let prevLength = -1;
    let prevKnown: KnownContainer | undefined;
    for (let i = 0, s = 0, g = 0; i < count; i++, s += SLOTS) {
      const at = slots[s + ID_AT]!;
      if (at === NO_CONTAINER) continue;
      let id: string | undefined;
      if (at === GENERAL) {
        const { record } = this.general[g++]!;
        if (record.log !== undefined) id = record.containerId;
      } else {
        const length = slots[s + ID_END]! - at;
        const nameAt = slots[s + NAME_AT]!;
        const nameEnd = slots[s + NAME_END]!;
        if (length === prevLength && sameBytes(src, at, src, prevAt, length)) {
          // The record before's container, found once for the run: render() takes it from here.
          if (prevKnown !== undefined && this.sameName(prevKnown, src, nameAt, nameEnd)) this.plannedKnown[i] = prevKnown;
          continue;
        }
        prevAt = at;
        prevLength = length;
        // A container a line was rendered for has nothing to wait for.
        prevKnown = this.known(src, at, slots[s + ID_END]!, nameAt, nameEnd);
        if (prevKnown !== undefined) {
          this.plannedKnown[i] = prevKnown;
          continue;
        }
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
   * does not (split lines, bytes or 64-bit integers, other shapes) and
   * returns its events.
   * The stream must have passed check() or checkMessages(). `watch` learns
   * which lines the Normalizer holds (see LineWatcher).
   */
  encodeSlice(
    stream: Buffer,
    pos: number,
    tag: string | undefined,
    out: EncodedBatch,
    general: (entry: ForwardEntry, tag: string) => readonly LogEvent[],
    maxEntries: number,
    maxBytes: number,
    watch?: LineWatcher,
  ): number {
    const messages = tag === undefined;
    if (stream !== this.plannedStream || pos !== this.plannedAt) this.plan(stream, pos, maxEntries, messages);
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
        if (slots[s + ID_AT]! === GENERAL) out.add(general(this.general[g++]!, entryTag));
        else this.render(stream, s, entryTag, out, general, messages, watch);
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
    this.plannedKnown.length = 0;
    this.extraCount = 0;
    this.plannedStream = stream;
    this.plannedAt = pos;
    this.readFrom(stream);
    let count = 0;
    for (; pos < stream.length && count < limit && this.general.length < GENERAL_AHEAD; count++) {
      const s = count * SLOTS;
      if (this.slots.length < s + SLOTS) {
        const grown = new Int32Array(this.slots.length * 2);
        grown.set(this.slots);
        this.slots = grown;
      }
      const extras = this.extraCount;
      const next = messages ? this.readMessage(stream, pos, s, count) : this.read(stream, pos, s);
      // A record refused after some of its keys were kept (a fluent-logger
      // record of strings has no container id): they take no room.
      if (next < 0) this.extraCount = extras;
      if (next >= 0) {
        this.slots[s + AT] = pos;
        pos = next;
      } else if (messages) {
        // A request cut at the end of a read (requests.ts takes runs straight
        // from the bytes read) ends the run here, unread: decoding it would
        // throw, once a read.
        if (valueEnd(stream, pos, stream.length) < 0) break;
        const end = this.generalMessage(stream, pos, count);
        if (end < 0) break;
        this.slots[s + ID_AT] = GENERAL;
        pos = end;
      } else {
        const { entry, end } = decodeEntryAt(stream, pos, this.limits, this.cache);
        this.general.push(entry);
        this.slots[s + ID_AT] = GENERAL;
        pos = end;
      }
      this.slots[s + END] = pos;
    }
    this.plannedCount = count;
    return pos;
  }

  private readFrom(stream: Buffer): void {
    if (stream === this.srcStream) return;
    this.srcStream = stream;
    this.srcView = new DataView(stream.buffer, stream.byteOffset, stream.byteLength);
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
      if (p >= buf.length) return -1;
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
    const view = this.srcView;
    if (p + 11 > end) return -1;
    const t = buf[p]!;
    let sec: number;
    let nsec = 0;
    if ((t === 0xd7 && buf[p + 1] === 0) || (t === 0xc7 && buf[p + 1] === 8 && buf[p + 2] === 0)) {
      p += t === 0xd7 ? 2 : 3;
      if (p + 8 > end) return -1;
      sec = view.getUint32(p);
      nsec = view.getUint32(p + 4);
      p += 8;
    } else if (t === 0xd2 || t === 0xce) {
      // Whole seconds: Docker's driver sends an int32 unless fluentd-sub-second-precision is on.
      if (p + 5 > end) return -1;
      sec = t === 0xd2 ? view.getInt32(p + 1) : view.getUint32(p + 1);
      if (sec < 0) return -1;
      p += 5;
    } else {
      return -1;
    }
    // Out of range, or 0 (replaced by the time of receipt): the general path decides.
    // Reads stay within `buf`: a read past it (a request cut at the end of a
    // read, requests.ts) costs a deoptimization of the optimized code.
    if (nsec > 999_999_999 || (sec === 0 && nsec === 0) || p >= end) return -1;
    const m = buf[p]!;
    let keys: number;
    if ((m & 0xf0) === 0x80) {
      keys = m & 0x0f;
      p++;
    } else if (m === 0xde && p + 3 <= end) {
      // map16: a record with many labels or env keys.
      keys = view.getUint16(p + 1);
      p += 3;
    } else {
      return -1;
    }
    if (keys > this.limits.maxRecordKeys) return -1;
    let idAt = -1;
    let idEnd = -1;
    let nameAt = -1;
    let nameEnd = -1;
    let sourceAt = -1;
    let sourceEnd = -1;
    let logAt = -1;
    let logEnd = -1;
    // Where Docker's keys are, and whether a value is bytes: what a record without a container keeps under attrs.
    let nameKeyAt = -1;
    let sourceKeyAt = -1;
    let logKeyAt = -1;
    let bin = false;
    const extraFirst = this.extraCount;
    for (let i = 0; i < keys; i++) {
      if (p >= end) return -1;
      const k = buf[p]!;
      if ((k & 0xe0) !== 0xa0) return -1;
      const keyAt = p + 1;
      const keyLen = k & 0x1f;
      p = keyAt + keyLen;
      if (p >= end) return -1;
      // A str or bin value; for other keys also a number of at most 32 bits,
      // true, false, nil, or a map or an array of those (skipNested()).
      const v = buf[p]!;
      let at: number;
      let len: number;
      let kind = EXTRA_STRING;
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
        len = view.getUint16(p + 1);
      } else if (v === 0xdb || v === 0xc6) {
        if (p + 5 > end) return -1;
        at = p + 5;
        len = view.getUint32(p + 1);
      } else {
        // Kept from its type byte on (msgpack-bytes.ts numberAt, line-render.ts nested()). A
        // 64-bit integer, bin or ext anywhere takes the general path, which
        // may write them as strings.
        at = p;
        len = SCALAR_BYTES[v]!;
        if (len > 0) {
          kind = v === 0xc3 ? EXTRA_TRUE : v === 0xc2 ? EXTRA_FALSE : v === 0xc0 ? EXTRA_NULL : EXTRA_NUMBER;
        } else {
          const nestedEnd = skipNested(buf, p, end, 1, this.nesting);
          if (nestedEnd < 0 || nestedEnd - p > MAX_NESTED_BYTES) return -1;
          len = nestedEnd - p;
          kind = EXTRA_NESTED;
        }
      }
      p = at + len;
      if (p > end) return -1;
      const isBin = v >= 0xc4 && v <= 0xc6;
      bin ||= isBin;
      const key = keyKind(buf, keyAt, keyLen);
      // Docker's keys are strings; a record with another value there is not Docker's record, nor read here.
      if (kind !== EXTRA_STRING && key !== K_OTHER) return -1;
      // Split-line keys, and other keys holding bytes, leave the record to the general path.
      switch (key) {
        case K_LOG:
          logKeyAt = keyAt;
          logAt = at;
          logEnd = p;
          break;
        case K_SOURCE:
          sourceKeyAt = keyAt;
          sourceAt = at;
          sourceEnd = p;
          break;
        case K_CONTAINER_ID:
          // The general path refuses it (MAX_ID_BYTES).
          if (p - at > MAX_ID_BYTES) return -1;
          idAt = at;
          idEnd = p;
          break;
        case K_CONTAINER_NAME:
          nameKeyAt = keyAt;
          nameAt = at;
          nameEnd = p;
          break;
        case K_OTHER:
          if (isBin) return -1;
          this.addExtra(keyAt, keyAt + keyLen, at, p, kind);
          break;
        default:
          return -1;
      }
    }
    let stream = 0;
    if (idAt < 0) {
      // A record without a container (fluent-logger's, Fluent Bit's) keeps
      // every key under attrs, Docker's after the others, and its line is
      // its message, log or msg (records.ts allKeys, lineOf).
      if (bin) return -1;
      if (nameAt >= 0) this.addExtra(nameKeyAt, nameKeyAt + NAME_KEY_LENGTH, nameAt, nameEnd, EXTRA_STRING);
      if (sourceAt >= 0) this.addExtra(sourceKeyAt, sourceKeyAt + SOURCE_KEY_LENGTH, sourceAt, sourceEnd, EXTRA_STRING);
      if (logAt >= 0) this.addExtra(logKeyAt, logKeyAt + LOG_KEY_LENGTH, logAt, logEnd, EXTRA_STRING);
      const line = this.looseLine(buf, extraFirst);
      if (line < 0) return -1;
      idAt = NO_CONTAINER;
      logAt = this.extras[EXTRA_SLOTS * line + 2]!;
      logEnd = this.extras[EXTRA_SLOTS * line + 3]!;
    } else {
      if (logAt < 0) return -1;
      if (bytesEqual(buf, sourceAt, sourceEnd - sourceAt, STDOUT)) stream = STREAM_STDOUT;
      else if (bytesEqual(buf, sourceAt, sourceEnd - sourceAt, STDERR)) stream = STREAM_STDERR;
      else return -1;
    }
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
    slots[s + EXTRA_FIRST] = extraFirst;
    slots[s + EXTRA_COUNT] = this.extraCount - extraFirst;
    return p;
  }

  /**
   * Which of the kept keys from `first` is the line of a record without a
   * container, as records.ts lineOf() picks it: the first of its LINE_KEYS
   * that holds a string, a number or a boolean. -1 when none does, or when
   * that one is not a string (the general path writes a number's or a
   * boolean's text).
   */
  private looseLine(buf: Buffer, first: number): number {
    const e = this.extras;
    for (const key of LINE_KEY_BYTES) {
      for (let i = first; i < this.extraCount; i++) {
        const x = EXTRA_SLOTS * i;
        if (!bytesEqual(buf, e[x]!, e[x + 1]! - e[x]!, key)) continue;
        const kind = e[x + 4]!;
        if (isLineValue(kind)) return kind === EXTRA_STRING ? i : -1;
        break;
      }
    }
    return -1;
  }

  /** Keeps a record's other key and its value. */
  private addExtra(keyAt: number, keyEnd: number, valueAt: number, valueEnd: number, kind: number): void {
    const n = this.extraCount;
    if (this.extras.length < EXTRA_SLOTS * (n + 1)) {
      const grown = new Int32Array(this.extras.length * 2);
      grown.set(this.extras);
      this.extras = grown;
      this.entryExtras.offsets = grown;
    }
    const e = this.extras;
    const x = EXTRA_SLOTS * n;
    e[x] = keyAt;
    e[x + 1] = keyEnd;
    e[x + 2] = valueAt;
    e[x + 3] = valueEnd;
    e[x + 4] = kind;
    this.extraCount = n + 1;
  }

  /**
   * The entry read() put in the slots at `s`, into `out`; a line the renderer
   * refuses goes through the Normalizer, with its record decoded in full
   * (`general`) when it has other keys.
   */
  private render(
    buf: Buffer,
    s: number,
    tag: string,
    out: EncodedBatch,
    general: (entry: ForwardEntry, tag: string) => readonly LogEvent[],
    messages: boolean,
    watch: LineWatcher | undefined,
  ): void {
    const slots = this.slots;
    const sec = slots[s + SEC]! >>> 0;
    const nsec = slots[s + NSEC]!;
    const idAt = slots[s + ID_AT]!;
    const i = s / SLOTS;
    // Read within its length: lookups() fills it only up to the last record it found a container for.
    const looked = i < this.plannedKnown.length ? this.plannedKnown[i] : undefined;
    const container =
      idAt === NO_CONTAINER
        ? undefined
        : looked !== undefined && this.byIdGeneration === this.mapper.generation
          ? looked.container
          : this.container(buf, idAt, slots[s + ID_END]!, slots[s + NAME_AT]!, slots[s + NAME_END]!);
    const streamSlot = slots[s + STREAM];
    const stream: Stream | undefined = streamSlot === STREAM_STDOUT ? 'stdout' : streamSlot === STREAM_STDERR ? 'stderr' : undefined;
    const logAt = slots[s + LOG_AT]!;
    const logEnd = slots[s + LOG_END]!;
    const extras = this.entryExtras;
    extras.first = slots[s + EXTRA_FIRST]!;
    extras.count = slots[s + EXTRA_COUNT]!;
    if (this.renderer.line(buf, logAt, logEnd, out, container, stream, sec, nsec, 'forward', tag, extras) >= 0) return;
    if (extras.count > 0) {
      const at = slots[s + AT]!;
      out.add(general(messages ? decodeMessageAt(buf, at, this.limits, this.cache)!.entry : decodeEntryAt(buf, at, this.limits, this.cache).entry, tag));
      return;
    }
    out.add(
      this.normalizer.push({
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

  /** The record's container, as records.ts maps it; compared by bytes with the last one first. */
  private container(buf: Buffer, idAt: number, idEnd: number, nameAt: number, nameEnd: number): Container {
    const known = this.known(this.srcView, idAt, idEnd, nameAt, nameEnd);
    if (known !== undefined) return known.container;
    const rawName = nameAt < 0 ? undefined : this.cache.containerName.get(buf, nameAt, nameEnd);
    const container = this.mapper.container(buf.toString('utf8', idAt, idEnd), rawName);
    // The mapper may have replaced objects while finding this one.
    if (this.byIdGeneration !== this.mapper.generation) return container;
    if (this.byIdBytes.size >= MAX_KNOWN_CONTAINERS) {
      this.byIdBytes.clear();
      this.knownSlots.fill(undefined);
    }
    const key = idKey(this.srcView, idAt, idEnd);
    let list = this.byIdBytes.get(key);
    if (list === undefined) this.byIdBytes.set(key, (list = []));
    const entry = { id: copyView(buf, idAt, idEnd), idLength: idEnd - idAt, name: nameAt < 0 ? undefined : copyView(buf, nameAt, nameEnd), nameLength: nameAt < 0 ? 0 : nameEnd - nameAt, container };
    // Ids made to share a key would make each lookup a walk of all of them
    // (4,000: 4 s of one request); past a few, a container is the mapper's to find.
    if (list.length < MAX_SAME_ID_KEY) list.push(entry);
    this.lastKnown = entry;
    return container;
  }

  /** The container kept for these id and name bytes of `src`, if any. */
  private known(src: DataView, idAt: number, idEnd: number, nameAt: number, nameEnd: number): KnownContainer | undefined {
    if (this.byIdGeneration !== this.mapper.generation) {
      // Some container's object was replaced (renamed, metadata arrived): ask the mapper again.
      this.byIdGeneration = this.mapper.generation;
      this.byIdBytes.clear();
      this.knownSlots.fill(undefined);
      this.lastKnown = undefined;
    }
    const len = idEnd - idAt;
    // Records come in runs of one container's: the last one first.
    const last = this.lastKnown;
    if (last !== undefined && this.sameContainer(last, src, idAt, len, nameAt, nameEnd)) return last;
    const key = idKey(src, idAt, idEnd);
    const slot = key & (KNOWN_SLOTS - 1);
    const inSlot = this.knownSlots[slot];
    if (inSlot !== undefined && this.sameContainer(inSlot, src, idAt, len, nameAt, nameEnd)) return (this.lastKnown = inSlot);
    const list = this.byIdBytes.get(key);
    if (list === undefined) return undefined;
    for (const k of list) {
      if (this.sameContainer(k, src, idAt, len, nameAt, nameEnd)) {
        this.lastKnown = k;
        this.knownSlots[slot] = k;
        return k;
      }
    }
    return undefined;
  }

  /** The tag bytes [at, end) of `buf`, the stream being read, spell. */
  private tagOf(buf: Buffer, at: number, end: number): string {
    const src = this.srcView;
    const len = end - at;
    // The requests of one connection mostly carry one tag: the last one is
    // compared first, four bytes a step, before the hash (Message mode, one a record).
    const last = this.lastTag;
    if (spells(last, src, at, len)) return last.tag;
    // FNV-1a.
    let h = 0x811c9dc5;
    for (let i = at; i < end; i++) h = Math.imul(h ^ buf[i]!, 0x01000193);
    const slot = h & (TAG_SLOTS - 1);
    let kept = this.tagSlots[slot];
    if (!spells(kept, src, at, len)) {
      kept = { bytes: copyView(buf, at, end), length: len, tag: utf8(buf, at, end) };
      this.tagSlots[slot] = kept;
    }
    this.lastTag = kept;
    return kept.tag;
  }

  private sameContainer(k: KnownContainer, src: DataView, idAt: number, len: number, nameAt: number, nameEnd: number): boolean {
    return k.idLength === len && sameBytes(src, idAt, k.id, 0, len) && this.sameName(k, src, nameAt, nameEnd);
  }

  private sameName(k: KnownContainer, src: DataView, nameAt: number, nameEnd: number): boolean {
    return nameAt < 0 ? k.name === undefined : k.name !== undefined && nameEnd - nameAt === k.nameLength && sameBytes(src, nameAt, k.name, 0, nameEnd - nameAt);
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

/** Whether `tag` is the one the `len` bytes at `at` of `src` spell. */
function spells(tag: KnownTag | undefined, src: DataView, at: number, len: number): tag is KnownTag {
  return tag !== undefined && tag.length === len && sameBytes(src, at, tag.bytes, 0, len);
}

/** Whether `len` bytes at `a` and at `b` are the same, four at a time. */
function sameBytes(a: DataView, at: number, b: DataView, bt: number, len: number): boolean {
  let i = 0;
  for (; i + 4 <= len; i += 4) if (a.getUint32(at + i) !== b.getUint32(bt + i)) return false;
  for (; i < len; i++) if (a.getUint8(at + i) !== b.getUint8(bt + i)) return false;
  return true;
}

/** Whether records.ts lineOf() takes a value of this kind as the line: a string, a number or a boolean. */
function isLineValue(kind: number): boolean {
  return kind !== EXTRA_NULL && kind !== EXTRA_NESTED;
}
