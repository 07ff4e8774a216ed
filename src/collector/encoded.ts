/**
 * Events that an input rendered as their NDJSON lines (event-json.ts) instead
 * of LogEvent objects, grouped by source, for sinks that store those lines as
 * they are (the file sink). Measured on the PackedForward benchmark: building,
 * holding until fsync, and serializing one object graph per record took most of
 * the collector's CPU, a sixth of it in the garbage collector.
 *
 * A consumer that needs objects gets them from events(), parsed back from the
 * lines: the lines are the events' exact JSON, so nothing is lost on the way.
 */
import type { ContainerMeta, LogEvent } from './event.js';
import { encodeEvent } from './event-json.js';
import { LineBuffer } from './line-buffer.js';
import { looseSourceName } from './source.js';

/** The lines of one source: a container, or else a forward tag or an input name. */
export class EncodedSource {
  /** Lines being written; see chunks(). */
  readonly lines: LineBuffer;
  count = 0;
  private readonly done: Buffer[] = [];
  private doneBytes = 0;

  constructor(
    readonly container: ContainerMeta | undefined,
    /** `clogs.tag`, else `clogs.input`, of the lines' events: names the source when there is no container. */
    readonly name: string,
    tally?: { bytes: number },
  ) {
    this.lines = new LineBuffer(undefined, tally);
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

  /** Adds these lines after those `to` holds, without copying them. */
  appendTo(to: LineBuffer): void {
    const chunks = this.chunks();
    to.lines(chunks, this.doneBytes);
  }
}

export class EncodedBatch {
  private readonly byContainer = new Map<ContainerMeta, EncodedSource>();
  private readonly byName = new Map<string, EncodedSource>();
  private last: EncodedSource | undefined;
  private parsed: LogEvent[] | undefined;
  private readonly tally = { bytes: 0 };

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
    if (last !== undefined && last.container === container && (container !== undefined || last.name === name)) return last;
    let s: EncodedSource | undefined;
    if (container !== undefined) {
      s = this.byContainer.get(container);
      if (s === undefined) this.byContainer.set(container, (s = new EncodedSource(container, name, this.tally)));
    } else {
      s = this.byName.get(name);
      if (s === undefined) this.byName.set(name, (s = new EncodedSource(undefined, name, this.tally)));
    }
    this.last = s;
    return s;
  }

  add(events: readonly LogEvent[]): void {
    for (const e of events) {
      const s = this.source(e.container, looseSourceName(e.clogs.tag, e.clogs.input));
      encodeEvent(e, s.lines);
      s.count++;
    }
  }

  /** Moves another batch's lines after this one's. */
  append(other: EncodedBatch): void {
    for (const o of other.sources()) {
      const s = this.source(o.container, o.name);
      o.appendTo(s.lines);
      s.count += o.count;
    }
  }

  /** The events, parsed back from their lines (once; later calls return the same array). */
  events(): readonly LogEvent[] {
    if (this.parsed !== undefined) return this.parsed;
    const out: LogEvent[] = [];
    for (const s of this.sources()) {
      for (const chunk of s.chunks()) {
        let start = 0;
        for (let nl = chunk.indexOf(0x0a); nl >= 0; start = nl + 1, nl = chunk.indexOf(0x0a, start)) {
          const event = JSON.parse(chunk.toString('utf8', start, nl)) as LogEvent;
          // One object per container, as inputs share it: sinks cache by identity.
          if (s.container !== undefined) event.container = s.container;
          out.push(event);
        }
      }
    }
    this.parsed = out;
    return out;
  }
}
