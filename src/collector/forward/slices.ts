/**
 * A request rendered slice by slice: at most SLICE_ENTRIES records or about
 * SLICE_BYTES of rendered lines each, each slice into the connection's next
 * write as it comes. The request is acked after its last slice is durable.
 *
 * A connection renders its next slice only while it holds less than
 * MAX_IN_FLIGHT_BYTES of rendered lines in flight, and only while all
 * connections together hold less than the input's RenderBudget (see
 * render-budget.ts); a slice whose containers are being looked up waits for
 * them (records.ts). A resend of a request that was partly written before a
 * crash renders its written records again only to drop them (progress.ts),
 * so split lines, ordinals and the records after them come out as the first
 * time.
 *
 * Records the fast path (packed-lines.ts) leaves go through records.ts and
 * the Normalizer; a request with a chunk notes the lines the Normalizer
 * holds past its ack, to be stored with it (partials.ts).
 */
import { EncodedBatch } from '../encoded.js';
import type { LogEvent } from '../event.js';
import type { LineWatcher, Normalizer, RawLine, ResendCounts } from '../normalize.js';
import type { ForwardEntry } from './messages.js';
import { segmentKey, type FirstCopy, type OrdinalRecords } from './ordinal-journal.js';
import type { PackedLineEncoder } from './packed-lines.js';
import { pieceOf, traceId } from './partials.js';
import type { RecordMapper } from './records.js';
import { MAX_IN_FLIGHT_BYTES, SLICE_BYTES, SLICE_ENTRIES, type RenderBudget } from './render-budget.js';
import type { Job, Progress, WriteQueue } from './writes.js';

/**
 * A stream of `[time, record]` entries (PackedForward, Forward, Message) and
 * the tag its records have; or, with no tag, Message-mode requests back to
 * back as packed-lines.ts checkMessages() took them, each with its own tag.
 */
export interface TaggedStream {
  tag: string | undefined;
  entries: Buffer;
}

export interface SliceContext {
  normalizer: Normalizer;
  mapper: RecordMapper;
  /**
   * One for all connections: its read-ahead (up to SLICE_ENTRIES records) is
   * kept once, not per connection; a connection's slice that finds another's
   * reading there reads again.
   */
  packedLines: PackedLineEncoder;
  /** Rendered bytes in flight, all connections together. */
  budget: RenderBudget;
  /** What the first copy of a resent request counted from. */
  ordinals: OrdinalRecords;
}

interface Rendering {
  job: Job;
  tag: string | undefined;
  /** The stream being rendered, with where its next slice starts. */
  entries: Buffer;
  pos: number;
  /** Records rendered so far; the first `skip` were written before a crash, and are rendered only to be dropped. */
  records: number;
  skip: number;
  /** Whether `entries` stays valid after the Framer's next push (copied when it would not). */
  owned: boolean;
  general: (entry: ForwardEntry, tag: string) => LogEvent[];
  /** The request's view of the lines the Normalizer holds. */
  watch: LineWatcher;
  /**
   * A resend of a request whose earlier copies wrote its first `records`
   * records: those count, segment by segment, with counters of their own,
   * from where the copy that first wrote them found its counters
   * (ordinal-journal.ts), so they get the ordinals they had.
   */
  earlier: FirstCopy | undefined;
  /** Each segment's counters, by its first record, as the resend reaches it. */
  resendCounts: Map<number, ResendCounts>;
}

export class SliceRenderer {
  /** The request being rendered, while it has slices left. */
  private current: Rendering | undefined;
  /** Whether this connection waits in the budget's line. */
  private waitingBudget = false;
  /** The next slice waits for lookups of its containers. */
  private awaiting = false;

  /** `wake`: called when a slice that had to wait may be rendered now. */
  constructor(
    private readonly ctx: SliceContext,
    private readonly writes: WriteQueue,
    private readonly wake: () => void,
  ) {}

  /** Whether a request has slices left to render. */
  get rendering(): boolean {
    return this.current !== undefined;
  }

  get idle(): boolean {
    return this.current === undefined && !this.awaiting;
  }

  /**
   * Reads every entry of the stream: a malformed request throws here,
   * before the Normalizer saw any of it.
   */
  check(stream: TaggedStream): void {
    this.ctx.packedLines.check(stream.entries, SLICE_ENTRIES);
  }

  /**
   * Message-mode requests read together (`run`: requests back to back, the
   * last maybe cut short; at most SLICE_ENTRIES are taken): the stream of
   * those of them that are rendered as one request (packed-lines.ts
   * checkMessages()), empty when the first is to be read on its own; throws
   * when the first is malformed.
   */
  checkMessages(run: Buffer): TaggedStream {
    return { tag: undefined, entries: this.ctx.packedLines.checkMessages(run, SLICE_ENTRIES) };
  }

  /**
   * Renders `job`'s stream from the next slice on; `skip`: its records
   * written before a crash. `owned`: the stream is a buffer of its own,
   * not a view of the bytes read.
   */
  start(job: Job, stream: TaggedStream, skip: number, owned: boolean): void {
    const watch = new JobWatcher(job);
    const earlier = job.key === undefined ? undefined : this.ctx.ordinals.countsBefore(job.key);
    this.current = {
      // As they were when this copy began: what it writes itself is no earlier copy's.
      earlier: earlier === undefined ? undefined : { segments: [...earlier.segments], records: earlier.records },
      resendCounts: new Map(),
      job,
      tag: stream.tag,
      entries: stream.entries,
      pos: 0,
      records: 0,
      skip,
      owned,
      general: this.generalPath(watch),
      watch,
    };
  }

  /**
   * Renders the next slice, unless the bounds or lookups say wait (false;
   * `wake` follows once it may go on). After the last slice, the request
   * goes with the next write.
   */
  next(): boolean {
    const r = this.current!;
    if (!this.mayRender() || this.waitsForLookups(r)) return false;
    const skipping = r.records < r.skip;
    // Records written before a crash go into a batch that is dropped.
    const out = skipping ? new EncodedBatch() : this.writes.events();
    let maxEntries = skipping ? Math.min(SLICE_ENTRIES, r.skip - r.records) : SLICE_ENTRIES;
    // A slice counts either with the counters of one segment earlier copies wrote, or with the shared ones.
    let resend: ResendCounts | undefined;
    const earlier = r.earlier;
    if (earlier !== undefined && r.records < earlier.records) {
      const segments = earlier.segments;
      let i = segments.length - 1;
      while (i >= 0 && segments[i]!.from > r.records) i--;
      const end = i + 1 < segments.length ? segments[i + 1]!.from : earlier.records;
      maxEntries = Math.min(maxEntries, end - r.records);
      // Before its first segment the earlier copies counted none of the request's lines: nor does this one.
      if (i >= 0) {
        const seg = segments[i]!;
        resend = r.resendCounts.get(seg.from);
        if (resend === undefined) r.resendCounts.set(seg.from, (resend = this.ctx.normalizer.resendCounts(seg.counts)));
      }
    }
    const before = out.bytes;
    const { normalizer } = this.ctx;
    // What a later copy must count from (ordinal-journal.ts), per slice: between two slices another
    // connection's line of the same source can take the next number, and a copy that counted on
    // from the first slice's counts would give every record after it another ordinal.
    normalizer.captureCounts(r.job.key === undefined ? undefined : segmentKey(r.job.key, r.records));
    normalizer.countWith(resend);
    try {
      r.pos = this.ctx.packedLines.encodeSlice(r.entries, r.pos, r.tag, out, r.general, maxEntries, SLICE_BYTES, r.watch);
    } finally {
      normalizer.captureCounts(undefined);
      normalizer.countWith(undefined);
    }
    r.records += this.ctx.packedLines.sliced;
    if (r.job.key !== undefined) this.ctx.ordinals.rendered(r.job.key, r.records);
    if (!skipping) this.writes.took(out.bytes - before);
    if (r.pos < r.entries.length) return true;
    this.current = undefined;
    this.writes.ready(r.job);
    return true;
  }

  /** How far the request being rendered got, when it has a chunk (its progress is stored). */
  progress(): Progress | undefined {
    const current = this.current;
    return current?.job.key !== undefined ? { key: current.job.key, records: current.records } : undefined;
  }

  /**
   * The bytes just read are about to be reused (`lasts`: whether a buffer
   * stays valid, framer.ts): the request being rendered gets a copy of its
   * own, also when it is a small part of a large read, so the read can go.
   */
  keep(lasts: (entries: Buffer) => boolean): void {
    const current = this.current;
    if (current === undefined || current.owned) return;
    const e = current.entries;
    if (!lasts(e) || e.buffer.byteLength > 2 * e.length) current.entries = Buffer.from(e);
    current.owned = true;
  }

  /** Stops rendering; returns the request that was being rendered. */
  drop(): Job | undefined {
    const job = this.current?.job;
    this.current = undefined;
    return job;
  }

  /** Whether the bounds let this connection render a slice now; if only the budget says no, waits in its line. */
  private mayRender(): boolean {
    if (this.writes.inFlight >= MAX_IN_FLIGHT_BYTES) return false;
    if (this.ctx.budget.available()) return true;
    if (!this.waitingBudget) {
      this.waitingBudget = true;
      this.ctx.budget.wait(() => {
        this.waitingBudget = false;
        this.wake();
      });
    }
    return false;
  }

  /**
   * Whether the next slice of `r` names containers whose metadata is being
   * looked up: it then waits (at most records.ts LOOKUP_WAIT_MS) and goes on.
   */
  private waitsForLookups(r: Rendering): boolean {
    if (this.awaiting) return true;
    const wait = this.ctx.packedLines.lookups(r.entries, r.pos, r.tag, SLICE_ENTRIES);
    if (wait === undefined) return false;
    this.awaiting = true;
    void wait.then(() => {
      this.awaiting = false;
      this.wake();
    });
    return true;
  }

  /** Renders an entry the fast path leaves. */
  private generalPath(watch: LineWatcher): (entry: ForwardEntry, tag: string) => LogEvent[] {
    const { mapper, normalizer } = this.ctx;
    return (entry, tag) => normalizer.push(mapper.toRawLine(entry, tag), watch);
  }
}

/**
 * A request's view of the lines the Normalizer holds (traces, pieces of split
 * lines): a line held past the ack is stored with the request, when it has a
 * chunk to ack (nothing else is acked before its events are written); a line
 * let go within the request needs none of its lines stored, and the file an
 * earlier request stored for it is deleted (or, for a split line cut in
 * parts, rid of the parts written) once this request's events are written.
 */
class JobWatcher implements LineWatcher {
  constructor(private readonly job: Job) {}

  held(first: RawLine, line: RawLine): void {
    if (this.job.key !== undefined) (this.job.held ??= []).push({ id: traceId(first), first, line, key: this.job.key });
  }

  released(first: RawLine): void {
    const id = traceId(first);
    this.unhold(id, Infinity);
    (this.job.completed ??= []).push(id);
  }

  heldPiece(raw: RawLine, part: number): void {
    if (this.job.key !== undefined) (this.job.held ??= []).push(pieceOf(raw, this.job.key, part));
  }

  releasedPieces(id: string, part: number, whole: boolean): void {
    this.unhold(id, part);
    if (whole) (this.job.completed ??= []).push(id);
    else (this.job.cuts ??= []).push({ id, part });
  }

  /** The lines of `id` (up to part `upToPart`) are in this request's events: none of them is stored. */
  private unhold(id: string, upToPart: number): void {
    if (this.job.held !== undefined) this.job.held = this.job.held.filter((h) => h.id !== id || (h.part ?? 0) > upToPart);
  }
}
