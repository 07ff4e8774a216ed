/**
 * Which live events a `/tail` subscriber wants. Parsed once per request so the
 * per-event check in the pipeline's publish path is a few comparisons.
 */
import type { ContainerMeta, Stream } from '../collector/event.js';
import { tagJson } from '../collector/event-json.js';
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
  /** How each of `containers` reads as a line's tag: `,"tag":"…","seq":`, as rendered. */
  tagMarks: readonly Buffer[];
}

export function parseTailFilter(params: URLSearchParams): TailFilter | string {
  const containers = params.getAll('container').filter((c) => c.length > 0);
  const filter: TailFilter = { containers, tagMarks: containers.map((c) => Buffer.from(`${tagJson(c)},"seq":`)) };
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

/**
 * Whether the line `fields` was read from passes the filter; `containerWanted`:
 * wantsContainer() of the line's container, decided once for all its lines.
 */
export function matchesTailFilter(filter: TailFilter, containerWanted: boolean, fields: LineFields): boolean {
  if (filter.stream !== undefined && fields.stream !== filter.stream) return false;
  if (filter.minLevel !== undefined && !((levelRank(fields.level()) ?? -1) >= filter.minLevel)) return false;
  if (filter.text !== undefined && !fields.message().toLowerCase().includes(filter.text)) return false;
  if (containerWanted) return true;
  const tag = fields.tag();
  return tag !== undefined && wantsTag(filter, tag);
}

/** Whether the filter takes a line of a container it does not want by this tag of the line. */
export function wantsTag(filter: TailFilter, tag: string): boolean {
  return filter.containers.includes(tag);
}

/** Whether the filter takes every line of this container, whatever its tag. */
export function wantsContainer(filter: TailFilter, container: ContainerMeta | undefined): boolean {
  if (filter.containers.length === 0) return true;
  if (container === undefined) return false;
  for (const want of filter.containers) {
    if (container.id?.startsWith(want) || container.name === want || container.compose?.service === want) return true;
  }
  return false;
}

/**
 * Whether a chunk of rendered lines of a container the filter does not want
 * may still hold a line it takes by its tag. Most live lines come from
 * containers nobody follows: one search of the chunk's bytes for each wanted
 * tag passes them over without reading them line by line. A match may be a
 * field of attrs as well, so the lines are then read one by one.
 */
export function mayHoldWantedTag(filter: TailFilter, chunk: Buffer): boolean {
  for (const mark of filter.tagMarks) if (chunk.indexOf(mark) >= 0) return true;
  return false;
}
