/**
 * `--since` / `--until` values → the `@timestamp` string they bound.
 *
 * Stored timestamps are RFC 3339 UTC with exactly 9 fractional digits, so a
 * bound rendered the same way compares with plain string comparison, in the
 * file scan and in Elasticsearch range queries alike.
 */
import { ClogsError } from '../errors.js';
import { formatNanoTime, parseRfc3339 } from '../collector/time.js';

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
const DATE_ONLY = /^\d{4}-\d{2}-\d{2}$/;
const UNIX = /^(\d{1,12})(?:\.(\d{1,9}))?$/;

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
 * (midnight UTC), or Unix seconds with an optional fraction.
 */
export function parseTimeSpec(flag: string, text: string, nowMs: number = Date.now()): string {
  const trimmed = text.trim();
  const back = parseDurationNs(trimmed);
  if (back !== undefined) return formatNs(BigInt(nowMs) * 1_000_000n - back);
  const rfc = parseRfc3339(trimmed.replace(/^(\d{4}-\d{2}-\d{2})[ t]/, '$1T').replace(/z$/, 'Z'));
  if (rfc) return formatNanoTime(rfc.sec, rfc.nsec);
  if (DATE_ONLY.test(trimmed)) {
    const ms = Date.parse(`${trimmed}T00:00:00Z`);
    if (!Number.isNaN(ms)) return formatNanoTime(ms / 1000, 0);
  }
  const unix = UNIX.exec(trimmed);
  if (unix) return formatNanoTime(Number(unix[1]), Number((unix[2] ?? '').padEnd(9, '0')));
  throw new ClogsError(
    'CLOGS_TAIL',
    `${flag}: expected a duration like "10m" or "1h30m", an RFC 3339 time like "2026-11-22T09:53:10Z", a date, or Unix seconds; got ${JSON.stringify(text)}`,
  );
}

/** A 9-digit `@timestamp` moved by `ns` nanoseconds (negative: earlier). */
export function shiftTimestamp(ts: string, ns: bigint): string {
  const t = parseRfc3339(ts);
  if (!t) return ts;
  return formatNs(BigInt(t.sec) * 1_000_000_000n + BigInt(t.nsec) + ns);
}

function formatNs(ns: bigint): string {
  const sec = ns / 1_000_000_000n;
  const nsec = ns % 1_000_000_000n;
  return nsec < 0n ? formatNanoTime(Number(sec) - 1, Number(nsec + 1_000_000_000n)) : formatNanoTime(Number(sec), Number(nsec));
}
