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
