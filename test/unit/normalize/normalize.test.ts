import { describe, expect, it, vi } from 'vitest';
import { MAX_HELD_PIECE_BYTES, MAX_SOURCES_BY_NAME, type LineCut, type LineWatcher, type NormalizerOptions, type RawLine } from '../../../src/collector/normalize.js';
import { makeNormalizer } from '../multiline/helpers.js';

const make = (opts: Partial<NormalizerOptions> = {}) => makeNormalizer(undefined, { partialTimeoutMs: 100, ...opts });

const container = { id: 'c'.repeat(64), name: 'web' };
const line = (text: string | Buffer, more: Partial<RawLine> = {}): RawLine => ({
  input: 'forward',
  time: { sec: 1795341190, nsec: 526990943 },
  stream: 'stdout',
  line: text,
  container,
  ...more,
});

describe('Normalizer', () => {
  it('takes a line without its end of line, as Fluent Bit and Fluentd send json-file lines', () => {
    const { n } = make();
    const [json] = n.push(line('{"level":"error","msg":"db down","n":1}\n', { container: undefined, tag: 'tail.app' }));
    expect(json).toMatchObject({ message: 'db down', log: { level: 'error' }, attrs: { n: 1 } });
    const [logfmt] = n.push(line('level=warn msg="disk"\r\n', { container: undefined, tag: 'tail.app' }));
    expect(logfmt).toMatchObject({ message: 'disk', log: { level: 'warn' } });
    expect(n.push(line('plain\n'))[0]!.message).toBe('plain');
  });

  it('cuts one end of line, whether the multiline stage sees the line or not', () => {
    const lines = ['Error: x\n\n', 'Error: y\r\n\r\n', 'plain\n\n', 'TypeError: z\n'];
    for (const multiline of [undefined, {}]) {
      const { n } = makeNormalizer(multiline, { stripAnsi: false });
      const out = [...lines.flatMap((l) => n.push(line(l))), ...n.flushAll()];
      n.close();
      expect(out.map((e) => e.message)).toEqual(['Error: x\n', 'Error: y\r\n', 'plain\n', 'TypeError: z']);
    }
  });

  it('builds an ECS event with a 9-digit timestamp', () => {
    const { n } = make();
    const [e] = n.push(line('hello'));
    expect(e).toEqual({
      '@timestamp': '2026-11-22T09:53:10.526990943Z',
      message: 'hello',
      stream: 'stdout',
      container,
      host: { name: 'h' },
      clogs: { input: 'forward', seq: 0, ordinal: 0 },
    });
  });

  it('keeps leading zeros of the nanoseconds', () => {
    const { n } = make();
    expect(n.push(line('x', { time: { sec: 0, nsec: 5 } }))[0]!['@timestamp']).toBe('1970-01-01T00:00:00.000000005Z');
  });

  it('strips one trailing carriage return (TTY); with strip_ansi off, only that one', () => {
    const { n } = make({ stripAnsi: false });
    expect(n.push(line('tty line 1\r'))[0]!.message).toBe('tty line 1');
    expect(n.push(line('two\r\r'))[0]!.message).toBe('two\r');
    expect(make().n.push(line('two\r\r'))[0]!.message).toBe('two');
  });

  it('counts ordinals per source and stream at the same timestamp', () => {
    const { n } = make();
    const a = n.push(line('same'))[0]!;
    const b = n.push(line('same'))[0]!;
    const c = n.push(line('same', { stream: 'stderr' }))[0]!;
    const d = n.push(line('later', { time: { sec: 1795341191, nsec: 0 } }))[0]!;
    expect([a.clogs.ordinal, b.clogs.ordinal, c.clogs.ordinal, d.clogs.ordinal]).toEqual([0, 1, 0, 0]);
    expect(b.clogs.seq).toBeGreaterThan(a.clogs.seq);
  });

  it('keeps the ordinals of a bounded number of sources by name, a container still writing counting on', () => {
    const { n } = make();
    const t = { sec: 1795341190, nsec: 1 };
    const tagged = (i: number) => line('x', { container: undefined, tag: `job.${i}`, time: t });
    expect(n.push(line('first', { time: t }))[0]!.clogs.ordinal).toBe(0);
    expect(n.push(tagged(0))[0]!.clogs.ordinal).toBe(0);
    expect(n.push(tagged(0))[0]!.clogs.ordinal).toBe(1);
    for (let i = 1; i <= MAX_SOURCES_BY_NAME; i++) n.push(tagged(i));
    // The oldest names are forgotten: job.0 counts afresh, the container through its object.
    expect(n.push(tagged(0))[0]!.clogs.ordinal).toBe(0);
    expect(n.push(line('second', { time: t }))[0]!.clogs.ordinal).toBe(1);
  });

  it('continues ordinals from a seeded checkpoint', () => {
    const { n } = make();
    n.seedOrdinal(container.id, 'stdout', '2026-11-22T09:53:10.526990943Z', 3);
    expect(n.push(line('x'))[0]!.clogs.ordinal).toBe(3);
  });

  it('takes a new seed for a source it has seen (a stream read again from its checkpoint)', () => {
    const { n } = make();
    n.push(line('a'));
    n.push(line('b'));
    n.seedOrdinal(container.id, 'stdout', '2026-11-22T09:53:10.526990943Z', 1);
    expect(n.push(line('b'))[0]!.clogs.ordinal).toBe(1);
  });

  it('joins split pieces as bytes before decoding UTF-8', () => {
    const { n } = make();
    const text = Buffer.from('héllo ✓ wörld', 'utf8');
    // Cut inside the three-byte check mark.
    const cut = text.indexOf(0xe2) + 1;
    expect(n.push(line(text.subarray(0, cut), { partial: { id: 'p', ordinal: 1, last: false } }))).toEqual([]);
    expect(n.pending()).toBe(1);
    const [e] = n.push(line(text.subarray(cut), { partial: { id: 'p', ordinal: 2, last: true } }));
    expect(e!.message).toBe('héllo ✓ wörld');
    expect(n.pending()).toBe(0);
  });

  it('ends a line of exactly 16384 bytes on an empty last piece', () => {
    const { n } = make();
    const big = 'x'.repeat(16384);
    n.push(line(big, { partial: { id: 'q', ordinal: 1, last: false } }));
    const [e] = n.push(line('', { partial: { id: 'q', ordinal: 2, last: true } }));
    expect(e!.message).toBe(big);
  });

  it('takes a piece once when the request that brought it is sent again', () => {
    const { n } = make();
    n.push(line('one-', { partial: { id: 'r', ordinal: 1, last: false } }));
    n.push(line('two-', { partial: { id: 'r', ordinal: 2, last: false } }));
    // The write of those pieces' request failed; the client sends it again.
    expect(n.push(line('one-', { partial: { id: 'r', ordinal: 1, last: false } }))).toEqual([]);
    expect(n.push(line('two-', { partial: { id: 'r', ordinal: 2, last: false } }))).toEqual([]);
    expect(n.push(line('end', { partial: { id: 'r', ordinal: 3, last: true } }))[0]!.message).toBe('one-two-end');
    // Without ordinals, pieces are joined as they come.
    n.push(line('a', { partial: { id: 's', ordinal: 0, last: false } }));
    n.push(line('a', { partial: { id: 's', ordinal: 0, last: false } }));
    expect(n.push(line('b', { partial: { id: 's', ordinal: 0, last: true } }))[0]!.message).toBe('aab');
  });

  describe('a split line longer than maxLineBytes', () => {
    /** A watcher that notes what it is told, as `held a:0` (piece text, part) and `released id:part[:whole]`. */
    const watcher = (): { said: string[]; watch: LineWatcher } => {
      const said: string[] = [];
      return {
        said,
        watch: {
          held: () => undefined,
          released: () => undefined,
          heldPiece: (raw, part) => said.push(`held ${raw.line.toString()}:${part}`),
          releasedPieces: (id, part, whole) => said.push(`released ${id}:${part}${whole ? ':whole' : ''}`),
        },
      };
    };
    const piece = (text: string, ordinal: number, last = false, id = 'long'): RawLine => line(text, { partial: { id, ordinal, last } });

    it('is written in parts as its pieces come, each part a line of its own', () => {
      const { n } = make({ maxLineBytes: 8 });
      const { said, watch } = watcher();
      expect(n.push(piece('aaaa', 1), watch)).toEqual([]);
      expect(n.push(piece('bbbb', 2), watch).map((e) => e.message)).toEqual(['aaaabbbb']);
      expect(n.push(piece('cccccccccc', 3), watch).map((e) => [e.message, e.clogs.ordinal, e.clogs.piece])).toEqual([
        ['cccccccc', 1, 0],
        ['cc', 1, 1],
      ]);
      expect(n.push(piece('dd', 4), watch)).toEqual([]);
      expect(n.push(piece('e', 5, true), watch).map((e) => [e.message, e.clogs.ordinal])).toEqual([['dde', 2]]);
      expect(said).toEqual(['held aaaa:0', 'released long:0', 'released long:1', 'held dd:2', 'released long:2:whole']);
      expect(n.pending()).toBe(0);
    });

    it('writes no empty line for the empty last piece that ends a line cut at its end', () => {
      const { n } = make({ maxLineBytes: 8 });
      expect(n.push(piece('aaaabbbb', 1)).map((e) => e.message)).toEqual(['aaaabbbb']);
      expect(n.push(piece('', 2, true))).toEqual([]);
      expect(n.pending()).toBe(0);
    });

    it('is cut at once when it would take all lines together past MAX_HELD_PIECE_BYTES', () => {
      const { n } = make({ maxLineBytes: MAX_HELD_PIECE_BYTES / 2 });
      const { said, watch } = watcher();
      const big = 'x'.repeat((MAX_HELD_PIECE_BYTES * 5) / 16);
      n.push(piece(big, 1, false, 'first'), watch);
      n.push(piece(big, 1, false, 'second'), watch);
      n.push(piece(big, 1, false, 'third'), watch);
      said.length = 0;
      const more = 'y'.repeat(MAX_HELD_PIECE_BYTES / 8);
      // The line the piece came to, not one of the others (they may be another connection's).
      expect(n.push(piece(more, 1, false, 'fourth'), watch).map((e) => e.message)).toEqual([more]);
      expect(said).toEqual(['released fourth:0']);
      expect(n.push(piece('end', 2, true, 'fourth'), watch).map((e) => e.message)).toEqual(['end']);
      expect(n.push(piece('end', 2, true, 'first'), watch).map((e) => e.message.length)).toEqual([big.length + 3]);
    });

    it('counts each held piece, and each held line, toward MAX_HELD_PIECE_BYTES, not only their bytes', () => {
      const { n } = make();
      const { said, watch } = watcher();
      // Empty pieces weigh nothing as bytes; held by the ten thousand, they are most of the memory held.
      const lines = MAX_HELD_PIECE_BYTES / 512 + 100;
      let written = 0;
      for (let i = 0; i < lines; i++) written += n.push(piece('', 1, false, `id${i}`), watch).length;
      expect(written).toBeGreaterThanOrEqual(100);
      expect(said.filter((s) => s.startsWith('released')).length).toBe(written);
      n.close();
    });

    it('takes back the stored pieces of a part whose write failed, in place of what it holds since', () => {
      const { n } = make({ maxLineBytes: 8 });
      const { watch } = watcher();
      n.push(piece('aaaa', 1), watch);
      n.push(piece('bbbb', 2), watch);
      n.push(piece('cc', 3), watch);
      // The write with part 0 failed: its stored piece comes back, and the client sends pieces 2 and 3 again.
      n.restoreHeld([], new Set(['long']), [piece('aaaa', 1)]);
      expect(n.push(piece('bbbb', 2), watch).map((e) => e.message)).toEqual(['aaaabbbb']);
      expect(n.push(piece('cc', 3), watch)).toEqual([]);
      expect(n.push(piece('d', 4, true), watch).map((e) => e.message)).toEqual(['ccd']);
    });

    it('takes every resent piece of a part cut in a write that failed, also when none of it was stored', () => {
      const { n } = make({ maxLineBytes: 4 });
      const { watch } = watcher();
      expect(n.push(piece('aaaa', 1), watch).map((e) => e.message)).toEqual(['aaaa']);
      // That write failed, and nothing of the part was stored: the client sends piece 1 again.
      n.restoreHeld([], new Set(['long']), []);
      expect(n.push(piece('aaaa', 1), watch).map((e) => e.message)).toEqual(['aaaa']);
    });

    it('goes on in the part its stored pieces were in after a restart', () => {
      const { n } = make({ maxLineBytes: 8 });
      const { said, watch } = watcher();
      n.restoreHeld([], new Set(['long']), [line('cc', { partial: { id: 'long', ordinal: 3, last: false, part: 1 } })]);
      // Part 0 took ordinal 0 before the restart: part 1 is written again as it was, with ordinal 1.
      expect(n.push(piece('dddddd', 4), watch).map((e) => [e.message, e.clogs.ordinal])).toEqual([['ccdddddd', 1]]);
      expect(said).toEqual(['released long:1']);
    });
  });

  it('keeps pieces of different streams and containers apart', () => {
    const { n } = make();
    n.push(line('out-', { partial: { id: 'a', ordinal: 1, last: false } }));
    n.push(line('err-', { stream: 'stderr', partial: { id: 'b', ordinal: 1, last: false } }));
    expect(n.push(line('end', { stream: 'stderr', partial: { id: 'b', ordinal: 2, last: true } }))[0]!.message).toBe('err-end');
    expect(n.push(line('end', { partial: { id: 'a', ordinal: 2, last: true } }))[0]!.message).toBe('out-end');
  });

  /** A Normalizer whose split lines time out after 60 ms, and what its timeout flushes wrote and cut. */
  const flushingAt60ms = () => {
    const flushed: string[] = [];
    const cuts: LineCut[] = [];
    const { n } = make({
      partialTimeoutMs: 60,
      onTimeoutFlush: (events, c) => {
        flushed.push(...events.map((e) => e.message));
        cuts.push(...c);
      },
    });
    return { n, flushed, cuts };
  };

  it('writes a split line of empty pieces at the timeout like any other: its record was acked', async () => {
    const { n, flushed, cuts } = flushingAt60ms();
    n.push(line('', { partial: { id: 'e', ordinal: 1, last: false } }));
    await vi.waitFor(() => expect(cuts).toEqual([{ id: 'e', part: 0 }]), { timeout: 2000 });
    expect(flushed).toEqual(['']);
    await vi.waitFor(() => expect(n.pending()).toBe(0), { timeout: 2000 });
    n.close();
  });

  it('flushes a split line that never gets its last piece after the timeout, and takes a late piece as its next part', async () => {
    const { n, flushed, cuts } = flushingAt60ms();
    n.push(line('stdout without newline', { partial: { id: 'z', ordinal: 1, last: false } }));
    await vi.waitFor(() => expect(flushed).toEqual(['stdout without newline']), { timeout: 2000 });
    expect(cuts).toEqual([{ id: 'z', part: 0 }]);
    expect(n.push(line(', at last', { partial: { id: 'z', ordinal: 2, last: false } }))).toEqual([]);
    await vi.waitFor(() => expect(flushed).toEqual(['stdout without newline', ', at last']), { timeout: 2000 });
    expect(cuts).toEqual([{ id: 'z', part: 0 }, { id: 'z', part: 1 }]);
    // Idle after its last part was written: forgotten.
    await vi.waitFor(() => expect(n.pending()).toBe(0), { timeout: 2000 });
    n.close();
  });

  it('tells which held trace a split line written at its timeout let go', async () => {
    const traces: RawLine[] = [];
    const flushed: string[] = [];
    const { n } = makeNormalizer(
      { timeout: '1h' },
      {
        partialTimeoutMs: 60,
        onTimeoutFlush: (events, _cuts, t) => {
          flushed.push(...events.map((e) => e.message));
          traces.push(...t);
        },
      },
    );
    const head = line('Exception in thread "main" java.lang.IllegalStateException: boom');
    expect(n.push(head)).toEqual([]);
    expect(n.push(line('no newline yet', { partial: { id: 'p', ordinal: 1, last: false } }))).toEqual([]);
    await vi.waitFor(() => expect(flushed).toEqual([head.line, 'no newline yet']), { timeout: 2000 });
    expect(traces).toEqual([head]);
    n.close();
  });

  it('cuts a split line into parts between characters, though its pieces were cut inside them', () => {
    const { n } = make({ maxLineBytes: 32 });
    const text = '東京🚀'.repeat(20);
    const bytes = Buffer.from(text);
    const events = [];
    for (let at = 0, ordinal = 1; at < bytes.length; at += 16, ordinal++) {
      events.push(...n.push(line(bytes.subarray(at, at + 16), { partial: { id: 'cjk', ordinal, last: at + 16 >= bytes.length } })));
    }
    const parts = events.map((e) => e.message);
    expect(parts.length).toBeGreaterThan(1);
    expect(parts.join('')).toBe(text);
    for (const part of parts) expect(part).not.toContain('\ufffd');
    n.close();
  });

  it('reads a level and fields only from the first part of a split line cut at max_line_size', () => {
    const { n } = makeNormalizer({}, { maxLineBytes: 40 });
    // Each piece one part: 40 bytes, 40 bytes, then the last.
    const pieces = ['x'.repeat(40), 'ERROR {"level":"fatal"} tail'.padEnd(40, '.'), 'Exception in thread "main" java.X: y'];
    const events = pieces.flatMap((text, i) => n.push(line(text, { partial: { id: 'cut', ordinal: i + 1, last: i === pieces.length - 1 } })));
    expect(events.map((e) => [e.message, e.log?.level, e.attrs])).toEqual([
      ['x'.repeat(40), undefined, undefined],
      ['ERROR {"level":"fatal"} tail'.padEnd(40, '.'), undefined, undefined],
      ['Exception in thread "main" java.X: y', undefined, undefined],
    ]);
    // The last part opened no trace: nothing is held.
    expect(n.pending()).toBe(0);
    n.close();
  });

  it('counts partial_timeout from the last piece, not the first', async () => {
    // Pieces 50 ms apart for longer than the timeout.
    const { n, flushed } = make({ partialTimeoutMs: 400 });
    const started = Date.now();
    let i = 0;
    while (Date.now() - started < 600) {
      n.push(line('.', { partial: { id: 'slow', ordinal: ++i, last: false } }));
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(flushed).toEqual([]);
    expect(n.push(line('end', { partial: { id: 'slow', ordinal: i + 1, last: true } }))[0]!.message).toBe('.'.repeat(i) + 'end');
    n.close();
  });

  it('flushes held lines at shutdown and per source', () => {
    const { n } = make();
    n.push(line('a', { partial: { id: '1', ordinal: 1, last: false } }));
    n.push(line('b', { container: { id: 'other' }, partial: { id: '2', ordinal: 1, last: false } }));
    expect(n.flushSource('other').map((e) => e.message)).toEqual(['b']);
    expect(n.flushAll().map((e) => e.message)).toEqual(['a']);
  });

  it('parses pino JSON lines: message, numeric level, the rest under attrs', () => {
    const { n } = make();
    const [e] = n.push(line('{"level":50,"time":1,"pid":7,"msg":"boom","req":{"id":1}}'));
    expect(e!.message).toBe('boom');
    expect(e!.log).toEqual({ level: 'error' });
    expect(e!.attrs).toEqual({ time: 1, pid: 7, req: { id: 1 } });
  });

  it('parses logrus and zap level names', () => {
    const { n } = make();
    expect(n.push(line('{"level":"warning","msg":"w"}'))[0]!.log).toEqual({ level: 'warn' });
    expect(n.push(line('{"L":"INFO","M":"zap"}'))[0]).toMatchObject({ message: 'zap', log: { level: 'info' } });
  });

  it('reads the level of ECS-format lines (ecs-logging, Log4j2 EcsLayout) from their log.level key', () => {
    const { n } = make();
    const [e] = n.push(line('{"@timestamp":"2026-12-02T03:04:05.678Z","log.level":"WARN","message":"disk low","ecs.version":"1.6.0","service.name":"api"}'));
    expect(e).toMatchObject({ message: 'disk low', log: { level: 'warn' } });
    expect(e!.attrs).toEqual({ '@timestamp': '2026-12-02T03:04:05.678Z', 'ecs.version': '1.6.0', 'service.name': 'api' });
  });

  it('takes a level named like an Object property as a name, not as what Object has', () => {
    const { n } = make();
    expect(n.push(line('{"level":"constructor","msg":"c"}'))[0]!.log).toEqual({ level: 'constructor' });
    expect(n.push(line('{"level":"toString","msg":"t"}'))[0]!.log).toEqual({ level: 'tostring' });
  });

  it('leaves non-JSON and non-object lines as they are', () => {
    const { n } = make();
    for (const text of ['{not json}', '[1,2]', '{"k":"v"', 'plain']) {
      const [e] = n.push(line(text));
      expect(e!.message).toBe(text);
      expect(e!.attrs).toBeUndefined();
    }
  });

  it('keeps a JSON line without a message field whole', () => {
    const { n } = make();
    const [e] = n.push(line('{"k":"v","n":1}'));
    expect(e!.message).toBe('{"k":"v","n":1}');
    expect(e!.attrs).toEqual({ k: 'v', n: 1 });
  });

  it('does not parse JSON when switched off', () => {
    const { n } = make({ parseJson: false });
    expect(n.push(line('{"msg":"x"}'))[0]!.attrs).toBeUndefined();
  });

  it('keeps every key of a non-Docker record under attrs and reads its level', () => {
    const { n } = make();
    const [e] = n.push({ input: 'forward', time: { sec: 1, nsec: 0 }, line: 'hi', tag: 'app.web', extra: { level: 'error', msg: 'hi', user: 'u' } });
    expect(e).toMatchObject({ message: 'hi', log: { level: 'error' }, attrs: { level: 'error', msg: 'hi', user: 'u' }, clogs: { tag: 'app.web' } });
    expect(e!.container).toBeUndefined();
  });

  it('cuts over-long lines into pieces at character boundaries', () => {
    const { n } = make({ maxLineBytes: 10 });
    const events = n.push(line('ééééééééé'));
    expect(events.map((e) => e.clogs.piece)).toEqual([0, 1]);
    expect(events.map((e) => e.message).join('')).toBe('ééééééééé');
    expect(events.every((e) => Buffer.byteLength(e.message) <= 10)).toBe(true);
    expect(events.map((e) => e.clogs.ordinal)).toEqual([0, 0]);
    expect(n.push(line('next'))[0]!.clogs.ordinal).toBe(1);
    // Three- and four-byte characters across every cut.
    const mixed = 'a😀✓😀✓é😀😀bc✓😀';
    const pieces = n.push(line(mixed)).map((e) => e.message);
    expect(pieces.join('')).toBe(mixed);
    expect(pieces.every((m) => Buffer.byteLength(m) <= 10 && !m.includes('\uFFFD'))).toBe(true);
  });

  it('turns invalid UTF-8 into U+FFFD', () => {
    const { n } = make();
    expect(n.push(line(Buffer.from([0x69, 0x3a, 0x20, 0xff, 0xfe])))[0]!.message).toBe('i: \ufffd\ufffd');
  });
});

describe('Normalizer: text lines (escapes, logfmt, leading levels)', () => {
  it('strips escapes before reading the level: logrus TextFormatter on a terminal', () => {
    const { n } = make();
    const [e] = n.push(line('\x1b[33mWARN\x1b[0m[0000] containerd: low RLIMIT_NOFILE changing to max  current=1024 max=4096\r'));
    expect(e!.message).toBe('WARN[0000] containerd: low RLIMIT_NOFILE changing to max  current=1024 max=4096');
    expect(e!.log).toEqual({ level: 'warn' });
  });

  it('keeps escapes with strip_ansi off, and then a coloured token is no leading token', () => {
    const { n } = make({ stripAnsi: false });
    const [e] = n.push(line('\x1b[31mERROR\x1b[0m disk full'));
    expect(e!.message).toBe('\x1b[31mERROR\x1b[0m disk full');
    expect(e!.log).toBeUndefined();
  });

  it('parses a logfmt line like a JSON line: msg, level, the rest as strings under attrs', () => {
    const { n } = make();
    const [e] = n.push(line('time="2026-11-29T12:00:00Z" level=warning msg="cache \\"hot\\" keys" component=cache keys=4711'));
    expect(e!.message).toBe('cache "hot" keys');
    expect(e!.log).toEqual({ level: 'warn' });
    expect(e!.attrs).toEqual({ time: '2026-11-29T12:00:00Z', component: 'cache', keys: '4711' });
    const [slog] = n.push(line('time=2022-11-08T15:28:26.000-05:00 lvl=ERROR message=boom'));
    expect(slog).toMatchObject({ message: 'boom', log: { level: 'error' }, attrs: { time: '2022-11-08T15:28:26.000-05:00' } });
  });

  it('keeps a logfmt line without msg whole as its message', () => {
    const { n } = make();
    const [e] = n.push(line('at=info method=GET path=/ status=200'));
    expect(e!.message).toBe('at=info method=GET path=/ status=200');
    expect(e!.log).toBeUndefined();
    expect(e!.attrs).toEqual({ at: 'info', method: 'GET', path: '/', status: '200' });
  });

  it('with parse_logfmt off, keeps the line whole and reads only a leading level= pair', () => {
    const { n } = make({ parseLogfmt: false });
    const [e] = n.push(line('level=info msg=hello a=1'));
    expect(e!.message).toBe('level=info msg=hello a=1');
    expect(e!.attrs).toBeUndefined();
    expect(e!.log).toEqual({ level: 'info' });
  });

  it('gives a text line the level it starts with, and a record level comes first', () => {
    const { n } = make();
    expect(n.push(line('2026-11-29 17:41:07,668 - simple_example - WARNING - warn message'))[0]!.log).toEqual({ level: 'warn' });
    expect(n.push(line('user said error occurred'))[0]!.log).toBeUndefined();
    const [e] = n.push({ input: 'forward', time: { sec: 1, nsec: 0 }, line: 'ERROR x', tag: 't', extra: { severity: 'debug' } });
    expect(e!.log).toEqual({ level: 'debug' });
  });

  it('reads the level of a cut line from its first piece only', () => {
    const { n } = make({ maxLineBytes: 10 });
    const events = n.push(line('ERROR 1234 INFO 56789'));
    expect(events.map((e) => e.log?.level)).toEqual(['error', undefined, undefined]);
  });

  it('never reads a JSON line as text', () => {
    const { n } = make({ parseJson: false });
    expect(n.push(line('{"level":"error"}'))[0]!.log).toBeUndefined();
  });
});
