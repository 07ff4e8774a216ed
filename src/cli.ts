/**
 * The `clogs` command, loaded by clogs.cts: parses flags and hands over.
 * `collect` runs the collector; `tail`, `ps` and `search` read what it
 * collected.
 */
import { Command } from 'commander';
import { configFile, loadConfig } from './config/load.js';
import { LEVEL_NAMES } from './collector/levels.js';
import { LOG_FORMATS } from './config/schema.js';
import { createLogger } from './log.js';
import { ClogsError } from './errors.js';
import { registerTailCommands } from './tail/index.js';

interface CollectFlags {
  config?: string;
  forward?: string;
  file?: string;
  state?: string;
  docker: boolean;
  es?: string;
  http?: string;
  logLevel?: string;
  logFormat?: string;
}

function collectFlags(flags: CollectFlags): Record<string, { flag: string; value: unknown }> {
  const out: Record<string, { flag: string; value: unknown }> = {};
  if (flags.forward !== undefined) out['forward.listen'] = { flag: '--forward', value: flags.forward };
  if (flags.file !== undefined) out['sinks.file.dir'] = { flag: '--file', value: flags.file };
  if (flags.state !== undefined) out['state_dir'] = { flag: '--state', value: flags.state };
  if (!flags.docker) out['docker.enabled'] = { flag: '--no-docker', value: false };
  if (flags.es !== undefined) out['sinks.elasticsearch.url'] = { flag: '--es', value: flags.es };
  if (flags.http !== undefined) out['http.listen'] = { flag: '--http', value: flags.http };
  if (flags.logLevel !== undefined) out['log_level'] = { flag: '--log-level', value: flags.logLevel };
  if (flags.logFormat !== undefined) out['log_format'] = { flag: '--log-format', value: flags.logFormat };
  return out;
}

async function collect(flags: CollectFlags): Promise<void> {
  const file = configFile(flags.config);
  const load = () => {
    const config = loadConfig({ file, env: process.env, flags: collectFlags(flags) });
    // Nothing would keep the process up: it would say ready and exit 0 at once.
    if (!config.forward.enabled && !config.docker.enabled) {
      throw new ClogsError('CLOGS_CONFIG', `nothing to collect: forward.enabled and docker.enabled are both false (${file}, CLOGS_ variables); enable one`);
    }
    return config;
  };
  const config = load();
  const log = createLogger(config.log_level, config.log_format);
  // The image passes both flags as its defaults, so CLOGS_FORWARD_ENABLED=false
  // must win over them; a flag that names an address for nothing is said, not ignored.
  if (flags.forward !== undefined && !config.forward.enabled) log.warn({ flag: '--forward', address: flags.forward }, 'forward.enabled is false: the forward input does not listen');
  if (flags.http !== undefined && !config.http.enabled) log.warn({ flag: '--http', address: flags.http }, 'http.enabled is false: the HTTP endpoint does not listen');
  // Loaded here, not at the top: tail, ps and search need none of the collector.
  const { Collector } = await import('./collect.js');
  const collector = new Collector(log);
  // A start that fails stops what it started and rejects: collect() then
  // rejects, and the process exits 1 (2 for a config error) with its message.
  const started = collector.start(config);

  let stopping = false;
  /** Stops the collector (after a start under way) and exits with `code`, or with 1 when stopping fails. */
  const stop = (reason: string, code: 0 | 1) => {
    if (stopping) {
      log.warn({ reason }, 'second signal: exiting without waiting');
      process.exit(1);
    }
    stopping = true;
    log.info({ reason }, 'stopping');
    collector.stop().then(
      async () => {
        // stop() waited for the start; one that failed exits with its own message and code.
        if (!(await started.then(() => true, () => false))) return;
        log.info('stopped');
        process.exit(code);
      },
      (err: unknown) => {
        log.error({ err }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM', 0));
  process.on('SIGINT', () => stop('SIGINT', 0));
  process.on('SIGHUP', () => {
    let next;
    try {
      next = load();
    } catch (err) {
      log.error({ file, reason: err instanceof Error ? err.message : String(err) }, 'config reload rejected: keeping the running config');
      return;
    }
    collector.reload(next).catch((err: unknown) => {
      if (collector.isRunning) {
        log.error({ err }, 'config reload failed: what could not start runs as before the reload');
        return;
      }
      log.fatal({ err }, 'config reload failed, and the config before it did not start again either');
      stop('reload failed', 1);
    });
  });
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection'));

  await started;
}

const program = new Command()
  .name('clogs')
  .description('Collects container logs (Fluentd forward protocol, Docker Engine API) into Elasticsearch and files.')
  .showHelpAfterError();

program
  .command('collect')
  .description('run the collector')
  .option('-c, --config <file>', 'YAML config file (default: ./config/clogs.yaml, else the embedded default)')
  .option('--forward <host:port>', 'forward-protocol listen address (forward.listen)')
  .option('--file <dir>', 'file sink directory (sinks.file.dir)')
  .option('--state <dir>', 'where clogs keeps queues and checkpoints (state_dir)')
  .option('--no-docker', 'do not follow containers through the Docker Engine API')
  .option('--es <url>', 'ship to Elasticsearch at this URL (sinks.elasticsearch.url)')
  .option('--http <host:port>', 'the web page, live-tail, health and metrics endpoint (http.listen)')
  // Checked by the config schema, not by commander: a bad value names its flag and exits 2, as any config mistake does.
  .option('--log-level <level>', `the collector's own log level: ${LEVEL_NAMES.join(', ')} (log_level)`)
  .option('--log-format <format>', `the collector's own log: ${LOG_FORMATS.join(', ')}; pretty on a terminal, else JSON lines (log_format)`)
  .action(collect);

registerTailCommands(program);

program.parseAsync().catch((err: unknown) => {
  const message = err instanceof ClogsError || err instanceof Error ? err.message : String(err);
  process.stderr.write(`clogs: ${message}\n`);
  process.exit(err instanceof ClogsError && err.code === 'CLOGS_CONFIG' ? 2 : 1);
});
