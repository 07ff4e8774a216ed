/**
 * The top-level members of a JSON log line, found in its bytes. A member that
 * JSON.stringify(JSON.parse(member)) would write back byte for byte can be
 * copied out as it is, which costs a fraction of JSON.parse and JSON.stringify
 * (3.5 µs together for a 130-byte pino line on this project's 2-core VM); a
 * member that it would write differently (`\u00e9` for `é`, `1.50`, `1e3`) is
 * marked in `rewrite`, and only that member goes through them.
 *
 * Copied as they are: strings of printable ASCII and well-formed UTF-8 with
 * only the escapes JSON.stringify writes itself (\" \\ \b \f \n \r \t and \u00xx
 * for other control characters), integers (but -0: json-values.ts keeps the
 * digits of those a double would round), other numbers in the form
 * JavaScript prints them (at most 15 significant digits, no exponent, no
 * trailing zero in a fraction, not below 1e-6), true, false, null.
 * Rewritten: any other escape or number. The accepted lines: no whitespace outside strings; no
 * escape in a key;
 * nesting up to MAX_DEPTH; no
 * repeated key in any object (JSON.parse keeps the last value at the first
 * place); no key starting with a digit (JSON.parse puts array-index keys
 * first). scan() returns false for anything else, and the caller parses the
 * line with JSON.parse as usual: this is a fast path, never a second opinion.
 */

import { canonicalUnicodeEscape, hex4, plainWord, SHORT_ESCAPES, utf8End } from './json-bytes.js';

const MAX_DEPTH = 32;
/**
 * Most keys in one object read here. A key is compared with the earlier ones
 * its bit may match, all of them once the bits fill: a line of thousands of
 * keys took time quadratic in its length (a 200 KB line, 0.7 s). JSON.parse,
 * on the general path, takes such a line in linear time.
 */
const MAX_OBJECT_KEYS = 64;
/** Up to 15 significant digits, a decimal number is the shortest text of its double (DBL_DIG). */
const MAX_DIGITS = 15;
/** Below 1e-6 JavaScript prints an exponent. */
const MAX_LEADING_FRACTION_ZEROS = 5;

/** What a top-level member's value is. */
export const KIND_STRING = 0;
export const KIND_INTEGER = 1;
export const KIND_OTHER = 2;

export class JsonMembers {
  /** Top-level members found by the last successful scan(). */
  count = 0;
  /** Per member: the key's bytes (inside the quotes), and the value's whole JSON text. */
  keyAt = new Int32Array(16);
  keyEnd = new Int32Array(16);
  valueAt = new Int32Array(16);
  valueEnd = new Int32Array(16);
  kind = new Uint8Array(16);
  /** Whether a string value holds a backslash escape. */
  escaped = new Uint8Array(16);
  /** Whether the value is not in the form JSON.stringify writes (see above). */
  rewrite = new Uint8Array(16);

  /** Key ranges of the objects being read, innermost last, to find repeats. */
  private openKeys = new Int32Array(256);
  private openKeyCount = 0;
  private lastEscaped = false;
  /** Whether the last number read was an integer of at most MAX_DIGITS digits, whose double is exact. */
  private lastShortInteger = false;
  /** Whether the member being read holds an escape or number to rewrite. */
  private dirty = false;

  /** `buf` as a DataView, for reading strings four bytes at a time. */
  private view: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(0));

  /** Whether bytes [start, end) are one object of the subset; fills the member table if so. `view` is `buf` as a DataView. */
  scan(buf: Buffer, view: DataView<ArrayBufferLike>, start: number, end: number): boolean {
    this.view = view;
    this.count = 0;
    this.openKeyCount = 0;
    return buf[start] === 0x7b && this.object(buf, start, end, 1, true) === end;
  }

  /** Index of the top-level member whose key is `key`'s bytes, or -1. */
  find(buf: Buffer, key: Buffer): number {
    for (let i = 0; i < this.count; i++) {
      const at = this.keyAt[i]!;
      if (this.keyEnd[i]! - at !== key.length) continue;
      let j = 0;
      while (j < key.length && buf[at + j] === key[j]) j++;
      if (j === key.length) return i;
    }
    return -1;
  }

  /** Returns the offset after the object at `p`, or -1. */
  private object(buf: Buffer, p: number, end: number, depth: number, top: boolean): number {
    p++;
    if (buf[p] === 0x7d) return p + 1;
    const firstKey = this.openKeyCount;
    // One bit per key of this object, from its length and its first and last
    // bytes: a key whose bit is clear is not one before it, so it is not
    // compared with each.
    let seen = 0;
    for (;;) {
      if (p >= end || buf[p] !== 0x22) return -1;
      const keyAt = p + 1;
      const first = buf[keyAt]!;
      if (first >= 0x30 && first <= 0x39) return -1;
      p = this.string(buf, p, end);
      // A key with an escape (`\u0061`, `\/`) is another key's text in other
      // bytes: repeats and the keys clogs looks for are compared as bytes.
      if (p < 0 || this.lastEscaped || this.openKeyCount - firstKey >= MAX_OBJECT_KEYS) return -1;
      const keyEnd = p - 1;
      const bit = 1 << ((7 * (keyEnd - keyAt) + 3 * first + buf[keyEnd - 1]!) & 31);
      if ((seen & bit) !== 0 && this.repeats(buf, firstKey, keyAt, keyEnd)) return -1;
      seen |= bit;
      this.addKey(keyAt, keyEnd);
      if (buf[p] !== 0x3a) return -1;
      const valueAt = ++p;
      if (p >= end) return -1;
      if (top) this.dirty = false;
      const b = buf[p]!;
      let kind = KIND_OTHER;
      if (b === 0x22) {
        kind = KIND_STRING;
        p = this.string(buf, p, end);
      } else if (b === 0x2d || (b >= 0x30 && b <= 0x39)) {
        p = this.number(buf, p, end);
        // Only a top-level member's kind is read, and its flag starts clear.
        kind = p > 0 && !this.dirty && this.lastShortInteger ? KIND_INTEGER : KIND_OTHER;
      } else {
        p = this.value(buf, p, end, depth);
      }
      if (p < 0) return -1;
      if (top) this.member(keyAt, keyEnd, valueAt, p, kind);
      const next = buf[p];
      if (next === 0x2c) {
        p++;
        continue;
      }
      if (next !== 0x7d) return -1;
      this.openKeyCount = firstKey;
      return p + 1;
    }
  }

  private array(buf: Buffer, p: number, end: number, depth: number): number {
    p++;
    if (buf[p] === 0x5d) return p + 1;
    for (;;) {
      if (p >= end) return -1;
      p = this.value(buf, p, end, depth);
      if (p < 0) return -1;
      const next = buf[p];
      if (next === 0x2c) {
        p++;
        continue;
      }
      return next === 0x5d ? p + 1 : -1;
    }
  }

  private value(buf: Buffer, p: number, end: number, depth: number): number {
    const b = buf[p];
    switch (b) {
      case 0x22:
        return this.string(buf, p, end);
      case 0x7b:
        return depth >= MAX_DEPTH ? -1 : this.object(buf, p, end, depth + 1, false);
      case 0x5b:
        return depth >= MAX_DEPTH ? -1 : this.array(buf, p, end, depth + 1);
      case 0x74:
        return word(buf, p, end, TRUE);
      case 0x66:
        return word(buf, p, end, FALSE);
      case 0x6e:
        return word(buf, p, end, NULL);
      default:
        return b === 0x2d || (b !== undefined && b >= 0x30 && b <= 0x39) ? this.number(buf, p, end) : -1;
    }
  }

  /** The string at `p` (its opening quote); returns the offset after its closing quote, or -1. */
  private string(buf: Buffer, p: number, end: number): number {
    let escaped = false;
    p++;
    const view = this.view;
    for (;;) {
      // Runs of plain characters four at a time, also after an escape or a
      // non-ASCII character: a stack trace is one long string of `\n`s.
      while (p + 4 <= end && plainWord(view.getUint32(p))) p += 4;
      if (p >= end) return -1;
      const b = buf[p]!;
      if (b === 0x22) {
        this.lastEscaped = escaped;
        return p + 1;
      }
      if (b === 0x5c) {
        const e = buf[++p];
        // The escapes JSON.stringify writes: " \ b f n r t, and \u00xx.
        if (e === 0x75) {
          if (hex4(buf, p + 1, end) < 0) return -1;
          if (!canonicalUnicodeEscape(buf, p + 1, end)) this.dirty = true;
          p += 4;
        } else if (e === 0x2f) {
          this.dirty = true;
        } else if (e === undefined || SHORT_ESCAPES[e]! < 0) {
          return -1;
        }
        escaped = true;
        p++;
      } else if (b < 0x20) {
        return -1;
      } else if (b > 0x7f) {
        p = utf8End(buf, p, end);
        if (p < 0) return -1;
      } else {
        p++;
      }
    }
  }

  /**
   * A JSON number; returns the offset after it, or -1. Marks the member for
   * rewriting unless JavaScript prints the number the same (see MAX_DIGITS).
   */
  private number(buf: Buffer, p: number, end: number): number {
    const negative = buf[p] === 0x2d;
    if (negative) p++;
    const intAt = p;
    while (p < end && isDigit(buf[p]!)) p++;
    const intDigits = p - intAt;
    if (intDigits === 0) return -1;
    const zero = buf[intAt] === 0x30;
    if (zero && intDigits > 1) return -1;
    let canonical = !(zero && negative);
    this.lastShortInteger = intDigits <= MAX_DIGITS;
    if (buf[p] === 0x2e) {
      this.lastShortInteger = false;
      const fracAt = ++p;
      while (p < end && isDigit(buf[p]!)) p++;
      if (p === fracAt) return -1;
      let significant = intDigits + (p - fracAt);
      if (zero) {
        let z = fracAt;
        while (buf[z] === 0x30) z++;
        significant = z - fracAt > MAX_LEADING_FRACTION_ZEROS ? Infinity : p - z;
      }
      canonical = buf[p - 1] !== 0x30 && significant <= MAX_DIGITS;
    }
    if (buf[p] === 0x65 || buf[p] === 0x45) {
      p++;
      if (buf[p] === 0x2b || buf[p] === 0x2d) p++;
      const expAt = p;
      while (p < end && isDigit(buf[p]!)) p++;
      if (p === expAt) return -1;
      canonical = false;
      this.lastShortInteger = false;
    }
    if (!canonical) this.dirty = true;
    return p;
  }

  /** Whether the key [at, end) is already a key of the object being read (since `first`). */
  private repeats(buf: Buffer, first: number, at: number, end: number): boolean {
    const keys = this.openKeys;
    const len = end - at;
    for (let i = first; i < this.openKeyCount; i++) {
      const kAt = keys[2 * i]!;
      if (keys[2 * i + 1]! - kAt !== len) continue;
      let j = 0;
      while (j < len && buf[kAt + j] === buf[at + j]) j++;
      if (j === len) return true;
    }
    return false;
  }

  /** Records the key [at, end) as one of the object being read. */
  private addKey(at: number, end: number): void {
    if (2 * this.openKeyCount + 2 > this.openKeys.length) {
      const grown = new Int32Array(this.openKeys.length * 2);
      grown.set(this.openKeys);
      this.openKeys = grown;
    }
    this.openKeys[2 * this.openKeyCount] = at;
    this.openKeys[2 * this.openKeyCount + 1] = end;
    this.openKeyCount++;
  }

  private member(keyAt: number, keyEnd: number, valueAt: number, valueEnd: number, kind: number): void {
    const i = this.count++;
    if (i === this.keyAt.length) {
      const n = i * 2;
      this.keyAt = grow(this.keyAt, n);
      this.keyEnd = grow(this.keyEnd, n);
      this.valueAt = grow(this.valueAt, n);
      this.valueEnd = grow(this.valueEnd, n);
      this.kind = grow(this.kind, n);
      this.escaped = grow(this.escaped, n);
      this.rewrite = grow(this.rewrite, n);
    }
    this.keyAt[i] = keyAt;
    this.keyEnd[i] = keyEnd;
    this.valueAt[i] = valueAt;
    this.valueEnd[i] = valueEnd;
    this.kind[i] = kind;
    this.escaped[i] = kind === KIND_STRING && this.lastEscaped ? 1 : 0;
    this.rewrite[i] = this.dirty ? 1 : 0;
  }
}

const TRUE = Buffer.from('true');
const FALSE = Buffer.from('false');
const NULL = Buffer.from('null');

function word(buf: Buffer, p: number, end: number, w: Buffer): number {
  if (p + w.length > end) return -1;
  for (let i = 0; i < w.length; i++) if (buf[p + i] !== w[i]) return -1;
  return p + w.length;
}

function isDigit(b: number): boolean {
  return b >= 0x30 && b <= 0x39;
}

function grow<T extends Int32Array | Uint8Array>(a: T, n: number): T {
  const b = new (a.constructor as new (n: number) => T)(n);
  b.set(a);
  return b;
}

/** The value of an integer member [at, end) of at most MAX_DIGITS digits. */
export function integerAt(buf: Buffer, at: number, end: number): number {
  const negative = buf[at] === 0x2d;
  let n = 0;
  for (let p = negative ? at + 1 : at; p < end; p++) n = n * 10 + (buf[p]! - 0x30);
  return negative ? -n : n;
}
