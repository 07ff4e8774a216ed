/**
 * Which live events a `/tail` subscriber wants. Parsed once per request so the
 * per-event check in the pipeline's publish path is a few comparisons.
 */
import type { ContainerMeta, Stream } from '../collector/event.js';
import type { LineFields } from '../collector/line-fields.js';
import { ClogsError } from '../errors.js';
import { levelRank } from '../collector/levels.js';
import { parseLevel } from '../tail/filter.js';

export interface TailFilter {
  /**
   * Each value matches a container id prefix, a container name, a compose
   * service or a forward tag; an event matches when any value does. Empty: all.
   */
  containers: readonly string[];
  stream?: Stream;
  /** `level`: the minimum severity; events without a level are left out. */
  minLevel?: number;
  /** `q`: a substring of the message, lower case (matched ignoring case). */
  text?: string;
}

export function parseTailFilter(params: URLSearchParams): TailFilter | string {
  const filter: TailFilter = { containers: params.getAll('container').filter((c) => c.length > 0) };
  const stream = params.get('stream');
  if (stream !== null && stream !== '') {
    if (stream !== 'stdout' && stream !== 'stderr') return `stream: expected "stdout" or "stderr", got ${JSON.stringify(stream)}`;
    filter.stream = stream;
  }
  const level = params.get('level');
  if (level !== null && level !== '') {
    try {
      filter.minLevel = parseLevel(level);
    } catch (err) {
      return err instanceof ClogsError ? err.message.replace(/^--level/, 'level') : String(err);
    }
  }
  const q = params.get('q');
  if (q !== null && q !== '') filter.text = q.toLowerCase();
  return filter;
}

/** Whether the line `fields` was read from, whose container (if any) is `container`, passes the filter. */
export function matchesTailFilter(filter: TailFilter, container: ContainerMeta | undefined, fields: LineFields): boolean {
  if (filter.stream !== undefined && fields.stream !== filter.stream) return false;
  if (filter.minLevel !== undefined && !((levelRank(fields.level()) ?? -1) >= filter.minLevel)) return false;
  if (filter.text !== undefined && !fields.message().toLowerCase().includes(filter.text)) return false;
  if (filter.containers.length === 0) return true;
  const tag = fields.tag();
  for (const want of filter.containers) {
    if (container?.id?.startsWith(want) || container?.name === want || container?.compose?.service === want || tag === want) return true;
  }
  return false;
}
