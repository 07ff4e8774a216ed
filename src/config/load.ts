/**
 * YAML file → environment (CLOGS_*) → command-line flags → validated Config.
 * Later sources win. Every error names where the value came from (file and
 * line, variable or flag), the key, and what was expected.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { LineCounter, parseDocument } from 'yaml';
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
    if (doc.errors.length > 0) {
      const e = doc.errors[0]!;
      throw new ClogsError('CLOGS_CONFIG', `${opts.file}:${e.linePos?.[0]?.line ?? '?'}: not valid YAML: ${e.message.split('\n')[0]}`);
    }
    const value: unknown = doc.toJS() ?? {};
    if (typeof value !== 'object' || Array.isArray(value)) {
      throw new ClogsError('CLOGS_CONFIG', `${opts.file}: expected a mapping of keys at the top level`);
    }
    raw = value as Plain;
    fileOrigin = { file: opts.file, lines, doc };
  }

  for (const [name, text] of Object.entries(opts.env ?? {})) {
    if (!name.startsWith('CLOGS_') || text === undefined) continue;
    const path = envPath(name.slice('CLOGS_'.length));
    if (!path) continue;
    setPath(raw, path, parseScalar(text));
    origins.set(path.join('.'), { kind: 'env', name });
  }

  for (const [key, { flag, value }] of Object.entries(opts.flags ?? {})) {
    setPath(raw, key.split('.'), value);
    origins.set(key, { kind: 'flag', name: flag });
  }

  const result = configSchema.safeParse(raw);
  if (result.success) return result.data;
  throw new ClogsError('CLOGS_CONFIG', result.error.issues.map((i) => describeIssue(i, origins, fileOrigin)).join('\n'));
}

function describeIssue(issue: z.core.$ZodIssue, origins: Map<string, Origin>, file: FileOrigin | undefined): string {
  const key = issue.path.join('.') || '(top level)';
  let where = 'config';
  for (let n = issue.path.length; n >= 0; n--) {
    const o = origins.get(issue.path.slice(0, n).join('.'));
    if (o) {
      where = o.kind === 'env' ? `environment ${o.name}` : `flag ${o.name}`;
      break;
    }
  }
  if (where === 'config' && file) {
    const node = file.doc.getIn(issue.path as (string | number)[], true) as { range?: [number, number, number] } | undefined;
    const line = node?.range ? file.lines.linePos(node.range[0]).line : undefined;
    where = line ? `${file.file}:${line}` : file.file;
  }
  let message = issue.message;
  if (issue.code === 'unrecognized_keys') {
    message = `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`;
  } else if (issue.code === 'invalid_type') {
    message = `expected ${issue.expected}`;
  }
  return `${where}: ${key}: ${message}`;
}

/**
 * CLOGS_FORWARD_LISTEN → forward.listen, CLOGS_SINKS_FILE_DIR → sinks.file.dir,
 * CLOGS_STATE_DIR → state_dir: the words are matched against the schema's keys,
 * longest key first, because keys themselves contain underscores.
 */
function envPath(rest: string): string[] | undefined {
  const words = rest.toLowerCase().split('_');
  const path: string[] = [];
  let shape: Record<string, z.ZodType> | undefined = configSchema.shape as unknown as Record<string, z.ZodType>;
  let i = 0;
  while (i < words.length) {
    if (!shape) return undefined;
    let matched = false;
    for (let j = words.length; j > i; j--) {
      const key = words.slice(i, j).join('_');
      if (key in shape) {
        path.push(key);
        shape = objectShape(shape[key]!);
        i = j;
        matched = true;
        break;
      }
    }
    if (!matched) return undefined;
  }
  return path;
}

function objectShape(t: z.ZodType): Record<string, z.ZodType> | undefined {
  let cur: unknown = t;
  for (let depth = 0; depth < 8 && cur; depth++) {
    const def = (cur as { def?: { type?: string; innerType?: unknown; shape?: Record<string, z.ZodType> } }).def;
    if (!def) return undefined;
    if (def.type === 'object') return def.shape;
    cur = def.innerType;
  }
  return undefined;
}

/** Environment values are YAML scalars or flow collections: `true`, `5`, `[a, b]`. */
function parseScalar(text: string): unknown {
  try {
    return parseDocument(text).toJS();
  } catch {
    return text;
  }
}

function setPath(obj: Plain, path: string[], value: unknown): void {
  let cur = obj;
  for (const key of path.slice(0, -1)) {
    const next = cur[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) cur[key] = {};
    cur = cur[key] as Plain;
  }
  cur[path[path.length - 1]!] = value;
}
