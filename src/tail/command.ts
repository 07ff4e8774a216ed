/**
 * `clogs tail`, `clogs ps` and `clogs search`: flags → a read of the store.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { ClogsError } from '../errors.js';
import { parseLevel, parsePattern, searchText, type EventFilter } from './filter.js';
import { createFormatter, shouldColor, type OutputMode } from './format.js';
import { runTail } from './follow.js';
import { createOutput, exitQuietlyOnSignals, warnToStderr } from './output.js';
import { containerStates, formatPsTable, psRows } from './ps.js';
import { resolveInStore, resolveToFollow, sourceInfoName, type Resolved } from './resolve.js';
import type { ReadRequest } from './store.js';
import { loadTarget, type StoreFlags } from './target.js';
import { parseTimeSpec } from './timespec.js';

interface ReadFlags extends StoreFlags {
  lines?: number;
  since?: string;
  until?: string;
  stream?: 'stdout' | 'stderr';
  grep?: string;
  level?: string;
  timestamps?: boolean;
  output: OutputMode;
  color: boolean;
}

interface TailFlags extends ReadFlags {
  follow?: boolean;
}

interface SearchFlags extends ReadFlags {
  container?: string;
  regex?: boolean;
  ignoreCase?: boolean;
}

interface PsFlags extends StoreFlags {
  output: 'text' | 'json';
}

function parseLines(text: string): number {
  if (text === 'all') return Infinity;
  if (!/^\d+$/.test(text)) throw new InvalidArgumentError('expected a number of lines or "all"');
  return Number(text);
}

function addStoreOptions(cmd: Command): Command {
  return cmd
    .option('-c, --config <file>', 'config file to read (default: ./config/clogs.yaml when it exists)')
    .option('--file <dir>', 'read the file store in this directory (sinks.file.dir)')
    .option('--es <url>', 'read Elasticsearch at this URL (sinks.elasticsearch.url)')
    .addOption(new Option('--from <store>', 'which store to read when both are configured (default: es when configured)').choices(['file', 'es']));
}

function addReadOptions(cmd: Command, lines: string): Command {
  return addStoreOptions(cmd)
    .option('-n, --lines <n>', lines, parseLines)
    .option('--since <time>', 'only lines at or after: a duration back from now (10m, 1h30m), an RFC 3339 time, a date')
    .option('--until <time>', 'only lines before: same forms as --since')
    .addOption(new Option('--stream <stream>', 'only this stream').choices(['stdout', 'stderr']))
    .option('--grep <regex>', 'only lines whose message matches this regular expression')
    .option('--level <level>', 'only lines at this level or above (trace, debug, info, warn, error, fatal)')
    .option('-t, --timestamps', 'show each line\'s timestamp')
    .addOption(new Option('-o, --output <format>', 'text, json (the events as stored, one per line), raw (the message alone)').choices(['text', 'json', 'raw']).default('text'))
    .option('--no-color', 'never colour the output (also: NO_COLOR=1, or any pipe)');
}

export function registerTailCommands(program: Command): void {
  addReadOptions(
    program
      .command('tail')
      .description('print the lines a container wrote, from what clogs collected (also after the container is gone)')
      .argument('<id>', 'container id or unique id prefix, container name, compose service (PROJECT/SERVICE), or forward tag'),
    'print the last N lines, or "all" (default: 10; all with --since/--until)',
  )
    .option('-f, --follow', 'keep printing new lines as they are collected')
    .option('--http <host:port>', 'the collector\'s live endpoint for -f (http.listen)')
    .action((id: string, flags: TailFlags) => tail(id, flags));

  addStoreOptions(program.command('ps').description('list the containers (and forward tags) clogs collected lines from'))
    .addOption(new Option('-o, --output <format>', 'text or json (one object per line)').choices(['text', 'json']).default('text'))
    .action((flags: PsFlags) => ps(flags));

  addReadOptions(
    program
      .command('search')
      .description('find lines in every container: an Elasticsearch query string, or a substring (--regex: a regular expression) in files')
      .argument('<query>', 'Elasticsearch: query_string syntax on message (field:value works too); files: text to find in message'),
    'print only the last N matches (default: all)',
  )
    .option('--container <id>', 'only this container (as tail resolves <id>)')
    .option('--regex', 'files: <query> is a regular expression')
    .option('-i, --ignore-case', 'files: match <query> ignoring case')
    .action((query: string, flags: SearchFlags) => search(query, flags));
}

function filterOf(flags: ReadFlags): EventFilter {
  const f: EventFilter = {};
  const now = Date.now();
  if (flags.since !== undefined) f.since = parseTimeSpec('--since', flags.since, now);
  if (flags.until !== undefined) f.until = parseTimeSpec('--until', flags.until, now);
  if (flags.stream !== undefined) f.stream = flags.stream;
  if (flags.level !== undefined) f.minLevel = parseLevel(flags.level);
  if (flags.grep !== undefined) f.pattern = parsePattern('--grep', flags.grep);
  return f;
}

function formatterOf(flags: ReadFlags, prefix: boolean) {
  const color = shouldColor({ colorFlag: flags.color, isTTY: process.stdout.isTTY === true, env: process.env });
  return createFormatter({ mode: flags.output, timestamps: flags.timestamps === true, color, prefix });
}

/** Several containers' lines mix: prefix each line with its source. */
function mixesSources(resolved: Resolved): boolean {
  const labels = new Set(resolved.matched.map(sourceInfoName));
  return labels.size > 1 || resolved.selection.kind === 'service';
}

async function tail(id: string, flags: TailFlags): Promise<void> {
  exitQuietlyOnSignals();
  if (flags.follow && flags.until !== undefined) throw new ClogsError('CLOGS_TAIL', '--until cannot be combined with -f/--follow');
  const filter = filterOf(flags);
  const target = await loadTarget(flags, warnToStderr);
  try {
    const resolved = flags.follow ? await resolveToFollow(target.store, id) : { ...(await resolveInStore(target.store, id)), waiting: false };
    if (resolved.waiting) warnToStderr(`no container named ${JSON.stringify(id)} has written yet; waiting for its lines (Ctrl-C to stop)`);
    const limit = flags.lines ?? (filter.since !== undefined || filter.until !== undefined ? Infinity : 10);
    const live = flags.follow ? target.live : undefined;
    await runTail({
      store: target.store,
      request: { selection: resolved.selection, matched: resolved.matched, filter, limit },
      follow: flags.follow === true,
      ...(live === undefined ? {} : { live }),
      ...(target.liveAuthorization === undefined ? {} : { liveAuthorization: target.liveAuthorization }),
      format: formatterOf(flags, mixesSources(resolved)),
      output: createOutput(),
      warn: warnToStderr,
    });
  } finally {
    await target.store.close();
  }
}

async function search(query: string, flags: SearchFlags): Promise<void> {
  exitQuietlyOnSignals();
  const filter = filterOf(flags);
  const target = await loadTarget(flags, warnToStderr);
  try {
    const resolved: Resolved = flags.container === undefined ? { selection: { kind: 'all' }, matched: [] } : await resolveInStore(target.store, flags.container);
    const request: ReadRequest = { selection: resolved.selection, matched: resolved.matched, filter, limit: flags.lines ?? Infinity };
    if (target.store.kind === 'es') {
      if (flags.regex || flags.ignoreCase) {
        throw new ClogsError('CLOGS_TAIL', '--regex and -i apply to the file store; Elasticsearch takes <query> as a query string (message:/regex/ works there)');
      }
      request.queryString = query;
    } else if (flags.regex) filter.text = parsePattern('<query>', query, flags.ignoreCase === true);
    else searchText(filter, query, flags.ignoreCase === true);
    await runTail({
      store: target.store,
      request,
      follow: false,
      format: formatterOf(flags, flags.container === undefined || mixesSources(resolved)),
      output: createOutput(),
      warn: warnToStderr,
    });
  } finally {
    await target.store.close();
  }
}

async function ps(flags: PsFlags): Promise<void> {
  exitQuietlyOnSignals();
  const target = await loadTarget(flags, warnToStderr);
  try {
    const [stats, states] = await Promise.all([target.store.stats(), containerStates(target.config.docker)]);
    const rows = psRows(stats, states);
    const output = createOutput();
    if (flags.output === 'json') {
      for (const row of rows) await output.write(JSON.stringify(row) + '\n');
    } else {
      await output.write(formatPsTable(rows));
    }
  } finally {
    await target.store.close();
  }
}
