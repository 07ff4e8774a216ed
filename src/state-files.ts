/**
 * State files of the inputs and sinks (forward-partials, forward-progress,
 * the Docker checkpoints and backfill memory, the Elasticsearch queue's
 * cursor): replacing one whole, removing one once what it holds is written,
 * and making a directory's new entries durable.
 */
import { open, rename, unlink } from 'node:fs/promises';
import { isMissing } from './errors.js';

/**
 * A file that is not there counts as removed: the write that was to create
 * it may have failed, which was logged then.
 */
export async function removeIfPresent(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if (!isMissing(err)) throw err;
  }
}

/** fsyncs a directory, so the files created or renamed in it survive a power loss. */
export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Replaces `path` with `text` whole: written aside (mode 0600), then renamed
 * over it, so a reader finds the old text or the new, never part of one.
 * `durable`: the new text is on disk before the rename (fdatasync), so a
 * power cut leaves the old file or the new one whole. The rename itself is
 * durable only once the directory is synced (syncDir()): until then a power
 * cut may bring back the old file, which the callers take as work to do again.
 */
export async function replaceFile(path: string, text: string, durable: boolean): Promise<void> {
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(text);
    if (durable) await fh.datasync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
}
