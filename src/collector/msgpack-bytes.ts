/**
 * Msgpack values read in place, by offset, without decoding them: how many
 * bytes a type takes, where a string's bytes are, a number, where a map or
 * an array ends. The Framer needs only sizes (forward/framer.ts); the fast
 * path keeps a record's values as offsets (forward/packed-lines.ts) and the
 * renderer writes them from there (line-render.ts). The general path decodes
 * whole values with forward/msgpack.ts.
 */

/** Bytes after the type byte of every fixed-size format (0 for the one-byte ones), -1 for the others. */
export const FIXED_PAYLOAD = new Int8Array(256).fill(-1);
for (let b = 0x00; b <= 0x7f; b++) FIXED_PAYLOAD[b] = 0;
for (let b = 0xe0; b <= 0xff; b++) FIXED_PAYLOAD[b] = 0;
for (const [b, n] of [
  [0xc0, 0], [0xc2, 0], [0xc3, 0], // nil, false, true
  [0xca, 4], [0xcb, 8], // float32, float64
  [0xcc, 1], [0xcd, 2], [0xce, 4], [0xcf, 8], // uint8..64
  [0xd0, 1], [0xd1, 2], [0xd2, 4], [0xd3, 8], // int8..64
  [0xd4, 2], [0xd5, 3], [0xd6, 5], [0xd7, 9], [0xd8, 17], // fixext1..16: type byte + payload
] as const) {
  FIXED_PAYLOAD[b] = n;
}

/**
 * Bytes of the length or count field after the type bytes that have one
 * (str, bin and ext 8/16/32, array and map 16/32); 0 for the others. An ext's
 * type byte follows the field.
 */
export const LENGTH_FIELD_BYTES = new Uint8Array(256);
for (const [b, n] of [
  [0xc4, 1], [0xc5, 2], [0xc6, 4], // bin
  [0xc7, 1], [0xc8, 2], [0xc9, 4], // ext
  [0xd9, 1], [0xda, 2], [0xdb, 4], // str
  [0xdc, 2], [0xdd, 4], // array
  [0xde, 2], [0xdf, 4], // map
] as const) {
  LENGTH_FIELD_BYTES[b] = n;
}

// What a length or count field (LENGTH_FIELD_BYTES) is of: headerKind().
export const LEN_PAYLOAD = 1; // str, bin: length then payload
export const LEN_EXT = 2; // ext: length, type byte, payload
export const COUNT_ARRAY = 3;
export const COUNT_MAP = 4;

/**
 * Where the msgpack value at `p` ends, when all of it lies before `end`; -1
 * when it does not, or when a byte is no msgpack type. The Framer's scan()
 * reads the same way but keeps its place across reads (forward/framer.ts);
 * with its state in locals this is about three times as fast on a request a
 * read holds whole (a Docker record: ~14 items).
 */
export function valueEnd(buf: Buffer, p: number, end: number): number {
  let items = 1;
  while (items > 0) {
    if (p >= end) return -1;
    items--;
    const b = buf[p++]!;
    const fixed = FIXED_PAYLOAD[b]!;
    if (fixed >= 0) {
      p += fixed;
    } else if (b <= 0x8f) {
      items += (b & 0x0f) * 2;
    } else if (b <= 0x9f) {
      items += b & 0x0f;
    } else if (b <= 0xbf) {
      p += b & 0x1f;
    } else {
      const size = LENGTH_FIELD_BYTES[b]!;
      if (size === 0 || p + size > end) return -1;
      const n = size === 1 ? buf[p]! : size === 2 ? (buf[p]! << 8) | buf[p + 1]! : buf[p]! * 0x1000000 + ((buf[p + 1]! << 16) | (buf[p + 2]! << 8) | buf[p + 3]!);
      p += size;
      const kind = headerKind(b);
      if (kind === COUNT_MAP) items += 2 * n;
      else if (kind === COUNT_ARRAY) items += n;
      else p += kind === LEN_EXT ? n + 1 : n;
    }
  }
  return p <= end ? p : -1;
}

/** What the length or count field after type byte `b` (LENGTH_FIELD_BYTES) is of. */
export function headerKind(b: number): number {
  if (b >= 0xde) return COUNT_MAP;
  if (b >= 0xdc) return COUNT_ARRAY;
  return b >= 0xc7 && b <= 0xc9 ? LEN_EXT : LEN_PAYLOAD;
}

/**
 * Bytes of a number, true, false or nil by its type byte, the type byte
 * included; 0 for any other type. 64-bit integers count as other: JavaScript
 * numbers do not hold them all, and the general path writes them apart.
 */
export const SCALAR_BYTES = new Uint8Array(256);
for (let b = 0; b < 256; b++) {
  const ext = b >= 0xd4 && b <= 0xd8;
  if (FIXED_PAYLOAD[b]! >= 0 && b !== 0xcf && b !== 0xd3 && !ext) SCALAR_BYTES[b] = FIXED_PAYLOAD[b]! + 1;
}

/** Whether the type byte starts a str. */
export function isStr(b: number): boolean {
  return (b & 0xe0) === 0xa0 || (b >= 0xd9 && b <= 0xdb);
}

/** Whether the type byte starts a map or an array. */
export function isCollection(b: number): boolean {
  return (b >= 0x80 && b <= 0x9f) || (b >= 0xdc && b <= 0xdf);
}

/** Whether the map-or-array type byte starts a map. */
export function isMap(b: number): boolean {
  return b <= 0x8f || b === 0xde || b === 0xdf;
}

/** Bytes of the header (type byte and count) of a map or array whose type byte is `b`. */
export function collectionHeaderBytes(b: number): number {
  return b <= 0x9f ? 1 : b === 0xdc || b === 0xde ? 3 : 5;
}

/** Items of the map or array at `p` (pairs, for a map); its header must be within `buf`. */
export function collectionCount(buf: Buffer, p: number): number {
  const b = buf[p]!;
  if (b <= 0x9f) return b & 0x0f;
  return b === 0xdc || b === 0xde ? buf.readUInt16BE(p + 1) : buf.readUInt32BE(p + 1);
}

/** Where the bytes of the str at `p` start; its header must be within `buf`. */
export function strStart(buf: Buffer, p: number): number {
  const b = buf[p]!;
  return (b & 0xe0) === 0xa0 ? p + 1 : b === 0xd9 ? p + 2 : b === 0xda ? p + 3 : p + 5;
}

/** Where the str at `p` ends; its header must be within `buf`. */
export function strEnd(buf: Buffer, p: number): number {
  const b = buf[p]!;
  if ((b & 0xe0) === 0xa0) return p + 1 + (b & 0x1f);
  if (b === 0xd9) return p + 2 + buf[p + 1]!;
  if (b === 0xda) return p + 3 + buf.readUInt16BE(p + 1);
  return p + 5 + buf.readUInt32BE(p + 1);
}

/** Where the str at `p` ends; -1 for another type, or when it runs past `end`. */
export function skipStr(buf: Buffer, p: number, end: number): number {
  // strStart() is past the header: the header must be whole before strEnd() reads its length.
  if (p >= end || !isStr(buf[p]!) || strStart(buf, p) > end) return -1;
  const e = strEnd(buf, p);
  return e > end ? -1 : e;
}

/**
 * The number at `at`: an integer of at most 32 bits or a float (a type
 * SCALAR_BYTES counts, but nil, true and false), as the general path's
 * decoder reads it (forward/msgpack.ts value()).
 */
export function numberAt(buf: Buffer, at: number): number {
  const b = buf[at]!;
  if (b <= 0x7f) return b;
  if (b >= 0xe0) return b - 0x100;
  switch (b) {
    case 0xcc: return buf[at + 1]!;
    case 0xcd: return buf.readUInt16BE(at + 1);
    case 0xce: return buf.readUInt32BE(at + 1);
    case 0xd0: return buf.readInt8(at + 1);
    case 0xd1: return buf.readInt16BE(at + 1);
    case 0xd2: return buf.readInt32BE(at + 1);
    case 0xca: return buf.readFloatBE(at + 1);
    default: return buf.readDoubleBE(at + 1);
  }
}

/** How deep, how long and how wide skipNested() reads. */
export interface NestingLimits {
  /** Levels of maps and arrays, the outermost counted 1. */
  depth: number;
  /** Items of a map or an array. */
  items: number;
  /** Keys of a map, at most. */
  mapKeys: number;
}

/**
 * Where the map or array at `p` ends, when it holds only strings, scalars
 * (SCALAR_BYTES) and such maps and arrays, with string keys, within
 * `limits`; -1 otherwise, or when it runs past `end`. `depth`: its level.
 */
export function skipNested(buf: Buffer, p: number, end: number, depth: number, limits: NestingLimits): number {
  if (depth > limits.depth || p >= end) return -1;
  const b = buf[p]!;
  if (!isCollection(b)) return -1;
  const header = collectionHeaderBytes(b);
  if (p + header > end) return -1;
  const n = collectionCount(buf, p);
  const map = isMap(b);
  if (n > limits.items || (map && n > limits.mapKeys)) return -1;
  p += header;
  for (let i = 0; i < n && p >= 0; i++) {
    if (map) p = skipStr(buf, p, end);
    if (p < 0 || p >= end) return -1;
    const v = buf[p]!;
    const scalar = SCALAR_BYTES[v]!;
    if (scalar > 0) p = p + scalar > end ? -1 : p + scalar;
    else if (isStr(v)) p = skipStr(buf, p, end);
    else p = skipNested(buf, p, end, depth + 1, limits);
  }
  return p;
}
