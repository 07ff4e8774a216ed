import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LogStreamParser, MAX_FRAME_BYTES, type LogLine } from '../../../src/collector/docker/frames.js';
import { formatNanoTime } from '../../../src/collector/time.js';

const API = join(process.cwd(), 'test/fixtures/docker/api');

interface DecodedFrame {
  stream?: string;
  text?: string;
  text_head?: string;
  text_tail?: string;
  text_chars?: number;
  hex?: string;
}
interface Decoded {
  format: string;
  frames?: DecodedFrame[];
  pieces_split_on_LF?: DecodedFrame[];
}

/** What a line should look like: its bytes, or (long lines) length, head and tail. */
interface Expected {
  stream: string;
  timestamp: string;
  bytes?: Buffer;
  length?: number;
  head?: string;
  tail?: string;
}

const TS = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z) /;

/**
 * Reference reading of a decoded capture, written independently of the
 * parser: strip each message's prefix, then join pieces with one timestamp
 * until one ends in "\n".
 */
function expectedLines(d: Decoded, tty: boolean): Expected[] {
  const out: Expected[] = [];
  let open: Expected | undefined;
  for (const f of d.frames ?? d.pieces_split_on_LF ?? []) {
    const stream = tty ? 'stdout' : f.stream!;
    const first = f.hex ? Buffer.from(f.hex, 'hex').toString('latin1') : (f.text ?? f.text_head!);
    const timestamp = TS.exec(first)![1]!;
    const strip = timestamp.length + 1;
    let piece: Expected;
    if (f.text_chars !== undefined) {
      piece = { stream, timestamp, length: f.text_chars - strip, head: f.text_head!.slice(strip), tail: f.text_tail! };
    } else {
      const raw = f.hex ? Buffer.from(f.hex, 'hex') : Buffer.from(f.text!, 'utf8');
      piece = { stream, timestamp, bytes: raw.subarray(strip) };
    }
    const ends = piece.bytes ? piece.bytes[piece.bytes.length - 1] === 0x0a : piece.tail!.endsWith('\n');
    if (piece.bytes && ends) piece.bytes = piece.bytes.subarray(0, -1);
    if (!piece.bytes && ends) piece.tail = piece.tail!.slice(0, -1);
    if (open && open.timestamp === timestamp && open.stream === stream) {
      const len = (open.length ?? open.bytes!.length) + (piece.length ?? piece.bytes!.length) - (piece.bytes ? 0 : ends ? 1 : 0);
      open = { stream, timestamp, length: len, head: open.head ?? open.bytes!.toString('latin1'), tail: piece.tail ?? piece.bytes!.toString('latin1') };
    } else {
      if (open) out.push(open);
      open = piece.length !== undefined ? { ...piece, length: piece.length - (ends ? 1 : 0) } : piece;
    }
    if (ends) {
      out.push(open);
      open = undefined;
    }
  }
  if (open) out.push(open);
  return out;
}

function check(lines: LogLine[], expected: Expected[]): void {
  expect(lines.map((l) => [l.stream, l.timestamp])).toEqual(expected.map((e) => [e.stream, e.timestamp]));
  lines.forEach((l, i) => {
    const e = expected[i]!;
    if (e.bytes) expect(l.bytes.equals(e.bytes), `line ${i}: ${l.bytes.toString('latin1')}`).toBe(true);
    else {
      expect(l.bytes.length).toBe(e.length);
      expect(l.bytes.toString('latin1').startsWith(e.head!)).toBe(true);
      expect(l.bytes.toString('latin1').endsWith(e.tail!)).toBe(true);
    }
  });
}

function parser(tty: boolean, errors: string[] = [], maxLineBytes = 1024 * 1024): LogStreamParser {
  return new LogStreamParser({ tty, maxLineBytes, onDaemonError: (m) => errors.push(m) });
}

/** Feeds the bytes in the given read sizes and ends the stream (container stopped). */
function feed(bytes: Buffer, sizes: (i: number) => number, tty: boolean): LogLine[] {
  const p = parser(tty);
  const out: LogLine[] = [];
  for (let at = 0; at < bytes.length; ) {
    const n = Math.max(1, Math.min(sizes(at), bytes.length - at));
    out.push(...p.push(bytes.subarray(at, at + n)));
    at += n;
  }
  out.push(...p.end());
  return out;
}

function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const captures = readdirSync(API).filter((f) => f.endsWith('-timestamps.bin'));

describe('LogStreamParser on the captured Engine API bodies', () => {
  it('has the captures to test', () => {
    expect(captures.length).toBeGreaterThanOrEqual(6);
  });

  for (const file of captures) {
    const name = file.replace(/\.bin$/, '');
    const bytes = readFileSync(join(API, file));
    const decoded = JSON.parse(readFileSync(join(API, `${name}.decoded.json`), 'utf8')) as Decoded;
    const tty = decoded.format.startsWith('raw');
    const expected = expectedLines(decoded, tty);

    it(`${name}: whole body`, () => {
      check(feed(bytes, () => bytes.length, tty), expected);
    });

    it(`${name}: split at every byte (${bytes.length <= 4096 ? 'all' : 'sampled'} offsets)`, () => {
      const step = bytes.length <= 4096 ? 1 : 61;
      for (let cut = 1; cut < bytes.length; cut += step) {
        check(feed(bytes, (at) => (at === 0 ? cut : bytes.length), tty), expected);
      }
    });

    it(`${name}: one byte at a time and random read sizes`, () => {
      check(feed(bytes, () => 1, tty), expected);
      for (let seed = 1; seed <= 20; seed++) {
        const rnd = seededRandom(seed);
        check(feed(bytes, () => 1 + Math.floor(rnd() * 5000), tty), expected);
      }
    });
  }

  it('the timestamp-less twin of each capture has the same text', () => {
    for (const file of captures) {
      const twin = file.replace('-timestamps.bin', '.decoded.json');
      let decoded: Decoded;
      try {
        decoded = JSON.parse(readFileSync(join(API, twin), 'utf8')) as Decoded;
      } catch {
        continue;
      }
      const tty = decoded.format.startsWith('raw');
      const bytes = readFileSync(join(API, file));
      const lines = feed(bytes, () => 7, tty);
      const texts = (decoded.frames ?? decoded.pieces_split_on_LF ?? []).map((f) => f.text ?? f.text_head ?? '');
      const joined = texts.join('');
      // Every line's text appears, in order, in the timestamp-less body.
      let at = 0;
      for (const l of lines) {
        const head = l.bytes.toString('utf8').slice(0, 40);
        const i = joined.indexOf(head, at);
        expect(i, `${twin}: ${head}`).toBeGreaterThanOrEqual(0);
        at = i;
      }
    }
  });
});

describe('LogStreamParser details', () => {
  const seqText = (n: number) => {
    const all: string[] = [];
    for (let i = 1; i <= 20000; i++) all.push(String(i));
    return all.join(',').slice(0, n);
  };

  it('joins the three frames of a 40000-char line and the empty last piece of a 16384-char line', () => {
    const bytes = readFileSync(join(API, 'c-long-lines-timestamps.bin'));
    const lines = feed(bytes, () => 4093, false);
    expect(lines.map((l) => l.bytes.toString())).toEqual([seqText(40000), seqText(16384), seqText(16383), 'after long lines']);
    expect(lines[0]!.timestamp).toBe('2026-11-22T09:54:12.667302120Z');
  });

  it('keeps invalid UTF-8 as bytes, and hands out a last line without newline only at the end', () => {
    const bytes = readFileSync(join(API, 'g-dual-sync-endpoint-up-timestamps.bin'));
    const p = parser(false);
    const live = p.push(bytes);
    expect(live.map((l) => l.bytes.toString('latin1'))).toEqual(['dual stdout', 'dual stderr', 'dual bad: \xff\xfe']);
    expect(live.map((l) => l.stream)).toEqual(['stdout', 'stderr', 'stdout']);
    const tail = p.end();
    expect(tail.map((l) => l.bytes.toString())).toEqual(['dual no newline']);
  });

  it('closes a line without newline when the next message on its stream has another timestamp (container restarted)', () => {
    const p = parser(false);
    const out = p.push(Buffer.concat([frame(1, '2026-11-22T09:54:13.000000001Z tail'), frame(1, '2026-11-22T09:54:14.000000001Z next\n')]));
    expect(out.map((l) => [l.timestamp, l.bytes.toString()])).toEqual([
      ['2026-11-22T09:54:13.000000001Z', 'tail'],
      ['2026-11-22T09:54:14.000000001Z', 'next'],
    ]);
  });

  it('keeps stdout and stderr pieces apart', () => {
    const ts = '2026-11-22T09:54:13.000000001Z ';
    const p = parser(false);
    const out = p.push(Buffer.concat([frame(1, ts + 'out-a'), frame(2, ts + 'err\n'), frame(1, ts + 'out-b\n')]));
    expect(out.map((l) => [l.stream, l.bytes.toString()])).toEqual([
      ['stderr', 'err'],
      ['stdout', 'out-aout-b'],
    ]);
  });

  it('says per stream the timestamp of the line whose pieces it holds', () => {
    const ts = '2026-11-22T09:54:13.000000001Z';
    const p = parser(false);
    p.push(Buffer.concat([frame(2, `${ts} ${'x'.repeat(16384)}`), frame(1, '2026-11-22T09:54:13.000000002Z out\n')]));
    expect(p.heldTimestamp('stderr')).toBe(ts);
    expect(p.heldTimestamp('stdout')).toBeUndefined();
    expect(p.push(frame(2, `${ts} \n`)).map((l) => l.bytes.length)).toEqual([16384]);
    expect(p.heldTimestamp('stderr')).toBeUndefined();
  });

  it('reports a type-3 frame as a daemon error, not data, and keeps parsing', () => {
    const errors: string[] = [];
    const p = parser(false, errors);
    const out = p.push(Buffer.concat([frame(1, '2026-11-22T09:54:13.000000001Z a\n'), frame(3, 'Error grabbing logs: unexpected EOF\n'), frame(2, '2026-11-22T09:54:13.000000002Z b\n')]));
    expect(out.map((l) => l.bytes.toString())).toEqual(['a', 'b']);
    expect(errors).toEqual(['Error grabbing logs: unexpected EOF']);
  });

  it('rejects a bad header, an oversized frame and a message without a timestamp', () => {
    expect(() => parser(false).push(Buffer.from([9, 0, 0, 0, 0, 0, 0, 1, 65]))).toThrow(/bad frame header/);
    const big = Buffer.alloc(8);
    big[0] = 1;
    big.writeUInt32BE(MAX_FRAME_BYTES + 1, 4);
    expect(() => parser(false).push(big)).toThrow(expect.objectContaining({ code: 'CLOGS_FRAME_TOO_LARGE' }));
    expect(() => parser(false).push(frame(1, 'no timestamp here at all, just text\n'))).toThrow(expect.objectContaining({ code: 'CLOGS_FRAME_MALFORMED' }));
    expect(() => parser(true).push(Buffer.from('x'.repeat(100)))).toThrow(expect.objectContaining({ code: 'CLOGS_FRAME_MALFORMED' }));
  });

  it('TTY: keeps \\r for the Normalizer, splits 16 KiB pieces and joins them', () => {
    const ts = '2026-11-22T09:54:12.004140852Z ';
    const long = 'y'.repeat(40000) + '\r';
    const body = Buffer.from(ts + long.slice(0, 16384) + ts + long.slice(16384, 32768) + ts + long.slice(32768) + '\n' + ts + 'short\r\n');
    for (const size of [1, 3, 1000, body.length]) {
      const lines = feed(body, () => size, true);
      expect(lines.map((l) => l.bytes.toString())).toEqual([long, 'short\r']);
    }
  });

  it('TTY: a 16384-byte line ends with a piece that is only a newline', () => {
    const ts = '2026-11-22T09:54:12.004140852Z ';
    const line = 'z'.repeat(16384);
    const body = Buffer.from(ts + line + ts + '\n' + '2026-11-22T09:54:12.004140853Z after\r\n');
    expect(feed(body, () => 5, true).map((l) => l.bytes.toString())).toEqual([line, 'after\r']);
  });

  it('TTY: a tail without newline followed by a later prefix (restarted container) is its own line', () => {
    const body = Buffer.from('2026-11-22T09:54:12.000000001Z tail no newline2026-11-22T09:54:15.000000001Z next run\r\n');
    const lines = feed(body, () => 4, true);
    expect(lines.map((l) => [l.timestamp, l.bytes.toString()])).toEqual([
      ['2026-11-22T09:54:12.000000001Z', 'tail no newline'],
      ['2026-11-22T09:54:15.000000001Z', 'next run\r'],
    ]);
    // An earlier timestamp inside a line is the application's text, not a boundary.
    const quoted = feed(Buffer.from('2026-11-22T09:54:12.000000001Z app says 2026-11-22T09:54:11.000000001Z hi\r\n'), () => 9, true);
    expect(quoted.map((l) => l.bytes.toString())).toEqual(['app says 2026-11-22T09:54:11.000000001Z hi\r']);
  });

  it('TTY: a time to come in a line is the application\'s text, never a prefix that would become the checkpoint', () => {
    // The engine stamps what it reads, so no prefix is later than now; taken
    // for one, 2099 would be the container's position, and `since` would skip every line until then.
    const soon = formatNanoTime(Math.floor(Date.now() / 1000) + 60, 1);
    for (const future of ['2099-01-01T00:00:00.000000000Z', soon]) {
      const lines = feed(Buffer.from(`2026-11-22T09:54:12.000000001Z cert expires x${future} renew\r\n`), () => 6, true);
      expect(lines.map((l) => [l.timestamp, l.bytes.toString()])).toEqual([['2026-11-22T09:54:12.000000001Z', `cert expires x${future} renew\r`]]);
    }
  });

  it('TTY: a run\'s tail without newline, then a line of several pieces: each piece is counted from its own prefix', () => {
    const run1 = '2026-11-22T09:54:12.000000001Z ';
    const run2 = '2026-11-22T09:54:15.000000001Z ';
    const tail = 't'.repeat(5000);
    const long = 'L'.repeat(20000);
    // The prefix of the next run inside what a count from the tail's prefix takes, and straddling its end.
    for (const tailBytes of [5000, 16384 - 10]) {
      const t = tail.repeat(4).slice(0, tailBytes);
      const body = Buffer.from(run1 + t + run2 + long.slice(0, 16384) + run2 + long.slice(16384) + '\n' + run2 + 'after\n');
      for (const size of [1, 7, 4096, body.length]) {
        const p = parser(true);
        const lines: LogLine[] = [];
        for (let at = 0; at < body.length; at += size) p.push(body.subarray(at, at + size), lines);
        expect(lines.map((l) => [l.timestamp, l.bytes.length])).toEqual([
          ['2026-11-22T09:54:12.000000001Z', tailBytes],
          ['2026-11-22T09:54:15.000000001Z', 20000],
          ['2026-11-22T09:54:15.000000001Z', 5],
        ]);
      }
    }
  });

  it('TTY: a run\'s tail without newline that nearly fills a piece, then a short line: read at once, and at the end', () => {
    const run1 = '2026-11-22T09:54:12.000000001Z ';
    const run2 = '2026-11-22T09:54:15.000000001Z ';
    const tail = 'x'.repeat(16360);
    const p = parser(true);
    expect(p.push(Buffer.from(run1 + tail + run2 + 'hello world\n')).map((l) => [l.timestamp, l.bytes.length])).toEqual([
      ['2026-11-22T09:54:12.000000001Z', 16360],
      ['2026-11-22T09:54:15.000000001Z', 11],
    ]);
    // The stream ends with the next run's few bytes still queued behind the cut.
    const q = parser(true);
    const lines = q.push(Buffer.from(run1 + tail + run2 + 'hi'));
    lines.push(...q.end());
    expect(lines.map((l) => [l.timestamp, l.bytes.toString().slice(-2)])).toEqual([
      ['2026-11-22T09:54:12.000000001Z', 'xx'],
      ['2026-11-22T09:54:15.000000001Z', 'hi'],
    ]);
  });

  it('cuts a line at maxLineBytes, keeping the timestamp for every part', () => {
    const ts = '2026-11-22T09:54:13.000000001Z ';
    const p = parser(false, [], 20000);
    const out = p.push(Buffer.concat([frame(1, ts + 'a'.repeat(16384)), frame(1, ts + 'b'.repeat(16384)), frame(1, ts + 'c'.repeat(10) + '\n')]));
    expect(out.map((l) => l.bytes.length)).toEqual([32768, 10]);
    expect(new Set(out.map((l) => l.timestamp)).size).toBe(1);
    // Only the first part starts the line.
    expect(out.map((l) => l.continued)).toEqual([undefined, true]);
    const next = p.push(frame(1, '2026-11-22T09:54:14.000000001Z next line\n'));
    expect(next.map((l) => [l.bytes.toString(), l.continued])).toEqual([['next line', undefined]]);
  });

  it('writes a prefix that is not Docker\'s own UTC form as formatNanoTime does, whatever its length', () => {
    const out = parser(false).push(Buffer.concat([frame(1, '2026-11-22T09:54:12.6673+01:00 offset\n'), frame(1, '2026-11-22T24:00:00.000000001Z hour 24\n'), frame(1, '2026-11-22T09:54:12.000000001Z own\n')]));
    expect(out.map((l) => [l.timestamp, l.bytes.toString()])).toEqual([
      ['2026-11-22T08:54:12.667300000Z', 'offset'],
      ['2026-11-23T00:00:00.000000001Z', 'hour 24'],
      ['2026-11-22T09:54:12.000000001Z', 'own'],
    ]);
  });

  it('cuts a line at maxLineBytes between characters, though the engine cut its pieces inside one', () => {
    const ts = '2026-11-22T09:54:13.000000001Z ';
    const text = '東京🚀'.repeat(2000);
    const bytes = Buffer.from(text);
    // The engine's 16 KiB pieces, cut at byte offsets.
    const pieces: Buffer[] = [];
    for (let at = 0; at < bytes.length; at += 16384) pieces.push(Buffer.concat([Buffer.from(ts), bytes.subarray(at, at + 16384), at + 16384 >= bytes.length ? Buffer.from('\n') : Buffer.alloc(0)]));
    const frames = pieces.map((payload) => {
      const header = Buffer.alloc(8);
      header[0] = 1;
      header.writeUInt32BE(payload.length, 4);
      return Buffer.concat([header, payload]);
    });
    const out = parser(false, [], 16384).push(Buffer.concat(frames));
    expect(out.length).toBeGreaterThan(1);
    const parts = out.map((l) => l.bytes.toString('utf8'));
    expect(parts.join('')).toBe(text);
    for (const part of parts) expect(part).not.toContain('\ufffd');
  });
});

function frame(type: number, payload: string): Buffer {
  const body = Buffer.from(payload, 'utf8');
  const header = Buffer.alloc(8);
  header[0] = type;
  header.writeUInt32BE(body.length, 4);
  return Buffer.concat([header, body]);
}
