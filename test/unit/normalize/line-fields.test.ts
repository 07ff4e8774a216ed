import { describe, expect, it } from 'vitest';
import { encodeEvent } from '../../../src/collector/event-json.js';
import { LineBuffer } from '../../../src/collector/line-buffer.js';
import type { ContainerMeta, LogEvent } from '../../../src/collector/event.js';
import { forEachLine, LineFields, LineMarks } from '../../../src/collector/line-fields.js';

const web: ContainerMeta = {
  id: 'c'.repeat(64),
  name: 'web',
  image: { name: 'nginx:1.27' },
  labels: { 'a"b': '{"x":[1,2]}', 'com.docker.compose.service': 'web', q: 'ends in \\' },
  compose: { service: 'web' },
};

// Strings that trip a field scanner: escaped quotes, a backslash before the
// closing quote, the keys the scanner looks for, non-ASCII, control characters.
const tricky = [
  'plain',
  '',
  'say "hi"',
  'ends in a backslash \\',
  '\\"',
  ',"clogs":{"input":"docker","seq":1,"ordinal":2}}',
  'café 東京 🚀',
  'tab\there\nnew line\u0001',
  '"stream":"stderr"',
];

function* events(): Generator<LogEvent> {
  let seq = 1_795_000_000_000_000;
  for (const message of tricky) {
    for (const stream of [undefined, 'stdout', 'stderr'] as const) {
      for (const container of [undefined, web]) {
        const e: LogEvent = {
          '@timestamp': '2026-11-29T12:00:00.123456789Z',
          message,
          host: { name: 'h"1' },
          clogs: { input: container ? 'docker' : 'forward', seq: seq++, ordinal: seq % 3 },
        };
        if (stream) e.stream = stream;
        if (container) e.container = container;
        if (seq % 2 === 0) e.log = { level: seq % 4 === 0 ? 'warn' : message.slice(0, 5) };
        if (seq % 5 === 0) e.log = {};
        if (seq % 3 === 0) e.attrs = { clogs: { input: 'x', tag: message }, n: 1.5, deep: { a: [message, { b: null }] } };
        if (!container) e.clogs.tag = message === '' ? undefined : message;
        if (seq % 7 === 0) e.clogs.piece = seq % 11;
        yield e;
      }
    }
  }
}

describe('LineFields', () => {
  it('finds every field of rendered lines, whatever their strings hold', () => {
    const list = [...events()];
    const out = new LineBuffer(64);
    const marks = new LineMarks();
    for (const e of list) encodeEvent(e, out, marks);
    const chunks = out.take();
    const read = new LineFields();
    let i = 0;
    forEachLine(chunks, marks, new LineFields(), (f) => {
      // What the renderer marked is what reading the bytes finds.
      read.read(f.buf, f.start);
      for (const k of ['end', 'messageEnd', 'stream', 'levelAt', 'levelEnd', 'attrsAt', 'attrsEnd', 'inputAt', 'inputEnd', 'tagAt', 'tagEnd', 'seqAt', 'seqEnd', 'ordinal', 'piece'] as const) {
        expect(f[k], k).toBe(read[k]);
      }
      const e = list[i++]!;
      expect(f.timestamp()).toBe(e['@timestamp']);
      expect(f.message()).toBe(e.message);
      expect(f.stream).toBe(e.stream);
      expect(f.level()).toBe(e.log?.level);
      expect(f.attrsJson()).toBe(e.attrs === undefined ? undefined : JSON.stringify(e.attrs));
      expect(f.input()).toBe(e.clogs.input);
      expect(f.tag()).toBe(e.clogs.tag);
      expect(f.seq()).toBe(String(e.clogs.seq));
      expect(f.ordinal).toBe(e.clogs.ordinal);
      expect(f.piece).toBe(e.clogs.piece ?? -1);
      expect(JSON.parse(f.line().toString())).toEqual(e);
    });
    expect(i).toBe(list.length);
  });

  it('refuses a line clogs did not render rather than guess', () => {
    const fields = new LineFields();
    expect(() => fields.read(Buffer.from('{"@timestamp":"2026-11-29T12:00:00.123456789Z","message":"x"}\n'), 0)).toThrow(/not a line clogs rendered/);
  });
});
