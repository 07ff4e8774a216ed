/**
 * What a stack trace looks like, one rule per language runtime, as it prints
 * an uncaught error: which line opens one and which lines can follow.
 *
 * A rule is a small state machine over the lines of one source and stream.
 * `opens` says whether a line can begin a trace (its state after that line,
 * or NO). `next` gets the state after the lines taken so far and the next line,
 * and answers with the state after it:
 *   - a state >= 0: the line belongs to the trace;
 *   - MAYBE | state: the line belongs only if a later line does (the blank
 *     lines between chained Python tracebacks or Go goroutines);
 *   - NO: the trace ended before this line.
 * Only lines a trace would have are taken, so an ordinary line after a trace
 * (or one that merely looks like its first line) stays an event of its own.
 */

export const NO = -1;
/** Or'ed into a state: the line is taken only if a later one confirms it. */
export const MAYBE = 0x100;

export interface TraceRule {
  readonly name: string;
  opens(line: string): number;
  next(state: number, line: string): number;
}

/** Names a user can pick (the `multiline.mode` key, the `clogs.multiline` label). */
export const RULE_NAMES = ['java', 'python', 'go', 'node', 'ruby', 'dotnet'] as const;
export type RuleName = (typeof RULE_NAMES)[number];

const isBlank = (line: string): boolean => line.trim() === '';

/**
 * What `.` does not match. A pattern taken apart into searches (isGoCall,
 * isRubyHead) never matched a line holding one, and must not start to.
 */
const LINE_BREAK = /[\n\r\u2028\u2029]/;

// Java: Throwable.printStackTrace and logback/log4j (Spring) layouts.
const JAVA_HEAD = /^(?:Exception in thread "[^"]*" )?(?:[a-zA-Z_$][\w$]*\.)+[A-Za-z_$][\w$]*(?:: .*|:)?$/;
const JAVA_BODY = /^(?:\s+at [\w$<>./-]+[.(]|\s+\.\.\. \d+ (?:more|common frames omitted)$|\s*Caused by: \S|\s+Suppressed: \S|\s*Common frames omitted$)/;

export const java: TraceRule = {
  name: 'java',
  opens: (line) => (JAVA_HEAD.test(line) ? 0 : NO),
  next: (_state, line) => (JAVA_BODY.test(line) ? 1 : NO),
};

// .NET: the runtime's unhandled-exception report and Exception.ToString().
const DOTNET_HEAD = /^(?:Unhandled exception\. )?(?:[A-Z][\w`]*\.)+[A-Z][\w`]*(?:: .*)?$/;
const DOTNET_BODY = /^(?: {3}at \S| ---> \S| {3}--- End of inner exception stack trace ---$|--- End of stack trace from previous location)/;

export const dotnet: TraceRule = {
  name: 'dotnet',
  opens: (line) => (DOTNET_HEAD.test(line) ? 0 : NO),
  next: (_state, line) => (DOTNET_BODY.test(line) ? 1 : NO),
};

// Python: traceback.print_exception, chained causes and exception groups
// (3.11+) included.
const PY_HEAD = 'Traceback (most recent call last):';
const PY_GROUP_HEAD = /^\s*(?:\+ )?Exception Group Traceback \(most recent call last\):$/;
const PY_FRAME = /^(?: {2}File "| {2,}\S|\s*\^+$| {2}\[Previous line repeated \d+ more times?\]$)/;
/** A group draws every line of its own in a margin: `  | …`, `  +-+---- 1 ----`. */
const PY_GROUP_LINE = /^\s*[|+]/;
/** The line after a group's last sub-exception, `    +------------------------------------`. */
const PY_GROUP_END = /^\s*\+-+$/;
const PY_ERROR = /^[A-Za-z_][\w.]*(?:: .*|:)?$/;
const PY_CHAIN = /^(?:During handling of the above exception, another exception occurred:|The above exception was the direct cause of the following exception:)$/;
const enum Py {
  Body = 0,
  Raised = 1,
  Chained = 2,
  Group = 3,
  /** After a group's closing line. */
  GroupEnd = 4,
}

export const python: TraceRule = {
  name: 'python',
  opens: (line) => (line === PY_HEAD ? Py.Body : PY_GROUP_HEAD.test(line) ? Py.Group : NO),
  next: (state, line) => {
    if (state === Py.Body) {
      if (PY_FRAME.test(line)) return Py.Body;
      return PY_ERROR.test(line) ? Py.Raised : NO;
    }
    if (state === Py.Group || state === Py.GroupEnd) {
      // A group's error lines are in its margin, so none ends it: its closing
      // line does. After that one a margin line is of an enclosing group (its
      // next sub-exception, or the rest of a chain drawn in its margin); a
      // line without one (`INFO:     Shutting down`) is not the trace's, nor
      // is the head of another group (nested ones are drawn as `| Exception…`).
      if (PY_GROUP_LINE.test(line) && !PY_GROUP_HEAD.test(line)) return PY_GROUP_END.test(line) ? Py.GroupEnd : Py.Group;
      if (state === Py.Group) return NO;
    }
    // After a group as after an error line, only a chained traceback goes on.
    if (isBlank(line)) return MAYBE | (state === Py.GroupEnd ? Py.Raised : state);
    if (state !== Py.Chained) return PY_CHAIN.test(line) ? Py.Chained : NO;
    return line === PY_HEAD ? Py.Body : PY_GROUP_HEAD.test(line) ? Py.Group : NO;
  },
};

// Go: a panic or fatal error with the runtime's goroutine dump.
const GO_HEAD = /^(?:panic: |fatal error: |goroutine \d+ \[[^\]]+\]:$)/;
const GO_BODY =
  /^(?:goroutine \d+ \[[^\]]+\]:$|\t.+:\d+(?: \+0x[0-9a-f]+)?$|created by \S|\[signal |\tpanic: |panic: .* \[recovered\]|\.\.\.additional frames elided\.\.\.$|\.\.\. \d+ frames? elided|exit status \d+$|runtime stack:$|\[originating from goroutine \d+\]:$)/;
const GO_PACKAGE = /^[\w.\-/]*/;
const GO_FUNC = /^[\w.\-()*[\]{}, ]+$/;

/**
 * A frame's call, `path/pkg.Func(args)` or `pkg.(*T).Method(...)`: the lines
 * /^[\w.\-/]+\.[\w.\-()*[\]{}, ]+\(.*\)$/ matches, without its backtracking
 * (every '.' tried against every '(' after it: quadratic on a long run of
 * `a.`, cubic with parentheses in it). Each piece is searched for once: the
 * name cannot hold a '/', so the '.' before it is the first one after the
 * path's last '/' (the earliest leaves the name the most room), and the
 * arguments open at the first '(' past the name's first character (a name
 * that cannot reach that one reaches none after it).
 */
function isGoCall(line: string): boolean {
  if (!line.endsWith(')') || LINE_BREAK.test(line)) return false;
  const path = GO_PACKAGE.exec(line)![0].length;
  const dot = line.indexOf('.', Math.max(1, line.lastIndexOf('/', path - 1) + 1));
  if (dot === -1 || dot >= path) return false;
  const args = line.indexOf('(', dot + 2);
  return args !== -1 && GO_FUNC.test(line.slice(dot + 1, args));
}

export const go: TraceRule = {
  name: 'go',
  opens: (line) => (GO_HEAD.test(line) ? 0 : NO),
  next: (_state, line) => {
    if (isBlank(line)) return MAYBE;
    return GO_BODY.test(line) || isGoCall(line) ? 1 : NO;
  },
};

// Node.js: an uncaught error as process._fatalException prints it (source
// excerpt, the error, its stack, util.inspect's own properties, the version).
const NODE_ERROR = /^(?:Uncaught )?(?:[A-Z][\w$]*)?(?:Error|Exception)(?: \[[\w$]+\])?(?:: .*)?$/;
const NODE_SOURCE = /^(?:file:\/\/)?\/\S*\.[cm]?[jt]sx?:\d+$/;
const NODE_AT = /^ {4,}at \S/;
const NODE_MORE = /^ {4,}\.\.\. \d+ (?:more )?lines? matching cause stack trace \.\.\.$/;
const NODE_CARET = /^\s*\^+$/;
const NODE_VERSION = /^Node\.js v\d+\.\d+\.\d+$/;
const enum Node {
  SourceAt = 0,
  Excerpt = 1,
  Caret = 2,
  Error = 3,
  Stack = 4,
  Props = 5,
  Done = 6,
}

export const node: TraceRule = {
  name: 'node',
  opens: (line) => (NODE_ERROR.test(line) ? Node.Error : NODE_SOURCE.test(line) ? Node.SourceAt : NO),
  next: (state, line) => {
    switch (state) {
      case Node.SourceAt:
        return isBlank(line) ? NO : MAYBE | Node.Excerpt;
      case Node.Excerpt:
        return NODE_CARET.test(line) ? Node.Caret : NO;
      case Node.Caret:
        if (isBlank(line)) return Node.Caret;
        return NODE_ERROR.test(line) ? Node.Error : NO;
      case Node.Error:
      case Node.Stack:
        if (NODE_AT.test(line) || NODE_MORE.test(line)) return line.endsWith(' {') ? Node.Props : Node.Stack;
        if (state === Node.Stack && isBlank(line)) return MAYBE | Node.Done;
        return NO;
      case Node.Props:
        return line === '}' ? Node.Done : /^ {2}\S|^ {4,}/.test(line) ? Node.Props : NO;
      default:
        if (isBlank(line)) return MAYBE | Node.Done;
        return NODE_VERSION.test(line) ? Node.Done : NO;
    }
  },
};

// Ruby: the interpreter's report of an uncaught exception, with
// error_highlight's excerpt (Ruby 3.1+) when it has one.
const RUBY_CLASS = / \([A-Z][\w:]*\)$/;
const RUBY_PLACE = /:\d+:in [`']/g;
const RUBY_FROM = /^\tfrom \S.*:\d+:in [`']/;
const enum Ruby {
  Head = 0,
  Blank = 1,
  Excerpt = 2,
  Frames = 3,
}

/**
 * `app.rb:7:in 'total': message (NoMethodError)`: the lines
 * /^\S.*:\d+:in [`'].*': .* \([A-Z][\w:]*\)$/ matches. Its three `.*` tried
 * every split of a line between them (cubic on a long run of `:1:in 'x': `);
 * the fixed pieces are found once each instead. The class is where the line
 * ends; the earliest place and the earliest `': ` after it leave the most room
 * for the rest, which is free text.
 */
function isRubyHead(line: string): boolean {
  if (!line.endsWith(')') || !/^\S/.test(line) || LINE_BREAK.test(line)) return false;
  const cls = RUBY_CLASS.exec(line);
  if (cls === null) return false;
  // The place follows at least the one character the line starts with.
  RUBY_PLACE.lastIndex = 1;
  if (RUBY_PLACE.exec(line) === null) return false;
  const message = line.indexOf("': ", RUBY_PLACE.lastIndex);
  return message !== -1 && message + 3 <= cls.index;
}

export const ruby: TraceRule = {
  name: 'ruby',
  opens: (line) => (isRubyHead(line) ? Ruby.Head : NO),
  next: (state, line) => {
    if (RUBY_FROM.test(line) && state !== Ruby.Blank && state !== Ruby.Excerpt) return Ruby.Frames;
    if (state === Ruby.Head) return isBlank(line) ? MAYBE | Ruby.Blank : NO;
    if (state === Ruby.Blank) return isBlank(line) ? NO : MAYBE | Ruby.Excerpt;
    if (state === Ruby.Excerpt) return /^\s*\^+$/.test(line) ? Ruby.Frames : NO;
    return NO;
  },
};

export const BUILT_IN: Readonly<Record<RuleName, TraceRule>> = { java, python, go, node, ruby, dotnet };
