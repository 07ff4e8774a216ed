/**
 * The trace patterns users write (`multiline.start` / `continue`, a
 * container's `clogs.multiline=regex:` label) run on the lines of their
 * sources on the collector's one thread, and a label comes with whatever
 * image a host runs. A pattern that backtracks would stall every input:
 * `^(a+)+$` took 10 s on 28 bytes (Node 20, this project's VM). They are
 * compiled for V8's linear-time engine instead (the `l` flag, the same run
 * on 40,000 bytes: milliseconds), which, like the regex crate Vector's
 * multiline uses, has no lookarounds or backreferences, and takes counted
 * repeats up to {16}: such a pattern is refused where it is read, with the
 * reason.
 */
import { setFlagsFromString } from 'node:v8';

// The `l` flag is V8's, off by default; it only adds the flag, no other RegExp changes.
setFlagsFromString('--enable-experimental-regexp-engine');

const NOT_LINEAR = /Cannot be executed in linear time/;

/** `source` compiled to run in time linear in the line's length; throws as `new RegExp` does, or when it cannot. */
export function linearRegExp(source: string): RegExp {
  return new RegExp(source, 'l');
}

/** Why `source` is no pattern linearRegExp() takes, or undefined. */
export function linearRegexError(source: string): string | undefined {
  try {
    linearRegExp(source);
    return undefined;
  } catch (err) {
    const message = (err as Error).message;
    return NOT_LINEAR.test(message) ? `${message} (lookarounds, backreferences and counts over {16} cannot be: write + or * instead of a large count)` : message;
  }
}
