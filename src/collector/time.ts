/**
 * Nanosecond timestamps. JavaScript dates stop at milliseconds, so clogs keeps
 * time as (seconds, nanoseconds) integers and renders RFC 3339 with 9 digits.
 */

export interface NanoTime {
  /** Seconds since the Unix epoch. */
  sec: number;
  /** 0 ..= 999_999_999 */
  nsec: number;
}

/**
 * The seconds an RFC 3339 time can hold: years 0000 to 9999. Past them
 * toISOString() writes a sign and more digits (or throws), and such a text
 * sorts wrongly among stored timestamps, which compare as strings.
 */
export const MIN_SECONDS = Date.parse('0000-01-01T00:00:00Z') / 1000;
export const MAX_SECONDS = Date.parse('9999-12-31T23:59:59Z') / 1000;

const pad9 = (n: number): string => {
  const s = String(n);
  return s.length >= 9 ? s : '000000000'.slice(s.length) + s;
};

// Measured: rendering the date part once per distinct second and appending the
// nanoseconds is several times cheaper than toISOString() per event.
let cachedSec = Number.NaN;
let cachedPrefix = '';

/** `2026-11-22T09:53:10.526990943Z` */
export function formatNanoTime(sec: number, nsec: number): string {
  if (sec !== cachedSec) {
    cachedSec = sec;
    cachedPrefix = new Date(sec * 1000).toISOString().slice(0, 20);
  }
  return cachedPrefix + pad9(nsec) + 'Z';
}

export function nowNanoTime(): NanoTime {
  const ms = Date.now();
  const hr = process.hrtime.bigint() % 1_000_000n;
  return { sec: Math.floor(ms / 1000), nsec: (ms % 1000) * 1_000_000 + Number(hr) };
}

const RFC3339 = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/;

/** Parses an RFC 3339 time, keeping every fractional digit up to nanoseconds. */
export function parseRfc3339(text: string): NanoTime | undefined {
  const m = RFC3339.exec(text);
  if (!m) return undefined;
  const ms = Date.parse(`${m[1]}${m[3]}`);
  if (Number.isNaN(ms)) return undefined;
  const frac = (m[2] ?? '').padEnd(9, '0');
  return { sec: Math.floor(ms / 1000), nsec: Number(frac) };
}

/** Negative, zero or positive as `a` is before, at or after `b`. */
export function compareNanoTime(a: NanoTime, b: NanoTime): number {
  return a.sec - b.sec || a.nsec - b.nsec;
}
