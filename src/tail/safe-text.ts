/**
 * Log-derived text made harmless for a terminal: the one rule for everything
 * text-mode `tail`, `search` and `ps` print from the store (messages, source
 * names, tags, images, levels, the close matches of an unknown `<id>`).
 *
 * A stored message or tag is whatever an application or a forward client
 * wrote, and it can hold real control characters (a JSON line's `\u001b`
 * decodes to ESC). Printed as is, they drive the reader's terminal: OSC 52
 * writes the clipboard, OSC 0 sets the window title, CSI clears the screen,
 * a lone `\r` lets `ok\rERROR fake` overwrite what was written before it.
 * So each C0 control, DEL and C1 control (U+0080–U+009F: 0x9b is a one-byte
 * CSI to some terminals) is shown as a `\xHH` escape of its code point, the
 * notation of `printf`, `echo -e` and JavaScript strings, which keeps it
 * visible (an attack shows as what it is) and lets the line be read. In a
 * message `\n` (joined stack traces are multi-line messages) and `\t` pass:
 * they only move the cursor forward or down. In a field that is one line or
 * one column (a name, a tag), they are escaped too, or a tag could print a
 * row `clogs ps` never listed.
 */

const UNSAFE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;
/** Also `\t` and `\n`: in a one-line field they would fake a row or a column. */
const UNSAFE_IN_FIELD = /[\u0000-\u001f\u007f-\u009f]/g;

const escape = (c: string): string => '\\x' + c.charCodeAt(0).toString(16).padStart(2, '0');

/** A message: every control character escaped but `\n` and `\t`. */
export function safeText(text: string): string {
  return text.replace(UNSAFE, escape);
}

/** A one-line field (a source name, a tag, an image, a level): every control character escaped. */
export function safeField(text: string): string {
  return text.replace(UNSAFE_IN_FIELD, escape);
}
