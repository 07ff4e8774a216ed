/**
 * YAML file → environment (CLOGS_*) → command-line flags → validated Config.
 * Later sources win. Every error names where the value came from (file and
 * line, variable or flag), the key, and what was expected.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { isMap, isScalar, LineCounter, parseDocument, visit, type Document } from 'yaml';
import { configSchema, type Config } from './schema.js';
import { ClogsError } from '../errors.js';

type Plain = Record<string, unknown>;
type Origin = { kind: 'env' | 'flag'; name: string };
type FileOrigin = { file: string; lines: LineCounter; doc: ReturnType<typeof parseDocument> };

/** The config shipped with clogs, used when neither --config nor ./config/clogs.yaml exists. */
const EMBEDDED_CONFIG = fileURLToPath(new URL('../../../config/clogs.yaml', import.meta.url));

/** The config file to read: the one named, else ./config/clogs.yaml, else the embedded one. */
export function configFile(named: string | undefined): string {
  if (named !== undefined) return named;
  return existsSync('config/clogs.yaml') ? 'config/clogs.yaml' : EMBEDDED_CONFIG;
}

export interface LoadOptions {
  /** Path of the YAML file; absent means defaults only. */
  file?: string;
  env?: NodeJS.ProcessEnv;
  /** Values from quick-start flags, as config paths (`forward.listen`) to raw values. */
  flags?: Record<string, { flag: string; value: unknown }>;
}

export function loadConfig(opts: LoadOptions): Config {
  const origins = new Map<string, Origin>();
  let raw: Plain = {};
  let fileOrigin: FileOrigin | undefined;

  if (opts.file !== undefined) {
    let text: string;
    try {
      text = readFileSync(opts.file, 'utf8');
    } catch (err) {
      throw new ClogsError('CLOGS_CONFIG', `${opts.file}: cannot read the config file (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    }
    const lines = new LineCounter();
    const doc = parseDocument(text, { lineCounter: lines, prettyErrors: true });
    const read = plainOf(doc, lines);
    if (read instanceof YamlProblem) throw new ClogsError('CLOGS_CONFIG', `${opts.file}:${read.line ?? '?'}: not valid YAML: ${read.message}`);
    const value = read ?? {};
    if (typeof value !== 'object' || Array.isArray(value)) {
      throw new ClogsError('CLOGS_CONFIG', `${opts.file}: expected a mapping of keys at the top level`);
    }
    raw = value as Plain;
    fileOrigin = { file: opts.file, lines, doc };
  }

  const unknown: string[] = [];
  const unreadable: string[] = [];
  for (const [name, text] of Object.entries(opts.env ?? {})) {
    if (!name.startsWith('CLOGS_') || NOT_CONFIG.test(name) || text === undefined) continue;
    const key = envKey(name.slice('CLOGS_'.length));
    if (!key) {
      unknown.push(name);
      continue;
    }
    const value = envValue(text, key.type);
    if (value instanceof YamlProblem) {
      unreadable.push(`environment ${name}: not valid YAML: ${value.message}`);
      continue;
    }
    setPath(raw, key.path, value);
    origins.set(key.path.join('.'), { kind: 'env', name });
  }

  for (const [key, { flag, value }] of Object.entries(opts.flags ?? {})) {
    setPath(raw, key.split('.'), value);
    origins.set(key, { kind: 'flag', name: flag });
  }

  const result = configSchema.safeParse(raw);
  // A mistyped variable is an error too: ignored, it would leave its key at the file's value or the default, unnoticed.
  const errors = [
    ...unknown.map(describeUnknownVariable),
    ...unreadable,
    ...(result.error?.issues.flatMap((i) => describeIssue(i, raw, origins, fileOrigin)) ?? []),
  ];
  if (result.success && errors.length === 0) return result.data;
  throw new ClogsError('CLOGS_CONFIG', errors.join('\n'));
}

function describeIssue(issue: z.core.$ZodIssue, raw: Plain, origins: Map<string, Origin>, file: FileOrigin | undefined): string[] {
  const key = issue.path.join('.') || '(top level)';
  const path = issue.path as (string | number)[];
  // One line each: the unknown keys of a mapping can be far apart in the file, and each is found by its own line.
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((k) => `${where([...path, k], origins, file, true)}: ${key}: unknown key ${JSON.stringify(k)}`);
  }
  const missing = valueAt(raw, path) === undefined;
  const message = issue.code === 'invalid_type' ? `${missing ? 'missing: ' : ''}expected ${issue.expected}` : issue.message;
  // A key another one makes required (http.auth by http.listen) is told where that one was set.
  const causedBy = issue.code === 'custom' ? (issue.params as { causedBy?: string[] } | undefined)?.causedBy : undefined;
  return [`${where(causedBy === undefined ? path : [...path.slice(0, -1), ...causedBy], origins, file, false)}: ${key}: ${message}`];
}

/**
 * Where the value at `path` came from: the variable or flag that set it or a
 * mapping above it, else the file and the line of its value, or of its key
 * with `atKey` (an unknown key's value may start lines below it, or be empty).
 */
function where(path: (string | number)[], origins: Map<string, Origin>, file: FileOrigin | undefined, atKey: boolean): string {
  const named = (o: Origin): string => (o.kind === 'env' ? `environment ${o.name}` : `flag ${o.name}`);
  for (let n = path.length; n >= 0; n--) {
    const o = origins.get(path.slice(0, n).join('.'));
    if (o) return named(o);
  }
  const node = file === undefined ? undefined : atKey ? keyNode(file.doc, path) : file.doc.getIn(path, true);
  // A missing key: the line of the mapping it is missing from, or, when the
  // file has no such mapping, the variable or flag that made it.
  const mapping = node === undefined && file !== undefined ? file.doc.getIn(path.slice(0, -1), true) : undefined;
  if (node === undefined && mapping === undefined && path.length > 1) {
    const parent = path.slice(0, -1).join('.');
    for (const [key, o] of origins) if (key.startsWith(`${parent}.`)) return named(o);
  }
  if (!file) return 'config';
  const at = node ?? mapping;
  const start = (at as { range?: [number, number, number] } | undefined)?.range?.[0];
  return start === undefined ? file.file : `${file.file}:${file.lines.linePos(start).line}`;
}

function keyNode(doc: FileOrigin['doc'], path: (string | number)[]): unknown {
  const parent = doc.getIn(path.slice(0, -1), true);
  if (!isMap(parent)) return undefined;
  const name = String(path[path.length - 1]);
  return parent.items.find((pair) => isScalar(pair.key) && String(pair.key.value) === name)?.key;
}

/**
 * Not config keys, yet they reach clogs in the environments it inherits: those
 * Kubernetes gives every pod for a Service named clogs (CLOGS_SERVICE_HOST,
 * CLOGS_PORT_24224_TCP, ...) and Docker for a link (CLOGS_NAME, CLOGS_ENV_...),
 * and those of the tests, the benchmarks and scripts/elasticsearch.sh, which
 * every collector they start inherits: no key starts with any of these.
 * scripts/elasticsearch.sh's are named one by one, because CLOGS_ES_ is what
 * one guesses for Elasticsearch (CLOGS_ES_URL, after --es) and such a guess
 * must be refused, not ignored. compose.yaml's CLOGS_HTTP_TOKEN is not here:
 * it fills CLOGS_HTTP_AUTH_TOKEN on the host, the collector never sees it,
 * and it reads like the token's key.
 */
const NOT_CONFIG = /^CLOGS_(SERVICE_|PORT$|PORT_|NAME$|ENV_|TEST_|BENCH_|ES_(VERSION|CACHE|M2|USER|JAVA_HOME|TIMEOUT|SECURE_USER|SECURE_PASSWORD)$)/;

function describeUnknownVariable(name: string): string {
  const rest = name.slice('CLOGS_'.length).toLowerCase();
  const near = closest(rest, envKeys());
  const hint =
    near.length > 0
      ? `did you mean ${near.map((k) => `CLOGS_${k.toUpperCase()}`).join(' or ')}?`
      : 'expected CLOGS_ and a key path in capitals joined by "_", like CLOGS_FORWARD_LISTEN (see the configuration table in the README)';
  return `environment ${name}: not a config key: ${hint}`;
}

/** Every key path as its variable spells it after CLOGS_, lowercase: `forward_listen`, `sinks_file`, `sinks_file_dir`. */
function envKeys(shape = configSchema.shape as unknown as Record<string, z.ZodType>, prefix = ''): string[] {
  return Object.entries(shape).flatMap(([key, t]) => {
    const inner = objectShape(t);
    return [prefix + key, ...(inner ? envKeys(inner, `${prefix + key}_`) : [])];
  });
}

/** The candidates nearest to `word`, by edit distance, when near enough to be a typo of it. */
function closest(word: string, candidates: string[]): string[] {
  const scored = candidates.map((c) => ({ c, d: editDistance(word, c) }));
  const best = Math.min(...scored.map((s) => s.d));
  if (best > Math.max(2, Math.floor(word.length / 5))) return [];
  return scored.filter((s) => s.d === best).map((s) => s.c);
}

function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    row = next;
  }
  return row[b.length]!;
}

/**
 * CLOGS_FORWARD_LISTEN → forward.listen, CLOGS_SINKS_FILE_DIR → sinks.file.dir,
 * CLOGS_STATE_DIR → state_dir, with the key's schema: the words are matched
 * against the schema's keys, longest key first, because keys themselves
 * contain underscores.
 */
function envKey(rest: string): { path: string[]; type: z.ZodType } | undefined {
  const words = rest.toLowerCase().split('_');
  const path: string[] = [];
  let shape: Record<string, z.ZodType> | undefined = configSchema.shape as unknown as Record<string, z.ZodType>;
  let type: z.ZodType | undefined;
  let i = 0;
  while (i < words.length) {
    if (!shape) return undefined;
    let matched = false;
    for (let j = words.length; j > i; j--) {
      const key = words.slice(i, j).join('_');
      if (key in shape) {
        path.push(key);
        type = shape[key]!;
        shape = objectShape(type);
        i = j;
        matched = true;
        break;
      }
    }
    if (!matched) return undefined;
  }
  return type === undefined ? undefined : { path, type };
}

/** What zod keeps in a schema's `def`, as far as reading the environment needs it. */
interface Def {
  type?: string;
  innerType?: unknown;
  in?: unknown;
  shape?: Record<string, z.ZodType>;
  entries?: Record<string, unknown>;
}

/** The definition under `t`'s optional, default and transform wrappers: what a value given for it meets first. */
function baseDef(t: z.ZodType): Def | undefined {
  let cur: unknown = t;
  for (let depth = 0; depth < 8 && cur; depth++) {
    const def = (cur as { def?: Def }).def;
    if (!def) return undefined;
    if (def.type === 'pipe') cur = def.in;
    else if (def.innerType !== undefined) cur = def.innerType;
    else return def;
  }
  return undefined;
}

function objectShape(t: z.ZodType): Record<string, z.ZodType> | undefined {
  const def = baseDef(t);
  return def?.type === 'object' ? def.shape : undefined;
}

/** A string and nothing else: any string, or one of a list of words. */
function takesText(t: z.ZodType): boolean {
  const def = baseDef(t);
  if (def?.type === 'string') return true;
  return def?.type === 'enum' && Object.values(def.entries ?? {}).every((v) => typeof v === 'string');
}

/**
 * An environment value as its key takes it. A key that takes a string gets
 * the text as written: read as YAML, a secret or a path would lose what
 * follows " #" (a comment), its quotes and trailing spaces, have its
 * backslash escapes processed, or become a number ("123456"), a mapping
 * ("a: b") or an empty string ("!Passw0rd", a tag). Every other key reads it
 * as a YAML scalar or flow collection (`true`, `5`, `[a, b]`,
 * `{cert: a.pem, key: b.pem}`), and so do keys that take a string or
 * something else (sizes, durations, sinks.elasticsearch.url): YAML is what
 * tells `5000` from `5s` and a list of URLs from one, and the strings they
 * take (`64KiB`, `http://host:9200`) are ones YAML leaves as written. An empty
 * variable is read as YAML too, as null, which no key takes: an empty path,
 * name or secret is a mistake, not a value.
 */
function envValue(text: string, type: z.ZodType): unknown {
  if (text !== '' && takesText(type)) return text;
  // `[web, db` or `"7d` read on as far as they go would be a value nobody wrote.
  const read = plainOf(parseDocument(text));
  // A variable's text is one line: its position says nothing the name does not.
  return read instanceof YamlProblem ? new YamlProblem(undefined, read.message.replace(/ at line \d+, column \d+:$/, '')) : read;
}

/** Why a text is not the YAML it was read as: where, and what. */
class YamlProblem {
  constructor(
    readonly line: number | undefined,
    readonly message: string,
  ) {}
}

/**
 * The first error or warning of a parsed document, with the first line of
 * its message. A warning too: an unknown tag (`!ENV ${TOKEN}`) would leave
 * its text as the value, a secret read as the literal `${TOKEN}`.
 */
function yamlProblem(doc: Document.Parsed): YamlProblem | undefined {
  const bad = doc.errors[0] ?? doc.warnings[0];
  return bad === undefined ? undefined : new YamlProblem(bad.linePos?.[0]?.line, bad.message.split('\n')[0]!);
}

/**
 * The document's value, or why it has none. The parser leaves two problems
 * for toJS() to throw: an alias without its anchor (`forward: *nope`), at
 * that alias's line, and aliases that would expand past the library's limit
 * (a "billion laughs" file), which has no one line.
 */
function plainOf(doc: Document.Parsed, lines?: LineCounter): unknown {
  const bad = yamlProblem(doc);
  if (bad !== undefined) return bad;
  try {
    return doc.toJS();
  } catch (err) {
    let line: number | undefined;
    visit(doc, {
      Alias(_key, node) {
        if (node.resolve(doc) !== undefined || !node.range) return undefined;
        line = lines?.linePos(node.range[0]).line;
        return visit.BREAK;
      },
    });
    return new YamlProblem(line, (err as Error).message);
  }
}

/** The value the file, variables and flags gave at `path`, if any. */
function valueAt(obj: unknown, path: readonly (string | number)[]): unknown {
  let cur = obj;
  for (const key of path) {
    if (typeof cur !== 'object' || cur === null) return undefined;
    cur = (cur as Record<string | number, unknown>)[key];
  }
  return cur;
}

/**
 * Sets a variable's or flag's value, making the mappings above it where the
 * file has none. Where the file has something else there (`forward: [a]`),
 * that stays, for validation to name it at its line: set over it, the flag
 * would hide the file's mistake.
 */
function setPath(obj: Plain, path: string[], value: unknown): void {
  let cur = obj;
  for (const key of path.slice(0, -1)) {
    const next = cur[key];
    if (next === undefined || next === null) cur[key] = {};
    else if (typeof next !== 'object' || Array.isArray(next)) return;
    cur = cur[key] as Plain;
  }
  cur[path[path.length - 1]!] = value;
}
