/**
 * `<id>` → which sources to show.
 *
 * Tried in Docker's order, most specific first: a full container id, a
 * container name, a compose service, a forward tag (for records that came
 * without a container), then a unique id prefix. A name or service can cover
 * several container ids (a container re-created by compose keeps its name):
 * their lines are shown together, in time order. Anything ambiguous or
 * unknown is an error that lists the close matches.
 */
import { containerName } from '../collector/containers.js';
import type { ContainerMeta, LogEvent } from '../collector/event.js';
import { eventSourceName, sourceName } from '../collector/source.js';
import { ClogsError } from '../errors.js';
import { storedAsIs } from './filter.js';
import { safeField } from './safe-text.js';
import type { Store } from './store.js';

/** One source of lines in a store: a container, or a forward tag without one. */
export interface SourceInfo {
  id?: string;
  name?: string;
  image?: string;
  project?: string;
  service?: string;
  /** Only for sources without a container. */
  tag?: string;
}

export type Selection =
  | { kind: 'all' }
  | { kind: 'id'; value: string }
  /**
   * `ids`: the containers that have the name now. Their lines from before a
   * `docker rename` carry the old name and are theirs too, as Dozzle, which
   * works by container id, shows them.
   */
  | { kind: 'name'; value: string; ids?: readonly string[] }
  | { kind: 'service'; value: string; project?: string }
  | { kind: 'tag'; value: string };

export interface Resolved {
  selection: Selection;
  matched: SourceInfo[];
}

const MAX_SUGGESTIONS = 5;

export function resolveSource(query: string, sources: readonly SourceInfo[]): Resolved {
  const q = containerName(query);
  if (q.length === 0) throw new ClogsError('CLOGS_TAIL', 'expected a container id, name, compose service or tag; got an empty string');

  const byId = sources.filter((s) => s.id === q);
  if (byId.length > 0) return { selection: { kind: 'id', value: q }, matched: byId };

  const byName = sources.filter((s) => s.name === q);
  if (byName.length > 0) {
    const ids = [...new Set(byName.flatMap((s) => (s.id === undefined ? [] : [s.id])))];
    return { selection: ids.length > 0 ? { kind: 'name', value: q, ids } : { kind: 'name', value: q }, matched: byName };
  }

  const scoped = projectService(q);
  if (scoped !== undefined) {
    const byProject = sources.filter((s) => s.project === scoped.project && s.service === scoped.value);
    if (byProject.length > 0) return { selection: scoped, matched: byProject };
  }

  const byService = sources.filter((s) => s.service === q);
  if (byService.length > 0) {
    const projects = new Set(byService.map((s) => s.project));
    if (projects.size > 1) {
      throw ambiguous(query, byService, `a compose service in ${projects.size} projects`, 'give it as PROJECT/SERVICE, or the container name');
    }
    const project = byService[0]!.project;
    return { selection: project === undefined ? { kind: 'service', value: q } : { kind: 'service', value: q, project }, matched: byService };
  }

  const byTag = sources.filter((s) => s.tag === q);
  if (byTag.length > 0) return { selection: { kind: 'tag', value: q }, matched: byTag };

  const lower = q.toLowerCase();
  const byPrefix = sources.filter((s) => s.id?.startsWith(lower));
  const ids = new Set(byPrefix.map((s) => s.id));
  if (ids.size === 1) return { selection: { kind: 'id', value: byPrefix[0]!.id! }, matched: byPrefix };
  if (ids.size > 1) throw ambiguous(query, byPrefix, `the start of ${ids.size} container ids`, 'give more of the id, or the name');

  const close = closeMatches(q, sources);
  const hint = close.length > 0 ? `; close matches:\n${close.map((s) => `  ${describeSource(s)}`).join('\n')}` : '';
  throw new ClogsError(
    'CLOGS_TAIL',
    `no container, compose service or tag matches ${JSON.stringify(query)} among the ${sources.length} sources in the store${hint}\n(run "clogs ps" to list them)`,
  );
}

/**
 * The sources `<id>` is resolved among: the cheap list, or a full scan when
 * that knows nothing like it. A store with no lines at all is an error: more
 * likely the wrong store than a quiet one.
 */
async function sourcesFor(store: Store, query: string): Promise<readonly SourceInfo[]> {
  const sources = await store.sources();
  if (sources.length === 0) {
    throw new ClogsError('CLOGS_TAIL', `the ${store.description} holds no lines yet: is clogs collect writing there? (point at a store with --file DIR, --es URL or --config FILE)`);
  }
  return isUnknown(query, sources) && !store.sourcesComplete ? (await store.stats()).map((s) => s.info) : sources;
}

/** Resolves `<id>` in a store. */
export async function resolveInStore(store: Store, query: string): Promise<Resolved> {
  const sources = await sourcesFor(store, query);
  try {
    return resolveSource(query, sources);
  } catch (err) {
    // A container that just started may be in the files and not yet searchable.
    if (store.kind === 'es' && err instanceof ClogsError && isUnknown(query, sources)) {
      throw new ClogsError('CLOGS_TAIL', `${err.message}\n(Elasticsearch shows a line about a second after it was written: run it again, or read the files with --from file when the file sink is on)`);
    }
    throw err;
  }
}

/**
 * As resolveInStore(), for a follow: a name nothing in the store has (a
 * container that has not written yet, or not started) is waited for, as
 * `docker logs -f` follows a container that has not logged yet and Dozzle
 * shows one once it does. Its lines are taken by name, from any directory
 * or index they come to (`ids` empty: no container has the name yet).
 */
export async function resolveToFollow(store: Store, query: string): Promise<Resolved & { waiting: boolean }> {
  const sources = await sourcesFor(store, query);
  if (isUnknown(query, sources)) return { selection: { kind: 'name', value: containerName(query), ids: [] }, matched: [], waiting: true };
  return { ...resolveSource(query, sources), waiting: false };
}

function ambiguous(query: string, matches: readonly SourceInfo[], what: string, fix: string): ClogsError {
  const listed = matches.slice(0, 10).map((s) => `  ${describeSource(s)}`);
  if (matches.length > 10) listed.push(`  ... and ${matches.length - 10} more`);
  return new ClogsError('CLOGS_TAIL', `${JSON.stringify(query)} is ambiguous: it is ${what}; ${fix}:\n${listed.join('\n')}`);
}

/** True when nothing in `sources` could match the query (resolution would fail as unknown, not ambiguous). */
export function isUnknown(query: string, sources: readonly SourceInfo[]): boolean {
  const q = containerName(query);
  const lower = q.toLowerCase();
  const scoped = projectService(q);
  return !sources.some(
    (s) => s.id?.startsWith(lower) || s.id === q || s.name === q || s.service === q || s.tag === q || (scoped !== undefined && s.project === scoped.project && s.service === scoped.value),
  );
}

/**
 * `PROJECT/SERVICE`, the one compose service of that name in that project: a
 * service name two projects use (`web`) needs it. Compose allows no `/` in
 * either, nor Docker in a container name, so the first one splits them.
 */
export function projectService(q: string): Extract<Selection, { kind: 'service' }> | undefined {
  const slash = q.indexOf('/');
  if (slash <= 0 || slash === q.length - 1) return undefined;
  return { kind: 'service', value: q.slice(slash + 1), project: q.slice(0, slash) };
}

/**
 * One line of an error's list of matches. Names, tags and images are as a container or forward client wrote
 * them, and the error is printed to the terminal: the line goes through safeField.
 */
export function describeSource(s: SourceInfo): string {
  const parts: string[] = [];
  if (s.id) parts.push(`id ${s.id.slice(0, 12)}`);
  if (s.service) parts.push(`service ${s.project ? `${s.project}/` : ''}${s.service}`);
  if (s.image) parts.push(`image ${s.image}`);
  const label = s.name ?? (s.tag !== undefined ? `tag ${s.tag}` : s.id?.slice(0, 12) ?? '?');
  return safeField(parts.length > 0 ? `${label} (${parts.join(', ')})` : label);
}

/** What a source is called in output: its sourceName, with a container id cut to Docker's short form. */
export function sourceLabel(e: LogEvent): string {
  return shortLabel(eventSourceName(e), e.container);
}

/** sourceLabel() of a listed source. */
export function sourceInfoLabel(s: SourceInfo): string {
  return shortLabel(sourceInfoName(s), s);
}

function shortLabel(name: string, container: Pick<ContainerMeta, 'id' | 'name'> | undefined): string {
  return container?.name || name !== container?.id ? name : name.slice(0, 12);
}

/** A listed source's sourceName (source.ts), which names its directory in the file store. */
export function sourceInfoName(s: SourceInfo): string {
  return sourceName({ id: s.id, name: s.name }, s.tag, '');
}

/** What tells listed sources apart: the container id, else the tag (never taken for an id). */
export function sourceInfoKey(s: SourceInfo): string {
  return s.id ?? `tag\0${s.tag ?? ''}`;
}

export function sourceOfEvent(e: LogEvent): SourceInfo {
  const c = e.container;
  const s: SourceInfo = {};
  if (c?.id !== undefined) s.id = c.id;
  if (c?.name !== undefined) s.name = c.name;
  if (c?.image?.name !== undefined) s.image = c.image.name;
  if (c?.compose?.project !== undefined) s.project = c.compose.project;
  if (c?.compose?.service !== undefined) s.service = c.compose.service;
  if (c?.id === undefined && e.clogs.tag !== undefined) s.tag = e.clogs.tag;
  return s;
}

export function matchesSelection(sel: Selection, e: LogEvent): boolean {
  return selectionTakes(sel, e.container, e.clogs.tag);
}

/**
 * Whether a line of this container (or, without one, this tag) is selected:
 * the one rule for the history and the live stream. A tag selects the lines
 * that have no container, as sources are listed (sourceOfEvent).
 */
export function selectionTakes(sel: Selection, c: ContainerMeta | undefined, tag: string | undefined): boolean {
  switch (sel.kind) {
    case 'all':
      return true;
    case 'id':
      return c?.id === sel.value;
    case 'name':
      return c?.name === sel.value || (c?.id !== undefined && sel.ids?.includes(c.id) === true);
    case 'service':
      return c?.compose?.service === sel.value && (sel.project === undefined || c.compose.project === sel.project);
    case 'tag':
      return c?.id === undefined && tag === sel.value;
  }
}

/**
 * A text every stored line the selection takes holds as it is: its container
 * id, or its compose service, as a JSON string. Looking for it costs far less
 * than parsing the line; lines that hold it are still matched as usual (the
 * text may be in another field). Undefined when there is no such text.
 */
export function selectionLineText(sel: Selection): string | undefined {
  if ((sel.kind === 'id' || sel.kind === 'service') && storedAsIs(sel.value)) return `"${sel.value}"`;
  return undefined;
}

/** Names, services, tags and ids near the query: a shared substring or a small edit distance. */
export function closeMatches(query: string, sources: readonly SourceInfo[]): SourceInfo[] {
  const q = query.toLowerCase();
  const threshold = Math.max(2, Math.floor(q.length / 3));
  const scored: { s: SourceInfo; score: number }[] = [];
  for (const s of sources) {
    let best = Infinity;
    for (const candidate of [s.name, s.service, s.tag, s.id?.slice(0, Math.max(12, q.length))]) {
      if (candidate === undefined) continue;
      const c = candidate.toLowerCase();
      // The distance is at least the difference in length: past the threshold
      // it is not computed, which would take time of the product of the lengths.
      const score = c.includes(q) || q.includes(c) ? 0 : Math.abs(q.length - c.length) > threshold ? Infinity : editDistance(q, c);
      best = Math.min(best, score);
    }
    if (best <= threshold) scored.push({ s, score: best });
  }
  scored.sort((a, b) => a.score - b.score);
  return scored.slice(0, MAX_SUGGESTIONS).map((x) => x.s);
}

/** Edit distance counting a swap of two neighbours as one edit ("wbe" → "web"), as typos go. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}
