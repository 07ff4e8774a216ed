/**
 * Reads the file sink's NDJSON store (layout in src/sinks/file/layout.ts:
 * `<dir>/<source>/<day>.<number>.ndjson`, one complete JSON event per line,
 * only the newest file of a source grows).
 *
 * Costs, for a store of S source directories:
 * - resolving `<id>`: the first and last line of every plain file and the first
 *   line of every compressed one (its last line would cost decompressing it
 *   whole), never whole files;
 * - `tail -n N`: files read backwards from the end until N lines matched (and a
 *   bounded margin more, see below), so the size of the store does not matter,
 *   holding the newest N events read from all directories together; with
 *   `--since`, a directory with fewer than N matches is read back to its first
 *   file (see Order);
 * - `--since`, `--until`, `-n all`, `search`: a forward scan of every file of
 *   the directories read, to its end (see Order), holding at most MERGE_WINDOW
 *   events in all, plus one event and one open file (with its read chunk) per
 *   directory;
 * - `ps`: every line of every file (it counts them);
 * - `-f` of an id or a compose service (a selection that can gain
 *   directories): every directory's new lines are read and tested, since a
 *   container renamed or recreated can write into any of them; of a name or a
 *   tag, its one directory's.
 * Rotated files may be gzipped (`.ndjson.gz`, see layout.ts): they read as
 * if plain, in their place in the order; reading one backwards or skipping
 * into it costs decompressing it (content.ts).
 *
 * Order: a file is in the order the sink received its lines, which is time
 * order up to small swaps (a container's stdout and stderr interleave), except
 * for lines that arrive late: `docker.fluentd_backfill` appends lines it held
 * 15 s after newer ones, and a Docker follower that catches up after a stop
 * appends old lines to today's file (layout.ts). The store has no bound on the
 * times a file holds (its day is when the sink wrote it, not the lines'
 * times), so a time window never skips a file nor stops inside one on the
 * times of the lines read so far:
 * - `--since`, `--until`, `-n all`, `search` find every line in the window,
 *   however late it was written. Lines come out sorted within MERGE_WINDOW
 *   (see there); a line further out of order is shown where the file has it.
 *   The cost: every file of the directories is read (compressed ones
 *   decompressed) but those whose next file was created more than two days
 *   before `--since` (FILE_DAY_SLACK_NS), where files wholly before `--since`
 *   or after `--until` used to be skipped by their lines' times.
 * - `-n N` (also with `--since`) returns the newest N matches of the lines
 *   read. It stops reading a directory once it holds N matches and then meets
 *   a line more than REORDER_SLACK_NS older than the N-th, or
 *   EXTRA_LINES_PAST_LIMIT lines past it; a page before a cursor (`before`)
 *   starts at the line a binary search on the times finds REORDER_SLACK_NS
 *   after it. These two stay bounded reads by assuming order within
 *   REORDER_SLACK_NS: a line newer than the N-th match but written before a
 *   line more than that older than it, or a line written more than that late
 *   after the cursor's place, can be missing from them (`--since` or `-n all`
 *   finds it).
 */
import { watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import type { LogEvent } from '../collector/event.js';
import { contentEnd } from '../sinks/file/content.js';
import { compareFiles, listLayoutFiles, listSourceDirs, sanitizeName, type LayoutFile } from '../sinks/file/layout.js';
import { matchesFilter, storedLineTest } from './filter.js';
import { completeLinesEnd, firstLine, lastLine, lineAfter, readBlocksBackward, readLinesBackward, readLinesForward } from './lines.js';
import { compareToKey, eventKey, hasEventKey, mergeOrdered, NewestEvents, parseKey, type StoredEvent } from './order.js';
import { matchesSelection, selectionLineText, sourceInfoKey, sourceInfoName, sourceOfEvent, type Selection, type SourceInfo } from './resolve.js';
import { sharedWhileRunning, type ReadRequest, type SourceStats, type Store, type StoreReader, type Warn } from './store.js';
import { shiftTimestamp } from './timespec.js';

/** How far out of time order `-n N` and a page before a cursor take a file's lines to be at most (see Order). */
const REORDER_SLACK_NS = 10_000_000_000n;
/**
 * Every line of a file was written before the next file was created, on
 * that file's day (layout.ts), and carries its source's time then: a file
 * whose next file is of a day this long before `--since` holds no line in
 * the window, unless a source's clock ran more than a day ahead.
 */
const FILE_DAY_SLACK_NS = 2n * 86_400n * 1_000_000_000n;

/** The day of `--since` less FILE_DAY_SLACK_NS: a file whose next file is of an earlier day ends before `--since`. */
function sinceDayFloor(since: string | undefined): string | undefined {
  return since === undefined ? undefined : shiftTimestamp(since, -FILE_DAY_SLACK_NS).slice(0, 10);
}

/** Whether file `i` of a directory holds no line at or after the day floor (sinceDayFloor). */
function endsBefore(files: readonly FileSnapshot[], i: number, dayFloor: string | undefined): boolean {
  const next = files[i + 1];
  return dayFloor !== undefined && next !== undefined && next.day < dayFloor;
}
/** Lines read past the N-th match of `-n N` looking for out-of-order newer ones. */
const EXTRA_LINES_PAST_LIMIT = 10_000;
/**
 * Events a forward scan holds to sort the lines of all its directories, in
 * total (see mergeOrdered): the directories' lines are merged as their files
 * have them and sorted once within this window, so a scan holds at most this
 * many plus one per directory. One window per directory (4096 each, before)
 * grew with the store: the review measured 71 MB held for 20 directories
 * before the first line came out, about 870 bytes an event, so 1,000
 * directories would have held about 3.6 GB. At that size this is about 14 MB.
 *
 * A line is sorted into place when fewer than this many lines of the scan,
 * from every directory, are stamped between its time and that of the newest
 * line its file has before it. For one directory that is 4 times the 4096
 * lines it had; across directories it is shared by where the lines are, so a
 * busy source's stdout/stderr swaps stay sorted among many quiet sources.
 */
export const MERGE_WINDOW = 16_384;
/**
 * How much of the newest history `tail -f` remembers to fold with the live
 * stream: the lines published between its subscription and its snapshot, a
 * few milliseconds' worth. Counted in lines, not by timestamp: a line's time
 * is when the app wrote it, which can be long before it was published.
 */
const RECENT_LINES = 5000;
/** Below this many bytes the binary search of endBefore stops and the rest is read. */
const PROBE_MIN_BYTES = 64 * 1024;
/** Follow re-checks files this often even when no file-system event came (watchers can miss some). */
const POLL_MS = 1000;

interface IndexEntry {
  info: SourceInfo;
  /** `@timestamp` of the line `info` was taken from: the newest metadata wins. */
  seen: string;
  dirs: Set<string>;
}

type CountedSource = SourceStats & { seen: string };

interface FileCounts {
  /** Where the lines not counted yet start. */
  offset: number;
  sources: Map<string, CountedSource>;
}

function countEvent(sources: Map<string, CountedSource>, event: LogEvent): void {
  const ts = event['@timestamp'];
  const info = sourceOfEvent(event);
  const key = sourceInfoKey(info);
  let s = sources.get(key);
  if (!s) {
    s = { info, first: ts, last: ts, stdout: 0, stderr: 0, other: 0, seen: ts };
    sources.set(key, s);
  }
  if (ts < s.first) s.first = ts;
  if (ts > s.last) s.last = ts;
  if (ts >= s.seen) {
    s.seen = ts;
    s.info = info;
  }
  if (event.stream === 'stdout') s.stdout++;
  else if (event.stream === 'stderr') s.stderr++;
  else s.other++;
}

/** Adds one file's counts of a source to the totals. */
function mergeCounts(totals: Map<string, CountedSource>, key: string, s: CountedSource): void {
  const t = totals.get(key);
  if (!t) {
    totals.set(key, { ...s });
    return;
  }
  if (s.first < t.first) t.first = s.first;
  if (s.last > t.last) t.last = s.last;
  if (s.seen >= t.seen) {
    t.seen = s.seen;
    t.info = s.info;
  }
  t.stdout += s.stdout;
  t.stderr += s.stderr;
  t.other += s.other;
}

interface FileSnapshot extends LayoutFile {
  /** End of the complete lines when the reader opened (Infinity: a compressed file, all of it). */
  end: number;
}

interface DirSnapshot {
  dir: string;
  files: FileSnapshot[];
}

export interface FileStoreOptions {
  /**
   * Told +1 for each event a history read takes from a file and -1 for each
   * it lets go of unreturned: less the events returned, what the read holds
   * at any moment, wherever it holds them (tests check the bounds above).
   */
  onHeld?: (change: number) => void;
}

export function createFileStore(root: string, warn: Warn, options: FileStoreOptions = {}): Store {
  let index: Map<string, IndexEntry> | undefined;
  const badFiles = new Set<string>();
  const unreadableDirs = new Set<string>();
  const sourceDirs = (): Promise<string[]> =>
    listSourceDirs(root, (dir, err) => {
      if (unreadableDirs.has(dir)) return;
      unreadableDirs.add(dir);
      warn(`${dir}: skipped a directory that cannot be read (${err.code ?? err.message})`);
    });
  // Line counts per file, kept between stats() calls: only a file's new lines are read again.
  const counts = new Map<string, FileCounts>();

  const parse = (line: string, file: string): LogEvent | undefined => {
    const event = parseEventLine(line);
    if (!event && !badFiles.has(file)) {
      badFiles.add(file);
      warn(`${file}: skipped a line that is not a clogs event`);
    }
    return event;
  };

  async function buildIndex(): Promise<Map<string, IndexEntry>> {
    const next = new Map<string, IndexEntry>();
    for (const dir of await sourceDirs()) {
      for (const { path, compressed } of await listLayoutFiles(dir)) {
        const end = await contentEnd(path);
        if (end === undefined) continue;
        const lines = [await firstLine(path, end)];
        if (!compressed) lines.push(await lastLine(path, end));
        for (const line of lines) {
          const event = line === undefined ? undefined : parse(line, path);
          if (event) addToIndex(next, event, dir);
        }
      }
    }
    index = next;
    return next;
  }

  /** `end`: Infinity for a compressed file, which never changes once there: it is counted once. */
  async function countFile(path: string, end: number, compressed: boolean): Promise<Map<string, CountedSource>> {
    let c = counts.get(path);
    if (c && compressed) return c.sources;
    // A file that shrank was replaced: count it again.
    if (!c || end < c.offset) {
      c = { offset: 0, sources: new Map() };
      counts.set(path, c);
    }
    if (end > c.offset) {
      for await (const { line, next } of readLinesForward(path, c.offset, end)) {
        c.offset = next;
        const event = parse(line, path);
        if (event) countEvent(c.sources, event);
      }
    }
    return c.sources;
  }

  async function countAll(): Promise<SourceStats[]> {
    const totals = new Map<string, CountedSource>();
    const next = new Map<string, IndexEntry>();
    const seenFiles = new Set<string>();
    for (const dir of await sourceDirs()) {
      for (const { path, compressed } of await listLayoutFiles(dir)) {
        const end = await contentEnd(path);
        if (end === undefined) continue;
        seenFiles.add(path);
        const counted = await countFile(path, end, compressed);
        for (const [key, s] of counted) {
          mergeCounts(totals, key, s);
          const entry = next.get(key);
          if (!entry) next.set(key, { info: s.info, seen: s.seen, dirs: new Set([dir]) });
          else {
            entry.dirs.add(dir);
            if (s.seen >= entry.seen) {
              entry.info = s.info;
              entry.seen = s.seen;
            }
          }
        }
      }
    }
    for (const path of counts.keys()) if (!seenFiles.has(path)) counts.delete(path);
    index = next;
    return [...totals.values()].map(({ seen: _seen, ...s }) => s);
  }

  /**
   * The directories to read `req`'s history from. `listed`: the store's
   * directories a moment before (positionsAtOpen), for a selection that can
   * gain directories: those made since the index was built (when the name
   * was resolved, a compose replica starting in between) are read too, and
   * the selection picks their lines.
   */
  async function dirsFor(req: ReadRequest, listed: Iterable<string>): Promise<string[]> {
    const sel = req.selection;
    if (sel.kind === 'all') return sourceDirs();
    // The sink names a directory after the container name, else the id or tag;
    // a renamed container's lines from before are in the directory of its old name.
    if (sel.kind === 'tag' || (sel.kind === 'name' && sel.ids === undefined)) return [join(root, sanitizeName(sel.value))];
    const idx = index ?? (await buildIndex());
    const dirs = new Set<string>();
    for (const s of req.matched) {
      const entry = idx.get(sourceInfoKey(s));
      for (const d of entry?.dirs ?? []) dirs.add(d);
      if (entry === undefined) dirs.add(join(root, sanitizeName(sourceInfoName(s))));
    }
    // Nothing resolved up front: read every directory and let the selection filter.
    if (dirs.size === 0) return sourceDirs();
    // The directories the index found lines of: one made since (or empty then) may hold lines it does not know of.
    const indexed = new Set<string>();
    for (const entry of idx.values()) for (const d of entry.dirs) indexed.add(d);
    for (const dir of listed) if (!indexed.has(dir)) dirs.add(dir);
    return [...dirs];
  }

  return {
    kind: 'file',
    // From the first and last line of each file: a container re-created
    // under the same name in the middle of a file is only found by stats().
    sourcesComplete: false,
    description: `file store ${root}`,

    async sources() {
      return [...(await buildIndex()).values()].map((e) => e.info);
    },

    stats: sharedWhileRunning(countAll),

    async open(req) {
      // Where every directory ends now, for a selection that can gain
      // directories: its lines may come there later (see followDirs). Taken
      // before the selected ones are listed: a directory made in between
      // is then either selected (read by history to its snapshot) or
      // followed from its start, where taken after it was followed from
      // where it ended, past the lines written in between. `all` selects
      // every directory listed after this, so none would be left: not read
      // (each page of the web page's view of all containers opens a reader).
      // A directory the index had no lines of when the name was resolved
      // is read too (dirsFor).
      const others = canGrow(req.selection) && req.selection.kind !== 'all' ? await positionsAtOpen(root) : new Map<string, Position>();
      const dirs = await dirsFor(req, others.keys());
      const snapshots = await Promise.all(dirs.map(snapshotDir));
      for (const dir of dirs) others.delete(dir);
      const reader: StoreReader = {
        recentKeys: () => recentKeys(snapshots, req.selection, parse),
        history: () => (req.limit === Infinity ? scanForward(snapshots, req, parse, options.onHeld) : scanBackward(snapshots, req, parse, options.onHeld)),
        follow: (signal) => followDirs(root, snapshots, others, req, parse, signal),
      };
      return reader;
    },

    async close() {},
  };
}

const TIMESTAMP_PREFIX = '{"@timestamp":"';
const TIMESTAMP_LENGTH = '2026-11-22T09:53:10.526990943Z'.length;

/** The `@timestamp` of a line the sink wrote (it comes first), without parsing the line. */
function leadingTimestamp(line: string): string | undefined {
  const end = TIMESTAMP_PREFIX.length + TIMESTAMP_LENGTH;
  return line.startsWith(TIMESTAMP_PREFIX) && line.charCodeAt(end) === 0x22 ? line.slice(TIMESTAMP_PREFIX.length, end) : undefined;
}

function countLines(block: string): number {
  let n = 1;
  for (let i = block.indexOf('\n'); i !== -1; i = block.indexOf('\n', i + 1)) n++;
  return n;
}

/** A stored line as an event, or undefined when it is not one (a foreign or damaged line). */
function parseEventLine(line: string): LogEvent | undefined {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const e = v as Partial<LogEvent>;
  if (!hasEventKey(e) || typeof e.message !== 'string') return undefined;
  return e;
}

function addToIndex(index: Map<string, IndexEntry>, event: LogEvent, dir: string): void {
  const info = sourceOfEvent(event);
  const key = sourceInfoKey(info);
  const ts = event['@timestamp'];
  const entry = index.get(key);
  if (!entry) index.set(key, { info, seen: ts, dirs: new Set([dir]) });
  else {
    entry.dirs.add(dir);
    if (ts >= entry.seen) {
      entry.info = info;
      entry.seen = ts;
    }
  }
}

async function snapshotDir(dir: string): Promise<DirSnapshot> {
  const files: FileSnapshot[] = [];
  for (const file of await listLayoutFiles(dir)) {
    const end = await linesEnd(file.path);
    if (end !== undefined) files.push({ ...file, end });
  }
  return { dir, files };
}

/** Where the complete lines of a file end now; undefined when it is gone (compressed or removed). */
async function linesEnd(path: string): Promise<number | undefined> {
  const end = await contentEnd(path);
  return end === undefined ? undefined : completeLinesEnd(path, end);
}

type Parse = (line: string, file: string) => LogEvent | undefined;

/** The keys of the last RECENT_LINES lines of each directory (file order is publication order). */
async function recentKeys(snapshots: readonly DirSnapshot[], selection: Selection, parse: Parse): Promise<string[]> {
  const keys: string[] = [];
  for (const snap of snapshots) {
    let count = 0;
    dir: for (let i = snap.files.length - 1; i >= 0; i--) {
      const file = snap.files[i]!;
      for await (const raw of readLinesBackward(file.path, file.end)) {
        const event = parse(raw, file.path);
        if (!event || !matchesSelection(selection, event)) continue;
        if (++count > RECENT_LINES) break dir;
        keys.push(eventKey(event));
      }
    }
  }
  return keys;
}

/**
 * `-n N`: each directory read from its end until N matches and a margin, then
 * the newest N overall. Only the newest N read so far, from all directories,
 * are kept: an event older than N others can never be among the newest N, and
 * keeping every directory's matches (up to N + EXTRA_LINES_PAST_LIMIT each)
 * grew with the number of directories.
 */
async function* scanBackward(snapshots: readonly DirSnapshot[], req: ReadRequest, parse: Parse, onHeld?: (change: number) => void): AsyncGenerator<StoredEvent> {
  if (req.limit <= 0) return;
  const { filter, selection } = req;
  const before = req.before === undefined ? undefined : parseKey(req.before);
  const beforeCeiling = before === undefined ? undefined : shiftTimestamp(before.ts, REORDER_SLACK_NS);
  const lineTest = storedLineTest(filter);
  const found = new NewestEvents(req.limit);
  const dayFloor = sinceDayFloor(filter.since);
  for (const snap of snapshots) {
    let matches = 0;
    let stopBelow: string | undefined;
    let extra = 0;
    dir: for (let i = snap.files.length - 1; i >= 0; i--) {
      // Files are newest first here: once one ends before `--since`, so do all before it.
      if (endsBefore(snap.files, i, dayFloor)) break;
      const file = snap.files[i]!;
      const end = beforeCeiling === undefined ? file.end : await endBefore(file, beforeCeiling, parse);
      for await (const block of readBlocksBackward(file.path, end)) {
        if (lineTest !== undefined && !lineTest.test(block)) {
          // No line of the block can match (a search): only its time bounds the
          // scan past the N-th match, and its first line is its oldest.
          const ts = leadingTimestamp(block);
          if (stopBelow !== undefined && ((ts !== undefined && ts < stopBelow) || (extra += countLines(block)) > EXTRA_LINES_PAST_LIMIT)) break dir;
          continue;
        }
        const lines = block.split('\n');
        for (let j = lines.length - 1; j >= 0; j--) {
          const raw = lines[j]!;
          const skip = raw === '' || (lineTest !== undefined && !lineTest.test(raw));
          const event = skip ? undefined : parse(raw, file.path);
          // A line the test skipped still bounds the scan by its time.
          const ts = event?.['@timestamp'] ?? (skip ? leadingTimestamp(raw) : undefined);
          if (ts === undefined) continue;
          // Not stopped below `--since`: a line written late can sit before newer lines (see Order).
          if (stopBelow !== undefined && (ts < stopBelow || ++extra > EXTRA_LINES_PAST_LIMIT)) break dir;
          if (!event) continue;
          if (before !== undefined && compareToKey(event, before) >= 0) continue;
          if (!matchesSelection(selection, event) || !matchesFilter(filter, event)) continue;
          const held = found.size;
          found.add({ event, raw });
          onHeld?.(found.size - held);
          if (++matches === req.limit) stopBelow = shiftTimestamp(ts, -REORDER_SLACK_NS);
        }
      }
    }
  }
  yield* found.drain();
}

/**
 * Where to start reading a file backwards so that every line after that point
 * is at or after `ts`: a binary search on the lines' timestamps, so a page deep
 * in a large file costs a few reads to find. Files are in time order within
 * REORDER_SLACK_NS, which the caller adds to `ts`; a probe that finds no whole
 * line or no event moves the search later, reading more rather than missing lines.
 */
async function endBefore(file: FileSnapshot, ts: string, parse: Parse): Promise<number> {
  // A compressed file has no byte positions to probe without decompressing: read it whole.
  if (file.compressed) return file.end;
  let lo = 0;
  let hi = file.end;
  while (hi - lo > PROBE_MIN_BYTES) {
    const mid = lo + Math.floor((hi - lo) / 2);
    const probe = await lineAfter(file.path, mid, hi);
    const event = probe === undefined ? undefined : parse(probe.line, file.path);
    if (probe === undefined || event === undefined || event['@timestamp'] < ts) lo = mid;
    else hi = probe.start;
  }
  return hi;
}

/** Everything matching, in order: each directory scanned forwards, the directories merged and sorted in one window. */
function scanForward(snapshots: readonly DirSnapshot[], req: ReadRequest, parse: Parse, onHeld?: (change: number) => void): AsyncGenerator<StoredEvent> {
  return mergeOrdered(snapshots.map((snap) => scanDir(snap, req, parse, onHeld)), MERGE_WINDOW);
}

async function* scanDir(snap: DirSnapshot, req: ReadRequest, parse: Parse, onHeld?: (change: number) => void): AsyncGenerator<StoredEvent> {
  const { filter, selection } = req;
  const lineTest = storedLineTest(filter);
  const dayFloor = sinceDayFloor(filter.since);
  // Every file to its end, whatever `--since` and `--until`: a line written
  // late can sit in any file, after lines past either bound (see Order). Only
  // files that end days before `--since` by their names are left out.
  for (const [i, file] of snap.files.entries()) {
    if (endsBefore(snap.files, i, dayFloor)) continue;
    for await (const { line } of readLinesForward(file.path, 0, file.end)) {
      if (lineTest !== undefined && !lineTest.test(line)) continue;
      const event = parse(line, file.path);
      if (!event) continue;
      if (!matchesSelection(selection, event) || !matchesFilter(filter, event)) continue;
      onHeld?.(1);
      yield { event, raw: line };
    }
  }
}

interface Position {
  /** The file being read (by day and number: it may be compressed while read); undefined until the directory has one. */
  file: LayoutFile | undefined;
  /** Where the next unread complete line starts. */
  offset: number;
}

interface Follower extends Position {
  dir: string;
  watcher: FSWatcher | undefined;
}

/**
 * Whether a selection's lines can come in directories it has none in yet: a
 * compose service's new replica, a container renamed into a name another had
 * (whose directory exists), one recreated under its service, a container of
 * a name renamed while followed (its lines go on in the new name's
 * directory). A tag, or a name no container has, maps to one directory.
 */
function canGrow(selection: Selection): boolean {
  return selection.kind === 'name' ? selection.ids !== undefined : selection.kind !== 'tag';
}

/** Where each directory ends now, its last file's complete lines. */
async function positionsAtOpen(root: string): Promise<Map<string, Position>> {
  const out = new Map<string, Position>();
  for (const dir of await listSourceDirs(root)) {
    const last = (await listLayoutFiles(dir)).at(-1);
    out.set(dir, { file: last, offset: (last === undefined ? undefined : await linesEnd(last.path)) ?? 0 });
  }
  return out;
}

/**
 * Lines appended after the snapshot, directory by directory, as they arrive:
 * woken by file-system events and a poll, it reads each directory's current
 * file to its last complete line and moves on to the next file once the sink
 * rotated (an earlier file never grows once a later one exists).
 */
async function* followDirs(
  root: string,
  snapshots: readonly DirSnapshot[],
  others: ReadonlyMap<string, Position>,
  req: ReadRequest,
  parse: Parse,
  signal: AbortSignal,
): AsyncGenerator<StoredEvent> {
  const followers = new Map<string, Follower>();
  for (const snap of snapshots) {
    const last = snap.files[snap.files.length - 1];
    followers.set(snap.dir, { dir: snap.dir, file: last, offset: last?.end ?? 0, watcher: undefined });
  }
  // A selection that can gain directories follows them all from where they
  // ended at open, new ones from their start, and takes the lines it selects:
  // a directory's lines are of whichever containers had its name.
  const grows = canGrow(req.selection);
  if (grows) for (const [dir, at] of others) followers.set(dir, { dir, ...at, watcher: undefined });
  // Those are every line the host writes: most are not parsed at all.
  const selectionText = selectionLineText(req.selection);
  const lineTest = storedLineTest(req.filter);
  const keep = (line: string): boolean => (selectionText === undefined || line.includes(selectionText)) && (lineTest === undefined || lineTest.test(line));

  let dirty = true;
  let wake: (() => void) | undefined;
  const poke = (): void => {
    dirty = true;
    wake?.();
  };
  const watchOrUndefined = (path: string): FSWatcher | undefined => {
    try {
      return watch(path, { persistent: false }, poke).on('error', () => undefined);
    } catch {
      return undefined;
    }
  };
  const rootWatcher = watchOrUndefined(root);
  const timer = setInterval(poke, POLL_MS);
  signal.addEventListener('abort', poke, { once: true });

  try {
    while (!signal.aborted) {
      if (!dirty) await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
      if (signal.aborted) return;
      dirty = false;
      if (grows) await discover(root, followers);
      for (const f of followers.values()) {
        f.watcher ??= watchOrUndefined(f.dir);
        for await (const e of readNew(f, parse, keep)) {
          if (matchesSelection(req.selection, e.event) && matchesFilter(req.filter, e.event)) yield e;
        }
      }
    }
  } finally {
    clearInterval(timer);
    signal.removeEventListener('abort', poke);
    rootWatcher?.close();
    for (const f of followers.values()) f.watcher?.close();
  }
}

/** Follows the directories made since the last look, from their start. */
async function discover(root: string, followers: Map<string, Follower>): Promise<void> {
  for (const dir of await listSourceDirs(root)) {
    if (!followers.has(dir)) followers.set(dir, { dir, file: undefined, offset: 0, watcher: undefined });
  }
}

/**
 * A follower's new complete lines that `keep` takes. A file is known by its day and number, so
 * when the sink's compressor replaces the plain file with its `.gz` the
 * follower goes on in the `.gz` at the same offset (the same content).
 */
async function* readNew(f: Follower, parse: Parse, keep: (line: string) => boolean): AsyncGenerator<StoredEvent> {
  for (;;) {
    // Listed before the end is taken: if a later file exists at listing time,
    // the current one was final before, so reading to its end is complete.
    const files = await listLayoutFiles(f.dir);
    if (files.length === 0) return;
    const current = f.file;
    const idx = current === undefined ? 0 : files.findIndex((x) => compareFiles(x, current) >= 0);
    if (idx === -1) return;
    const file = files[idx]!;
    // The file went away (removed by hand or by retention): go on with the next one from its start.
    if (current === undefined || compareFiles(file, current) !== 0) f.offset = 0;
    f.file = file;
    const end = await contentEnd(file.path);
    // Compressed or removed since the listing: list again.
    if (end === undefined) continue;
    if (end > f.offset) {
      for await (const { line, next } of readLinesForward(file.path, f.offset, end)) {
        f.offset = next;
        const event = keep(line) ? parse(line, file.path) : undefined;
        if (event) yield { event, raw: line };
      }
    }
    const after = files[idx + 1];
    if (!after) return;
    f.file = after;
    f.offset = 0;
  }
}
