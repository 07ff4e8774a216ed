/**
 * Drops a batch that is written a second time after a crash.
 *
 * An input moves its checkpoint (or acks) only after the sink's write
 * resolved (the Docker input: after the sync that follows its deferred
 * writes), so a kill -9 between the write reaching the file and the
 * checkpoint reaching the disk makes the input send those lines again on
 * restart. Elasticsearch drops such a replay by `_id`; here, on the first
 * write of each source after start, the tail of its newest file is read and
 * events already there (same stream, timestamp, ordinal, piece and message) are
 * dropped until the first event that is not there: a replay comes first, in
 * the order it was written.
 *
 * Bound: at most TAIL_BYTES of each source's file are read, once per source
 * per process, and their identities kept only until that source's replay ends.
 * The batch's own lines are read in place (line-fields.ts); the file's tail
 * is parsed, as it may hold lines of an older release.
 */
import { EncodedBatch, type EncodedSource } from '../../collector/encoded.js';
import type { LogEvent } from '../../collector/event.js';
import { forEachLine, LineFields } from '../../collector/line-fields.js';
import { readContentBackward } from './content.js';
import { listLayoutFiles } from './layout.js';

/**
 * As large as what an input can have had written and not acknowledged at a
 * crash for one container: the Docker input's lines since its last durable
 * point (under 8 MiB for all of them) and the batch being written (at most
 * 8 MiB more, docker/shipper.ts), a forward connection's slices durable beyond the progress stored
 * in forward/progress.ts (they count in its 8 MiB of rendered bytes in flight
 * until that progress is stored, so at most 8 MiB and one slice of 2 MiB).
 * Several forward connections writing the same source at once interleave
 * their lines and can stretch that beyond this window.
 */
const TAIL_BYTES = 16 * 1024 * 1024;

function identity(timestamp: string, ordinal: number, piece: number | undefined, message: string): string {
  return `${timestamp}\0${ordinal}\0${piece ?? ''}\0${message}`;
}

export class ReplayGuard {
  /** source → stream → identities of the events at the end of its file. */
  private readonly tails = new Map<string, Map<string, Set<string>>>();
  private readonly checked = new Set<string>();

  constructor(private readonly dir: string) {}

  /** Those of these sources whose file tail has not been read yet. */
  unchecked(sources: readonly string[]): string[] {
    let out: Set<string> | undefined;
    for (const s of sources) if (!this.checked.has(s)) (out ??= new Set()).add(s);
    return out ? [...out] : [];
  }

  /** Whether writes of this source may still be a replay of its file's tail. */
  pending(source: string): boolean {
    return this.tails.has(source);
  }

  async load(source: string): Promise<void> {
    if (this.checked.has(source)) return;
    this.checked.add(source);
    const newest = (await listLayoutFiles(`${this.dir}/${source}`)).at(-1);
    if (!newest) return;
    // The newest file is plain while the sink runs; read through content.ts all the same, should it be a `.gz`.
    const chunks: Buffer[] = [];
    let bytes = 0;
    for await (const chunk of readContentBackward(newest.path, Infinity)) {
      chunks.unshift(chunk);
      bytes += chunk.length;
      if (bytes >= TAIL_BYTES) break;
    }
    const tail = Buffer.concat(chunks);
    const start = Math.max(0, tail.length - TAIL_BYTES);
    let text = tail.toString('utf8', start);
    // Reading from the middle of the file: the first line is likely cut.
    if (start > 0) text = text.slice(text.indexOf('\n') + 1);
    const streams = new Map<string, Set<string>>();
    for (const line of text.split('\n')) {
      if (line === '') continue;
      let e: LogEvent;
      try {
        e = JSON.parse(line) as LogEvent;
      } catch {
        continue;
      }
      const stream = e.stream ?? '';
      let set = streams.get(stream);
      if (!set) streams.set(stream, (set = new Set()));
      set.add(identity(e['@timestamp'], e.clogs.ordinal, e.clogs.piece, e.message));
    }
    if (streams.size > 0) this.tails.set(source, streams);
  }

  /** The batch minus the events already at the end of their source's file; `dirOf` names a source's directory. */
  drop(batch: EncodedBatch, dirOf: (s: EncodedSource) => string): { kept: EncodedBatch; dropped: number } {
    if (this.tails.size === 0) return { kept: batch, dropped: 0 };
    const kept = new EncodedBatch();
    const fields = new LineFields();
    let dropped = 0;
    for (const s of batch.sources()) {
      const source = dirOf(s);
      const out = kept.source(s.container, s.name);
      forEachLine(s.chunks(), fields, (f) => {
        const streams = this.tails.get(source);
        const set = streams?.get(f.stream ?? '');
        if (set?.has(identity(f.timestamp(), f.ordinal, f.piece < 0 ? undefined : f.piece, f.message()))) {
          dropped++;
          return;
        }
        // The first new line ends the source's replay on every stream: inputs
        // resend from their oldest unacked point, so the replay of all streams
        // comes before anything new.
        if (streams) this.tails.delete(source);
        out.addLine(f.buf.subarray(f.start, f.end + 1));
      });
    }
    return { kept, dropped };
  }
}
