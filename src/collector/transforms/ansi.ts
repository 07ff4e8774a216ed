/**
 * Terminal control out of a line, leaving what a terminal would show: ECMA-48
 * escape sequences (CSI colours, cursor moves and erases, OSC titles and
 * hyperlinks, DCS/SOS/PM/APC strings, two- and three-byte ESC sequences) are
 * removed, and of a line redrawn with `\r` (progress bars) only the last
 * drawing is kept.
 *
 * Only what is an escape goes: an ESC that starts no valid sequence is dropped
 * alone and the byte after it stays; a sequence cut off by the end of the line
 * loses its introducer only (a CSI its parameters too, which are digits and
 * `;`), so no text after a broken escape is lost. C1 controls (U+0080-U+009F)
 * are left as they are: in UTF-8 text they are characters, not escapes.
 */

const ESC = 0x1b;
const CR = 0x0d;
const BEL = 0x07;

/** Whether a line holds anything stripTerminal would take out. */
export function hasTerminalControls(line: string): boolean {
  return line.indexOf('\x1b') >= 0 || line.indexOf('\r') >= 0;
}

/** The line as a terminal shows it: escape sequences removed, the last `\r` drawing kept. */
export function stripTerminal(line: string): string {
  if (!hasTerminalControls(line)) return line;
  return lastDrawing(line.indexOf('\x1b') >= 0 ? stripEscapes(line) : line);
}

/**
 * What follows the last `\r` that has text after it: a progress bar prints
 * `\r 45%` over and over, and a terminal shows the last one. A trailing `\r`
 * (after the one the Normalizer strips) draws nothing and is dropped.
 */
function lastDrawing(line: string): string {
  let end = line.length;
  while (end > 0 && line.charCodeAt(end - 1) === CR) end--;
  const cr = line.lastIndexOf('\r', end - 1);
  return line.slice(cr + 1, end);
}

function stripEscapes(line: string): string {
  let out = '';
  let copied = 0;
  let i = line.indexOf('\x1b');
  while (i >= 0) {
    out += line.slice(copied, i);
    copied = skipSequence(line, i);
    i = line.indexOf('\x1b', copied);
  }
  return out + line.slice(copied);
}

/** Where the text after the escape sequence starting at `at` (an ESC) resumes. */
function skipSequence(line: string, at: number): number {
  const n = line.length;
  const c = at + 1 < n ? line.charCodeAt(at + 1) : -1;
  // CSI: ESC [ parameters (0x30-0x3F) intermediates (0x20-0x2F) final (0x40-0x7E).
  if (c === 0x5b) {
    let p = at + 2;
    while (p < n && inRange(line.charCodeAt(p), 0x30, 0x3f)) p++;
    while (p < n && inRange(line.charCodeAt(p), 0x20, 0x2f)) p++;
    // A final byte ends it; anything else (or the end) breaks it off before that byte.
    return p < n && inRange(line.charCodeAt(p), 0x40, 0x7e) ? p + 1 : p;
  }
  // OSC (ESC ]) ends at BEL or ST (ESC \); DCS, SOS, PM and APC (ESC P, X, ^, _) at ST.
  if (c === 0x5d || c === 0x50 || c === 0x58 || c === 0x5e || c === 0x5f) {
    for (let p = at + 2; p < n; p++) {
      const b = line.charCodeAt(p);
      if (b === BEL && c === 0x5d) return p + 1;
      // ST ends it; another ESC cancels it, as in a terminal, and starts its own sequence.
      if (b === ESC) return line.charCodeAt(p + 1) === 0x5c ? p + 2 : p;
    }
    // Never terminated: only the introducer goes, the rest may be text.
    return at + 2;
  }
  // nF: ESC, intermediates (0x20-0x2F), a final byte 0x30-0x7E (ESC ( B selects a charset).
  if (inRange(c, 0x20, 0x2f)) {
    let p = at + 1;
    while (p < n && inRange(line.charCodeAt(p), 0x20, 0x2f)) p++;
    return p < n && inRange(line.charCodeAt(p), 0x30, 0x7e) ? p + 1 : at + 1;
  }
  // Fp, Fe, Fs: one more byte (ESC 7 saves the cursor, ESC M scrolls, ESC c resets).
  if (inRange(c, 0x30, 0x7e)) return at + 2;
  return at + 1;
}

function inRange(c: number, low: number, high: number): boolean {
  return c >= low && c <= high;
}
