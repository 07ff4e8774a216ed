/**
 * Which store and live endpoint `tail`, `ps` and `search` read: the same
 * config file `clogs collect` reads, with the same quick flags pointing at a
 * store (`--file` → sinks.file.dir, `--es` → sinks.elasticsearch.url,
 * `--http` → http.listen).
 */
import { configFile, loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { ClogsError } from '../errors.js';
import { liveAddress, liveAuthorization } from './live.js';
import type { Store, Warn } from './store.js';
import { createFileStore } from './store-file.js';

export interface StoreFlags {
  config?: string;
  file?: string;
  es?: string;
  from?: 'file' | 'es';
  http?: string;
}

export interface Target {
  config: Config;
  store: Store;
  /** `HOST:PORT` of the collector's live endpoint, when one is configured. */
  live: string | undefined;
  /** The Authorization header for it (`http.auth`). */
  liveAuthorization: string | undefined;
}

export async function loadTarget(flags: StoreFlags, warn: Warn, env: NodeJS.ProcessEnv = process.env): Promise<Target> {
  const file = configFile(flags.config);
  const quick: Record<string, { flag: string; value: unknown }> = {};
  if (flags.file !== undefined) quick['sinks.file.dir'] = { flag: '--file', value: flags.file };
  if (flags.es !== undefined) quick['sinks.elasticsearch.url'] = { flag: '--es', value: flags.es };
  if (flags.http !== undefined) quick['http.listen'] = { flag: '--http', value: flags.http };
  const config = loadConfig({ file, env, flags: quick });

  const from = flags.from ?? defaultStore(flags, config);
  if (from === 'file' && !config.sinks.file.enabled && flags.file === undefined && flags.from === undefined) {
    throw new ClogsError('CLOGS_CONFIG', 'no store to read: sinks.file is disabled and no Elasticsearch is configured; pass --file DIR or --es URL');
  }
  const store = await openStore(config, from, warn);
  // An explicit --http is always tried; the configured endpoint only when enabled.
  const live = flags.http !== undefined || config.http.enabled ? liveAddress(config.http.listen) : undefined;
  return { config, store, live, liveAuthorization: liveAuthorization(config.http.auth) };
}

/** The store the collector's sinks write, read back: Elasticsearch or the files. */
export async function openStore(config: Config, from: 'file' | 'es', warn: Warn): Promise<Store> {
  if (from === 'file') return createFileStore(config.sinks.file.dir, warn);
  const es = config.sinks.elasticsearch;
  if (!es) throw new ClogsError('CLOGS_CONFIG', '--from es: no Elasticsearch is configured: set sinks.elasticsearch.url or pass --es URL');
  // Loaded on demand: the client costs more start-up time than the whole file path.
  const { createEsStore } = await import('./store-es.js');
  return createEsStore(es, warn);
}

/** The store named by a quick flag, else the one the config reads back from. */
function defaultStore(flags: StoreFlags, config: Config): 'file' | 'es' {
  if (flags.es !== undefined) return 'es';
  if (flags.file !== undefined) return 'file';
  return configuredStore(config);
}

/** Elasticsearch when configured (it holds every source and searches best), else the files. */
export function configuredStore(config: Config): 'file' | 'es' {
  return config.sinks.elasticsearch ? 'es' : 'file';
}
