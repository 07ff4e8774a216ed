/**
 * The msgpack reader: one value at a time from a byte range, every read
 * bounds-checked (a PackedForward stream was never scanned by the Framer),
 * maps limited to `maxRecordKeys` keys, nesting to MAX_DEPTH levels and a
 * record's items to MAX_VALUE_ITEMS. A
 * violation throws a ClogsError; the caller closes the connection. What the
 * values mean to the forward protocol is decoder.ts's job.
 */
import { ClogsError } from '../../errors.js';
import { IntegerText } from '../json-values.js';

/** Deepest nesting of arrays and maps inside a value. */
const MAX_DEPTH = 32;
/**
 * Most items (map entries, array items) one record, or one whole value, may
 * hold in all. Decoded, each is an object of tens of bytes where the wire has
 * one byte (an array of 4 Mi empty maps in one record took 800 MB), and the
 * general path decodes up to GENERAL_AHEAD records of a request at once: the
 * forward input bounds memory by what it renders, not by wire bytes. A
 * record's own keys are bounded by max_record_keys; this bounds what they
 * hold, far past what log records carry (Fluent Bit's kubernetes map: ~30).
 */
export const MAX_VALUE_ITEMS = 4096;

export interface MapLimits {
  /** Most keys in any map (the config's max_record_keys, named in the error). */
  readonly maxRecordKeys: number;
}

export function malformed(message: string): ClogsError {
  return new ClogsError('CLOGS_FRAME_MALFORMED', message);
}

export function typeName(b: number | undefined): string {
  if (b === undefined) return 'nothing';
  if (b <= 0x7f || b >= 0xe0 || (b >= 0xcc && b <= 0xd3)) return 'an integer';
  if (b <= 0x8f || b === 0xde || b === 0xdf) return 'a map';
  if (b <= 0x9f || b === 0xdc || b === 0xdd) return 'an array';
  if (b <= 0xbf || (b >= 0xd9 && b <= 0xdb)) return 'a string';
  if (b === 0xc0) return 'nil';
  if (b === 0xc2 || b === 0xc3) return 'a boolean';
  if (b >= 0xc4 && b <= 0xc6) return 'a bin';
  if (b === 0xca || b === 0xcb) return 'a float';
  return 'an ext';
}

/**
 * Which str and bin payloads a generic decode hands out as Buffers rather than
 * UTF-8 text: `none`; `bin` (replies: HELO's nonce and salt, bin chunk ids);
 * `all` (the PING, whose salt Fluent Bit sends as a str of 16 random bytes,
 * and whose other fields enter digests byte for byte). Map keys are text.
 */
export type RawBytes = 'none' | 'bin' | 'all';

/** Reads values from `buf` between `pos` and `end`; a method that finds another type consumes nothing. */
export class MsgpackReader {
  pos: number;
  /** Start of the last str/bin payload found by strLen(). */
  strPos = 0;
  /** Items value() may still read before the record or value being read is too large; set back per record (see MAX_VALUE_ITEMS). */
  itemsLeft = MAX_VALUE_ITEMS;

  constructor(
    readonly buf: Buffer,
    start: number,
    readonly end: number,
    readonly limits: MapLimits,
  ) {
    this.pos = start;
  }

  protected need(n: number): void {
    if (this.pos + n > this.end) throw malformed(`request truncated: ${n} more bytes needed at offset ${this.pos}, ${this.end - this.pos} left`);
  }

  private spend(items: number, at: number): void {
    this.itemsLeft -= items;
    if (this.itemsLeft < 0) throw new ClogsError('CLOGS_TOO_MANY_KEYS', `value at offset ${at} brings the record past ${MAX_VALUE_ITEMS} map entries and array items`);
  }

  /** Throws when the request ends where `what` should start. */
  more(what: string): void {
    if (this.pos >= this.end) throw malformed(`request truncated: ${what} missing at offset ${this.pos}`);
  }

  peek(): number | undefined {
    return this.pos < this.end ? this.buf[this.pos] : undefined;
  }

  protected u8(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }

  protected u16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  protected u32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  /** Array length, or -1 (nothing consumed) when the next value is not an array. */
  arrayLen(): number {
    return this.count(0x90, 0xdc, 0xdd);
  }

  /** Map size, or -1 (nothing consumed) when the next value is not a map. */
  mapLen(): number {
    return this.count(0x80, 0xde, 0xdf);
  }

  /** Item count of an array or map (fix format from `fix`, then 16- and 32-bit forms), or -1. */
  private count(fix: number, c16: number, c32: number): number {
    const b = this.peek();
    if (b === undefined) return -1;
    if (b >= fix && b <= fix + 0x0f) {
      this.pos++;
      return b & 0x0f;
    }
    if (b === c16) {
      this.pos++;
      return this.u16();
    }
    if (b === c32) {
      this.pos++;
      return this.u32();
    }
    return -1;
  }

  /**
   * Length of a str or bin value (its payload starts at `strPos`; the payload
   * is consumed), or -1 (nothing consumed) for any other type.
   */
  strLen(): number {
    const b = this.peek();
    if (b === undefined) return -1;
    let n: number;
    if (b >= 0xa0 && b <= 0xbf) {
      this.pos++;
      n = b & 0x1f;
    } else if (b === 0xd9 || b === 0xc4) {
      this.pos++;
      n = this.u8();
    } else if (b === 0xda || b === 0xc5) {
      this.pos++;
      n = this.u16();
    } else if (b === 0xdb || b === 0xc6) {
      this.pos++;
      n = this.u32();
    } else {
      return -1;
    }
    this.need(n);
    this.strPos = this.pos;
    this.pos += n;
    return n;
  }

  /** A str or bin value as a string, or undefined (nothing consumed) for any other type. */
  string(): string | undefined {
    const n = this.strLen();
    return n < 0 ? undefined : utf8(this.buf, this.strPos, this.strPos + n);
  }

  /** Passes over one value of any type, without recursion. */
  skipValue(): void {
    let items = 1;
    while (items > 0) {
      items--;
      const b = this.u8();
      if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) continue;
      if (b <= 0x8f) items += (b & 0x0f) * 2;
      else if (b <= 0x9f) items += b & 0x0f;
      else if (b <= 0xbf) this.skipBytes(b & 0x1f);
      else {
        switch (b) {
          case 0xc4: case 0xd9: this.skipBytes(this.u8()); break;
          case 0xc5: case 0xda: this.skipBytes(this.u16()); break;
          case 0xc6: case 0xdb: this.skipBytes(this.u32()); break;
          case 0xc7: this.skipBytes(this.u8() + 1); break;
          case 0xc8: this.skipBytes(this.u16() + 1); break;
          case 0xc9: this.skipBytes(this.u32() + 1); break;
          case 0xca: this.skipBytes(4); break;
          case 0xcb: this.skipBytes(8); break;
          case 0xcc: case 0xd0: this.skipBytes(1); break;
          case 0xcd: case 0xd1: this.skipBytes(2); break;
          case 0xce: case 0xd2: this.skipBytes(4); break;
          case 0xcf: case 0xd3: this.skipBytes(8); break;
          case 0xd4: this.skipBytes(2); break;
          case 0xd5: this.skipBytes(3); break;
          case 0xd6: this.skipBytes(5); break;
          case 0xd7: this.skipBytes(9); break;
          case 0xd8: this.skipBytes(17); break;
          case 0xdc: items += this.u16(); break;
          case 0xdd: items += this.u32(); break;
          case 0xde: items += this.u16() * 2; break;
          case 0xdf: items += this.u32() * 2; break;
          default:
            throw malformed(`byte 0x${b.toString(16)} at offset ${this.pos - 1} is not a msgpack type`);
        }
      }
    }
  }

  private skipBytes(n: number): void {
    this.need(n);
    this.pos += n;
  }

  /** An integer, or undefined (nothing consumed) when the next value is not one. */
  integer(): number | undefined {
    const b = this.peek();
    if (b === undefined) return undefined;
    if (b <= 0x7f) {
      this.pos++;
      return b;
    }
    if (b >= 0xe0) {
      this.pos++;
      return b - 0x100;
    }
    const buf = this.buf;
    let v: number;
    switch (b) {
      case 0xcc: this.pos++; this.need(1); v = buf[this.pos]!; this.pos += 1; return v;
      case 0xcd: this.pos++; return this.u16();
      case 0xce: this.pos++; return this.u32();
      case 0xd0: this.pos++; this.need(1); v = buf.readInt8(this.pos); this.pos += 1; return v;
      case 0xd1: this.pos++; this.need(2); v = buf.readInt16BE(this.pos); this.pos += 2; return v;
      case 0xd2: this.pos++; this.need(4); v = buf.readInt32BE(this.pos); this.pos += 4; return v;
      case 0xcf: this.pos++; this.need(8); v = buf.readUInt32BE(this.pos) * 0x1_0000_0000 + buf.readUInt32BE(this.pos + 4); this.pos += 8; return v;
      case 0xd3: this.pos++; this.need(8); v = buf.readInt32BE(this.pos) * 0x1_0000_0000 + buf.readUInt32BE(this.pos + 4); this.pos += 8; return v;
      default: return undefined;
    }
  }

  /**
   * Any value as plain JSON-friendly data: str and bin become strings (Fluentd
   * sends binary-encoded Ruby strings as bin), 64-bit integers beyond 2^53
   * an IntegerText of their digits (json-values.ts), ext what ext() makes of it.
   * `bytes` says which of str and bin stay Buffers instead (see RawBytes).
   */
  value(depth: number, bytes: RawBytes = 'none'): unknown {
    const b = this.peek();
    if (b === undefined) throw malformed(`request truncated at offset ${this.pos}`);
    if (b <= 0x7f || b >= 0xe0) return this.integer();
    if (b >= 0xa0 && b <= 0xbf && bytes !== 'all') return this.string();
    if (depth > MAX_DEPTH && (b <= 0x9f || (b >= 0xdc && b <= 0xdf))) {
      throw malformed(`value at offset ${this.pos} is nested deeper than ${MAX_DEPTH} levels`);
    }
    const at = this.pos;
    const m = this.mapLen();
    if (m >= 0) {
      if (m > this.limits.maxRecordKeys) {
        throw new ClogsError('CLOGS_TOO_MANY_KEYS', `map at offset ${at} has ${m} keys, more than max_record_keys (${this.limits.maxRecordKeys})`);
      }
      this.spend(m, at);
      const obj: Record<string, unknown> = {};
      for (let i = 0; i < m; i++) {
        const k = this.value(depth + 1, bytes);
        setKey(obj, keyText(k), this.value(depth + 1, bytes));
      }
      return obj;
    }
    const a = this.arrayLen();
    if (a >= 0) {
      if (a > this.end - this.pos) throw malformed(`array at offset ${at} declares ${a} items in ${this.end - this.pos} bytes`);
      this.spend(a, at);
      const arr: unknown[] = [];
      for (let i = 0; i < a; i++) arr.push(this.value(depth + 1, bytes));
      return arr;
    }
    if (bytes === 'all' || (bytes === 'bin' && b >= 0xc4 && b <= 0xc6)) {
      const n = this.strLen();
      if (n >= 0) return Buffer.from(this.buf.subarray(this.strPos, this.strPos + n));
    }
    const s = this.string();
    if (s !== undefined) return s;
    const int = this.integer();
    if (int !== undefined) {
      if (Number.isSafeInteger(int)) return int;
      // Rebuild exactly from the 8 bytes just read.
      const big = b === 0xcf ? this.buf.readBigUInt64BE(this.pos - 8) : this.buf.readBigInt64BE(this.pos - 8);
      return new IntegerText(big.toString());
    }
    this.pos++;
    switch (b) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xca: this.need(4); this.pos += 4; return this.buf.readFloatBE(this.pos - 4);
      case 0xcb: this.need(8); this.pos += 8; return this.buf.readDoubleBE(this.pos - 8);
      default: break;
    }
    let len: number;
    switch (b) {
      case 0xd4: len = 1; break;
      case 0xd5: len = 2; break;
      case 0xd6: len = 4; break;
      case 0xd7: len = 8; break;
      case 0xd8: len = 16; break;
      case 0xc7: len = this.u8(); break;
      case 0xc8: len = this.u16(); break;
      case 0xc9: len = this.u32(); break;
      default: throw malformed(`byte 0x${b.toString(16)} at offset ${at} is not a msgpack type`);
    }
    this.need(len + 1);
    const type = this.buf.readInt8(this.pos);
    const data = this.buf.subarray(this.pos + 1, this.pos + 1 + len);
    this.pos += len + 1;
    return this.ext(type, data);
  }

  /** An ext value other than EventTime: its type and its bytes in base64. */
  protected ext(type: number, data: Buffer): unknown {
    return { ext: type, data: data.toString('base64') };
  }
}

/** A map key that is no str, as the text it is kept under: bytes as UTF-8, an integer as its digits. */
export function keyText(k: unknown): string {
  if (typeof k === 'string') return k;
  if (Buffer.isBuffer(k)) return k.toString('utf8');
  return k instanceof IntegerText ? k.digits : String(k);
}

/** Own keys only: a record key `__proto__` must not reach the prototype. */
export function setKey(obj: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  else obj[key] = value;
}

type Utf8Slice = (this: Buffer, start: number, end: number) => string;
// Measured: what toString('utf8', s, e) calls once it has checked its
// arguments; calling it directly saves ~50 ns (CPU) per string.
const utf8Slice = (Buffer.prototype as unknown as { utf8Slice: Utf8Slice }).utf8Slice;

export function utf8(buf: Buffer, start: number, end: number): string {
  return utf8Slice.call(buf, start, end);
}
