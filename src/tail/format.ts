/**
 * How `clogs tail`, `search` and the live stream print an event.
 *
 *   text  [timestamp] [source |] [LEVEL] message    (for people)
 *   json  the event exactly as stored, one per line (for jq)
 *   raw   the message alone                        (for tools that parse the app's own output)
 *
 * Text mode passes every piece an application or forward client wrote
 * through safe-text.ts (the message through safeText, the source name and
 * level through safeField), so their control characters cannot drive the
 * reader's terminal. json needs no such step (JSON escapes them); raw keeps
 * them on purpose: it hands the app's output, as written, to another program.
 *
 * Colours only in text mode and only when asked for (see `shouldColor`):
 * stderr lines red, error and fatal levels bold red, warnings yellow, debug
 * and trace dim, timestamps dim, source names cyan.
 */
import type { LogEvent } from '../collector/event.js';
import { levelRank } from '../collector/levels.js';
import type { StoredEvent } from './order.js';
import { sourceLabel } from './resolve.js';
import { safeField, safeText } from './safe-text.js';

export type OutputMode = 'text' | 'json' | 'raw';

export interface FormatOptions {
  mode: OutputMode;
  timestamps: boolean;
  color: boolean;
  /** Prefix each line with its source's name (when lines of several sources mix). */
  prefix: boolean;
}

const RESET = '\x1b[0m';
const DIM = '\x1b[2m';
const RED = '\x1b[31m';
const BOLD_RED = '\x1b[1;31m';
const YELLOW = '\x1b[33m';
const CYAN = '\x1b[36m';

/**
 * Colours on a terminal only: never when stdout is a pipe or file, with
 * `--no-color`, or when NO_COLOR is set to anything non-empty (no-color.org).
 */
export function shouldColor(opts: { colorFlag: boolean; isTTY: boolean; env: NodeJS.ProcessEnv }): boolean {
  const noColor = opts.env.NO_COLOR;
  return opts.colorFlag && opts.isTTY && (noColor === undefined || noColor === '');
}

/** Returns the line to print for an event, newline included. */
export function createFormatter(opts: FormatOptions): (e: StoredEvent) => string {
  switch (opts.mode) {
    case 'json':
      return (e) => e.raw + '\n';
    case 'raw':
      return (e) => e.event.message + '\n';
    case 'text':
      return opts.color ? (e) => coloredText(e.event, opts) : (e) => plainText(e.event, opts);
  }
}

function plainText(e: LogEvent, opts: FormatOptions): string {
  let line = '';
  if (opts.timestamps) line += e['@timestamp'] + ' ';
  if (opts.prefix) line += safeField(sourceLabel(e)) + ' | ';
  const level = e.log?.level;
  if (level !== undefined) line += levelWord(level) + ' ';
  return line + safeText(e.message) + '\n';
}

function coloredText(e: LogEvent, opts: FormatOptions): string {
  let line = '';
  if (opts.timestamps) line += DIM + e['@timestamp'] + RESET + ' ';
  if (opts.prefix) line += CYAN + safeField(sourceLabel(e)) + RESET + ' | ';
  const level = e.log?.level;
  const colour = lineColour(e);
  if (level !== undefined) line += (colour ?? '') + levelWord(level) + (colour ? RESET : '') + ' ';
  const message = safeText(e.message);
  return line + (colour ? colour + message + RESET : message) + '\n';
}

function lineColour(e: LogEvent): string | undefined {
  const rank = levelRank(e.log?.level);
  if (rank !== undefined) {
    if (rank >= 50) return BOLD_RED;
    if (rank >= 40) return YELLOW;
    if (rank <= 20) return DIM;
  }
  return e.stream === 'stderr' ? RED : undefined;
}

/** `ERROR`, `WARN `, `INFO `: fixed width so messages line up. An unknown level is the app's own word, so made safe too. */
function levelWord(level: string): string {
  const word = safeField(level.toUpperCase());
  return word.length >= 5 ? word : word.padEnd(5);
}
