import { describe, expect, it } from 'vitest';
import { createFormatter, shouldColor } from '../../../src/tail/format.js';
import { container, fakeId, makeEvent } from '../../helpers/tail.js';

const meta = container(fakeId('ab'), 'web');
const out = makeEvent({ container: meta, sec: 1795341190, nsec: 5, seq: 1, message: 'hello', stream: 'stdout' });
const err = makeEvent({ container: meta, sec: 1795341190, nsec: 6, seq: 2, message: 'oops', stream: 'stderr' });
const leveled = makeEvent({ container: meta, sec: 1795341190, nsec: 7, seq: 3, message: 'bad', stream: 'stdout', level: 'error' });
const warned = makeEvent({ container: meta, sec: 1795341190, nsec: 8, seq: 4, message: 'hm', stream: 'stdout', level: 'warn' });
const stored = (e: typeof out) => ({ event: e, raw: JSON.stringify(e) });

describe('createFormatter', () => {
  it('text: the message, with the level when known', () => {
    const f = createFormatter({ mode: 'text', timestamps: false, color: false, prefix: false });
    expect(f(stored(out))).toBe('hello\n');
    expect(f(stored(leveled))).toBe('ERROR bad\n');
    expect(f(stored(warned))).toBe('WARN  hm\n');
  });

  it('text: -t puts the stored 9-digit timestamp first; prefix names the source', () => {
    const f = createFormatter({ mode: 'text', timestamps: true, color: false, prefix: true });
    expect(f(stored(out))).toBe('2026-11-22T09:53:10.000000005Z web | hello\n');
  });

  it('json: the line exactly as stored', () => {
    const raw = '{"@timestamp":"2026-11-22T09:53:10.000000005Z","message":"hello","clogs":{"seq":1}}';
    const f = createFormatter({ mode: 'json', timestamps: true, color: true, prefix: true });
    expect(f({ event: out, raw })).toBe(raw + '\n');
  });

  it('raw: the message alone, whatever else is asked', () => {
    const f = createFormatter({ mode: 'raw', timestamps: true, color: true, prefix: true });
    expect(f(stored(leveled))).toBe('bad\n');
  });

  it('colours stderr red, errors bold red, warnings yellow, timestamps dim', () => {
    const f = createFormatter({ mode: 'text', timestamps: true, color: true, prefix: false });
    expect(f(stored(out))).toBe('\x1b[2m2026-11-22T09:53:10.000000005Z\x1b[0m hello\n');
    expect(f(stored(err))).toContain('\x1b[31moops\x1b[0m');
    expect(f(stored(leveled))).toContain('\x1b[1;31mERROR\x1b[0m \x1b[1;31mbad\x1b[0m');
    expect(f(stored(warned))).toContain('\x1b[33mhm\x1b[0m');
  });
});

describe('shouldColor', () => {
  it('only on a terminal, never with --no-color or a non-empty NO_COLOR', () => {
    expect(shouldColor({ colorFlag: true, isTTY: true, env: {} })).toBe(true);
    expect(shouldColor({ colorFlag: true, isTTY: false, env: {} })).toBe(false);
    expect(shouldColor({ colorFlag: false, isTTY: true, env: {} })).toBe(false);
    expect(shouldColor({ colorFlag: true, isTTY: true, env: { NO_COLOR: '1' } })).toBe(false);
    expect(shouldColor({ colorFlag: true, isTTY: true, env: { NO_COLOR: '' } })).toBe(true);
  });
});

describe('text output of control characters', () => {
  const at = (message: string, extra: { level?: string; tag?: string; stream?: 'stderr' } = {}) =>
    stored(makeEvent({ ...(extra.tag === undefined ? { container: meta } : { tag: extra.tag }), sec: 1795341190, seq: 9, message, ...extra }));
  const text = createFormatter({ mode: 'text', timestamps: false, color: false, prefix: false });
  const CONTROLS = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;

  it('shows an OSC 52 clipboard write, a CSI, a lone \\r, DEL and a C1 control as escapes', () => {
    expect(text(at('copy \x1b]52;c;cm0gLXJmIH4=\x07 done'))).toBe('copy \\x1b]52;c;cm0gLXJmIH4=\\x07 done\n');
    expect(text(at('\x1b[2J\x1b]0;pwned\x07title'))).toBe('\\x1b[2J\\x1b]0;pwned\\x07title\n');
    expect(text(at('ok\rERROR fake'))).toBe('ok\\x0dERROR fake\n');
    expect(text(at('del\x7f c1\x9b31m'))).toBe('del\\x7f c1\\x9b31m\n');
  });

  it('escapes them inside colours too, and in the source prefix and level', () => {
    const colored = createFormatter({ mode: 'text', timestamps: false, color: true, prefix: true });
    const line = colored(at('boom\x1b[0m', { tag: 'evil\x1b[2J\x1b]0;T\x07tag', level: 'x\x1b]0;T\x07', stream: 'stderr' }));
    expect(line).toBe('\x1b[36mevil\\x1b[2J\\x1b]0;T\\x07tag\x1b[0m | \x1b[31mX\\x1b]0;T\\x07\x1b[0m \x1b[31mboom\\x1b[0m\x1b[0m\n');
    const plain = createFormatter({ mode: 'text', timestamps: false, color: false, prefix: true });
    expect(plain(at('hi', { tag: 'evil\x1b[2Jtag' }))).toBe('evil\\x1b[2Jtag | hi\n');
    expect(plain(at('hi', { tag: 'evil\x1b[2Jtag' }))).not.toMatch(CONTROLS);
  });

  it('keeps the newlines and tabs of a joined stack trace', () => {
    const trace = 'Error: boom\n    at f (/app/a.js:1:2)\n\tat g (/app/b.js:3:4)';
    expect(text(at(trace))).toBe(trace + '\n');
  });

  it('json: leaves the stored line as it is (JSON escapes them already)', () => {
    const e = makeEvent({ container: meta, sec: 1795341190, seq: 9, message: 'ok\r\x1b]52;c;eA==\x07\x7f\x9b' });
    const raw = JSON.stringify(e);
    const json = createFormatter({ mode: 'json', timestamps: false, color: false, prefix: true });
    expect(json({ event: e, raw })).toBe(raw + '\n');
    expect(raw).toContain('ok\\r\\u001b]52;c;eA==\\u0007');
  });

  it('raw: the message as the application wrote it, for pipes', () => {
    const raw = createFormatter({ mode: 'raw', timestamps: false, color: false, prefix: false });
    expect(raw(at('ok\r\x1b[2J'))).toBe('ok\r\x1b[2J\n');
  });
});
