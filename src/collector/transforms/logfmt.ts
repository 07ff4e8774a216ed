/**
 * logfmt lines (Heroku, Go's slog text handler, logrus without a terminal,
 * log15): `key=value` pairs separated by spaces, a value bare or in double
 * quotes with backslash escapes.
 *
 * A line is logfmt when the whole of it is such pairs and there are at least
 * two: `retries=3` alone, or `user said x=1 and y=2`, are plain text. Every
 * pair needs its `=` (a bare key, which logfmt allows, makes the line text: it
 * is how free text looks). A bare value has no `"` or `=`; a quoted one ends at
 * its closing quote, and a line with an unclosed quote is text. Values stay
 * strings, as written: `status=200` is "200", never a number.
 */

/**
 * Where the pairs of a logfmt line are, as byte offsets: one rule for the
 * Normalizer (parseLogfmt) and for the forward fast path, which renders a
 * line's fields straight from the wire. Offsets stay valid until the next read.
 */
export class LogfmtPairs {
  count = 0;
  keyAt = new Int32Array(16);
  keyEnd = new Int32Array(16);
  /** A quoted value's offsets are inside its quotes. */
  valueAt = new Int32Array(16);
  valueEnd = new Int32Array(16);
  /** 1 for a quoted value with a backslash in it (escapes to decode). */
  escaped = new Uint8Array(16);

  /** Reads bytes [start, end) of `buf`; false, with `count` meaningless, for a line that is no logfmt. */
  read(buf: Buffer, start: number, end: number): boolean {
    if (!startsWithPair(buf, start, end)) return false;
    let count = 0;
    let p = start;
    while (p < end) {
      const keyAt = p;
      while (p < end && isKeyChar(buf[p]!)) p++;
      if (p === keyAt || buf[p] !== 0x3d /* = */) return false;
      const keyEnd = p++;
      let valueAt = p;
      let valueEnd: number;
      let escaped = 0;
      if (buf[p] === 0x22 /* " */) {
        valueAt = ++p;
        // A backslash escapes the byte after it; a multi-byte character's
        // other bytes are never `"` or `\`, so bytes read as characters do.
        for (; p < end && buf[p] !== 0x22; p++) {
          if (buf[p] === 0x5c) {
            escaped = 1;
            p++;
          }
        }
        if (p >= end) return false;
        valueEnd = p++;
      } else {
        while (p < end && isBareChar(buf[p]!)) p++;
        valueEnd = p;
      }
      if (p < end && !isSpace(buf[p]!)) return false;
      while (p < end && isSpace(buf[p]!)) p++;
      if (count === this.keyAt.length) this.grow();
      this.keyAt[count] = keyAt;
      this.keyEnd[count] = keyEnd;
      this.valueAt[count] = valueAt;
      this.valueEnd[count] = valueEnd;
      this.escaped[count] = escaped;
      count++;
    }
    this.count = count;
    return count >= 2;
  }

  private grow(): void {
    const n = this.keyAt.length * 2;
    const more = <T extends Int32Array | Uint8Array>(a: T, b: T): T => (b.set(a), b);
    this.keyAt = more(this.keyAt, new Int32Array(n));
    this.keyEnd = more(this.keyEnd, new Int32Array(n));
    this.valueAt = more(this.valueAt, new Int32Array(n));
    this.valueEnd = more(this.valueEnd, new Int32Array(n));
    this.escaped = more(this.escaped, new Uint8Array(n));
  }
}

const pairs = new LogfmtPairs();

/**
 * The fields of a logfmt line; a repeated key keeps its first place and its
 * last value, as JSON.parse does. Undefined for any other line.
 */
export function parseLogfmt(line: string): Record<string, string> | undefined {
  if (!startsWithPair(line, 0, line.length)) return undefined;
  const buf = Buffer.from(line, 'utf8');
  if (!pairs.read(buf, 0, buf.length)) return undefined;
  // No prototype: a key such as `__proto__` is a field like any other.
  const fields = Object.create(null) as Record<string, string>;
  for (let i = 0; i < pairs.count; i++) {
    const value = buf.toString('utf8', pairs.valueAt[i]!, pairs.valueEnd[i]!);
    fields[buf.toString('latin1', pairs.keyAt[i]!, pairs.keyEnd[i]!)] = pairs.escaped[i] ? unquote(value) : value;
  }
  return { ...fields };
}

/**
 * Whether bytes [start, end) of `buf` (or a string's characters) open with
 * `key=`: every logfmt line does, and most text lines do not. For the forward
 * fast path, which leaves such lines to the Normalizer.
 */
export function startsWithPair(line: Buffer | string, start: number, end: number): boolean {
  let p = start;
  if (typeof line === 'string') while (p < end && isKeyChar(line.charCodeAt(p))) p++;
  else while (p < end && isKeyChar(line[p]!)) p++;
  return p > start && p < end && (typeof line === 'string' ? line.charCodeAt(p) : line[p]) === 0x3d;
}

/** Printable ASCII but space, `=` and `"`. */
function isKeyChar(c: number): boolean {
  return c > 0x20 && c < 0x7f && c !== 0x3d && c !== 0x22;
}

/** Anything but space, `=` and `"` (a bare value may hold UTF-8 text). */
function isBareChar(c: number): boolean {
  return c > 0x20 && c !== 0x3d && c !== 0x22 && c !== 0x7f;
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09;
}

const ESCAPES: Record<string, string> = { '"': '"', '\\': '\\', n: '\n', r: '\r', t: '\t' };

/**
 * A quoted value's text: the escapes Go's strconv.Quote writes for text
 * (`\"` `\\` `\n` `\r` `\t` `\uXXXX`) decoded; any other backslash kept as written.
 */
function unquote(inner: string): string {
  return inner.replace(/\\(?:u([0-9a-fA-F]{4})|(.))/g, (all, hex: string | undefined, c: string | undefined) => {
    if (hex !== undefined) return String.fromCharCode(parseInt(hex, 16));
    return ESCAPES[c!] ?? all;
  });
}
