/**
 * A byte-level look at a line that says whether any built-in rule could open
 * a trace with it: false for nearly every ordinary line after its first word,
 * so the renderer every input uses (line-render.ts) keeps writing them itself and
 * only candidates go through the rules' regular expressions.
 *
 * It must say true for every line a rule in rules.ts opens on (a superset);
 * test/unit/multiline/rules.test.ts checks it against every real trace there.
 */

type Source = Buffer | string;

const at = (src: Source, i: number): number => (typeof src === 'string' ? src.charCodeAt(i) : src[i]!);

const isWordByte = (c: number): boolean =>
  (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x5f /* _ */ || c === 0x24 /* $ */ || c === 0x60; /* ` */

const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;

/** Words that open a trace when a space follows them. */
const SPACED = ['Exception', 'Unhandled', 'Traceback', 'goroutine', 'fatal', 'Uncaught'].map((w) => Buffer.from(w, 'latin1'));
const ERROR = Buffer.from('Error', 'latin1');
const EXCEPTION = Buffer.from('Exception', 'latin1');
const FILE_URL = Buffer.from('file://', 'latin1');
const PANIC = Buffer.from('panic', 'latin1');

function equals(src: Source, from: number, to: number, word: Buffer): boolean {
  if (to - from !== word.length) return false;
  for (let i = 0; i < word.length; i++) if (at(src, from + i) !== word[i]) return false;
  return true;
}

function endsWith(src: Source, from: number, to: number, word: Buffer): boolean {
  return to - from >= word.length && equals(src, to - word.length, to, word);
}

/** `... (NoMethodError)`: Ruby's report ends with the class in parentheses. */
function rubyTail(src: Source, start: number, end: number): boolean {
  let i = end - 2;
  while (i > start && (isWordByte(at(src, i)) || at(src, i) === 0x3a) /* : */) i--;
  const c = at(src, i + 1);
  return i > start && at(src, i) === 0x28 /* ( */ && at(src, i - 1) === 0x20 && c >= 0x41 && c <= 0x5a;
}

/** The bytes [start, end) of a line, without its line end. */
export function mayOpenTrace(src: Source, start: number, end: number): boolean {
  if (end <= start) return false;
  const first = at(src, start);
  const last = at(src, end - 1);
  // Node's source position (`/app/index.js:3`, `file:///app/x.mjs:3`).
  if (first === 0x2f /* / */ || (first === 0x66 /* f */ && end - start > FILE_URL.length && equals(src, start, start + FILE_URL.length, FILE_URL))) {
    if (isDigit(last)) return true;
  }
  if (last === 0x29 /* ) */ && first !== 0x20 && first !== 0x09 && rubyTail(src, start, end)) return true;
  if (first === 0x20) {
    // Python's exception groups: `  + Exception Group Traceback (...)`.
    let i = start;
    while (i < end && at(src, i) === 0x20) i++;
    const c = at(src, i);
    return i < end && (c === 0x2b /* + */ || c === 0x45) /* E */;
  }
  let i = start;
  let dotted = false;
  for (; i < end; i++) {
    const c = at(src, i);
    if (c === 0x2e /* . */) dotted = true;
    else if (!isWordByte(c)) break;
  }
  if (i === start) return false;
  const stop = i < end ? at(src, i) : -1;
  const errorName = endsWith(src, start, i, ERROR) || endsWith(src, start, i, EXCEPTION);
  if (stop === -1 || stop === 0x3a /* : */) return dotted || errorName || equals(src, start, i, PANIC);
  if (stop !== 0x20) return false;
  if (errorName && i + 1 < end && at(src, i + 1) === 0x5b /* [ */) return true;
  for (const w of SPACED) if (equals(src, start, i, w)) return true;
  return false;
}
