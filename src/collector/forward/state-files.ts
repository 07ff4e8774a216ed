/**
 * Removing the forward input's state files (forward-partials,
 * forward-progress) once what they hold is written. A file that is not there
 * counts as removed: the write that was to create it may have failed, which
 * was logged then.
 */
import { unlink } from 'node:fs/promises';
import { isMissing } from '../../errors.js';

export async function removeIfPresent(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if (!isMissing(err)) throw err;
  }
}
