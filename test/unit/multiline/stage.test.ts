import { describe, expect, it, vi } from 'vitest';
import { multilineSchema } from '../../../src/config/schema.js';
import type { LogEvent } from '../../../src/collector/event.js';
import type { LineWatcher, RawLine } from '../../../src/collector/normalize.js';
import { labelMode } from '../../../src/collector/multiline/modes.js';
import { makeNormalizer, raw, trace } from './helpers.js';

const JAVA = trace('java-caused-by.txt');
const PY = trace('python-simple.txt');

const other = Object.freeze({ id: 'b'.repeat(64), name: 'cart' });

/** Each event from a line of its own, in the order of the lines (raw() gives each line a later time). */
const inOrder = (events: LogEvent[]): boolean => events.every((e, i) => i === 0 || e['@timestamp'] > events[i - 1]!['@timestamp']);

describe('multiline stage', () => {
  it('keeps stdout and stderr, and two containers, apart', () => {
    const { n } = makeNormalizer();
    const out: LogEvent[] = [];
    for (let i = 0; i < Math.max(JAVA.length, PY.length); i++) {
      if (i < JAVA.length) out.push(...n.push(raw(JAVA[i]!, { stream: 'stderr' })));
      if (i < PY.length) out.push(...n.push(raw(PY[i]!, { stream: 'stdout' })));
      if (i < PY.length) out.push(...n.push(raw(PY[i]!, { container: other })));
      out.push(...n.push(raw(`plain ${i}`, { stream: 'stdout', container: other })));
    }
    out.push(...n.flushAll());
    n.close();
    const of = (id: string, stream: string) => out.filter((e) => e.container?.id === id && e.stream === stream).map((e) => e.message);
    expect(of('a'.repeat(64), 'stderr')).toEqual([JAVA.join('\n')]);
    expect(of('a'.repeat(64), 'stdout')).toEqual([PY.join('\n')]);
    expect(of(other.id, 'stderr')).toEqual([PY.join('\n')]);
    expect(of(other.id, 'stdout')).toHaveLength(Math.max(JAVA.length, PY.length));
  });

  it('gives the joined event its first line\'s time and ordinal; joined lines take no ordinal', () => {
    const { n } = makeNormalizer();
    const time = { sec: 1795341190, nsec: 0 };
    const out: LogEvent[] = [];
    for (const l of ['before', ...PY, 'after']) out.push(...n.push(raw(l, { time })));
    n.close();
    expect(out.map((e) => [e.message, e['@timestamp'], e.clogs.ordinal])).toEqual([
      ['before', '2026-11-22T09:53:10.000000000Z', 0],
      [PY.join('\n'), '2026-11-22T09:53:10.000000000Z', 1],
      ['after', '2026-11-22T09:53:10.000000000Z', 2],
    ]);
  });

  it('writes a held trace out after the timeout, through onTimeoutFlush', async () => {
    vi.useFakeTimers();
    try {
      const { n, flushed } = makeNormalizer({ timeout: '1s' });
      for (const l of PY) expect(n.push(raw(l))).toEqual([]);
      expect(n.pending()).toBe(1);
      await vi.advanceTimersByTimeAsync(600);
      expect(flushed).toEqual([]);
      await vi.advanceTimersByTimeAsync(1000);
      expect(flushed.map((e) => e.message)).toEqual([PY.join('\n')]);
      expect(n.pending()).toBe(0);
      n.close();
    } finally {
      vi.useRealTimers();
    }
  });

  it('takes back the stored pieces of a split line whose write failed, and drops the trace that took its joined line', () => {
    const piece = (text: string, ordinal: number, last: boolean) => raw(text, { partial: { id: 'p', ordinal, last }, time: { sec: 1795341191, nsec: 0 } });
    const plain = makeNormalizer(undefined).n;
    const first = piece('GET /a ', 1, false);
    plain.push(first);
    expect(plain.push(piece('200', 2, true)).map((e) => e.message)).toEqual(['GET /a 200']);
    // That line's write failed; piece 1 had been acked and stored, and the client resends piece 2 alone.
    plain.restoreHeld([], new Set([first.partial!.id]), [first]);
    expect(plain.push(piece('200', 2, true)).map((e) => e.message)).toEqual(['GET /a 200']);
    plain.close();

    // A trace took the joined line (a split "at" line) in the write that failed: dropped, and built again
    // from its stored first line; the resent last piece joins it once.
    const { n } = makeNormalizer();
    const opener = raw(JAVA[0]!, { time: { sec: 1795341190, nsec: 0 } });
    n.push(opener);
    const at = (text: string, ordinal: number, last: boolean) => raw(text, { partial: { id: 'q', ordinal, last }, time: { sec: 1795341191, nsec: 0 } });
    const half = JAVA[1]!.length >> 1;
    const firstHalf = at(JAVA[1]!.slice(0, half), 1, false);
    n.push(firstHalf);
    n.push(at(JAVA[1]!.slice(half), 2, true));
    n.restoreHeld([opener], new Set(['q']), [opener, firstHalf]);
    expect(n.push(at(JAVA[1]!.slice(half), 2, true))).toEqual([]);
    const events = [...n.push(raw('after'))];
    expect(events.map((e) => e.message)).toEqual([`${JAVA[0]}\n${JAVA[1]}`, 'after']);
    n.close();
  });

  it('writes out what a source holds when it ends, and only that source', () => {
    const { n } = makeNormalizer();
    for (const l of JAVA) n.push(raw(l));
    for (const l of PY) n.push(raw(l, { container: other }));
    expect(n.flushSource(other.id).map((e) => e.message)).toEqual([PY.join('\n')]);
    expect(n.heldFirst('a'.repeat(64), 'stderr')?.line.toString()).toBe(JAVA[0]);
    n.dropSource('a'.repeat(64));
    expect(n.flushAll()).toEqual([]);
    n.close();
  });

  it('holds at most MAX_HELD_TRACE_BYTES of traces for all sources together: a trace that would pass it ends as it is', () => {
    const { n } = makeNormalizer({ max_bytes: '1MiB' });
    const frame = `\tat com.example.Service.handle(Service.java:42) ${'x'.repeat(64 * 1024)}`;
    const containers = Array.from({ length: 24 }, (_, i) => Object.freeze({ id: String(i).padStart(64, 'c'), name: `c${i}` }));
    const out: LogEvent[] = [];
    // 24 traces of about 960 KiB each, one per container, each still open.
    for (const container of containers) {
      out.push(...n.push(raw('java.lang.IllegalStateException: boom', { container })));
      for (let i = 0; i < 15; i++) out.push(...n.push(raw(frame, { container })));
    }
    const held = containers.filter((c) => !out.some((e) => e.container?.id === c.id));
    // 16 MiB take 17 such traces at most; the others went out, line by line or cut short.
    expect(held.length).toBeGreaterThan(10);
    expect(held.length).toBeLessThanOrEqual(17);
    const all = [...out, ...n.flushAll()];
    n.close();
    // Nothing is lost: every line is in an event of its container.
    for (const c of containers) expect(all.filter((e) => e.container?.id === c.id).reduce((k, e) => k + e.message.split('\n').length, 0)).toBe(16);
  });

  it('cuts at max_lines and max_bytes, marks the cut event, and keeps the rest joined', () => {
    const byLines = makeNormalizer({ max_lines: 5 });
    const out: LogEvent[] = [];
    for (const l of JAVA) out.push(...byLines.n.push(raw(l)));
    out.push(...byLines.n.flushAll());
    byLines.n.close();
    expect(out.map((e) => e.message)).toEqual([JAVA.slice(0, 5).join('\n'), JAVA.slice(5, 10).join('\n'), JAVA.slice(10, 15).join('\n'), JAVA.slice(15).join('\n')]);
    expect(out.map((e) => e.clogs.truncated)).toEqual([true, true, true, undefined]);

    const byBytes = makeNormalizer({ max_bytes: 200 });
    const cut: LogEvent[] = [];
    for (const l of JAVA) cut.push(...byBytes.n.push(raw(l)));
    cut.push(...byBytes.n.flushAll());
    byBytes.n.close();
    for (const e of cut) expect(Buffer.byteLength(e.message)).toBeLessThanOrEqual(200);
    expect(cut.map((e) => e.message).join('\n')).toBe(JAVA.join('\n'));
    expect(cut.at(-1)!.clogs.truncated).toBeUndefined();
    expect(cut.slice(0, -1).every((e) => e.clogs.truncated === true)).toBe(true);
  });

  it('follows the clogs.multiline label of a container over the config', () => {
    const labelled = (value: string) => Object.freeze({ id: 'c'.repeat(64), labels: { 'clogs.multiline': value } });
    const run = (value: string, lines: string[], mode = 'auto') => {
      const { n } = makeNormalizer({ mode });
      const container = labelled(value);
      const out = lines.flatMap((l) => n.push(raw(l, { container })));
      out.push(...n.flushAll());
      n.close();
      return out.map((e) => e.message);
    };
    expect(run('off', PY)).toEqual(PY);
    expect(run('java', PY)).toEqual(PY);
    expect(run('python', PY, 'off')).toEqual([PY.join('\n')]);
    expect(run('regex:^\\d{4}-', ['2026-11-29 first', 'more of it', '  and this', '2026-11-29 second', 'tail'])).toEqual([
      '2026-11-29 first\nmore of it\n  and this',
      '2026-11-29 second\ntail',
    ]);
    // A bad label is reported once and the config applies.
    expect(run('regex:(', PY)).toEqual([PY.join('\n')]);
    expect(run('cobol', PY)).toEqual([PY.join('\n')]);
  });

  it('runs a label\'s pattern in time linear in the line, and refuses one that cannot run so: an image cannot stall the collector', () => {
    const labelled = Object.freeze({ id: 'e'.repeat(64), labels: { 'clogs.multiline': 'regex:^(a+)+$' } });
    const { n } = makeNormalizer({ mode: 'off' });
    // Backtracking, this line would take longer than the age of the universe; it is 100 KB.
    const line = `${'a'.repeat(100_000)}!`;
    const out = [line, 'aaaa', 'next'].flatMap((l) => n.push(raw(l, { container: labelled })));
    out.push(...n.flushAll());
    n.close();
    expect(out.map((e) => e.message)).toEqual([line, 'aaaa\nnext']);
    expect(labelMode('regex:(?<=x)y')).toMatch(/^regex: .*cannot be executed in linear time.*lookarounds/i);
    expect(labelMode('regex:(a)\\1')).toMatch(/linear time/);
    expect(labelMode('regex:^\\d{4}-')).toMatchObject({ anyLine: true });
  });

  it('ends a held trace when a clogs.multiline=off label comes with its next line; the lines keep their order', () => {
    const id = 'd'.repeat(64);
    // A forward container's labels come with its Docker lookup: its first lines may come before them.
    const unlabelled = Object.freeze({ id });
    const off = Object.freeze({ id, labels: { 'clogs.multiline': 'off' } });
    const run = (first: string[], then: string[]) => {
      const { n } = makeNormalizer();
      const out = first.flatMap((l) => n.push(raw(l, { container: unlabelled })));
      expect(out).toEqual([]);
      expect(n.holds(off, undefined, 'docker', 'stderr', Buffer.from(then[0]!), 0, then[0]!.length)).toBe(true);
      out.push(...then.flatMap((l) => n.push(raw(l, { container: off }))));
      expect(n.pending()).toBe(0);
      expect(n.holds(off, undefined, 'docker', 'stderr', Buffer.from(then[0]!), 0, then[0]!.length)).toBe(false);
      n.close();
      expect(inOrder(out)).toBe(true);
      return out.map((e) => e.message);
    };
    expect(run([JAVA[0]!], [JAVA[1]!, 'after'])).toEqual([JAVA[0], JAVA[1], 'after']);
    // Tentative lines go out between the trace and the line, as they came.
    expect(run(['panic: boom', ''], ['goroutine 1 [running]:', 'after'])).toEqual(['panic: boom', '', 'goroutine 1 [running]:', 'after']);
  });

  it('joins custom start and continuation patterns from the config', () => {
    const { n } = makeNormalizer({ mode: 'regex', start: '^\\[\\d+\\]', continue: '^\\s' });
    const lines = ['[1] query failed', '  select *', '  from t', 'unrelated', '  indented but after a non-start', '[2] ok'];
    const out = lines.flatMap((l) => n.push(raw(l)));
    out.push(...n.flushAll());
    n.close();
    expect(out.map((e) => e.message)).toEqual(['[1] query failed\n  select *\n  from t', 'unrelated', '  indented but after a non-start', '[2] ok']);
  });

  it('rejects bad patterns at config load, naming the key', () => {
    const err = multilineSchema.safeParse({ mode: 'regex', start: '(' });
    expect(err.success).toBe(false);
    expect(err.error!.issues[0]).toMatchObject({ path: ['start'], message: expect.stringMatching(/regular expression/) });
    expect(multilineSchema.safeParse({ mode: 'regex' }).success).toBe(false);
    expect(multilineSchema.safeParse({ mode: 'java', continue: '^\\s' }).success).toBe(false);
  });

  it('tells the input which lines it holds and when their event goes out', () => {
    const { n } = makeNormalizer();
    const held: Array<[string, string]> = [];
    const released: string[] = [];
    const watch: LineWatcher = {
      held: (first: RawLine, line: RawLine) => held.push([first.line.toString(), line.line.toString()]),
      released: (first: RawLine) => released.push(first.line.toString()),
      heldPiece: () => undefined,
      releasedPieces: () => undefined,
    };
    for (const l of ['plain', ...PY, 'after']) n.push(raw(l), watch);
    n.close();
    expect(held).toEqual(PY.map((l) => [PY[0], l]));
    expect(released).toEqual([PY[0]]);
  });

  it('lets blank lines after a trace go once they would pass max_lines, in order, each line once', () => {
    const { n } = makeNormalizer();
    const lines = ['panic: boom', ...Array.from({ length: 20_000 }, () => '')];
    const out: LogEvent[] = [];
    const outAfter: number[] = [];
    for (const l of lines) {
      out.push(...n.push(raw(l)));
      outAfter.push(out.length);
    }
    // max_lines (500) counts the trace's line and 499 tentative ones; the next one ends it.
    expect(outAfter.findIndex((c) => c > 0)).toBe(500);
    expect(outAfter[500]).toBe(501);
    expect(n.pending()).toBe(0);
    expect(n.flushAll()).toEqual([]);
    n.close();
    expect(out.map((e) => e.message)).toEqual(lines);
    expect(inOrder(out)).toBe(true);
    expect(out.some((e) => e.clogs.truncated)).toBe(false);
  });

  it('ends a trace as it is when a tentative line would pass max_lines or max_bytes, and tells the input', () => {
    const { n } = makeNormalizer({ max_lines: 5 });
    const held: Array<[string, string]> = [];
    const released: string[] = [];
    const watch: LineWatcher = {
      held: (first: RawLine, line: RawLine) => held.push([first.line.toString(), line.line.toString()]),
      released: (first: RawLine) => released.push(first.line.toString()),
      heldPiece: () => undefined,
      releasedPieces: () => undefined,
    };
    const goroutine = 'goroutine 1 [running]:';
    const out = ['panic: boom', '', '', goroutine, '', '\t', 'after'].flatMap((l) => n.push(raw(l), watch));
    n.close();
    // The blank lines before the goroutine were confirmed; the two after it would make six lines.
    expect(out.map((e) => [e.message, e.clogs.truncated])).toEqual([
      [`panic: boom\n\n\n${goroutine}`, undefined],
      ['', undefined],
      ['\t', undefined],
      ['after', undefined],
    ]);
    expect(held).toEqual(['panic: boom', '', '', goroutine, ''].map((l) => ['panic: boom', l]));
    expect(released).toEqual(['panic: boom']);

    const byBytes = makeNormalizer({ max_bytes: 30 });
    const spaces = ' '.repeat(9);
    const cut = ['panic: boom', spaces, spaces, 'after'].flatMap((l) => byBytes.n.push(raw(l)));
    byBytes.n.close();
    // 11 bytes, then 10 with its "\n": the second would make 31.
    expect(cut.map((e) => e.message)).toEqual(['panic: boom', spaces, spaces, 'after']);
  });

  it('writes a trace out after its timeout while blank lines keep coming; they follow as events of their own', async () => {
    vi.useFakeTimers();
    try {
      const events: LogEvent[] = [];
      const { n } = makeNormalizer({ timeout: '1s' }, { onTimeoutFlush: (flushed) => events.push(...flushed) });
      events.push(...n.push(raw('panic: boom')));
      let traceAt: number | undefined;
      // A blank line every 100 ms for 3 s, far past the timeout.
      for (let ms = 100; ms <= 3000; ms += 100) {
        await vi.advanceTimersByTimeAsync(100);
        if (traceAt === undefined && events.length > 0) traceAt = ms;
        events.push(...n.push(raw('')));
      }
      expect(traceAt).toBeGreaterThanOrEqual(1000);
      expect(traceAt).toBeLessThan(2000);
      expect(n.pending()).toBe(0);
      expect(n.flushAll()).toEqual([]);
      n.close();
      expect(events.map((e) => e.message)).toEqual(['panic: boom', ...Array.from({ length: 30 }, () => '')]);
      expect(inOrder(events)).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });

  it('asks only for lines a trace could start, or while one is held (holds)', () => {
    const { n } = makeNormalizer();
    const c = Object.freeze({ id: 'a'.repeat(64) });
    const ask = (s: string) => n.holds(c, undefined, 'forward', 'stderr', Buffer.from(s), 0, s.length);
    expect(ask('2026-11-29 INFO ok')).toBe(false);
    expect(ask(PY[0]!)).toBe(true);
    n.push(raw(PY[0]!, { container: c }));
    expect(ask('2026-11-29 INFO ok')).toBe(true);
    expect(n.holds(c, undefined, 'forward', 'stdout', Buffer.from('2026-11-29 INFO ok'), 0, 18)).toBe(false);
    n.close();
  });
});
