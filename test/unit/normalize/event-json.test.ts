import { describe, expect, it } from 'vitest';
import type { LogEvent } from '../../../src/collector/event.js';
import { encodeEvent, encodeLine } from '../../../src/collector/event-json.js';
import { LineBuffer } from '../../../src/collector/line-buffer.js';
import { forEachLine, LineFields, LineMarks } from '../../../src/collector/line-fields.js';
import { container, event } from '../file-sink/helpers.js';

const TRICKY = [
  '',
  'plain ascii',
  'quotes " and \\ backslash \\"',
  'new\nline and \r\n and \t tab',
  'nul \u0000 and \u001f unit separator and \u007f DEL',
  'replacement \uFFFD from invalid UTF-8',
  'emoji 😀 and flags 🇫🇷 and ZWJ 👩‍💻',
  'line separators \u2028 \u2029',
  'lone high \ud83d and lone low \ude00 surrogates',
  'Straße, 日本語, عربى',
  '</script><!-- -->',
  'x'.repeat(100_000),
];

/** What the sink must write: JSON.stringify's JSON, keys in LogEvent's declared order. */
function canonical(e: LogEvent): LogEvent {
  const { '@timestamp': ts, message, stream, container: c, host, log, attrs, clogs } = e;
  const out: Record<string, unknown> = { '@timestamp': ts, message };
  if (stream !== undefined) out.stream = stream;
  if (c !== undefined) out.container = c;
  out.host = host;
  if (log !== undefined) out.log = log;
  if (attrs !== undefined) out.attrs = attrs;
  const { input, tag, seq, ordinal, piece } = clogs;
  out.clogs = { input, ...(tag !== undefined ? { tag } : {}), seq, ordinal, ...(piece !== undefined ? { piece } : {}) };
  return out as unknown as LogEvent;
}

function expectSameAsStringify(e: LogEvent): void {
  const line = encodeLine(e);
  expect(line.endsWith('\n')).toBe(true);
  expect(line.indexOf('\n')).toBe(line.length - 1);
  expect(JSON.parse(line)).toEqual(JSON.parse(JSON.stringify(e)));
  expect(line).toBe(JSON.stringify(canonical(e)) + '\n');
}

describe('encodeEvent', () => {
  it.each(TRICKY.map((s) => [s.slice(0, 40), s]))('writes the message %j as JSON.stringify does', (_name, s) => {
    expectSameAsStringify(event(s));
    expectSameAsStringify(event('m', { stream: 'stderr', container: container(s, s, { labels: { [s]: s } }), tag: s, log: { level: s }, attrs: { [s]: [s, { s }] } }));
  });

  it('keeps every field, and omits the undefined ones like JSON.stringify', () => {
    const c = container('web', 'abc', { labels: { 'com.docker.compose.service': 'web' }, compose: { project: 'p', service: 'web' } });
    expectSameAsStringify(event('full', { stream: 'stdout', container: c, log: { level: 'warn' }, attrs: { n: 1, f: 1.5, b: true, z: null, nested: { a: [1, 'two'] } }, tag: 'docker.abc' }));
    const sparse = event('sparse', { stream: undefined, container: undefined, log: {}, attrs: undefined });
    sparse.clogs.piece = 3;
    expectSameAsStringify(sparse);
    const withUndefinedAttr = event('u', { attrs: { gone: undefined, kept: 1 } });
    expect(JSON.parse(encodeLine(withUndefinedAttr))).toEqual({ ...JSON.parse(JSON.stringify(withUndefinedAttr)) });
  });

  it('prints numbers as JSON.stringify does, large sequence numbers included', () => {
    for (const n of [0, 7, 99_999_999, 100_000_000, 100_000_001, 1_795_000_000_000_123, Number.MAX_SAFE_INTEGER, 2 ** 60, 1.5, -3, NaN, Infinity]) {
      const e = event('n');
      e.clogs.seq = n;
      e.clogs.ordinal = n;
      expectSameAsStringify(e);
    }
  });

  it('reuses a container rendering by identity but never mixes containers up', () => {
    const a = container('a');
    const b = container('b');
    const out = new LineBuffer(64);
    const marks = new LineMarks();
    for (let i = 0; i < 50; i++) encodeEvent(event(`m${i}`, { container: i % 3 === 0 ? a : b }), out, marks);
    const lines = Buffer.concat(out.take()).toString().split('\n').slice(0, -1).map((l) => JSON.parse(l) as LogEvent);
    expect(lines).toHaveLength(50);
    lines.forEach((e, i) => {
      expect(e.message).toBe(`m${i}`);
      expect(e.container?.name).toBe(i % 3 === 0 ? 'a' : 'b');
    });
  });

  it('keeps an event whose attributes nest too deep to serialize, with the reason in place of the member that does', () => {
    const deep = JSON.parse(`{"before":1,"a":${'['.repeat(200_000)}${']'.repeat(200_000)},"__proto__":"p","after":{"b":"c"}}`) as Record<string, unknown>;
    const line = JSON.parse(encodeLine(event('deep', { attrs: deep })));
    expect(line.message).toBe('deep');
    expect(line.attrs).toEqual({ before: 1, a: { clogs_unserializable: expect.stringMatching(/call stack/) }, ['__proto__']: 'p', after: { b: 'c' } });
    expect(Object.keys(line.attrs)).toEqual(['before', 'a', '__proto__', 'after']);
  });

  it('never lets a line span two chunks', () => {
    const out = new LineBuffer(16);
    const marks = new LineMarks();
    const messages = Array.from({ length: 200 }, (_, i) => 'é'.repeat(i * 7));
    for (const m of messages) encodeEvent(event(m), out, marks);
    const chunks = out.take();
    expect(chunks.length).toBeGreaterThan(1);
    const all: string[] = [];
    for (const chunk of chunks) {
      expect(chunk[chunk.length - 1]).toBe(0x0a);
      all.push(...chunk.toString().split('\n').slice(0, -1));
    }
    expect(all.map((l) => (JSON.parse(l) as LogEvent).message)).toEqual(messages);
    // The marks stay right for lines moved to a new chunk as they were written.
    const seen: string[] = [];
    forEachLine(chunks, marks, new LineFields(), (f) => seen.push(f.message()));
    expect(seen).toEqual(messages);
  });
});
