import pino, { type Logger } from 'pino';

/**
 * The collector's own logger. Components take a child with their name bound
 * (`logger.child({ component: 'forward' })`) and log fixed `msg` strings with
 * the variable parts as fields. Credentials are redacted wherever they appear.
 */
export function createLogger(level: string = process.env.CLOGS_LOG_LEVEL ?? 'info'): Logger {
  return pino({
    level,
    base: { pid: process.pid },
    redact: {
      paths: ['*.password', '*.apiKey', '*.api_key', '*.shared_key', '*.sharedKey', '*.authorization', '*.auth'],
      censor: '[redacted]',
    },
  });
}

export type { Logger };
