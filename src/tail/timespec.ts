/**
 * `--since` / `--until` values → the `@timestamp` string they bound.
 *
 * Stored timestamps are RFC 3339 UTC with exactly 9 fractional digits, so a
 * bound rendered the same way compares with plain string comparison, in the
 * file scan and in Elasticsearch range queries alike.
 */
import { ClogsError } from '../errors.js';
import { formatNanoTime, MAX_SECONDS, MIN_SECONDS, parseRfc3339 } from '../collector/time.js';

const UNIT_NS: Record<string, bigint> = {
  ns: 1n,
  us: 1_000n,
  µs: 1_000n,
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
  d: 86_400_000_000_000n,
  w: 604_800_000_000_000n,
};
/** Go-style compound durations: `90s`, `10m`, `1h30m`, `2d`, `1.5h`. */
const DURATION = /^(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h|d|w))+$/;
const DURATION_PART = /(\d+)(?:\.(\d+))?(ns|us|µs|ms|s|m|h|d|w)/g;
/**
 * A date (midnight UTC) or an RFC 3339 time, with `T`, `t` or a space between
 * date and time; the fields are checked against the calendar separately.
 */
const CALENDAR = /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-](\d{2}):(\d{2})))?$/;
const UNIX = /^(\d{1,12})(?:\.(\d{1,9}))?$/;

const NS_PER_S = 1_000_000_000n;
const MIN_NS = BigInt(MIN_SECONDS) * NS_PER_S;
const MAX_NS = BigInt(MAX_SECONDS) * NS_PER_S + NS_PER_S - 1n;

/** Nanoseconds in a duration like `1h30m`, or undefined when it is not one. */
export function parseDurationNs(text: string): bigint | undefined {
  if (!DURATION.test(text)) return undefined;
  let total = 0n;
  for (const m of text.matchAll(DURATION_PART)) {
    const unit = UNIT_NS[m[3]!]!;
    total += BigInt(m[1]!) * unit;
    if (m[2] !== undefined) total += (BigInt(m[2]) * unit) / 10n ** BigInt(m[2].length);
  }
  return total;
}

/**
 * A point in time: a duration back from `nowMs`, an RFC 3339 time, a date
 * (midnight UTC), or Unix seconds with an optional fraction. Throws a
 * CLOGS_TAIL error naming `flag` for anything else, for a date the calendar
 * does not have, and for a time outside the years 0000 to 9999.
 */
export function parseTimeSpec(flag: string, text: string, nowMs: number = Date.now()): string {
  const ns = specNs(flag, text, nowMs);
  if (ns < MIN_NS || ns > MAX_NS) throw new ClogsError('CLOGS_TAIL', `${flag}: expected a time in the years 0000 to 9999, got ${JSON.stringify(text)}`);
  return formatNs(ns);
}

function specNs(flag: string, text: string, nowMs: number): bigint {
  const trimmed = text.trim();
  const back = parseDurationNs(trimmed);
  if (back !== undefined) return BigInt(nowMs) * 1_000_000n - back;
  const cal = CALENDAR.exec(trimmed);
  if (cal) {
    const ns = calendarNs(cal);
    if (ns === undefined) {
      throw new ClogsError(
        'CLOGS_TAIL',
        `${flag}: expected a real date and time (month 01-12, a day the month has, hour 00-23, minutes and seconds 00-59, offset up to 23:59), got ${JSON.stringify(text)}`,
      );
    }
    return ns;
  }
  const unix = UNIX.exec(trimmed);
  if (unix) return BigInt(unix[1]!) * NS_PER_S + BigInt((unix[2] ?? '').padEnd(9, '0'));
  throw new ClogsError(
    'CLOGS_TAIL',
    `${flag}: expected a duration like "10m" or "1h30m", an RFC 3339 time like "2026-11-22T09:53:10Z", a date, or Unix seconds; got ${JSON.stringify(text)}`,
  );
}

/** Nanoseconds since the epoch of a CALENDAR match, or undefined when a field is out of its range. */
function calendarNs(m: RegExpExecArray): bigint | undefined {
  const n = (group: number): number => Number(m[group] ?? '0');
  const [year, month, day] = [n(1), n(2), n(3)];
  // Checked here because Date.parse rolls 2026-02-30 over to March 2 and reads hour 24 as the next day.
  const real = month >= 1 && month <= 12 && day >= 1 && day <= daysInMonth(year, month) && n(4) <= 23 && n(5) <= 59 && n(6) <= 59 && n(9) <= 23 && n(10) <= 59;
  if (!real) return undefined;
  const t = parseRfc3339(`${m[1]}-${m[2]}-${m[3]}T${m[4] ?? '00'}:${m[5] ?? '00'}:${m[6] ?? '00'}${m[7] ?? ''}${(m[8] ?? 'Z').toUpperCase()}`);
  return t && BigInt(t.sec) * NS_PER_S + BigInt(t.nsec);
}

/** Proleptic Gregorian, as Date and RFC 3339 count. */
function daysInMonth(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/**
 * A 9-digit `@timestamp` moved by `ns` nanoseconds (negative: earlier), held
 * within the years 0000 to 9999: a year of five digits or a sign would sort
 * before every four-digit one, turning a ceiling into a floor.
 */
export function shiftTimestamp(ts: string, ns: bigint): string {
  const t = parseRfc3339(ts);
  if (!t) return ts;
  const moved = BigInt(t.sec) * NS_PER_S + BigInt(t.nsec) + ns;
  return formatNs(moved < MIN_NS ? MIN_NS : moved > MAX_NS ? MAX_NS : moved);
}

function formatNs(ns: bigint): string {
  const sec = ns / NS_PER_S;
  const nsec = ns % NS_PER_S;
  return nsec < 0n ? formatNanoTime(Number(sec) - 1, Number(nsec + NS_PER_S)) : formatNanoTime(Number(sec), Number(nsec));
}
