/**
 * The little msgpack the server itself sends: HELO, PONG and acks. Strings go
 * out as str, Buffers as bin, integers in the smallest format.
 */

export type Encodable = null | boolean | number | string | Buffer | readonly Encodable[] | { readonly [key: string]: Encodable };

export function encodeMsgpack(value: Encodable): Buffer {
  const parts: Buffer[] = [];
  write(value, parts);
  return Buffer.concat(parts);
}

function header(parts: Buffer[], fix: number, fixMax: number, n: number, c16: number, c32: number): void {
  if (n <= fixMax) parts.push(Buffer.of(fix | n));
  else if (n <= 0xffff) parts.push(Buffer.of(c16, n >> 8, n & 0xff));
  else {
    const b = Buffer.allocUnsafe(5);
    b[0] = c32;
    b.writeUInt32BE(n, 1);
    parts.push(b);
  }
}

function write(value: Encodable, parts: Buffer[]): void {
  if (value === null) {
    parts.push(Buffer.of(0xc0));
  } else if (typeof value === 'boolean') {
    parts.push(Buffer.of(value ? 0xc3 : 0xc2));
  } else if (typeof value === 'number') {
    if (Number.isInteger(value) && value >= 0 && value < 0x80) parts.push(Buffer.of(value));
    else if (Number.isInteger(value) && value >= 0 && value <= 0xffffffff) {
      const b = Buffer.allocUnsafe(5);
      b[0] = 0xce;
      b.writeUInt32BE(value, 1);
      parts.push(b);
    } else {
      const b = Buffer.allocUnsafe(9);
      b[0] = 0xcb;
      b.writeDoubleBE(value, 1);
      parts.push(b);
    }
  } else if (typeof value === 'string') {
    const bytes = Buffer.from(value, 'utf8');
    const n = bytes.length;
    if (n < 32) parts.push(Buffer.of(0xa0 | n));
    else if (n <= 0xff) parts.push(Buffer.of(0xd9, n));
    else header(parts, 0, -1, n, 0xda, 0xdb);
    parts.push(bytes);
  } else if (Buffer.isBuffer(value)) {
    const n = value.length;
    if (n <= 0xff) parts.push(Buffer.of(0xc4, n));
    else header(parts, 0, -1, n, 0xc5, 0xc6);
    parts.push(value);
  } else if (Array.isArray(value)) {
    header(parts, 0x90, 15, value.length, 0xdc, 0xdd);
    for (const item of value as readonly Encodable[]) write(item, parts);
  } else {
    const entries = Object.entries(value as { readonly [key: string]: Encodable });
    header(parts, 0x80, 15, entries.length, 0xde, 0xdf);
    for (const [k, v] of entries) {
      write(k, parts);
      write(v, parts);
    }
  }
}
