/**
 * The forward input's ordinal counts across a stop, in
 * `<state>/forward-ordinals.json`.
 *
 * A line's ordinal is part of its identity (the file sink's replay guard,
 * the Elasticsearch `_id`): it tells apart identical lines with the same
 * timestamp, which Docker's driver sends in whole seconds. An input started
 * again (a restart, a reload that restarts it) that counted from 0 gave the
 * next line carrying its source's last timestamp the identity of one already
 * stored: the file sink dropped it as a replay and Elasticsearch answered
 * 409, so an acked line was lost. The counts are saved at every stop and
 * taken back at start. After a crash the file is the last stop's: its counts
 * concern only lines that carry a source's last time before that stop, and
 * the others count from 0 as before (a request resent after the crash gets
 * the ordinals it had, if it was the first of its second).
 */
import { readFile } from 'node:fs/promises';
import { isMissing } from '../../errors.js';
import type { Logger } from '../../log.js';
import { replaceFile } from '../../state-files.js';
import type { OrdinalCount } from '../normalize.js';

export async function saveOrdinals(path: string, counts: readonly OrdinalCount[]): Promise<void> {
  await replaceFile(path, JSON.stringify({ ordinals: counts }), true);
}

/** The counts a clean stop saved; none when there are none, or they cannot be read (logged). */
export async function loadOrdinals(path: string, log: Logger): Promise<OrdinalCount[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (!isMissing(err)) log.warn({ err, path }, 'could not read the ordinals of the last stop; counting from 0');
    return [];
  }
  try {
    const { ordinals } = JSON.parse(text) as { ordinals: OrdinalCount[] };
    return ordinals.filter((o) => typeof o.source === 'string' && typeof o.timestamp === 'string' && Number.isInteger(o.count));
  } catch (err) {
    log.warn({ err, path }, 'the ordinals of the last stop are damaged; counting from 0');
    return [];
  }
}
