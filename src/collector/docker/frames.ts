/**
 * The body of `GET /containers/{id}/logs?timestamps=1`, bytes in, lines out.
 * No socket here: the follower feeds it whatever the HTTP stream delivers.
 *
 * Non-TTY containers: frames of `[type, 0, 0, 0, size uint32 BE]` + payload
 * (type 0 stdin written as stdout, 1 stdout, 2 stderr, 3 an error the daemon
 * hit while reading). TTY containers: raw text, no headers. The body has no
 * Content-Type on API 1.41 (fixtures/docker MANIFEST §2), so the caller says
 * which one from the container's `Config.Tty`.
 *
 * One frame is one message of the log driver. Every message starts with its
 * own `RFC3339Nano ` prefix. Docker's copier cuts lines longer than 16 KiB into
 * pieces that all carry the first piece's timestamp, and only the last piece
 * ends in `\n` (a line of exactly 16384 bytes ends with a piece that is only
 * `\n`). So the prefix is stripped from every piece and the pieces' bytes are
 * joined before anyone decodes UTF-8 (a cut can fall inside a character).
 * dockerode's demuxStream is not used: it turns the rest of a stream into raw
 * stdout after a type-3 frame and hands out no message boundaries.
 */
import { ClogsError } from '../../errors.js';
import type { Stream } from '../event.js';
import { compareNanoTime, formatNanoTime, parseRfc3339, type NanoTime } from '../time.js';
import { utf8CutPoint } from '../json-bytes.js';

export interface LogLine {
  stream: Stream;
  /** Docker's timestamp with 9 fractional digits, e.g. `2026-11-22T09:54:12.667302120Z`. */
  timestamp: string;
  time: NanoTime;
  /** The line without its `\n`. A TTY line keeps its `\r` (the Normalizer strips it). */
  bytes: Buffer;
  /** A later part of a line cut at maxLineBytes: its start is in the part before. */
  continued?: true;
}

export interface ParserOptions {
  tty: boolean;
  /**
   * A line whose joined pieces reach this many bytes is handed out at that
   * point and the rest continues as a further line with the same timestamp:
   * the bound on what one stream holds.
   */
  maxLineBytes: number;
  /** A type-3 frame: the daemon's own error ("Error grabbing logs: ..."); not log data. */
  onDaemonError(message: string): void;
}

/** Docker's copier buffer (moby daemon/logger/copier.go `defaultBufSize`). */
export const DOCKER_PIECE_BYTES = 16 * 1024;
/**
 * Largest frame payload accepted. Docker's own are at most one 16 KiB piece
 * plus the 31-byte prefix; anything far beyond that is not a log stream.
 */
export const MAX_FRAME_BYTES = 1024 * 1024;
/** `2006-01-02T15:04:05.000000000Z07:00` plus slack for older non-fixed-width daemons. */
const MAX_PREFIX_BYTES = 40;
const FIXED_PREFIX_BYTES = 30;
const HEADER_BYTES = 8;
const NL = 0x0a;
const EMPTY = Buffer.alloc(0);
const SPACE = 0x20;
/**
 * How far past this host's clock a prefix found inside a TTY message may be
 * (an engine's clock a little ahead). The engine stamps a message when it
 * reads it, so a later one is the container's own text: taken for a prefix,
 * it would become the container's checkpoint, and a stream opened again
 * from it (`since`) would skip every line until then.
 */
const ENGINE_AHEAD_S = 5;

interface PendingLine {
  timestamp: string;
  time: NanoTime;
  pieces: Buffer[];
  bytes: number;
  /** The line was cut at maxLineBytes before these pieces. */
  continued: boolean;
}

/** A TTY message whose prefix was read, and the body bytes it has so far. */
interface TtyMessage {
  timestamp: string;
  time: NanoTime;
  body: Buffer[];
  bodyBytes: number;
}

export class LogStreamParser {
  /** Bytes received and not yet consumed: chunks[head..], the first from `offset` on. */
  private readonly chunks: Buffer[] = [];
  private head = 0;
  private offset = 0;
  private queued = 0;
  private readonly pending = new Map<Stream, PendingLine>();
  /** Multiplexed: the header being waited for, or the payload size once it is known. */
  private frameType = -1;
  private frameSize = 0;
  /** TTY: the message whose prefix was read, and the body bytes it has so far. */
  private ttyMessage: TtyMessage | undefined;

  constructor(private readonly opts: ParserOptions) {}

  /** Appends the lines completed by `chunk` to `out` (a new array when not given). */
  push(chunk: Buffer, out: LogLine[] = []): LogLine[] {
    if (chunk.length === 0) return out;
    this.chunks.push(chunk);
    this.queued += chunk.length;
    if (this.opts.tty) this.drainTty(out);
    else this.drainFrames(out);
    return out;
  }

  /**
   * The timestamp of the line of `stream` whose pieces are held, waiting for
   * their last one: the engine sends them again only to a `since` at or
   * before it.
   */
  heldTimestamp(stream: Stream): string | undefined {
    return this.pending.get(stream)?.timestamp;
  }

  /**
   * The stream ended because the container stopped: a last line without `\n`
   * is complete now. (Not to be called when the stream broke for another
   * reason: the pieces will come again, whole, on the next read.)
   */
  end(): LogLine[] {
    const out: LogLine[] = [];
    // A full piece whose cut waited for bytes to tell: they will not come.
    if (this.ttyMessage?.bodyBytes === DOCKER_PIECE_BYTES && this.queued > 0) {
      this.cutFullPiece(out, this.ttyMessage, true);
      try {
        this.drainTty(out);
      } catch {
        // What is left is no message: the stream is over, and the lines before it stand.
      }
    }
    const msg = this.ttyMessage;
    if (msg && msg.bodyBytes > 0) this.addTtyPiece(out, msg, Buffer.concat(msg.body), false);
    this.ttyMessage = undefined;
    for (const stream of [...this.pending.keys()]) this.emitPending(out, stream);
    this.chunks.length = 0;
    this.head = 0;
    this.offset = 0;
    this.queued = 0;
    return out;
  }

  // Measured (bench/docker.bench.ts micro, one frame per read): reading
  // headers and payloads in place, one subarray per line, takes ~0.6 µs per
  // line against ~1.8 µs when header, payload and body were each sliced out.
  private drainFrames(out: LogLine[]): void {
    for (;;) {
      if (this.frameType < 0) {
        if (this.queued < HEADER_BYTES) return;
        let c = this.chunks[this.head]!;
        let o = this.offset;
        if (c.length - o >= HEADER_BYTES) this.skip(HEADER_BYTES);
        else {
          c = this.take(HEADER_BYTES);
          o = 0;
        }
        const type = c[o]!;
        const size = c.readUInt32BE(o + 4);
        if (type > 3 || c[o + 1] !== 0 || c[o + 2] !== 0 || c[o + 3] !== 0) {
          throw new ClogsError('CLOGS_FRAME_MALFORMED', `docker log stream: bad frame header ${c.toString('hex', o, o + HEADER_BYTES)}`);
        }
        if (size > MAX_FRAME_BYTES) {
          throw new ClogsError('CLOGS_FRAME_TOO_LARGE', `docker log stream: frame of ${size} bytes (limit ${MAX_FRAME_BYTES})`);
        }
        this.frameType = type;
        this.frameSize = size;
      }
      const size = this.frameSize;
      if (this.queued < size) return;
      let buf = this.chunks[this.head] ?? EMPTY;
      let start = this.offset;
      if (buf.length - start >= size) this.skip(size);
      else {
        buf = this.take(size);
        start = 0;
      }
      const end = start + size;
      const type = this.frameType;
      this.frameType = -1;
      if (type === 3) {
        this.opts.onDaemonError(buf.toString('utf8', start, end).trimEnd());
        continue;
      }
      const stream: Stream = type === 2 ? 'stderr' : 'stdout';
      const prefixEnd = findPrefixEnd(buf, start, end);
      const prefix = prefixEnd > 0 ? buf.toString('latin1', start, prefixEnd) : '';
      const time = parseDockerTime(prefix);
      if (!time) throw new ClogsError('CLOGS_FRAME_MALFORMED', 'docker log stream: message without a timestamp prefix');
      const timestamp = timestampOf(prefix, time);
      const bodyStart = prefixEnd + 1;
      const complete = end > bodyStart && buf[end - 1] === NL;
      this.addPiece(out, stream, timestamp, time, buf.subarray(bodyStart, complete ? end - 1 : end), complete);
    }
  }

  private drainTty(out: LogLine[]): void {
    for (;;) {
      if (!this.ttyMessage) {
        const head = this.peek(MAX_PREFIX_BYTES);
        const prefixEnd = findPrefixEnd(head, 0, head.length);
        if (prefixEnd < 0) {
          if (head.length >= MAX_PREFIX_BYTES) throw new ClogsError('CLOGS_FRAME_MALFORMED', 'docker log stream: TTY message without a timestamp prefix');
          return;
        }
        const prefix = head.toString('latin1', 0, prefixEnd);
        const time = parseDockerTime(prefix);
        if (!time) throw new ClogsError('CLOGS_FRAME_MALFORMED', 'docker log stream: TTY message without a timestamp prefix');
        this.take(prefixEnd + 1);
        const timestamp = timestampOf(prefix, time);
        this.ttyMessage = { timestamp, time, body: [], bodyBytes: 0 };
      }
      const msg = this.ttyMessage;
      // A TTY message ends at its `\n`, or after one full copier piece (then
      // the next prefix follows at once). Body bytes move out of the queue as
      // they are scanned, so each byte is looked at once.
      const first = this.chunks[this.head];
      if (!first) return;
      const room = DOCKER_PIECE_BYTES - msg.bodyBytes;
      const at = first.indexOf(NL, this.offset);
      const nl = at >= 0 && at - this.offset < room ? at - this.offset : -1;
      if (nl >= 0) {
        msg.body.push(this.take(nl + 1).subarray(0, nl));
        this.ttyMessage = undefined;
        this.addTtyPiece(out, msg, Buffer.concat(msg.body), true);
        continue;
      }
      const part = this.take(Math.min(first.length - this.offset, room));
      msg.body.push(part);
      msg.bodyBytes += part.length;
      if (msg.bodyBytes === DOCKER_PIECE_BYTES && !this.cutFullPiece(out, msg)) return;
    }
  }

  /**
   * A TTY message that filled a copier piece without `\n`: the next
   * message's prefix follows at once, unless this one was the short last
   * output of a run and the next run's prefix is inside what was taken as
   * its body, or straddles its end. Then the body is cut at that prefix
   * (addTtyPiece's rule) and the next message goes on from the bytes after
   * it, with a piece's room of its own: counted from the first message,
   * the cut fell inside the next one's piece, and the bytes after it, taken
   * for a prefix, failed the stream at every retry. False: more bytes are
   * needed to tell (not once the stream `ended`).
   */
  private cutFullPiece(out: LogLine[], msg: TtyMessage, ended = false): boolean {
    const head = this.peek(MAX_PREFIX_BYTES);
    const body = Buffer.concat([...msg.body, head]);
    const next = laterPrefix(body, FIXED_PREFIX_BYTES, msg.time);
    if (!next || next.start >= msg.bodyBytes) {
      // A full piece: the next message's prefix follows (drainTty reads it), once enough of it is here.
      if (!ended && head.length < MAX_PREFIX_BYTES && findPrefixEnd(head, 0, head.length) < 0) return false;
      this.ttyMessage = undefined;
      this.addTtyPiece(out, msg, Buffer.concat(msg.body), false);
      return true;
    }
    this.addPiece(out, 'stdout', msg.timestamp, msg.time, body.subarray(0, next.start), false);
    this.emitPending(out, 'stdout');
    const bodyStart = next.end + 1;
    // The rest of a prefix that straddles the cut is still queued.
    if (bodyStart > msg.bodyBytes) this.take(bodyStart - msg.bodyBytes);
    const rest = bodyStart < msg.bodyBytes ? Buffer.from(body.subarray(bodyStart, msg.bodyBytes)) : EMPTY;
    this.ttyMessage = { timestamp: formatNanoTime(next.time.sec, next.time.nsec), time: next.time, body: [rest], bodyBytes: rest.length };
    return true;
  }

  /**
   * A TTY container that stopped after output without `\n` and was started
   * again has that tail followed directly by the next message's prefix, with
   * no header to tell them apart. Split at a prefix whose time is later than
   * the message's own; a line that merely quotes an earlier timestamp stays whole.
   */
  private addTtyPiece(out: LogLine[], msg: { timestamp: string; time: NanoTime }, body: Buffer, complete: boolean): void {
    for (let next = laterPrefix(body, FIXED_PREFIX_BYTES, msg.time); next; next = laterPrefix(body, FIXED_PREFIX_BYTES, msg.time)) {
      this.addPiece(out, 'stdout', msg.timestamp, msg.time, body.subarray(0, next.start), false);
      this.emitPending(out, 'stdout');
      msg = { timestamp: formatNanoTime(next.time.sec, next.time.nsec), time: next.time };
      body = body.subarray(next.end + 1);
    }
    this.addPiece(out, 'stdout', msg.timestamp, msg.time, body, complete);
  }

  private addPiece(out: LogLine[], stream: Stream, timestamp: string, time: NanoTime, bytes: Buffer, complete: boolean): void {
    let p = this.pending.get(stream);
    // Pieces of one line share one timestamp; a different one means the
    // held piece was a last line without `\n` (container stopped, then restarted).
    if (p && p.timestamp !== timestamp) {
      this.emitPending(out, stream);
      p = undefined;
    }
    if (complete && !p) {
      out.push({ stream, timestamp, time, bytes });
      return;
    }
    if (!p) {
      p = { timestamp, time, pieces: [], bytes: 0, continued: false };
      this.pending.set(stream, p);
    }
    // Copied: a held piece must not pin the whole socket chunk it came in.
    p.pieces.push(complete ? bytes : Buffer.from(bytes));
    p.bytes += bytes.length;
    if (complete || p.bytes >= this.opts.maxLineBytes) this.emitPending(out, stream, !complete);
  }

  /**
   * `carry`: the line goes on (cut at maxLineBytes), and a character its
   * last bytes begin goes on with it, whole: the engine cuts pieces at byte
   * offsets, and decoded apart the halves would be two U+FFFD.
   */
  private emitPending(out: LogLine[], stream: Stream, carry = false): void {
    const p = this.pending.get(stream);
    if (!p) return;
    this.pending.delete(stream);
    // Nothing came after a cut before the line ended (another timestamp): nothing to write.
    if (p.continued && p.bytes === 0 && !carry) return;
    const joined = p.pieces.length === 1 ? p.pieces[0]! : Buffer.concat(p.pieces, p.bytes);
    const at = carry ? utf8CutPoint(joined, joined.length) : joined.length;
    const line: LogLine = { stream, timestamp: p.timestamp, time: p.time, bytes: at === joined.length ? joined : joined.subarray(0, at) };
    if (p.continued) line.continued = true;
    out.push(line);
    // The line goes on: what comes next of it is a continuation, held as such even before its first byte.
    if (carry) this.pending.set(stream, { timestamp: p.timestamp, time: p.time, pieces: at < joined.length ? [Buffer.from(joined.subarray(at))] : [], bytes: joined.length - at, continued: true });
  }

  /** Up to n bytes from the front, without consuming them. */
  private peek(n: number): Buffer {
    const first = this.chunks[this.head];
    if (!first) return EMPTY;
    if (first.length - this.offset >= n || this.chunks.length === this.head + 1) return first.subarray(this.offset, this.offset + n);
    const rest = this.chunks.slice(this.head);
    rest[0] = first.subarray(this.offset);
    return Buffer.concat(rest, Math.min(n, this.queued));
  }

  /** Consumes n bytes that lie in the first chunk. */
  private skip(n: number): void {
    this.queued -= n;
    this.offset += n;
    if (this.offset === this.chunks[this.head]!.length) this.dropHead();
  }

  /** Consumes exactly n bytes (n <= queued); no copy when they lie in one chunk. */
  private take(n: number): Buffer {
    if (n === 0) return EMPTY;
    const first = this.chunks[this.head]!;
    const o = this.offset;
    if (first.length - o >= n) {
      this.skip(n);
      return o === 0 && n === first.length ? first : first.subarray(o, o + n);
    }
    this.queued -= n;
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[this.head]!;
      const avail = c.length - this.offset;
      const want = n - filled;
      if (avail <= want) {
        c.copy(out, filled, this.offset);
        filled += avail;
        this.dropHead();
      } else {
        c.copy(out, filled, this.offset, this.offset + want);
        this.offset += want;
        filled = n;
      }
    }
    return out;
  }

  // An index instead of shift(): a stream read in tiny pieces would make
  // shift() quadratic.
  private dropHead(): void {
    this.head++;
    this.offset = 0;
    if (this.head === this.chunks.length) {
      this.chunks.length = 0;
      this.head = 0;
    } else if (this.head >= 1024) {
      this.chunks.splice(0, this.head);
      this.head = 0;
    }
  }
}

/**
 * The first prefix in `body`, past `from`, of a time later than `after`:
 * where it starts, where its space is, and its time. Docker's own form
 * only (`…Z `, FIXED_PREFIX_BYTES long); a line that merely quotes an
 * earlier timestamp is not one, nor one that quotes a time to come
 * (ENGINE_AHEAD_S).
 */
function laterPrefix(body: Buffer, from: number, after: NanoTime): { start: number; end: number; time: NanoTime } | undefined {
  const latest = Math.floor(Date.now() / 1000) + ENGINE_AHEAD_S;
  for (;;) {
    const at = body.indexOf('Z ', from, 'latin1');
    if (at < 0) return undefined;
    const start = at + 1 - FIXED_PREFIX_BYTES;
    const time = start > 0 ? parseDockerTime(body.toString('latin1', start, at + 1)) : undefined;
    if (time && compareNanoTime(time, after) > 0 && time.sec <= latest) return { start, end: at + 1, time };
    from = at + 2;
  }
}

/** Index of the space that ends the timestamp prefix of buf[start, end), or -1. */
function findPrefixEnd(buf: Buffer, start: number, end: number): number {
  const fixed = start + FIXED_PREFIX_BYTES;
  if (end > fixed && buf[fixed] === SPACE && buf[fixed - 1] === 0x5a /* Z */) return fixed;
  const limit = Math.min(end, start + MAX_PREFIX_BYTES);
  for (let i = start + 20; i < limit; i++) if (buf[i] === SPACE) return i;
  return -1;
}

let cachedDate = '';
let cachedSec = 0;
/** Whether `cachedDate` is written as formatNanoTime writes its time (Date.parse also takes hour 24 or February 30). */
let cachedCanonical = false;

/**
 * The `@timestamp` of a line whose prefix parsed to `time`: the prefix
 * itself when it is Docker's own form, exactly what formatNanoTime would
 * write (so the inputs' two paths agree), else formatNanoTime's text.
 */
function timestampOf(prefix: string, time: NanoTime): string {
  const fixed = prefix.length === FIXED_PREFIX_BYTES && prefix.charCodeAt(19) === 0x2e && prefix.charCodeAt(29) === 0x5a;
  return fixed && cachedCanonical && prefix.startsWith(cachedDate) ? prefix : formatNanoTime(time.sec, time.nsec);
}

/**
 * Docker's fixed-width `2026-11-22T09:54:12.667302120Z`, with the date part's
 * seconds cached: consecutive lines almost always share it. Anything else
 * (an older daemon that drops trailing zeros) goes through parseRfc3339.
 */
export function parseDockerTime(text: string): NanoTime | undefined {
  if (text.length !== FIXED_PREFIX_BYTES || text.charCodeAt(19) !== 0x2e || text.charCodeAt(29) !== 0x5a) return parseRfc3339(text);
  let nsec = 0;
  for (let i = 20; i < 29; i++) {
    const d = text.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return undefined;
    nsec = nsec * 10 + d;
  }
  if (cachedDate.length === 0 || !text.startsWith(cachedDate)) {
    const date = text.slice(0, 19);
    const ms = Date.parse(`${date}Z`);
    if (Number.isNaN(ms)) return undefined;
    cachedDate = date;
    cachedSec = ms / 1000;
    cachedCanonical = new Date(ms).toISOString().startsWith(date);
  }
  return { sec: cachedSec, nsec };
}
