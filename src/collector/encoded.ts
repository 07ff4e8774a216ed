/**
 * Events as their NDJSON lines (line-render.ts from a line's bytes, else event-json.ts),
 * grouped by source: what travels from the inputs to every sink and live
 * reader. Measured on the PackedForward benchmark: building, holding until
 * fsync, and serializing one object graph per record took most of the
 * collector's CPU, a sixth of it in the garbage collector. Where a line's
 * fields are, the renderer marks beside it (line-fields.ts LineMarks), for
 * readers to find them without reading the line.
 */
import type { ContainerMeta, LogEvent } from './event.js';
import { encodeEvent } from './event-json.js';
import type { ChunkPool } from './chunk-pool.js';
import { LineBuffer, type PooledChunks } from './line-buffer.js';
import { forEachLine, LineMarks, type LineFields } from './line-fields.js';
import { looseSourceName } from './source.js';

/** The lines of one source: a container, or else a forward tag or an input name. */
export class EncodedSource {
  /** Lines being written; see chunks(). Whoever ends a line there marks it in `marks`. */
  readonly lines: LineBuffer;
  /** Where each line's fields are (line-fields.ts). */
  readonly marks = new LineMarks();
  private readonly done: Buffer[] = [];
  private doneBytes = 0;
  private oneName = true;

  constructor(
    readonly container: ContainerMeta | undefined,
    /** `clogs.tag`, else `clogs.input`, of the lines' events: names the source when there is no container. */
    readonly name: string,
    tally?: { bytes: number },
    pooled?: PooledChunks,
  ) {
    this.lines = new LineBuffer(undefined, tally, pooled);
  }

  /** The whole lines so far, in order. */
  chunks(): readonly Buffer[] {
    if (this.lines.bytes > 0) {
      this.doneBytes += this.lines.bytes;
      for (const c of this.lines.take()) this.done.push(c);
    }
    return this.done;
  }

  get bytes(): number {
    return this.doneBytes + this.lines.bytes;
  }

  /** Lines held. */
  get count(): number {
    return this.marks.count;
  }

  /**
   * Whether every line came under `name` (source.ts looseSourceName: its
   * tag, else its input), so a line's tag, if it has one, is `name`: a reader
   * that wants other tags can pass these lines over without searching them.
   */
  get onlyName(): boolean {
    return this.oneName;
  }

  /** A line comes under `name` too. */
  addName(name: string): void {
    if (name !== this.name) this.oneName = false;
  }

  /** Each line, its fields in `fields` (reused line after line); `skip`: chunks passed over. */
  forEachLine(fields: LineFields, fn: (fields: LineFields) => void, skip?: (chunk: Buffer) => boolean): void {
    forEachLine(this.chunks(), this.marks, fields, fn, skip);
  }

  /** Adds a copy of the line `fields` holds, after the others. */
  addLine(fields: LineFields): void {
    this.lines.raw(fields.buf.subarray(fields.start, fields.end + 1));
    this.lines.endLine();
    this.marks.addFields(fields);
  }

  /** Adds these lines after those `to` holds, without copying them. */
  appendTo(to: EncodedSource): void {
    this.appendBytesTo(to.lines);
    to.marks.append(this.marks);
    if (!this.oneName) to.oneName = false;
    to.addName(this.name);
  }

  /** Adds these lines' bytes, without their marks, after those `to` holds: for a writer of bytes. */
  appendBytesTo(to: LineBuffer): void {
    to.lines(this.chunks(), this.doneBytes);
  }
}

export class EncodedBatch {
  /** The events rendered to their lines. */
  static of(events: readonly LogEvent[]): EncodedBatch {
    const batch = new EncodedBatch();
    batch.add(events);
    return batch;
  }

  private readonly byContainer = new Map<ContainerMeta, EncodedSource>();
  private readonly byName = new Map<string, EncodedSource>();
  private last: EncodedSource | undefined;
  private readonly tally = { bytes: 0 };
  private readonly pooled: PooledChunks | undefined;

  /** `pool`: where its buffers take their chunks; its owner gives them back with recycle(). */
  constructor(pool?: ChunkPool) {
    this.pooled = pool === undefined ? undefined : { pool, taken: [] };
  }

  /** Bytes of the lines in the batch. */
  get bytes(): number {
    return this.tally.bytes;
  }

  /** Lines in the batch. */
  get count(): number {
    let n = 0;
    for (const s of this.sources()) n += s.count;
    return n;
  }

  *sources(): IterableIterator<EncodedSource> {
    yield* this.byContainer.values();
    yield* this.byName.values();
  }

  /** Where lines of this container (or, without one, of this tag or input) go. */
  source(container: ContainerMeta | undefined, name: string): EncodedSource {
    const last = this.last;
    if (last !== undefined && last.container === container && (container !== undefined || last.name === name)) {
      last.addName(name);
      return last;
    }
    let s: EncodedSource | undefined;
    if (container !== undefined) {
      s = this.byContainer.get(container);
      if (s === undefined) this.byContainer.set(container, (s = new EncodedSource(container, name, this.tally, this.pooled)));
      else s.addName(name);
    } else {
      s = this.byName.get(name);
      if (s === undefined) this.byName.set(name, (s = new EncodedSource(undefined, name, this.tally, this.pooled)));
    }
    this.last = s;
    return s;
  }

  add(events: readonly LogEvent[]): void {
    for (const e of events) this.addOne(e);
  }

  /**
   * Adds the events that can be rendered. One that cannot (it breaks the
   * LogEvent type: a bug upstream) is left out and handed to `onBad`; the
   * others are kept.
   */
  addEach(events: readonly LogEvent[], onBad: (err: unknown) => void): void {
    for (const e of events) {
      try {
        this.addOne(e);
      } catch (err) {
        onBad(err);
      }
    }
  }

  private addOne(e: LogEvent): void {
    const s = this.source(e.container, looseSourceName(e.clogs.tag, e.clogs.input));
    try {
      encodeEvent(e, s.lines, s.marks);
    } catch (err) {
      // Leaves no half line behind.
      s.lines.dropPartialLine();
      throw err;
    }
  }

  /**
   * Gives the chunks its lines were written into back to the pool. Only once
   * nothing reads a line of this batch any more (every sink took it, the
   * subscribers saw it), nor of a batch its lines were moved into.
   */
  recycle(): void {
    const pooled = this.pooled;
    if (pooled === undefined) return;
    for (const chunk of pooled.taken) pooled.pool.give(chunk);
    pooled.taken.length = 0;
  }

  /** Moves another batch's lines after this one's. */
  append(other: EncodedBatch): void {
    for (const o of other.sources()) this.appendSource(o);
  }

  /** Moves one source's lines, of another batch, after those this batch holds for the same source. */
  appendSource(o: EncodedSource): void {
    o.appendTo(this.source(o.container, o.name));
  }
}
