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
/** A level word: upper case bare, or any case in brackets; the capture that matched holds it. */
const TOKEN = String.raw`(?:([A-Z]{3,11})(?=$|[\s:[|])|\[ ?([A-Za-z]{3,11}) ?\](?=$|[\s:])|<([A-Za-z]{3,11})>(?=$|[\s:]))`;
// One expression per way a line can start, picked by its first characters, so
// a line is tried against one shape family, not all of them.
const AT_START = new RegExp(`^${TOKEN}`);
const AFTER_TIME = new RegExp(String.raw`^(?:\[${TIME}\]|${TIME})(?: {1,8}| - )(?:\[[^\]]{1,64}\] {1,8}|[\w.$-]{1,64} - )?${TOKEN}`);
const GLOG = /^([IWEF])\d{4} \d\d:\d\d:\d\d(?:\.\d{1,9})?\s/;
const PAIR = /^(?:level|lvl)="?([A-Za-z]{1,11})"?(?=$|\s)/;

/**
 * How far into a line a level can be found: the longest prefix the expressions
 * above can read (a bracketed dated time with an offset, a thread name, a token and the
 * character after it) is below this, so a line's first HEAD characters decide.
 */
export const LEVEL_HEAD = 160;

/** The level a line starts with, as levels.ts names it; undefined for any other line. */
export function leadingLevel(line: string): string | undefined {
  const c = line.charCodeAt(0);
  if (!mayLead(c, line.charCodeAt(1), line.charCodeAt(2), line.charCodeAt(4))) return undefined;
  let m: RegExpExecArray | null;
  if (isDigit(c) || (c === 0x5b && isDigit(line.charCodeAt(1)))) m = AFTER_TIME.exec(line);
  else if (c === 0x6c /* l */) m = PAIR.exec(line);
  else m = (isDigit(line.charCodeAt(1)) && GLOG.exec(line)) || AT_START.exec(line);
  const word = m?.[1] ?? m?.[2] ?? m?.[3];
  return word !== undefined && levelRank(word) !== undefined ? levelName(word) : undefined;
}

/**
 * leadingLevel of the line in bytes [start, end) of `buf`, for the fast
 * paths. A head that is all ASCII is read as it is; one with other bytes
 * only as the line decoded whole, since a cut through a character (or a
 * byte read as Latin-1, 0xa0 as a space) changes what the expressions see.
 * Null for such a line longer than LEVEL_HEAD bytes: left to the decoded line.
 */
export function leadingLevelOfBytes(buf: Buffer, start: number, end: number): string | undefined | null {
  const at = (i: number): number => (start + i < end ? buf[start + i]! : -1);
  if (!mayLead(at(0), at(1), at(2), at(4))) return undefined;
  const headEnd = Math.min(end, start + LEVEL_HEAD);
  for (let i = start; i < headEnd; i++) {
    if (buf[i]! >= 0x80) return end - start <= LEVEL_HEAD ? leadingLevel(buf.toString('utf8', start, end)) : null;
  }
  return leadingLevel(buf.toString('latin1', start, headEnd));
}

/**
 * What a line with a level can start with, from its characters 0, 1, 2 and
 * 4: a time (`12:` or `2026-`, maybe after `[`), an upper-case letter, `[` or
 * `<` and a letter, or the `l` of `level=`. Most other lines end here.
 */
function mayLead(c0: number, c1: number, c2: number, c4: number): boolean {
  if (isDigit(c0)) return c2 === 0x3a /* : */ || c4 === 0x2d /* - */ || c4 === 0x2f; /* / */
  if (c0 === 0x5b /* [ */) return isDigit(c1) || isLetter(c1) || c1 === 0x20;
  return (c0 >= 0x41 && c0 <= 0x5a) || (c0 === 0x3c && isLetter(c1)) || c0 === 0x6c;
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function isLetter(c: number): boolean {
  return (c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a;
}
