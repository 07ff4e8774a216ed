/**
 * A JSON line's values with its integers as written. JSON.parse reads every
 * number as a double, so an integer of more than 15 digits can come back as
 * another one: zerolog's nanosecond times (`"time":1700000000123456789`
 * became 1700000000123456800) and snowflake ids lost their last digits, though
 * Elasticsearch keeps 64-bit integers exactly and Fluent Bit passes them
 * through. Here such an integer is an IntegerText holding its digits, and
 * writing the value writes them back; everything else is exactly what
 * JSON.parse and JSON.stringify make of it (json-members.ts copies the same
 * integers as they are, so both paths write one line).
 */

/**
 * Integers below 2^53 (9007199254740992, 16 digits) are exact doubles, whose
 * shortest text is their own: only a run of 17 digits, or 16 from a 9 on,
 * can be one JSON.parse rounds. A run of 16 from a lower digit is common
 * (clogs.seq counts microseconds: 1.8e15) and is left to JSON.parse alone.
 */
const LONG_INTEGER = /\d{17}|9\d{15}/;

/** An integer JSON.parse would round, as the digits the line wrote. */
export class IntegerText {
  constructor(readonly digits: string) {}

  /** Where something writes it with JSON.stringify, the digits survive as a string. */
  toJSON(): string {
    integersWritten = true;
    return this.digits;
  }
}

/** Set by IntegerText.toJSON, so stringifyJson() knows JSON.stringify met one without a replacer on every value. */
let integersWritten = false;

/** JSON.parse of `text`, with IntegerText for the integers it would round. Throws what JSON.parse throws. */
export function parseJson(text: string): unknown {
  const value: unknown = JSON.parse(text);
  if (!LONG_INTEGER.test(text)) return value;
  try {
    const reader = new ExactReader(text);
    const exact = reader.value();
    return reader.integers > 0 ? exact : value;
  } catch {
    // Nested deeper than this reader's recursion goes: JSON.parse has no such limit.
    return value;
  }
}

/** JSON.stringify of `value`, writing an IntegerText's digits as a number. Throws what JSON.stringify throws. */
export function stringifyJson(value: unknown): string {
  integersWritten = false;
  const json = JSON.stringify(value);
  if (!integersWritten) return json;
  try {
    return write(value) ?? json;
  } catch {
    // Nested deeper than write()'s recursion goes, which takes more stack than
    // JSON.stringify's: the digits as strings rather than the member lost.
    return json;
  }
}

/** JSON.stringify's text of `v`, IntegerText as its digits; undefined where JSON.stringify leaves a member out. */
function write(v: unknown): string | undefined {
  if (v instanceof IntegerText) return v.digits;
  if (Array.isArray(v)) return '[' + v.map((item) => write(item) ?? 'null').join(',') + ']';
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  const proto = Object.getPrototypeOf(v) as unknown;
  if (proto !== Object.prototype && proto !== null) return JSON.stringify(v);
  const members: string[] = [];
  for (const key of Object.keys(v)) {
    const json = write((v as Record<string, unknown>)[key]);
    if (json !== undefined) members.push(JSON.stringify(key) + ':' + json);
  }
  return '{' + members.join(',') + '}';
}

/**
 * Reads a text JSON.parse accepted, into the same values, except integers of
 * more than 15 digits whose double prints otherwise. Only valid JSON comes
 * here, so it checks nothing.
 */
class ExactReader {
  private p = 0;
  /** IntegerText values made. */
  integers = 0;

  constructor(private readonly text: string) {}

  value(): unknown {
    this.space();
    const t = this.text;
    const c = t.charCodeAt(this.p);
    if (c === 0x7b) return this.object();
    if (c === 0x5b) return this.array();
    if (c === 0x22) return this.string();
    if (c === 0x74) return this.word('true', true);
    if (c === 0x66) return this.word('false', false);
    if (c === 0x6e) return this.word('null', null);
    return this.number();
  }

  private object(): Record<string, unknown> {
    const o: Record<string, unknown> = {};
    this.p++;
    this.space();
    if (this.text.charCodeAt(this.p) === 0x7d) {
      this.p++;
      return o;
    }
    for (;;) {
      this.space();
      const key = this.string();
      this.space();
      this.p++; // :
      const v = this.value();
      // JSON.parse makes `__proto__` an own member; an assignment would set the prototype.
      if (key === '__proto__') Object.defineProperty(o, key, { value: v, writable: true, enumerable: true, configurable: true });
      else o[key] = v;
      this.space();
      if (this.text.charCodeAt(this.p++) === 0x7d) return o;
    }
  }

  private array(): unknown[] {
    const a: unknown[] = [];
    this.p++;
    this.space();
    if (this.text.charCodeAt(this.p) === 0x5d) {
      this.p++;
      return a;
    }
    for (;;) {
      a.push(this.value());
      this.space();
      if (this.text.charCodeAt(this.p++) === 0x5d) return a;
    }
  }

  private string(): string {
    const t = this.text;
    const at = this.p;
    let escaped = false;
    let i = at + 1;
    for (let c = t.charCodeAt(i); c !== 0x22; c = t.charCodeAt(i)) {
      if (c === 0x5c) {
        escaped = true;
        i += 2;
      } else i++;
    }
    this.p = i + 1;
    return escaped ? (JSON.parse(t.slice(at, i + 1)) as string) : t.slice(at + 1, i);
  }

  private number(): number | IntegerText {
    const t = this.text;
    const at = this.p;
    let integer = true;
    let i = at;
    for (; i < t.length; i++) {
      const c = t.charCodeAt(i);
      if (c >= 0x30 && c <= 0x39) continue;
      if (c === 0x2d && i === at) continue;
      if (c === 0x2e || c === 0x65 || c === 0x45 || c === 0x2b || c === 0x2d) integer = false;
      else break;
    }
    this.p = i;
    const token = t.slice(at, i);
    const n = Number(token);
    if (!integer || i - at < 16 || String(n) === token) return n;
    this.integers++;
    return new IntegerText(token);
  }

  private word<T>(w: string, v: T): T {
    this.p += w.length;
    return v;
  }

  private space(): void {
    const t = this.text;
    for (let c = t.charCodeAt(this.p); c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d; c = t.charCodeAt(++this.p));
  }
}
