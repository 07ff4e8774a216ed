import { describe, expect, it } from 'vitest';
import { safeField, safeText } from '../../../src/tail/safe-text.js';

describe('safeText', () => {
  it('shows every C0 control but \\t and \\n, DEL and every C1 control as a \\xHH escape', () => {
    for (let code = 0; code <= 0x9f; code++) {
      const c = String.fromCharCode(code);
      const control = code < 0x20 || code >= 0x7f;
      const expected = control && c !== '\t' && c !== '\n' ? '\\x' + code.toString(16).padStart(2, '0') : c;
      expect(safeText(c), `U+${code.toString(16).padStart(4, '0')}`).toBe(expected);
    }
  });

  it('turns terminal sequences into visible text', () => {
    expect(safeText('\x1b]52;c;aGVsbG8=\x07')).toBe('\\x1b]52;c;aGVsbG8=\\x07');
    expect(safeText('\x1b[2J\x1b]0;pwned\x07')).toBe('\\x1b[2J\\x1b]0;pwned\\x07');
    expect(safeText('ok\rERROR fake')).toBe('ok\\x0dERROR fake');
    expect(safeText('\x9b31m')).toBe('\\x9b31m');
  });

  it('keeps printable text, tabs, newlines and non-ASCII as they are', () => {
    const text = 'Error: boom\n    at f (a.js:1:2)\n\tcaused by: café 日本 \u00a0 😀 \\x1b';
    expect(safeText(text)).toBe(text);
  });
});

describe('safeField', () => {
  it('escapes \\t and \\n as well: a name or a tag is one line and one column', () => {
    for (let code = 0; code <= 0x9f; code++) {
      const c = String.fromCharCode(code);
      const control = code < 0x20 || code >= 0x7f;
      expect(safeField(c), `U+${code.toString(16).padStart(4, '0')}`).toBe(control ? '\\x' + code.toString(16).padStart(2, '0') : c);
    }
    expect(safeField('web café 日本')).toBe('web café 日本');
  });
});
