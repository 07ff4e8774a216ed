/**
 * Byte rules for writing JSON strings in place: which bytes JSON.stringify
 * leaves as they are, and which UTF-8 it copies. The renderer and the JSON
 * member scanner copy text from the wire into lines with them, so a line they
 * write is the line JSON.stringify would have written, byte for byte. Which
 * escapes a JSON string may hold, and what they stand for, is here too: the
 * member scanner checks them, the Elasticsearch `_id` key decodes them.
 */

/**
 * Whether none of the four bytes of `x` (read from a DataView) needs an
 * escape in a JSON string or is outside ASCII: each is 0x20 to 0x7f and not
 * `"` or `\`. All four tested at once with hasless/haszero from "Bit
 * Twiddling Hacks" (exact as a yes/no; 32-bit wrap-around is what they need).
 */
export function plainWord(x: number): boolean {
  const q = x ^ 0x22222222;
  const b = x ^ 0x5c5c5c5c;
  return ((x & 0x80808080) | ((x - 0x20202020) & ~x & 0x80808080) | ((q - 0x01010101) & ~q & 0x80808080) | ((b - 0x01010101) & ~b & 0x80808080)) === 0;
}

/**
 * The end of the well-formed UTF-8 sequence of two to four bytes that starts
 * at `p`, or -1 (overlong forms, surrogates, past U+10FFFF and truncated
 * sequences are not well-formed: Node decodes them to U+FFFD, so the
 * general path must see them).
 */
export function utf8End(buf: Buffer, p: number, end: number): number {
  const b = buf[p]!;
  if (b < 0xc2) return -1;
  if (b < 0xe0) return p + 1 < end && (buf[p + 1]! & 0xc0) === 0x80 ? p + 2 : -1;
  if (b < 0xf0) {
    if (p + 2 >= end) return -1;
    const c = buf[p + 1]!;
    if (c < (b === 0xe0 ? 0xa0 : 0x80) || c > (b === 0xed ? 0x9f : 0xbf)) return -1;
    return (buf[p + 2]! & 0xc0) === 0x80 ? p + 3 : -1;
  }
  if (b < 0xf5) {
    if (p + 3 >= end) return -1;
    const c = buf[p + 1]!;
    if (c < (b === 0xf0 ? 0x90 : 0x80) || c > (b === 0xf4 ? 0x8f : 0xbf)) return -1;
    return (buf[p + 2]! & 0xc0) === 0x80 && (buf[p + 3]! & 0xc0) === 0x80 ? p + 4 : -1;
  }
  return -1;
}

const HEX = Buffer.from('0123456789abcdef');

/**
 * What the byte after a backslash stands for in a JSON string (`"` `\` `/`
 * `b` `f` `n` `r` `t`); -1 for `u`, which four hex digits follow (hex4()),
 * and for any byte JSON allows no escape of.
 */
export const SHORT_ESCAPES = new Int16Array(256).fill(-1);
for (const [c, v] of [['"', 0x22], ['\\', 0x5c], ['/', 0x2f], ['b', 0x08], ['f', 0x0c], ['n', 0x0a], ['r', 0x0d], ['t', 0x09]] as const) SHORT_ESCAPES[c.charCodeAt(0)] = v;

/** The value of the four hex digits at `p` (before `end`), as after a `\u`; -1 when they are not four hex digits. */
export function hex4(buf: Buffer, p: number, end: number): number {
  if (p + 4 > end) return -1;
  let v = 0;
  for (let i = p; i < p + 4; i++) {
    const c = buf[i]!;
    const d = c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x57 : c >= 0x41 && c <= 0x46 ? c - 0x37 : -1;
    if (d < 0) return -1;
    v = (v << 4) | d;
  }
  return v;
}

/**
 * Whether the four hex digits after a `\u` at `p` are what JSON.stringify
 * writes itself: `\u00xx` in lower case for a control character that has no
 * short escape. Any other `\u` (`\u00e9`, `\u0041`) is written back decoded.
 */
export function canonicalUnicodeEscape(buf: Buffer, p: number, end: number): boolean {
  if (p + 4 > end || buf[p] !== 0x30 || buf[p + 1] !== 0x30) return false;
  const hi = buf[p + 2];
  const lo = buf[p + 3]!;
  if (hi !== 0x30 && hi !== 0x31) return false;
  const low = HEX.indexOf(lo);
  if (low < 0) return false;
  const code = (hi - 0x30) * 16 + low;
  return code !== 0x08 && code !== 0x09 && code !== 0x0a && code !== 0x0c && code !== 0x0d;
}

/** Whether the `len` bytes of `buf` at `pos` are `want`'s. */
export function bytesEqual(buf: Buffer, pos: number, len: number, want: Buffer): boolean {
  if (len !== want.length) return false;
  for (let i = 0; i < len; i++) if (buf[pos + i] !== want[i]) return false;
  return true;
}

/**
 * Whether `len` bytes at `a` and at `b` of `buf` are the same: keys compared
 * with the keys before them, where Buffer#compare's call would cost more
 * than the few bytes it compares.
 */
export function sameBytesAt(buf: Buffer, a: number, b: number, len: number): boolean {
  for (let i = 0; i < len; i++) if (buf[a + i] !== buf[b + i]) return false;
  return true;
}

/**
 * Where bytes [0, end) of `buf` may be cut without splitting a UTF-8
 * character: `end`, or the start of the sequence that `end` would cut in two.
 * Bytes that are no sequence's start stay where they are.
 */
export function utf8CutPoint(buf: Buffer, end: number): number {
  let lead = end;
  while (lead > 0 && end - lead < 3 && (buf[lead - 1]! & 0xc0) === 0x80) lead--;
  if (lead === 0) return end;
  const b = buf[lead - 1]!;
  const length = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
  return end - (lead - 1) < length ? lead - 1 : end;
}
