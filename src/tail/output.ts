/**
 * Where tail, ps and search print, and how they stop.
 *
 * A closed pipe (`clogs tail x | head`) and Ctrl-C are the normal ends of a
 * tail, not errors: the process exits quietly (0 for the pipe, 130 for
 * SIGINT, as a shell reports it) instead of printing a stack trace.
 */
import type { Writable } from 'node:stream';

export interface Output {
  /** Writes text; resolves at once unless the stream's buffer is full. */
  write(text: string): Promise<void> | undefined;
  /** Resolves when the stream's buffer has room again. */
  drained(): Promise<void>;
  /** Whether the buffer is full now. */
  readonly full: boolean;
}

export function createOutput(stream: Writable & { writableNeedDrain?: boolean } = process.stdout): Output {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE' || err.code === 'ERR_STREAM_DESTROYED') process.exit(0);
    process.stderr.write(`clogs: cannot write the output: ${err.message}\n`);
    process.exit(1);
  });
  const drained = (): Promise<void> =>
    stream.writableNeedDrain ? new Promise<void>((resolve) => stream.once('drain', () => resolve())) : Promise.resolve();
  return {
    write: (text) => (stream.write(text) ? undefined : drained()),
    drained,
    get full() {
      return stream.writableNeedDrain === true;
    },
  };
}

/** Ctrl-C and SIGTERM end a tail the way the shell expects, without a trace. */
export function exitQuietlyOnSignals(): void {
  process.once('SIGINT', () => process.exit(130));
  process.once('SIGTERM', () => process.exit(143));
}

/** Warnings go to stderr, so they never mix with piped output. */
export function warnToStderr(message: string): void {
  process.stderr.write(`clogs: warning: ${message}\n`);
}
