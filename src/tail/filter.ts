/**
 * The line filters every store applies the same way: time range, stream,
 * minimum level and a pattern on the message. The stores may also narrow
 * their reads with them (skip files, ES range queries), but this predicate
 * is the rule, so both stores print the same lines.
 */
import type { LogEvent, Stream } from '../collector/event.js';
import { LEVEL_NAMES, levelRank } from '../collector/levels.js';
import { ClogsError } from '../errors.js';

export interface EventFilter {
  /** Inclusive lower bound, a 9-digit `@timestamp`. */
  since?: string;
  /** Exclusive upper bound, a 9-digit `@timestamp`. */
  until?: string;
  stream?: Stream;
  /** Minimum severity (a rank of collector/levels.ts); events without a level are left out. */
  minLevel?: number;
  /** `--grep`, tested against `message`. */
  pattern?: RegExp;
  /** `clogs search`'s query where the store has no query language (files), tested against `message`. */
  text?: RegExp;
  /**
   * Set by searchText when `text` finds a literal that JSON writes unescaped:
   * then it also finds the message in the stored JSON line, which the file
   * store tests before parsing the line (see storedLineTest).
   */
  textInStoredLine?: boolean;
}

/** A level name's rank; `name`: the flag or parameter it came in, for the error. */
export function parseLevel(text: string, name = '--level'): number {
  const rank = levelRank(text);
  if (rank === undefined) {
    throw new ClogsError('CLOGS_TAIL', `${name}: expected one of ${LEVEL_NAMES.join(', ')}; got ${JSON.stringify(text)}`);
  }
  return rank;
}

/** A stream name; `name`: the flag or parameter it came in, for the error. */
export function parseStream(text: string, name: string): Stream {
  if (text !== 'stdout' && text !== 'stderr') throw new ClogsError('CLOGS_TAIL', `${name}: expected "stdout" or "stderr", got ${JSON.stringify(text)}`);
  return text;
}

export function parsePattern(flag: string, source: string, ignoreCase = false): RegExp {
  try {
    return new RegExp(source, ignoreCase ? 'i' : '');
  } catch (err) {
    throw new ClogsError('CLOGS_TAIL', `${flag}: not a valid regular expression: ${(err as Error).message}`);
  }
}

/** What JSON writes escaped. */
const ESCAPED_IN_JSON = /[\u0000-\u001f"\\\ud800-\udfff]/;

/** Whether a stored line holds `text`, as a JSON string's content, as it is. */
export function storedAsIs(text: string): boolean {
  return !ESCAPED_IN_JSON.test(text);
}

/** Sets the filter's `text` to find `text` itself in messages, every character literal. */
export function searchText(filter: EventFilter, text: string, ignoreCase: boolean): void {
  filter.text = new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), ignoreCase ? 'i' : '');
  filter.textInStoredLine = storedAsIs(text);
}

/**
 * A test every stored JSON line of a matching event passes, far cheaper than
 * parsing it. Lines that pass are parsed and matched as usual (the text may
 * be in another field). Undefined when there is no such test.
 */
export function storedLineTest(f: EventFilter): RegExp | undefined {
  return f.textInStoredLine === true ? f.text : undefined;
}

export function matchesFilter(f: EventFilter, e: LogEvent): boolean {
  const ts = e['@timestamp'];
  if (f.since !== undefined && ts < f.since) return false;
  if (f.until !== undefined && ts >= f.until) return false;
  if (f.stream !== undefined && e.stream !== f.stream) return false;
  if (f.minLevel !== undefined) {
    const rank = levelRank(e.log?.level);
    if (rank === undefined || rank < f.minLevel) return false;
  }
  if (f.pattern !== undefined && !f.pattern.test(e.message)) return false;
  if (f.text !== undefined && !f.text.test(e.message)) return false;
  return true;
}
