/**
 * Rotation by size: a source's lines are cut on line boundaries so that no
 * file grows past rotate_size, and the lines bound for one file go out in one
 * writev. A single line longer than rotate_size gets a file of its own.
 */
import type { OpenFile } from './files.js';

const NEWLINE = 0x0a;

export interface RotationSteps {
  /** Appends slices of whole lines to `file`. */
  write(file: OpenFile, bufs: Buffer[]): Promise<void>;
  /** The file after `file`, once `file` is full. */
  rotate(file: OpenFile): Promise<OpenFile>;
}

/** Appends `chunks` (whole lines) to `first` and, past `limit` bytes (0: no limit), to the files rotated after it. */
export async function appendRotating(chunks: readonly Buffer[], first: OpenFile, limit: number, steps: RotationSteps): Promise<void> {
  let file = first;
  // Slices of whole lines bound for `file`, written together by one writev.
  let batch: Buffer[] = [];
  let batchBytes = 0;
  const rotate = async (): Promise<void> => {
    if (batch.length > 0) await steps.write(file, batch);
    batch = [];
    batchBytes = 0;
    file = await steps.rotate(file);
  };
  for (const chunk of chunks) {
    let off = 0;
    while (off < chunk.length) {
      let end = chunk.length;
      if (limit > 0) {
        const used = file.size + batchBytes;
        if (used >= limit) {
          await rotate();
          continue;
        }
        if (used + (end - off) > limit) {
          const cut = chunk.lastIndexOf(NEWLINE, off + (limit - used) - 1);
          if (cut >= off) end = cut + 1;
          else if (used > 0) {
            await rotate();
            continue;
          } else end = chunk.indexOf(NEWLINE, off) + 1;
        }
      }
      batch.push(chunk.subarray(off, end));
      batchBytes += end - off;
      off = end;
    }
  }
  if (batch.length > 0) await steps.write(file, batch);
}
