/**
 * Decodes one whole request (a msgpack value the Framer cut out) into a
 * ForwardMessage, and a PackedForward entry stream into entries: what the
 * values read by msgpack.ts mean to the forward protocol. Pure: bytes in,
 * values out, no socket.
 *
 * Hand-written rather than msgpackr, for three reasons found in the captures
 * (test/fixtures/docker/MANIFEST.md): msgpackr drops ext type 0, which is
 * Fluentd's EventTime; it turns invalid UTF-8 into U+FFFD before the pieces of
 * a split line can be joined; and it builds a generic object per record, where
 * this decoder pulls Docker's fixed keys straight into fields.
 *
 * A request that breaks the protocol throws a ClogsError; the caller closes
 * the connection.
 */
import { ClogsError } from '../../errors.js';
import type { NanoTime } from '../time.js';
import { formatNanoTime, MAX_SECONDS, MIN_SECONDS } from '../time.js';
import { bytesEqual } from '../json-bytes.js';
import {
  EVENT_TIME_EXT_TYPE,
  FLUENT_SIGNAL_LOGS,
  type DecodeLimits,
  type ForwardEntry,
  type ForwardMessage,
  type ForwardOption,
  type ForwardRecord,
} from './messages.js';
import { keyText, malformed, MAX_VALUE_ITEMS, MsgpackReader, setKey, typeName, utf8, type RawBytes } from './msgpack.js';

/** `sec`, the seconds of the time at offset `at`, unless outside what a time can be (time.ts). */
function inRange(sec: number, at: number): number {
  if (sec < MIN_SECONDS || sec > MAX_SECONDS) throw malformed(`time at offset ${at} is ${sec} s, outside the years 0000 to 9999`);
  return sec;
}

const EMPTY_OPTION: ForwardOption = Object.freeze({ chunk: undefined, compressed: undefined, signal: FLUENT_SIGNAL_LOGS });

/**
 * Longest tag, and container_id or partial_id, a request may carry. Each
 * names a source or a held line, kept in the Normalizer's, renderer's and
 * journal's tables of thousands of entries: with 1 MiB tags, 64 requests
 * took 500 MB and a 132 MB ordinal journal. Docker's ids are 64 characters;
 * Fluentd tags and Fluent Bit's kubernetes tags are a few hundred at most.
 */
export const MAX_TAG_BYTES = 1024;
export const MAX_ID_BYTES = 128;

// Docker's fixed record keys, recognised from their bytes without making a string.
export const K_OTHER = 0;
export const K_CONTAINER_ID = 1;
export const K_CONTAINER_NAME = 2;
export const K_SOURCE = 3;
export const K_LOG = 4;
const K_PARTIAL_MESSAGE = 5;
const K_PARTIAL_ID = 6;
const K_PARTIAL_ORDINAL = 7;
const K_PARTIAL_LAST = 8;
const key = (kind: number, name: string): readonly [number, Buffer] => [kind, Buffer.from(name)];
const K_CONTAINER_ID_KEY = key(K_CONTAINER_ID, 'container_id');
const K_CONTAINER_NAME_KEY = key(K_CONTAINER_NAME, 'container_name');
const K_SOURCE_KEY = key(K_SOURCE, 'source');
const K_LOG_KEY = key(K_LOG, 'log');
const K_PARTIAL_MESSAGE_KEY = key(K_PARTIAL_MESSAGE, 'partial_message');
const K_PARTIAL_ID_KEY = key(K_PARTIAL_ID, 'partial_id');
const K_PARTIAL_ORDINAL_KEY = key(K_PARTIAL_ORDINAL, 'partial_ordinal');
const K_PARTIAL_LAST_KEY = key(K_PARTIAL_LAST, 'partial_last');

/** Option keys. */
const O_CHUNK = Buffer.from('chunk');
/**
 * The most bytes a `chunk` option may take. Clients send 16 random bytes in
 * base64 (Docker's driver, Fluentd, Fluent Bit: 24 or 25 characters); ids
 * are held until acked and then remembered for minutes (acks.ts), so a
 * client choosing megabyte ids could fill the memory.
 */
const MAX_CHUNK_BYTES = 256;
const O_COMPRESSED = Buffer.from('compressed');
const O_SIGNAL = Buffer.from('fluent_signal');

/** The forward protocol's values (time, record, entry, option) read on top of the msgpack reader. */
class ForwardReader extends MsgpackReader {
  constructor(
    buf: Buffer,
    start: number,
    end: number,
    limits: DecodeLimits,
    readonly cache: DecodeCache = SHARED_CACHE,
  ) {
    super(buf, start, end, limits);
  }

  /** EventTime becomes an RFC 3339 string, as in a record's time. */
  protected override ext(type: number, data: Buffer): unknown {
    if (type === EVENT_TIME_EXT_TYPE && data.length === 8) return formatNanoTime(data.readUInt32BE(0), Math.min(data.readUInt32BE(4), 999_999_999));
    return super.ext(type, data);
  }

  /**
   * An event time: integer seconds, a float, EventTime (ext type 0 as fixext8
   * or ext8), or the v1.5 `[time, metadata...]` form, whose metadata is skipped.
   */
  time(allowWrapped = true): NanoTime {
    this.more('time');
    const b = this.peek();
    const at = this.pos;
    const int = this.integer();
    if (int !== undefined) return { sec: inRange(int, at), nsec: 0 };
    const buf = this.buf;
    if (b === 0xd7 || b === 0xc7) {
      if (b === 0xc7) {
        this.pos++;
        if (this.u8() !== 8) throw malformed(`time at offset ${at} is an ext8 of ${buf[at + 1]} bytes, not an 8-byte EventTime`);
      } else {
        this.pos++;
      }
      this.need(9);
      if (buf[this.pos] !== EVENT_TIME_EXT_TYPE) throw malformed(`time at offset ${at} is ext type ${buf.readInt8(this.pos)}, not EventTime (ext type 0)`);
      const sec = buf.readUInt32BE(this.pos + 1);
      const nsec = buf.readUInt32BE(this.pos + 5);
      this.pos += 9;
      if (nsec > 999_999_999) throw malformed(`EventTime at offset ${at} has ${nsec} nanoseconds`);
      return { sec, nsec };
    }
    if (b === 0xcb || b === 0xca) {
      this.pos++;
      this.need(b === 0xcb ? 8 : 4);
      const f = b === 0xcb ? buf.readDoubleBE(this.pos) : buf.readFloatBE(this.pos);
      this.pos += b === 0xcb ? 8 : 4;
      if (!Number.isFinite(f)) throw malformed(`time at offset ${at} is ${f}`);
      const sec = inRange(Math.floor(f), at);
      return { sec, nsec: Math.min(999_999_999, Math.round((f - sec) * 1e9)) };
    }
    if (allowWrapped) {
      const n = this.arrayLen();
      if (n >= 1) {
        const t = this.time(false);
        for (let i = 1; i < n; i++) this.skipValue();
        return t;
      }
      if (n === 0) throw malformed(`time at offset ${at} is an empty array`);
    }
    throw malformed(`time at offset ${this.pos} is ${typeName(b)}, not an integer, a float or EventTime`);
  }

  /** A record map. */
  record(): ForwardRecord {
    this.more('record');
    const at = this.pos;
    const n = this.mapLen();
    if (n < 0) throw malformed(`record at offset ${at} is ${typeName(this.peek())}, not a map`);
    if (n > this.limits.maxRecordKeys) {
      throw new ClogsError('CLOGS_TOO_MANY_KEYS', `record at offset ${at} has ${n} keys, more than max_record_keys (${this.limits.maxRecordKeys})`);
    }
    this.itemsLeft = MAX_VALUE_ITEMS;
    const buf = this.buf;
    const rec: ForwardRecord = {
      containerId: undefined,
      containerName: undefined,
      source: undefined,
      log: undefined,
      partialMessage: undefined,
      partialId: undefined,
      partialOrdinal: undefined,
      partialLast: undefined,
      rest: undefined,
    };
    let logStart = -1;
    let logEnd = -1;
    for (let i = 0; i < n; i++) {
      const keyLen = this.strLen();
      if (keyLen < 0) {
        // Not a string key (an integer, say): kept under its text.
        rec.rest ??= {};
        setKey(rec.rest, keyText(this.value(1)), this.value(1));
        continue;
      }
      const keyPos = this.strPos;
      const kind = keyKind(buf, keyPos, keyLen);
      if (kind !== K_OTHER) {
        const len = this.strLen();
        if (len >= 0) {
          const s = this.strPos;
          if ((kind === K_CONTAINER_ID || kind === K_PARTIAL_ID) && len > MAX_ID_BYTES) {
            throw malformed(`${kind === K_CONTAINER_ID ? 'container_id' : 'partial_id'} at offset ${s} of ${len} bytes, more than ${MAX_ID_BYTES} (Docker's are 64)`);
          }
          if (kind === K_LOG) {
            logStart = s;
            logEnd = s + len;
          } else {
            switch (kind) {
              case K_CONTAINER_ID: rec.containerId = utf8(buf, s, s + len); break;
              case K_CONTAINER_NAME: rec.containerName = this.cache.containerName.get(buf, s, s + len); break;
              case K_SOURCE: rec.source = this.cache.source.get(buf, s, s + len); break;
              case K_PARTIAL_MESSAGE: rec.partialMessage = utf8(buf, s, s + len); break;
              case K_PARTIAL_ID: rec.partialId = utf8(buf, s, s + len); break;
              case K_PARTIAL_ORDINAL: rec.partialOrdinal = utf8(buf, s, s + len); break;
              default: rec.partialLast = utf8(buf, s, s + len); break;
            }
          }
          continue;
        }
      }
      rec.rest ??= {};
      setKey(rec.rest, utf8(buf, keyPos, keyPos + keyLen), this.value(1));
    }
    if (logStart >= 0) {
      rec.log =
        rec.partialMessage !== undefined || rec.partialId !== undefined
          ? Buffer.from(buf.subarray(logStart, logEnd))
          : utf8(buf, logStart, logEnd);
    }
    return rec;
  }

  /** `[time, record]`. */
  entry(): ForwardEntry {
    this.more('entry');
    const at = this.pos;
    const n = this.arrayLen();
    if (n !== 2) throw malformed(`entry at offset ${at} is ${n < 0 ? typeName(this.peek()) : `an array of ${n}`}, not [time, record]`);
    const time = this.time();
    return { time, record: this.record() };
  }

  option(): ForwardOption {
    const at = this.pos;
    if (this.peek() === 0xc0) {
      this.pos++;
      return EMPTY_OPTION;
    }
    const n = this.mapLen();
    if (n < 0) throw malformed(`option at offset ${at} is ${typeName(this.peek())}, not a map`);
    if (n === 0) return EMPTY_OPTION;
    const buf = this.buf;
    let chunk: Buffer | undefined;
    let compressed: string | undefined;
    let signal = FLUENT_SIGNAL_LOGS;
    for (let i = 0; i < n; i++) {
      const keyLen = this.strLen();
      if (keyLen < 0) {
        this.skipValue();
        this.skipValue();
        continue;
      }
      const k = this.strPos;
      if (bytesEqual(buf, k, keyLen, O_CHUNK)) {
        const s = this.pos;
        this.skipValue();
        if (this.pos - s > MAX_CHUNK_BYTES) throw malformed(`option "chunk" at offset ${s} is ${this.pos - s} bytes, more than ${MAX_CHUNK_BYTES}`);
        // Copied: the request's bytes may be a Framer buffer, reused for the next request.
        chunk = Buffer.from(buf.subarray(s, this.pos));
      } else if (bytesEqual(buf, k, keyLen, O_COMPRESSED)) {
        const v = this.value(1);
        if (v !== null) {
          if (typeof v !== 'string') throw malformed(`option "compressed" is ${typeof v}, not a string`);
          compressed = v;
        }
      } else if (bytesEqual(buf, k, keyLen, O_SIGNAL)) {
        const v = this.integer();
        if (v === undefined) throw malformed(`option "fluent_signal" is ${typeName(this.peek())}, not an integer`);
        signal = v;
      } else {
        this.skipValue();
      }
    }
    return { chunk, compressed, signal };
  }
}

/** Which of Docker's keys the bytes spell: length and first byte rule out all but one. */
export function keyKind(buf: Buffer, pos: number, len: number): number {
  let want: readonly [number, Buffer] | undefined;
  const first = buf[pos];
  switch (len) {
    case 3: want = K_LOG_KEY; break;
    case 6: want = K_SOURCE_KEY; break;
    case 10: want = K_PARTIAL_ID_KEY; break;
    case 12: want = first === 0x63 /* c */ ? K_CONTAINER_ID_KEY : K_PARTIAL_LAST_KEY; break;
    case 14: want = K_CONTAINER_NAME_KEY; break;
    case 15: want = buf[pos + 8] === 0x6d /* partial_[m]essage */ ? K_PARTIAL_MESSAGE_KEY : K_PARTIAL_ORDINAL_KEY; break;
    default: return K_OTHER;
  }
  return bytesEqual(buf, pos, len, want[1]) ? want[0] : K_OTHER;
}

/** Longest string LastString compares; longer ones are decoded every time. */
const MAX_COMPARED = 32;

/**
 * The last string of one kind (tag, container name, source) and a check that
 * new bytes spell it again, so the string is reused instead of made anew.
 * Only ASCII bytes count as a match: they decode to exactly their char codes.
 * Measured (CPU time per string): a 6-byte hit 18 ns against 77 ns to decode,
 * a 26-byte hit 62 ns against 103 ns, but a 64-byte hit 179 ns against 85 ns:
 * strings over MAX_COMPARED bytes (Docker's 64-hex container id) are decoded.
 */
class LastString {
  private last = '';

  get(buf: Buffer, start: number, end: number): string {
    const last = this.last;
    const n = end - start;
    if (n > MAX_COMPARED) return utf8(buf, start, end);
    if (n === last.length) {
      let i = 0;
      for (; i < n; i++) {
        const b = buf[start + i]!;
        if (b >= 0x80 || b !== last.charCodeAt(i)) break;
      }
      if (i === n) return last;
    }
    return (this.last = utf8(buf, start, end));
  }
}

/**
 * Recent strings of one connection. Docker opens one connection per container,
 * so there tag, name and source repeat on every request.
 */
export class DecodeCache {
  readonly tag = new LastString();
  readonly containerName = new LastString();
  readonly source = new LastString();
}

const SHARED_CACHE = new DecodeCache();

/** Decodes one request cut out by the Framer. */
export function decodeRequest(frame: Buffer, limits: DecodeLimits, cache?: DecodeCache): ForwardMessage {
  const r = new ForwardReader(frame, 0, frame.length, limits, cache);
  const first = r.peek();
  if (first === 0xc0 && frame.length === 1) return { mode: 'Heartbeat' };
  const n = r.arrayLen();
  if (n < 0) throw malformed(`request is ${typeName(first)}, not an array or nil`);
  if (n < 2 || n > 4) throw malformed(`request is an array of ${n}, not [tag, entries, option] or [tag, time, record, option]`);
  const tagLen = r.strLen();
  if (tagLen < 0) throw malformed(`tag is ${typeName(r.peek())}, not a string`);
  if (tagLen > MAX_TAG_BYTES) throw malformed(`tag of ${tagLen} bytes, more than ${MAX_TAG_BYTES}`);
  const tag = r.cache.tag.get(frame, r.strPos, r.strPos + tagLen);
  const second = r.peek();
  let message: ForwardMessage;
  if (isArray(second) && !isWrappedTime(frame, r.pos)) {
    const at = r.pos;
    const count = r.arrayLen();
    // Every entry takes at least two bytes.
    if (count * 2 > frame.length - r.pos) throw malformed(`entries at offset ${at} declare ${count} items in ${frame.length - r.pos} bytes`);
    const start = r.pos;
    for (let i = 0; i < count; i++) r.entry();
    const entries = frame.subarray(start, r.pos);
    if (n > 3) throw malformed(`Forward request is an array of ${n}, not [tag, entries, option]`);
    message = { mode: 'Forward', tag, entries, option: n === 3 ? r.option() : EMPTY_OPTION };
  } else if (r.strLen() >= 0) {
    const entries = frame.subarray(r.strPos, r.pos);
    if (n > 3) throw malformed(`PackedForward request is an array of ${n}, not [tag, entries, option]`);
    const option = n === 3 ? r.option() : EMPTY_OPTION;
    const c = option.compressed;
    if (c === undefined || c === 'text') message = { mode: 'PackedForward', tag, entries, option };
    else if (c === 'gzip') message = { mode: 'CompressedPackedForward', tag, entries, option };
    else if (c === 'zstd') throw malformed('compressed "zstd" is not supported (Node.js 20 has no zstd); send gzip or uncompressed chunks');
    else throw malformed(`compressed ${JSON.stringify(c)} is not supported; send "gzip" or uncompressed chunks`);
  } else {
    if (n < 3) throw malformed('Message request is an array of 2, not [tag, time, record, option]');
    const at = r.pos;
    r.skipValue();
    r.skipValue();
    // As a PackedForward entry, `[time, record]`, so the one path for entries
    // reads it (forward/packed-lines.ts), and checks it as it reads.
    const entry = Buffer.allocUnsafe(1 + r.pos - at);
    entry[0] = 0x92;
    frame.copy(entry, 1, at, r.pos);
    message = { mode: 'Message', tag, entry, option: n === 4 ? r.option() : EMPTY_OPTION };
  }
  if (r.pos !== frame.length) throw malformed(`${frame.length - r.pos} bytes left over after a ${message.mode} request`);
  return message;
}

/**
 * The request at `pos` of `buf` (whole requests back to back, as the Framer
 * cut them) when it is in Message mode: its tag, its entry, its option and
 * where it ends; undefined for a request of another mode. Throws on a
 * malformed one, as decodeRequest does.
 */
export function decodeMessageAt(
  buf: Buffer,
  pos: number,
  limits: DecodeLimits,
  cache?: DecodeCache,
): { tag: string; entry: ForwardEntry; option: ForwardOption; end: number } | undefined {
  const r = new ForwardReader(buf, pos, buf.length, limits, cache);
  if (!isMessageShape(r)) return undefined;
  r.pos = pos;
  r.skipValue();
  const message = decodeRequest(buf.subarray(pos, r.pos), limits, cache);
  if (message.mode !== 'Message') return undefined;
  return { tag: message.tag, entry: decodeEntryAt(message.entry, 0, limits, cache).entry, option: message.option, end: r.pos };
}

/**
 * Whether the request `r` is at reads as `[tag, time, record(, option)]`:
 * its second item neither entries (Forward) nor a str or bin
 * (PackedForward), so decodeRequest is not run on a Forward request only to
 * find that out. False for a malformed header too: decodeRequest says what is
 * wrong with it when the request is read on its own.
 */
function isMessageShape(r: ForwardReader): boolean {
  const buf = r.buf;
  const n = buf[r.pos];
  if (n !== 0x93 && n !== 0x94) return false;
  r.pos++;
  try {
    if (r.strLen() < 0) return false;
  } catch {
    return false;
  }
  const second = r.peek();
  return second !== undefined && !(isArray(second) && !isWrappedTime(buf, r.pos)) && !isStrOrBin(second);
}

/**
 * Reads every entry of a PackedForward stream and keeps none: throws, as
 * decodeEntries would, on the first malformed one. Returns how many there are.
 */
export function checkEntries(stream: Buffer, limits: DecodeLimits, cache?: DecodeCache): number {
  const r = new ForwardReader(stream, 0, stream.length, limits, cache);
  let n = 0;
  for (; r.pos < stream.length; n++) r.entry();
  return n;
}

/** Decodes a PackedForward stream: `[time, record]` arrays back to back. */
export function decodeEntries(stream: Buffer, limits: DecodeLimits, cache?: DecodeCache): ForwardEntry[] {
  const r = new ForwardReader(stream, 0, stream.length, limits, cache);
  const entries: ForwardEntry[] = [];
  while (r.pos < stream.length) entries.push(r.entry());
  return entries;
}

/** Decodes the `[time, record]` starting at `pos` of a PackedForward stream, and says where the next one starts. */
export function decodeEntryAt(stream: Buffer, pos: number, limits: DecodeLimits, cache?: DecodeCache): { entry: ForwardEntry; end: number } {
  const r = new ForwardReader(stream, pos, stream.length, limits, cache);
  const entry = r.entry();
  return { entry, end: r.pos };
}

/** Decodes one whole value generically (HELO, PING, PONG, acks); bin stays bytes, str too with `all`. */
export function decodeValue(frame: Buffer, limits: DecodeLimits, bytes: RawBytes = 'bin'): unknown {
  const r = new ForwardReader(frame, 0, frame.length, limits);
  return r.value(0, bytes);
}

function isArray(b: number | undefined): boolean {
  return b !== undefined && ((b >= 0x90 && b <= 0x9f) || b === 0xdc || b === 0xdd);
}

function isStrOrBin(b: number): boolean {
  return (b >= 0xa0 && b <= 0xbf) || (b >= 0xd9 && b <= 0xdb) || (b >= 0xc4 && b <= 0xc6);
}

/**
 * Whether the array at `pos` is a v1.5 `[time, metadata]` (Message mode)
 * rather than Forward mode's array of entries: its first item is a time, not
 * an array. An empty array counts as Forward mode with no entries.
 */
function isWrappedTime(buf: Buffer, pos: number): boolean {
  const b = buf[pos]!;
  const skip = b === 0xdc ? 3 : b === 0xdd ? 5 : 1;
  if (pos + skip >= buf.length) return false;
  const count = b === 0xdc ? buf.readUInt16BE(pos + 1) : b === 0xdd ? buf.readUInt32BE(pos + 1) : b & 0x0f;
  if (count === 0) return false;
  const first = buf[pos + skip];
  return first !== undefined && !isArray(first);
}
