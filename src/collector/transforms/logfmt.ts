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
 * The fields of a logfmt line; a repeated key keeps its first place and its
 * last value, as JSON.parse does. Undefined for any other line.
 */
export function parseLogfmt(line: string): Record<string, string> | undefined {
  if (!startsWithPair(line, 0, line.length)) return undefined;
  // No prototype: a key such as `__proto__` is a field like any other.
  const fields = Object.create(null) as Record<string, string>;
  const n = line.length;
  let pairs = 0;
  let p = 0;
  while (p < n) {
    const keyAt = p;
    while (p < n && isKeyChar(line.charCodeAt(p))) p++;
    if (p === keyAt || line.charCodeAt(p) !== 0x3d /* = */) return undefined;
    const key = line.slice(keyAt, p++);
    let value: string;
    if (line.charCodeAt(p) === 0x22 /* " */) {
      const close = closingQuote(line, p + 1);
      if (close < 0) return undefined;
      value = unquote(line, p + 1, close);
      p = close + 1;
    } else {
      const valueAt = p;
      while (p < n && isBareChar(line.charCodeAt(p))) p++;
      value = line.slice(valueAt, p);
    }
    if (p < n && !isSpace(line.charCodeAt(p))) return undefined;
    while (p < n && isSpace(line.charCodeAt(p))) p++;
    fields[key] = value;
    pairs++;
  }
  return pairs >= 2 ? { ...fields } : undefined;
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

/** The index of the quote closing a value that starts at `p`, or -1. */
function closingQuote(line: string, p: number): number {
  for (; p < line.length; p++) {
    const c = line.charCodeAt(p);
    if (c === 0x5c) p++;
    else if (c === 0x22) return p;
  }
  return -1;
}

const ESCAPES: Record<string, string> = { '"': '"', '\\': '\\', n: '\n', r: '\r', t: '\t' };

/**
 * A quoted value's text: the escapes Go's strconv.Quote writes for text
 * (`\"` `\\` `\n` `\r` `\t` `\uXXXX`) decoded; any other backslash kept as written.
 */
function unquote(line: string, start: number, end: number): string {
  const inner = line.slice(start, end);
  if (inner.indexOf('\\') < 0) return inner;
  return inner.replace(/\\(?:u([0-9a-fA-F]{4})|(.))/g, (all, hex: string | undefined, c: string | undefined) => {
    if (hex !== undefined) return String.fromCharCode(parseInt(hex, 16));
    return ESCAPES[c!] ?? all;
  });
}
