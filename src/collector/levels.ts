/**
 * Log levels: the one table the normalizer writes `log.level` from and every
 * reader filters and colours by. Ranks are pino's numbers. Maps, not object
 * literals: a level such as "constructor" must not find Object's prototype.
 */
export const LEVEL_NAMES = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
export type LevelName = (typeof LEVEL_NAMES)[number];

const RANKS = new Map<string, number>([
  ['trace', 10],
  ['debug', 20],
  ['info', 30],
  ['warn', 40],
  ['error', 50],
  ['fatal', 60],
]);

/**
 * Other writers' names for the same levels: syslog, zap, logrus, .NET,
 * java.util.logging (severe), log15 (dbug, eror), zerolog's console (trc, dbg,
 * inf, wrn, ftl) and glog/klog's line letters (i, w, e, f).
 */
const ALIASES = new Map<string, LevelName>([
  ['trc', 'trace'],
  ['dbg', 'debug'],
  ['dbug', 'debug'],
  ['inf', 'info'],
  ['i', 'info'],
  ['wrn', 'warn'],
  ['w', 'warn'],
  ['eror', 'error'],
  ['e', 'error'],
  ['severe', 'error'],
  ['ftl', 'fatal'],
  ['f', 'fatal'],
  ['warning', 'warn'],
  ['information', 'info'],
  ['notice', 'info'],
  ['err', 'error'],
  ['critical', 'fatal'],
  ['crit', 'fatal'],
  ['alert', 'fatal'],
  ['emerg', 'fatal'],
  ['panic', 'fatal'],
  ['dpanic', 'fatal'],
]);

const BY_NUMBER = new Map<number, LevelName>([...RANKS].map(([name, rank]) => [rank, name as LevelName]));

/**
 * A level field's value as the name clogs stores: pino's numbers, or a short
 * string, trimmed, lower case, aliases resolved; another short word is kept as
 * it is (lower case) rather than lost. Text with inner whitespace is no word,
 * so no level: readers take a level for one token (the page makes a CSS class
 * of it), and the field stays under `attrs`.
 */
export function levelName(v: unknown): string | undefined {
  if (typeof v === 'number') return BY_NUMBER.get(v);
  if (typeof v !== 'string') return undefined;
  const word = v.trim();
  if (word.length === 0 || word.length > 16 || /\s/.test(word)) return undefined;
  const lower = word.toLowerCase();
  return ALIASES.get(lower) ?? lower;
}

/** The rank of a level name or alias, any case; undefined for a word that is no level. */
export function levelRank(level: string | undefined): number | undefined {
  if (level === undefined) return undefined;
  // Trimmed as levelName() trims: older clogs stored `"info "` as it came.
  const lower = level.trim().toLowerCase();
  return RANKS.get(ALIASES.get(lower) ?? lower);
}

/** Every name and alias at or above a rank, for stores that filter by term. */
export function levelsAtLeast(rank: number): string[] {
  return [...RANKS.keys(), ...ALIASES.keys()].filter((name) => levelRank(name)! >= rank);
}
