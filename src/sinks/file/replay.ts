/**
 * Drops a batch that is written a second time after a crash.
 *
 * An input moves its checkpoint (or acks) only after the sink's write
 * resolved (the Docker input: after the sync that follows its deferred
 * writes), so a kill -9 between the write reaching the file and the
 * checkpoint reaching the disk makes the input send that batch again on
 * restart. Elasticsearch drops such a replay by `_id`; here, from the first
 * write of each source after start until the source sends a line that is
 * not at the end of its files, the batch's lines of that source are looked
 * for in the tail of its files (same stream, timestamp, ordinal, piece and
 * message), and dropped until the first one that is not there: a replay
 * comes first, in the order it was written.
 *
 * The tail runs back from the newest file into the files before it: a
 * replay can begin in an earlier file when the sink rotated inside the
 * batch (rotate_size) or after it (a new day), before the crash. Such an
 * earlier file may be compressed by then (compression starts at each
 * rotation and again at start, maintenance.ts), and is read through its
 * `.gz`: one pass over the whole file, measured at 0.26 s of CPU (0.66 s
 * in a fresh process) for a 100 MiB file of 320-byte lines, 6.7 MiB gzipped.
 * The earlier files are read only while the batch's first line has not been
 * found (once it is, the rest of a replay comes after it), so a batch that
 * is no replay, the first of most sources after a restart, reads them up to
 * the bound below.
 *
 * The tail is searched for the batch, not the batch for the tail: what is
 * held is the identities of the batch's own lines (bounded by the batch) and
 * one source's tail at a time, read in place (line-fields.ts) and decoded
 * only where a timestamp matches. Measured on a 20 MiB file of 470-byte
 * lines: keeping every tail line's identity, parsed with JSON.parse, took
 * 0.5-0.8 s of the main thread and 11-50 MB of heap per source, held until
 * the source's replay ended; a restart of a host with a hundred busy
 * containers stalled for a minute. A tail line of another shape (an older
 * release) is parsed.
 *
 * Bound: at most TAIL_BYTES of each source's files, newest first, are read
 * for each batch written while the source may still be replaying.
 */
import { EncodedBatch, type EncodedSource } from '../../collector/encoded.js';
import type { LogEvent } from '../../collector/event.js';
import { LineFields, timestampOf } from '../../collector/line-fields.js';
import { readContentTail } from './content.js';
import { listLayoutFiles, type LayoutFile } from './layout.js';

/**
 * As large as what an input can have had written and not acknowledged at a
 * crash for one container: the Docker input's lines since its last durable
 * point (under 8 MiB for all of them) and the batch being written (at most
 * 8 MiB more, docker/shipper.ts), a forward connection's slices durable beyond the progress stored
 * in forward/progress.ts (they count in its 4 MiB of rendered bytes in flight
 * until that progress is stored, so at most 4 MiB and one slice of 1 MiB).
 * Several forward connections writing the same source at once interleave
 * their lines and can stretch that beyond this window.
 */
const TAIL_BYTES = 16 * 1024 * 1024;

function identity(stream: string, timestamp: string, ordinal: number, piece: number | undefined, message: string): string {
  return `${stream}\0${timestamp}\0${ordinal}\0${piece ?? ''}\0${message}`;
}

/** The identity of the line `f` was read from, whose `@timestamp` is `timestamp`. */
function lineIdentity(f: LineFields, timestamp: string): string {
  return identity(f.stream ?? '', timestamp, f.ordinal, f.piece < 0 ? undefined : f.piece, f.message());
}

/** The identities of one source's lines in a batch, by timestamp first: most tail lines are rejected on it. */
class Wanted {
  readonly timestamps = new Set<string>();
  readonly lines = new Map<string, number>();
  readonly found = new Set<number>();

  constructor(s: EncodedSource) {
    let i = 0;
    s.forEachLine(new LineFields(), (f) => {
      const timestamp = f.timestamp();
      this.timestamps.add(timestamp);
      this.lines.set(lineIdentity(f, timestamp), i++);
    });
  }

  /** Notes a tail line as found if the batch has it. */
  see(id: string): void {
    const i = this.lines.get(id);
    if (i !== undefined) this.found.add(i);
  }
}

export class ReplayGuard {
  /** Sources that sent a new line since start, or have no file: no replay to look for any more. */
  private readonly settled = new Set<string>();

  constructor(
    private readonly dir: string,
    private readonly onTailError: (source: string, err: unknown) => void,
  ) {}

  /** Whether lines of any of these sources may still be a replay. */
  mayReplay(sources: readonly string[]): boolean {
    return sources.some((s) => !this.settled.has(s));
  }

  /**
   * The batch minus the events already at the end of their source's files;
   * `dirOf` names a source's directory. `replayed`: the sources some lines
   * were dropped of.
   */
  async drop(batch: EncodedBatch, dirOf: (s: EncodedSource) => string): Promise<{ kept: EncodedBatch; dropped: number; replayed: string[] }> {
    const kept = new EncodedBatch();
    const fields = new LineFields();
    const replayed: string[] = [];
    let dropped = 0;
    for (const s of batch.sources()) {
      const source = dirOf(s);
      if (this.settled.has(source) || s.count === 0) {
        kept.appendSource(s);
        continue;
      }
      let wanted: Wanted | undefined;
      try {
        const files = await listLayoutFiles(`${this.dir}/${source}`);
        // A source with no file yet has nothing to replay into: its identities are not worth building.
        if (files.length > 0) {
          wanted = new Wanted(s);
          await this.searchTail(files, wanted);
        }
      } catch (err) {
        this.onTailError(source, err);
        wanted = undefined;
      }
      if (!wanted) {
        this.settled.add(source);
        kept.appendSource(s);
        continue;
      }
      const out = kept.source(s.container, s.name);
      const before = dropped;
      let i = 0;
      s.forEachLine(fields, (f) => {
        if (!this.settled.has(source) && wanted.found.has(i++)) {
          dropped++;
          return;
        }
        // The first new line ends the source's replay on every stream: inputs
        // resend from their oldest unacked point, so the replay of all streams
        // comes before anything new.
        this.settled.add(source);
        out.addLine(f);
      });
      if (dropped > before) replayed.push(source);
    }
    return { kept, dropped, replayed };
  }

  /** Marks in `wanted` the lines that are in the last TAIL_BYTES of the source's `files` (oldest first), read newest first. */
  private async searchTail(files: readonly LayoutFile[], wanted: Wanted): Promise<void> {
    const fields = new LineFields();
    let budget = TAIL_BYTES;
    for (let k = files.length - 1; k >= 0 && budget > 0 && !wanted.found.has(0); k--) {
      // Through content.ts: the newest file is plain while the sink runs, an earlier one may be (or become) a `.gz`.
      const { tail, whole } = await readContentTail(files[k]!.path, budget);
      budget -= tail.length;
      let p = 0;
      if (!whole) {
        // Reading from the middle of the file: the first line is likely cut.
        const nl = tail.indexOf(0x0a);
        if (nl < 0) return;
        p = nl + 1;
      }
      while (p < tail.length) {
        let nl = tail.indexOf(0x0a, p);
        if (nl < 0) nl = tail.length;
        if (nl > p) this.see(tail, p, nl, fields, wanted);
        p = nl + 1;
      }
    }
  }

  private see(tail: Buffer, start: number, end: number, f: LineFields, wanted: Wanted): void {
    const timestamp = timestampOf(tail, start, end);
    if (timestamp !== undefined) {
      if (!wanted.timestamps.has(timestamp)) return;
      try {
        f.read(tail, start, end);
        wanted.see(lineIdentity(f, timestamp));
        return;
      } catch {
        // Not as this release renders: parsed below.
      }
    }
    let e: LogEvent;
    try {
      e = JSON.parse(tail.toString('utf8', start, end)) as LogEvent;
    } catch {
      return;
    }
    if (wanted.timestamps.has(e['@timestamp'])) wanted.see(identity(e.stream ?? '', e['@timestamp'], e.clogs.ordinal, e.clogs.piece, e.message));
  }
}
