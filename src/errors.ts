/**
 * One error class with fixed codes, so callers and users match on `code`
 * rather than on message text.
 */
export type ClogsErrorCode =
  | 'CLOGS_CONFIG'
  | 'CLOGS_LISTEN'
  | 'CLOGS_FRAME_TOO_LARGE'
  | 'CLOGS_FRAME_MALFORMED'
  | 'CLOGS_TOO_MANY_KEYS'
  | 'CLOGS_AUTH'
  | 'CLOGS_QUEUE_CLOSED'
  | 'CLOGS_SINK'
  | 'CLOGS_DOCKER'
  /** What a reader asked for cannot be read as asked: a bad flag or parameter, a name that matches nothing. */
  | 'CLOGS_TAIL'
  /** The store a reader reads did not answer: Elasticsearch unreachable, failing, or refusing the credentials. */
  | 'CLOGS_STORE';

export class ClogsError extends Error {
  override name = 'ClogsError' as const;
  constructor(
    readonly code: ClogsErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * Whether a file system call failed because its file or folder is not there,
 * which callers take as "nothing yet" or "already gone".
 */
export function isMissing(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}
