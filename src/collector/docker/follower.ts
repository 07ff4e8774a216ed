/**
 * One container's log stream:
 * `GET /containers/{id}/logs?follow=1&stdout=1&stderr=1&timestamps=1&since=<position>`,
 * parsed by frames.ts, trimmed of what was emitted before, rendered
 * (line-render.ts; the Normalizer takes what it refuses), and handed to the
 * Shipper (or the backfill gate) one read's lines at a time. It pauses the
 * stream while that is full, and after a read that emptied the socket until
 * the next write cycle, so that the next read takes every line written
 * meanwhile.
 *
 * While the Normalizer holds a stack trace of a stream (multiline/stage.ts),
 * the positions handed on for that stream stay where they were before the
 * trace's first line: a checkpoint never passes a line whose event is not
 * written yet, and a restart reads the whole trace again and joins it into
 * the same event (its identity is its first line's).
 *
 * What to do when the stream ends (the container stopped, the engine went
 * away) is the caller's decision (`onEnded`): only it knows the container's
 * state and whether the engine is reachable.
 */
import type { Logger } from '../../log.js';
import { countBytesIn, inputErrors } from '../../metrics.js';
import { EncodedBatch } from '../encoded.js';
import type { LogEvent, Stream } from '../event.js';
import type { LineRenderer } from '../line-render.js';
import type { Normalizer, RawLine } from '../normalize.js';
import { copyPositions, recordLine, recordOrdinal, ResumeFilter, resumeSince, type Positions, type StreamPosition } from './checkpoints.js';
import { LogStreamParser, type LogLine } from './frames.js';
import type { ContainerInfo } from './metadata.js';
import type { LogBody, OpenLogs } from './log-stream.js';
import { renderEvents, type LineSink } from './shipper.js';

export interface FollowerDeps {
  openLogs: OpenLogs;
  normalizer: Normalizer;
  /** Writes the lines the Normalizer would pass through unchanged, straight from their bytes. */
  renderer: LineRenderer;
  sink: LineSink;
  log: Logger;
  maxLineBytes: number;
  /**
   * Hand each line to the sink with its own positions (the backfill gate
   * decides line by line), instead of one call per socket read.
   */
  perLine: boolean;
  /** The stream ended by itself: `eof` (the engine closed it) or `error`. */
  onEnded(follower: Follower, how: 'eof' | 'error', err?: unknown): void;
}

export type FollowerState = 'idle' | 'following' | 'done';

/** A container that gave lines this recently counts as writing: it is read at the write cycles only. */
const ACTIVE_MS = 1000;
const STREAMS: readonly Stream[] = ['stdout', 'stderr'];
/** A stream that keeps going back in time is said so at most this often. */
const WENT_BACK_LOG_MS = 60_000;

export class Follower {
  readonly id: string;
  private stateNow: FollowerState = 'idle';
  /**
   * Where the log stands after the last line handed on; for a stream that
   * has handed on none, before the pieces of its first line when the parser
   * holds them (notePieces).
   */
  private positions: Positions;
  /** Per stream with a held trace: where the log stood before its first line. */
  private heldFrom: Positions = {};
  private parser: LogStreamParser | undefined;
  private filter: ResumeFilter | undefined;
  private body: LogBody | undefined;
  /** Cancels the wait for room in the batch or for the next write cycle. */
  private cancelWait: (() => void) | undefined;
  /** Bumped on every (re)start and stop, so callbacks of an old stream do nothing. */
  private generation = 0;
  private readonly log: Logger;
  /** Consecutive failed attempts, for the caller's backoff. */
  failures = 0;
  /** The container stopped and its log is being read once more to its end (discovery.ts). */
  finalRead = false;
  /**
   * When the run being read to its end, or read to it, finished (inspect's
   * FinishedAt, ms, as the final read began): another FinishedAt is a later run.
   */
  finishedRun: number | undefined;
  /**
   * The last lines without `\n` that the stream before the final read ended
   * with (keepUnfinished()): written by finish() if the container is removed
   * before the final read gets them again, dropped once it reads anything.
   */
  private unfinished: LogLine[] = [];
  /** When the stream going back in time was last logged (wentBack()). */
  private wentBackLoggedAt = -Infinity;
  private wentBackSince = 0;

  constructor(
    public info: ContainerInfo,
    positions: Positions,
    private readonly deps: FollowerDeps,
  ) {
    this.id = info.id;
    this.positions = copyPositions(positions);
    this.log = deps.log.child({ container: info.id.slice(0, 12) });
  }

  get state(): FollowerState {
    return this.stateNow;
  }

  /** Which opening of the stream is current: an end reported for an earlier one is stale. */
  get opening(): number {
    return this.generation;
  }

  /** Opens the stream from the current positions. */
  async start(): Promise<void> {
    this.halt();
    const generation = this.generation;
    this.stateNow = 'following';
    this.filter = new ResumeFilter(this.positions, (stream, checkpoint, first) => {
      inputErrors.inc({ input: 'docker', reason: 'rotated' });
      this.log.warn({ stream, checkpoint, first }, 'container log rotated past the checkpoint: lines written in between may be lost');
    });
    this.parser = new LogStreamParser({
      tty: this.info.tty,
      maxLineBytes: this.deps.maxLineBytes,
      onDaemonError: (message) => {
        inputErrors.inc({ input: 'docker', reason: 'daemon_error' });
        this.log.warn({ daemonError: message }, 'docker engine reported an error in a log stream');
      },
    });
    for (const [stream, p] of Object.entries(this.positions) as [Stream, Positions[Stream]][]) {
      if (p) this.deps.normalizer.seedOrdinal(this.id, stream, p.ts, p.ords);
    }
    const since = resumeSince(this.positions);
    let body: LogBody | undefined;
    let readSinceResume = false;
    let lastReadAt = 0;
    const resume = () => {
      this.cancelWait = undefined;
      if (generation !== this.generation) return;
      readSinceResume = false;
      body?.resume();
      // A container that wrote lately and has nothing in its socket now
      // parks again until the next cycle rather than wake on its next line:
      // a line read between cycles waits for the next cycle's write all the
      // same, and read then it comes with the lines written after it in one
      // read. Apps write in bursts, and a burst's first line otherwise took a
      // read of its own. Measured (bench/docker.bench.ts rate 100, CPU after
      // the first 5 s): 2.76 and 3.03 CPU s per 100k lines against 3.53 to
      // 4.10, lag p99 142 against 121-126 ms. A quiet container stays
      // resumed, so its first line costs no wake-up per cycle. Backfill
      // followers read at once: the gate matches a line against the forward
      // input's deliveries sooner, and fewer of them wait for the next start
      // in its saved memory (backfill.ts save()).
      if (!this.deps.perLine && Date.now() - lastReadAt < ACTIVE_MS) {
        setImmediate(() => {
          if (generation !== this.generation || readSinceResume || this.cancelWait !== undefined) return;
          body!.pause();
          this.cancelWait = this.deps.sink.whenNextCycle(resume);
        });
      }
    };
    const ended = (how: 'eof' | 'error', err?: unknown) => {
      if (generation !== this.generation) return;
      this.stateNow = 'idle';
      this.deps.onEnded(this, how, err);
    };
    try {
      body = await this.deps.openLogs(this.id, since, {
        data: (pieces, coalesce) => {
          if (generation !== this.generation) return;
          this.unfinished = [];
          readSinceResume = true;
          lastReadAt = Date.now();
          const room = this.onRead(pieces);
          if (generation !== this.generation || (room && !coalesce)) return;
          body!.pause();
          this.cancelWait = room ? this.deps.sink.whenNextCycle(resume) : this.deps.sink.whenDrained(resume);
        },
        end: () => ended('eof'),
        error: (err) => ended('error', err),
      });
    } catch (err) {
      ended('error', err);
      return;
    }
    if (generation !== this.generation) {
      body.close();
      return;
    }
    this.body = body;
    this.log.debug({ since, tty: this.info.tty }, 'following container log');
    body.resume();
  }

  /**
   * The container stopped and its stream ended: the last lines without `\n`
   * it ended with are kept for finish(), in case the container is gone
   * before the final read (discovery.ts) can read them again.
   */
  keepUnfinished(): void {
    if (this.parser) this.unfinished = this.parser.end();
  }

  /**
   * The container stopped (or is gone) and its stream ended: a last line
   * without `\n` is complete, hand it out.
   */
  finish(): void {
    if (this.parser) this.ship(this.parser.end());
    if (this.unfinished.length > 0) this.ship(this.unfinished);
    this.unfinished = [];
    this.halt();
    this.flushHeld();
    this.stateNow = 'done';
  }

  /**
   * Closes the stream and writes out the traces held for it; pieces of an
   * unfinished line are dropped (they will be read again, whole).
   */
  stop(): void {
    this.halt();
    this.flushHeld();
    this.stateNow = 'idle';
  }

  /** Forgets what was read after the last checkpoint: those events were lost by a failed write. */
  rewind(committed: Positions): void {
    this.halt();
    this.deps.normalizer.dropSource(this.id);
    this.heldFrom = {};
    this.positions = copyPositions(committed);
    this.stateNow = 'idle';
  }

  /** Hands on traces the Normalizer let go on its timeout, with the positions they free. */
  released(events: LogEvent[]): void {
    for (const stream of Object.keys(this.heldFrom) as Stream[]) {
      if (this.deps.normalizer.heldFirst(this.id, stream) === undefined) delete this.heldFrom[stream];
    }
    this.deps.sink.add(this.id, this.info.name, renderEvents(events, this.log), this.checkpointPositions());
  }

  private flushHeld(): void {
    const events = this.deps.normalizer.flushSource(this.id);
    this.heldFrom = {};
    if (events.length > 0) this.deps.sink.add(this.id, this.info.name, renderEvents(events, this.log), copyPositions(this.positions));
  }

  /** The positions a checkpoint may take: before the first line of every held trace. */
  private checkpointPositions(): Positions {
    const out = copyPositions(this.positions);
    for (const [stream, p] of Object.entries(this.heldFrom) as [Stream, StreamPosition | undefined][]) if (p) out[stream] = { ...p };
    return out;
  }

  private halt(): void {
    this.generation++;
    this.body?.close();
    this.body = undefined;
    this.cancelWait?.();
    this.cancelWait = undefined;
    this.parser = undefined;
    this.filter = undefined;
  }

  /** Returns false when the sink wants this stream paused. */
  private onRead(pieces: Buffer[]): boolean {
    const lines: LogLine[] = [];
    let bytes = 0;
    try {
      for (const piece of pieces) {
        bytes += piece.length;
        this.parser!.push(piece, lines);
      }
    } catch (err) {
      inputErrors.inc({ input: 'docker', reason: (err as { code?: string }).code === 'CLOGS_FRAME_TOO_LARGE' ? 'frame_too_large' : 'malformed' });
      this.log.warn({ err }, 'closing a docker log stream with bad data');
      this.halt();
      this.stateNow = 'idle';
      this.deps.onEnded(this, 'error', err);
      return true;
    }
    countBytesIn('docker', bytes);
    this.notePieces(this.parser!, lines);
    return this.ship(lines);
  }

  /**
   * A stream with no position yet whose first line the parser holds in
   * pieces (a line over 16 KiB whose end has not come) gets the position
   * just before them. Otherwise, once the other stream's position passes
   * them, nothing keeps the `since` of the next opening (the earliest
   * position) at or before them: the engine would never send that line
   * again. A stream with a position needs none, its pieces come after it;
   * nor does one with lines in this read, which give it one (set now, it
   * would pass them before a per-line sink has them).
   */
  private notePieces(parser: LogStreamParser, lines: readonly LogLine[]): void {
    for (const stream of STREAMS) {
      if (this.positions[stream] !== undefined) continue;
      const ts = parser.heldTimestamp(stream);
      if (ts !== undefined && !lines.some((l) => l.stream === stream)) this.positions[stream] = { ts, lines: 0, ords: 0 };
    }
  }

  /**
   * A line older than the one before it on its stream: each stream's lines
   * are stamped in the order the engine read them, so the engine sent lines
   * again. Docker 20.10 (Debian 12's) does so when the json-file log rotates
   * under a fast writer, and skips others, with nothing in its stream to
   * tell: the lines are taken again (Elasticsearch keeps one of each: their
   * `_id` is the same; the files get both) and the loss cannot be seen, so it
   * is said here, and counted. A host clock set back does the same.
   */
  private wentBack(stream: Stream, last: string, ts: string): void {
    inputErrors.inc({ input: 'docker', reason: 'went_back' });
    this.wentBackSince++;
    const now = Date.now();
    if (now - this.wentBackLoggedAt < WENT_BACK_LOG_MS) return;
    this.wentBackLoggedAt = now;
    this.log.warn(
      { stream, last, next: ts, times: this.wentBackSince },
      'container log went back in time: the engine sent lines again (Docker 20.10 does after a json-file rotation under a fast writer, and may skip lines then); they are stored again',
    );
    this.wentBackSince = 0;
  }

  /**
   * Records that a line of `stream` at `ts` got `ordinal`; returns how many
   * ordinals of `prevTs` (the stream's time before this read's line) are now
   * taken, starting from `prevOrds`.
   */
  private counted(stream: Stream, ts: string, ordinal: number, prevTs: string | undefined, prevOrds: number): number {
    recordOrdinal(this.positions, stream, ts, ordinal);
    return ts === prevTs && ordinal + 1 > prevOrds ? ordinal + 1 : prevOrds;
  }

  private ship(lines: LogLine[]): boolean {
    const filter = this.filter;
    const { normalizer, renderer, sink, perLine } = this.deps;
    const meta = this.info.meta;
    let out = new EncodedBatch();
    let admitted = 0;
    let room = true;
    for (const line of lines) {
      if (filter && !filter.admit(line.stream, line.timestamp)) continue;
      admitted++;
      const stream = line.stream;
      const before = this.positions[stream];
      const prevTs = before?.ts;
      const prevLines = before?.lines ?? 0;
      let prevOrds = before?.ords ?? 0;
      if (prevTs !== undefined && line.timestamp < prevTs) this.wentBack(stream, prevTs, line.timestamp);
      recordLine(this.positions, stream, line.timestamp);
      const bytes = line.bytes;
      // A continuation is no whole line: the Normalizer writes it as it is, the renderer would parse it.
      const ordinal = line.continued ? -1 : renderer.line(bytes, 0, bytes.length, out, meta, stream, line.time.sec, line.time.nsec, 'docker', undefined);
      let raw: RawLine | undefined;
      if (ordinal >= 0) {
        prevOrds = this.counted(stream, line.timestamp, ordinal, prevTs, prevOrds);
      } else {
        raw = { input: 'docker', time: line.time, timestamp: line.timestamp, stream, line: bytes, container: meta };
        if (line.continued) raw.continued = true;
        const events = normalizer.push(raw);
        // A trace let go by this line carries its first line's time, not this one's.
        for (const e of events) prevOrds = this.counted(stream, e['@timestamp'], e.clogs.ordinal, prevTs, prevOrds);
        renderEvents(events, this.log, out);
      }
      if (normalizer.pending() > 0 || this.heldFrom[stream] !== undefined) {
        const first = normalizer.heldFirst(this.id, stream);
        if (first === undefined) delete this.heldFrom[stream];
        // Held since an earlier line (a tentative one it let go may have opened it): the older position is safe.
        else if (first === raw || this.heldFrom[stream] === undefined) {
          this.heldFrom[stream] = prevTs === undefined ? { ts: line.timestamp, lines: 0, ords: 0 } : { ts: prevTs, lines: prevLines, ords: prevOrds };
        }
      }
      if (perLine) {
        room = sink.add(this.id, this.info.name, out, this.checkpointPositions());
        out = new EncodedBatch();
      }
    }
    // Only a line not taken before ends a run of failures: a stream that
    // breaks at the same bad frame after each opening, past lines already
    // taken, is retried with growing waits, not ten times a second.
    if (admitted > 0) this.failures = 0;
    if (perLine) return room;
    if (admitted === 0) return sink.hasRoom();
    return sink.add(this.id, this.info.name, out, this.checkpointPositions());
  }
}
