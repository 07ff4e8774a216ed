/**
 * The multiline stage of the Normalizer: joins the lines of a stack trace into
 * one event, per source and stream (stdout and stderr never mix, nor do two
 * containers).
 *
 * A line a rule could open a trace with is held until the next line of its
 * source and stream shows whether the trace goes on. The held event goes out
 * when a line that no live rule takes arrives, `timeout` after its last line,
 * when its source ends (flushSource) and at shutdown (flushAll). Its identity
 * is its first line's: the Normalizer builds it from that line's RawLine, and
 * the lines joined to it consume no ordinal, so reading the same lines again
 * gives the same event.
 *
 * Lines a rule takes only tentatively (MAYBE: blank lines between chained
 * tracebacks) join once a later line confirms them; otherwise they go out as
 * events of their own after the trace, and may open one themselves. They
 * count toward max_lines and max_bytes but do not put the timeout off: a
 * program printing blank lines without end must not hold its trace forever.
 */
import type { ContainerMeta, Stream } from '../event.js';
import type { RawLine } from '../normalize.js';
import { sourceId } from '../source.js';
import type { ModeTable } from './modes.js';
import { mayOpenTrace } from './opener.js';
import { MAYBE, NO, type TraceRule } from './rules.js';

/** What the stage lets go: a line, or the lines of a trace joined by "\n", with the RawLine of the first. */
export interface Released {
  first: RawLine;
  text: string;
  /** The trace reached max_lines or max_bytes here; its next lines start another event. */
  truncated: boolean;
}

/**
 * Told which lines the stage keeps across calls, for an input that acks a
 * line before its event is written (forward/partials.ts keeps them durable).
 */
export interface HoldWatcher {
  /** `line` is held in the event that `first` opens. */
  held(first: RawLine, line: RawLine): void;
  /** The event `first` opened was let go: its lines are in the events just returned. */
  released(first: RawLine): void;
}

export interface StageLimits {
  timeoutMs: number;
  maxLines: number;
  maxBytes: number;
}

interface Candidate {
  rule: TraceRule;
  state: number;
}

interface Hold {
  key: string;
  source: string;
  first: RawLine;
  lines: string[];
  bytes: number;
  /** Lines taken tentatively, in order, after `lines`. */
  maybe: Array<{ raw: RawLine; text: string; bytes: number }>;
  /** What `maybe` would add to `bytes`. */
  maybeBytes: number;
  candidates: Candidate[];
  /** When a line last joined; not a tentative one, or blank lines coming on and on would hold the trace forever. */
  lastAt: number;
}

/**
 * Bytes of traces held, all sources together (or max_bytes, when larger),
 * which a line may not take past: the trace it would join ends as it is, or
 * it opens none. Each trace holds less than max_bytes, but a client can open
 * one under any number of tags: 600 of them held 600 MB, and their timeout
 * wrote them out at once. The trace a line comes to, never another source's.
 */
export const MAX_HELD_TRACE_BYTES = 16 * 1024 * 1024;

export class MultilineStage {
  private readonly holds = new Map<string, Hold>();
  /** What the holds take: their lines' and their tentative lines' bytes. */
  private heldBytes = 0;
  private readonly maxHeldBytes: number;

  constructor(
    private readonly limits: StageLimits,
    private readonly modes: ModeTable,
  ) {
    this.maxHeldBytes = Math.max(MAX_HELD_TRACE_BYTES, limits.maxBytes);
  }

  /** Events being held. */
  get size(): number {
    return this.holds.size;
  }

  get timeoutMs(): number {
    return this.limits.timeoutMs;
  }

  /**
   * Whether the stage has to see this line: a trace of its source and stream
   * is held, or a rule could open one with it. `line[start, end)` without its
   * end of line (line-end.ts).
   */
  concerns(container: ContainerMeta | undefined, tag: string | undefined, input: string, stream: Stream | undefined, line: Buffer | string, start: number, end: number): boolean {
    // Before the container's mode: a label that turned joining off after the
    // trace's first line came must not let this line go out before that one.
    if (this.holds.size > 0 && this.holds.has(keyOf(sourceId(container, tag, input), stream))) return true;
    const mode = this.modes.of(container);
    if (mode.rules.length === 0) return false;
    return mode.anyLine || mayOpenTrace(line, start, end);
  }

  /** Takes a complete line, without its end of line, and appends what goes out now to `out`, in order. */
  push(raw: RawLine, text: string, out: Released[], watch: HoldWatcher | undefined): void {
    const source = sourceId(raw.container, raw.tag, raw.input);
    this.take(raw, text, source, keyOf(source, raw.stream), Date.now(), out, watch);
  }

  /** The first line of the trace held for this source and stream, if one is. */
  heldFirst(source: string, stream: Stream | undefined): RawLine | undefined {
    return this.holds.size === 0 ? undefined : this.holds.get(keyOf(source, stream))?.first;
  }

  /** The first lines of the traces held now. */
  heldFirsts(): RawLine[] {
    return [...this.holds.values()].map((h) => h.first);
  }

  /** Lets the traces idle past the timeout go; `watch` learns of the lines a trace opened by their tentative lines holds. */
  flushExpired(now: number, out: Released[], watch: HoldWatcher | undefined): void {
    const deadline = now - this.limits.timeoutMs;
    for (const hold of [...this.holds.values()]) if (hold.lastAt <= deadline && this.holds.get(hold.key) === hold) this.close(hold, now, out, watch);
  }

  flushSource(source: string, out: Released[]): void {
    this.flushWhere((h) => h.source === source, out);
  }

  flushAll(out: Released[]): void {
    this.flushWhere(() => true, out);
  }

  /** Forgets the trace held for a source and stream without letting it go: its lines are taken again. */
  dropHeld(source: string, stream: Stream | undefined): void {
    const hold = this.holds.get(keyOf(source, stream));
    if (hold) this.forget(hold);
  }

  /** Forgets what is held for a source without letting it go: the input reads those lines again. */
  dropSource(source: string): void {
    for (const hold of [...this.holds.values()]) if (hold.source === source) this.forget(hold);
  }

  private forget(hold: Hold): void {
    this.holds.delete(hold.key);
    this.heldBytes -= hold.bytes + hold.maybeBytes;
  }

  private flushWhere(match: (h: Hold) => boolean, out: Released[]): void {
    // Closing lets tentative lines go, and one of them may open a trace again.
    for (;;) {
      let hold: Hold | undefined;
      for (const h of this.holds.values()) {
        if (!match(h)) continue;
        hold = h;
        break;
      }
      if (hold === undefined) return;
      this.close(hold, Date.now(), out, undefined);
    }
  }

  private take(raw: RawLine, text: string, source: string, key: string, now: number, out: Released[], watch: HoldWatcher | undefined): void {
    const hold = this.holds.get(key);
    const json = isJsonLine(text);
    const rules = this.modes.of(raw.container).rules;
    if (hold !== undefined) {
      // No rules: a `clogs.multiline=off` label known only since the trace's
      // first line (a forward container's labels come with its Docker lookup).
      // The trace ends as it is, and the line joins nothing.
      if (!json && rules.length > 0 && this.extend(hold, raw, text, now, out, watch)) return;
      this.close(hold, now, out, watch);
      // A tentative line it let go opened another trace: offer the line to that one.
      if (this.holds.has(key)) return this.take(raw, text, source, key, now, out, watch);
    }
    const candidates: Candidate[] = [];
    // A continuation of a cut line starts no trace: its first bytes are not a line's.
    if (!json && raw.continued !== true) {
      for (const rule of rules) {
        const state = rule.opens(text);
        if (state !== NO) candidates.push({ rule, state });
      }
    }
    const bytes = candidates.length === 0 ? 0 : Buffer.byteLength(text);
    if (candidates.length === 0 || this.heldBytes + bytes > this.maxHeldBytes) {
      out.push({ first: raw, text, truncated: false });
      return;
    }
    this.holds.set(key, { key, source, first: raw, lines: [text], bytes, maybe: [], maybeBytes: 0, candidates, lastAt: now });
    this.heldBytes += bytes;
    watch?.held(raw, raw);
  }

  /** Offers the hold its next line; false when no live rule takes it, or a tentative line would pass a limit. */
  private extend(hold: Hold, raw: RawLine, text: string, now: number, out: Released[], watch: HoldWatcher | undefined): boolean {
    const sure: Candidate[] = [];
    const maybe: Candidate[] = [];
    for (const c of hold.candidates) {
      const next = c.rule.next(c.state, text);
      if (next === NO) continue;
      if (next & MAYBE) maybe.push({ rule: c.rule, state: next & ~MAYBE });
      else sure.push({ rule: c.rule, state: next });
    }
    if (sure.length === 0 && maybe.length === 0) return false;
    const bytes = Buffer.byteLength(text);
    // Past the bound for all traces: this one ends as it is, and the line goes its own way.
    if (this.heldBytes + 1 + bytes > this.maxHeldBytes) return false;
    let current = hold;
    if (sure.length > 0) {
      current.candidates = sure;
      const confirmed = current.maybe;
      current.maybe = [];
      // append() counts them again, as lines.
      this.heldBytes -= current.maybeBytes;
      current.maybeBytes = 0;
      for (const m of confirmed) current = this.append(current, m.raw, m.text, m.bytes, out, watch, true);
      current = this.append(current, raw, text, bytes, out, watch, false);
      current.lastAt = now;
    } else {
      // Not cut as append() cuts: the next part would open with lines that may
      // belong to no trace. The trace ends as it is, and the tentative lines go
      // out as they would without it.
      if (current.lines.length + current.maybe.length >= this.limits.maxLines || current.bytes + current.maybeBytes + 1 + bytes > this.limits.maxBytes) return false;
      current.candidates = maybe;
      current.maybe.push({ raw, text, bytes });
      current.maybeBytes += 1 + bytes;
      this.heldBytes += 1 + bytes;
    }
    watch?.held(current.first, raw);
    return true;
  }

  /** Adds a line of `bytes` bytes of UTF-8; past max_lines or max_bytes the event goes out cut and the line opens the next one. */
  private append(hold: Hold, raw: RawLine, text: string, bytes: number, out: Released[], watch: HoldWatcher | undefined, moved: boolean): Hold {
    if (hold.lines.length < this.limits.maxLines && hold.bytes + 1 + bytes <= this.limits.maxBytes) {
      hold.lines.push(text);
      hold.bytes += 1 + bytes;
      this.heldBytes += 1 + bytes;
      return hold;
    }
    out.push({ first: hold.first, text: hold.lines.join('\n'), truncated: true });
    watch?.released(hold.first);
    const next: Hold = { ...hold, first: raw, lines: [text], bytes, maybe: [], maybeBytes: 0 };
    this.heldBytes += bytes - hold.bytes - hold.maybeBytes;
    this.holds.set(hold.key, next);
    // A line held earlier now belongs to the new event: keep it under that one.
    if (moved) watch?.held(raw, raw);
    return next;
  }

  private close(hold: Hold, now: number, out: Released[], watch: HoldWatcher | undefined): void {
    this.forget(hold);
    out.push({ first: hold.first, text: hold.lines.length === 1 ? hold.lines[0]! : hold.lines.join('\n'), truncated: false });
    watch?.released(hold.first);
    for (const m of hold.maybe) this.take(m.raw, m.text, hold.source, hold.key, now, out, watch);
  }
}

function keyOf(source: string, stream: Stream | undefined): string {
  return `${source}\0${stream ?? ''}`;
}

/** JSON lines are events of their own, whatever a rule says. */
function isJsonLine(text: string): boolean {
  return text.charCodeAt(0) === 0x7b /* { */ && text.charCodeAt(text.length - 1) === 0x7d; /* } */
}
