/**
 * Which live events a `/tail` subscriber wants. Its `container` values are
 * resolved once, when it subscribes, as the page's history and `clogs tail`
 * resolve them (tail/resolve.ts), so the live lines continue the history;
 * the per-line check in the pipeline's publish path is then a few
 * comparisons.
 */
import { containerName } from '../collector/containers.js';
import type { ContainerMeta, Stream } from '../collector/event.js';
import type { LineFields } from '../collector/line-fields.js';
import { ClogsError } from '../errors.js';
import { levelRank } from '../collector/levels.js';
import { parseLevel, parseStream } from '../tail/filter.js';
import type { Logger } from '../log.js';
import { isUnknown, projectService, resolveSource, selectionTakes, type Selection, type SourceInfo } from '../tail/resolve.js';
import type { Store } from '../tail/store.js';
import { containerParams } from './container-params.js';

/** What a `/tail` request asks for. */
export interface TailQuery {
  /** Container ids, names, compose services or tags, as `clogs tail` takes them; empty: all. */
  containers: readonly string[];
  stream?: Stream;
  /** `level`: the minimum severity; events without a level are left out. */
  minLevel?: number;
  /** `q`: a substring of the message, lower case (matched ignoring case). */
  text?: string;
}

export interface TailFilter extends Omit<TailQuery, 'containers'> {
  /** What the `container` values stand for; an event matches when any selects it. Both empty: all. */
  selections: readonly Selection[];
  /** Values the store did not list, as the start of a container id (lower case), as `docker ps` shows ids. */
  idPrefixes: readonly string[];
}

export function parseTailQuery(params: URLSearchParams): TailQuery | string {
  const query: TailQuery = { containers: [] };
  const stream = params.get('stream')?.trim();
  const level = params.get('level')?.trim();
  try {
    query.containers = containerParams(params);
    if (stream) query.stream = parseStream(stream, 'stream');
    if (level) query.minLevel = parseLevel(level, 'level');
  } catch (err) {
    return err instanceof ClogsError ? err.message : String(err);
  }
  const q = params.get('q');
  if (q !== null && q !== '') query.text = q.toLowerCase();
  return query;
}

/**
 * The query's filter, its `container` values resolved against the sources
 * `store` lists. A value none of them is like (a container that has not
 * written yet), or any value when the store cannot be read, selects a
 * container whose id starts with it or of that name or compose service
 * (PROJECT/SERVICE too), or lines of that tag, when they come. Throws (CLOGS_TAIL) on an ambiguous value.
 */
export async function tailFilter(query: TailQuery, store: Store | undefined, log: Logger): Promise<TailFilter> {
  const selections: Selection[] = [];
  const idPrefixes: string[] = [];
  const values = [...new Set(query.containers)];
  const sources = values.length === 0 || store === undefined ? [] : await listedSources(store, log);
  for (const value of values) {
    if (!isUnknown(value, sources)) {
      selections.push(resolveSource(value, sources).selection);
      continue;
    }
    const v = containerName(value);
    selections.push({ kind: 'name', value: v }, { kind: 'service', value: v }, { kind: 'tag', value: v });
    const scoped = projectService(v);
    if (scoped !== undefined) selections.push(scoped);
    idPrefixes.push(v.toLowerCase());
  }
  const { containers: _containers, ...rest } = query;
  return { ...rest, selections, idPrefixes };
}

/** The sources the store lists without counting, asked once for all values; none when it cannot be read. */
async function listedSources(store: Store, log: Logger): Promise<readonly SourceInfo[]> {
  try {
    return await store.sources();
  } catch (err) {
    log.warn({ err }, '/tail: could not read the store to resolve containers; taking the values as they are');
    return [];
  }
}

/** Whether the filter takes the lines of this container (when it wants them by level, stream and text). */
export function takesContainer(filter: TailFilter, container: ContainerMeta): boolean {
  if (filter.selections.length === 0) return true;
  const id = container.id;
  return filter.selections.some((s) => selectionTakes(s, container, undefined)) || (id !== undefined && filter.idPrefixes.some((p) => id.startsWith(p)));
}

/** Whether the filter takes a line without a container that came under this tag (or none). */
export function takesTag(filter: TailFilter, tag: string | undefined): boolean {
  return filter.selections.length === 0 || filter.selections.some((s) => selectionTakes(s, undefined, tag));
}

/** Whether the filter may take lines without a container that all came under `name` (a tag, or the input's name). */
export function mayTakeName(filter: TailFilter, name: string): boolean {
  return filter.selections.length === 0 || filter.selections.some((s) => s.kind === 'tag' && s.value === name);
}

/** Whether the line `fields` was read from passes the stream, level and text parts of the filter. */
export function matchesLine(filter: TailFilter, fields: LineFields): boolean {
  if (filter.stream !== undefined && fields.stream !== filter.stream) return false;
  if (filter.minLevel !== undefined && !((levelRank(fields.level()) ?? -1) >= filter.minLevel)) return false;
  return filter.text === undefined || fields.message().toLowerCase().includes(filter.text);
}
