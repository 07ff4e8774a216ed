/**
 * `log.level` of a text line, from a level token at its very start, or right
 * after a leading timestamp as logging libraries print it. A level word
 * anywhere else in the line is text ("user said error occurred" has no level).
 *
 * The shapes read (README, "Levels of text lines"):
 *   ERROR ...  WARNING:root:...  INFO[0000] ...   an upper-case level word
 *   [info] ...  [WARN ] ...  <error> ...          a level word in brackets, any case
 *   E1129 12:00:00.000000 ...                     glog/klog: I, W, E or F, then MMDD and a time
 *   level=warn ...  lvl="eror" ...                a first logfmt pair
 *   TIMESTAMP LEVEL ...                           Spring Boot, zerolog console, Go log
 *   TIMESTAMP [thread] LEVEL ...                  log4j/logback patterns, nginx `[error]`
 *   TIMESTAMP - name - LEVEL - ...                Python logging
 * TIMESTAMP is a time `12:00:00` (with `.123` or `,123`), optionally after a date
 * `2026-11-29` or `2026/11/29` and `T` or a space, optionally with `Z` or an
 * offset, optionally in brackets. A word counts only if the level table
 * (levels.ts) knows it; a bare or bracketed word has at least three letters.
 */
import { levelName, levelRank } from '../levels.js';

const TIME = String.raw`(?:\d{4}[-/]\d\d[-/]\d\d[T ])?\d\d:\d\d:\d\d(?:[.,]\d{1,9})?(?:Z|[+-]\d\d:?\d\d)?`;
const STAMP = String.raw`(?:\[${TIME}\]|${TIME})(?: {1,8}| - )`;
const AFTER_STAMP = String.raw`(?:\[[^\]]{1,64}\] {1,8}|[\w.$-]{1,64} - )?`;
const TOKEN = String.raw`(?:(?<bare>[A-Z]{3,11})(?=$|[\s:[|])|\[ ?(?<square>[A-Za-z]{3,11}) ?\](?=$|[\s:])|<(?<angle>[A-Za-z]{3,11})>(?=$|[\s:]))`;
const GLOG = String.raw`(?<glog>[IWEF])\d{4} \d\d:\d\d:\d\d(?:\.\d{1,9})?\s`;
const PAIR = String.raw`(?:level|lvl)=(?<pair>[A-Za-z]{1,11}|"[A-Za-z]{1,11}")(?=$|\s)`;
const LEADING = new RegExp(`^(?:${GLOG}|${PAIR}|(?:${STAMP}${AFTER_STAMP})?${TOKEN})`);

/**
 * How far into a line a level can be found: the longest prefix LEADING can
 * read (a bracketed dated time with an offset, a thread name, a token and the
 * character after it) is below this, so a line's first HEAD characters decide.
 */
export const LEVEL_HEAD = 160;

/** The level a line starts with, as levels.ts names it; undefined for any other line. */
export function leadingLevel(line: string): string | undefined {
  if (!mayLead(line.charCodeAt(0))) return undefined;
  const m = LEADING.exec(line);
  const g = m?.groups;
  if (g === undefined) return undefined;
  const word = g.bare ?? g.square ?? g.angle ?? g.glog ?? g.pair?.replace(/"/g, '');
  return word !== undefined && levelRank(word) !== undefined ? levelName(word) : undefined;
}

/**
 * Whether the line in bytes [start, end) of `buf`, printable ASCII, starts
 * with a level: leadingLevel on its head, for the forward fast path.
 */
export function hasLeadingLevel(buf: Buffer, start: number, end: number): boolean {
  if (start >= end || !mayLead(buf[start]!)) return false;
  return leadingLevel(buf.toString('latin1', start, Math.min(end, start + LEVEL_HEAD))) !== undefined;
}

/**
 * What a line with a level can start with: a digit (a time), an upper-case
 * letter, `[`, `<`, or the `l` of `level=`. Most other lines end here.
 */
function mayLead(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || c === 0x5b || c === 0x3c || c === 0x6c;
}
