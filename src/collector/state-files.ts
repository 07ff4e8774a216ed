/**
 * The inputs' state files (forward-partials, forward-progress, the Docker
 * checkpoints): removing one once what it holds is written, and making a
 * directory's new entries durable.
 */
import { open, unlink } from 'node:fs/promises';
import { isMissing } from '../errors.js';

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
