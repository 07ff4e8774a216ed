/**
 * What a line's end of line is: one "\n", "\r\n" or "\r" at its very end.
 * The Docker input's lines come without one, but a record that Fluent Bit's
 * tail input or Fluentd's in_tail read from Docker's json-file keeps it
 * (`"log":"...\n"`), and a TTY's line ends in "\r". A JSON or logfmt line
 * with it would not be parsed, nor would a trace's rules take it. The
 * renderer cuts the bytes and the Normalizer the text, by these two, so a
 * line is cut the same on either path.
 */

/** Where the line [start, end) of `line` ends without its end of line. */
export function lineEnd(line: Uint8Array, start: number, end: number): number {
  if (end > start && line[end - 1] === 0x0a) end--;
  if (end > start && line[end - 1] === 0x0d) end--;
  return end;
}

/** `line` without its end of line. */
export function stripEol(line: string): string {
  const end = line.endsWith('\n') ? line.length - 1 : line.length;
  return line.charCodeAt(end - 1) === 0x0d ? line.slice(0, end - 1) : line.slice(0, end);
}
