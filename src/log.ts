import { createRequire } from 'node:module';
import pino, { type Logger } from 'pino';

// Loaded only for a terminal: it and its dependencies hold about 10 MB of a
// collector's resident memory, which a collector writing JSON never uses.
const loadPretty = (): typeof import('pino-pretty') => createRequire(import.meta.url)('pino-pretty') as typeof import('pino-pretty');

/**
 * How the collector's own log is written: `json` lines for machines and log
 * shippers, `pretty` coloured lines for a person, `auto` picks pretty only
 * when stdout is a terminal, so a pipe or a container log keeps JSON.
 */
export type LogFormat = 'auto' | 'pretty' | 'json';

/**
 * The collector's own logger. Components take a child with their name bound
 * (`logger.child({ component: 'forward' })`) and log fixed `msg` strings with
 * the variable parts as fields. Credentials are redacted wherever they appear.
 */
export function createLogger(level: string = process.env.CLOGS_LOG_LEVEL ?? 'info', format: LogFormat = 'json'): Logger {
  const options = {
    level,
    base: { pid: process.pid },
    redact: {
      paths: ['*.password', '*.apiKey', '*.api_key', '*.shared_key', '*.sharedKey', '*.authorization', '*.auth'],
      censor: '[redacted]',
    },
  };
  const pretty = format === 'pretty' || (format === 'auto' && process.stdout.isTTY === true);
  // Synchronous, in process, not a transport thread: the collector logs
  // little, and a line must be out before a crash or process.exit.
  const stdout = standardOutput();
  if (!pretty) return pino(options, stdout);
  return pino(options, loadPretty().PinoPretty({
    destination: stdout,
    colorize: process.stdout.isTTY === true && !process.env.NO_COLOR,
    sync: true,
    singleLine: true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname,component',
    messageFormat: '{if component}{component}: {end}{msg}',
  }));
}

/**
 * Standard output for the log, written synchronously, which stops writing
 * once a write fails. pino's asynchronous destination (sonic-boom) flushes at
 * exit and, on any error but a broken pipe (EIO from a terminal that was
 * closed), retries that write every 100 ms forever: a collector whose
 * terminal went away never stopped, holding its ports and its queue's lock.
 * Written synchronously, a failed write is known at once and switches the log off.
 */
function standardOutput(): pino.DestinationStream {
  const stream = pino.destination({ dest: 1, sync: true });
  stream.on('error', () => {
    const off = (): void => undefined;
    stream.write = () => true;
    Object.assign(stream, { flushSync: off, flush: off, end: off });
  });
  return stream;
}

export type { Logger };
