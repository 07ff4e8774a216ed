/**
 * Lines as real programs wrote them to a terminal (captured with `script`),
 * one line each, the newline (and the CR a TTY adds) already cut.
 */
import { describe, expect, it } from 'vitest';
import { hasTerminalControls, stripTerminal } from '../../../src/collector/transforms/ansi.js';

describe('stripTerminal', () => {
  it('removes SGR colours: ls --color=always (GNU coreutils 9.1)', () => {
    expect(stripTerminal('\x1b[0m\x1b[01;32ma.txt\x1b[0m')).toBe('a.txt');
    expect(stripTerminal('\x1b[01;34mdir\x1b[0m')).toBe('dir');
  });

  it('removes colours and erase-in-line: grep --color=always (GNU grep 3.8)', () => {
    expect(stripTerminal('the \x1b[01;31m\x1b[Kerror\x1b[m\x1b[K was here')).toBe('the error was here');
  });

  it('removes OSC 8 hyperlinks ended by BEL: ls --hyperlink=always --color=always', () => {
    expect(stripTerminal('\x1b[0m\x1b[01;32m\x1b]8;;file://vm/tmp/textfx/a.txt\x07a.txt\x1b]8;;\x07\x1b[0m')).toBe('a.txt');
  });

  it('removes OSC ended by ST, and window titles', () => {
    expect(stripTerminal('\x1b]8;;https://example.com\x1b\\link\x1b]8;;\x1b\\ text')).toBe('link text');
    expect(stripTerminal('\x1b]0;build: step 3/7\x07step 3')).toBe('step 3');
  });

  it('keeps the last drawing of a \\r progress bar: curl -# (7.88.1)', () => {
    const bar = '\r' + '#'.repeat(72) + ' 100.0%';
    expect(stripTerminal(bar)).toBe('#'.repeat(72) + ' 100.0%');
  });

  it('keeps the last drawing of a \\r progress bar: wget --progress=bar:force (1.21.3)', () => {
    const line =
      '\r/dev/null             0%[                    ]       0  --.-KB/s               ' +
      '\r/dev/null            50%[=========>          ]   1.44M  1024KB/s               ' +
      '\r/dev/null           100%[===================>]   2.86M  1.06MB/s    in 2.7s    ';
    expect(stripTerminal(line)).toBe('/dev/null           100%[===================>]   2.86M  1.06MB/s    in 2.7s    ');
  });

  it('drops the \\r a redraw ends with, and keeps the drawing before it', () => {
    expect(stripTerminal('downloading 45%\r')).toBe('downloading 45%');
    expect(stripTerminal('\x1b[2K\rdone\x1b[K')).toBe('done');
  });

  it('removes docker compose coloured service prefixes (aec colours) but keeps the text', () => {
    expect(stripTerminal('\x1b[36mweb-1  | \x1b[0m2026-11-29 12:00:00.123  INFO 1 --- [main] c.e.App : Started')).toBe(
      'web-1  | 2026-11-29 12:00:00.123  INFO 1 --- [main] c.e.App : Started',
    );
  });

  it('removes two- and three-byte ESC sequences: save/restore cursor, charset selection, reset', () => {
    expect(stripTerminal('\x1b7saved\x1b8')).toBe('saved');
    expect(stripTerminal('\x1b(Bplain\x1b(0')).toBe('plain');
    expect(stripTerminal('\x1bcafter reset')).toBe('after reset');
    expect(stripTerminal('\x1b[?25lhidden cursor\x1b[?25h')).toBe('hidden cursor');
  });

  it('never eats text: broken and cut-off sequences lose only their escape bytes', () => {
    // A CSI cut by the end of the line.
    expect(stripTerminal('red text\x1b[31')).toBe('red text');
    expect(stripTerminal('ends with ESC\x1b')).toBe('ends with ESC');
    // A CSI broken by a byte that cannot be in it: the byte and what follows stay.
    expect(stripTerminal('a\x1b[31\u00e9t\u00e9')).toBe('a\u00e9t\u00e9');
    // An OSC never terminated: only its introducer goes.
    expect(stripTerminal('x\x1b]0;not closed')).toBe('x0;not closed');
    // An OSC cancelled by the next escape, as a terminal does.
    expect(stripTerminal('\x1b]0;title\x1b[1mbold')).toBe('bold');
    // ESC before a non-ASCII character.
    expect(stripTerminal('\x1b\u00fcber')).toBe('\u00fcber');
  });

  it('leaves lines without ESC or CR alone, the same string', () => {
    const s = 'plain line with [brackets] and ~tilde';
    expect(stripTerminal(s)).toBe(s);
    expect(hasTerminalControls(s)).toBe(false);
    expect(stripTerminal('caf\u00e9 \u{1f680} \u009b31m')).toBe('caf\u00e9 \u{1f680} \u009b31m');
  });
});
