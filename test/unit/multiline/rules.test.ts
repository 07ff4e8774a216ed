import { describe, expect, it } from 'vitest';
import type { LogEvent } from '../../../src/collector/event.js';
import { mayOpenTrace } from '../../../src/collector/multiline/opener.js';
import { BUILT_IN, NO, type RuleName } from '../../../src/collector/multiline/rules.js';
import { makeNormalizer, raw, trace } from './helpers.js';

/** Every line through push, then a flush: the messages in order. */
function messages(lines: string[], multiline: Record<string, unknown> = {}): string[] {
  const { n } = makeNormalizer(multiline);
  const out: LogEvent[] = [];
  for (const l of lines) out.push(...n.push(raw(l)));
  out.push(...n.flushAll());
  n.close();
  return out.map((e) => e.message);
}

const BEFORE = '2026-11-29 17:00:01 INFO placing order A-17';
const AFTER = '2026-11-29 17:00:02 INFO next request';

const REAL: Array<[string, string]> = [
  ['java', 'java-caused-by.txt'],
  ['python', 'python-chained.txt'],
  ['python', 'python-simple.txt'],
  ['go', 'go-panic.txt'],
  ['go', 'go-goroutines.txt'],
  ['node', 'node-uncaught.txt'],
  ['node', 'node-props.txt'],
  ['node', 'node-cause.txt'],
  ['ruby', 'ruby-nomethod.txt'],
  ['dotnet', 'dotnet-inner.txt'],
];

describe('multiline rules on real traces', () => {
  for (const [rule, file] of REAL) {
    it(`${file}: one event between the plain lines, with auto and with ${rule}`, () => {
      const lines = trace(file);
      for (const mode of ['auto', rule]) {
        expect(messages([BEFORE, ...lines, AFTER], { mode })).toEqual([BEFORE, lines.join('\n'), AFTER]);
      }
    });

    it(`${file}: the byte check lets its first line through`, () => {
      const first = trace(file)[0]!;
      expect(mayOpenTrace(Buffer.from(first), 0, first.length)).toBe(true);
      expect(mayOpenTrace(first, 0, first.length)).toBe(true);
      expect(BUILT_IN[rule as keyof typeof BUILT_IN].opens(first)).not.toBe(NO);
    });
  }

  it('two traces back to back stay two events', () => {
    const java = trace('java-caused-by.txt');
    const py = trace('python-simple.txt');
    expect(messages([...java, ...py, ...java])).toEqual([java.join('\n'), py.join('\n'), java.join('\n')]);
  });

  it('a trace whose rule is off for the source is left as lines', () => {
    const lines = trace('python-simple.txt');
    expect(messages(lines, { mode: 'java' })).toEqual(lines);
    expect(messages(lines, { mode: 'off' })).toEqual(lines);
  });

  it('CR line ends (a TTY) are stripped from every joined line', () => {
    const lines = trace('go-panic.txt');
    expect(messages(lines.map((l) => l + '\r'))).toEqual([lines.join('\n')]);
  });

  it('a record that keeps its end of line (Fluent Bit tail, Fluentd in_tail on json-file) gives the events the line without it gives', () => {
    for (const [, file] of REAL) {
      const lines = [BEFORE, ...trace(file), AFTER];
      const expected = messages(lines);
      expect(expected).toHaveLength(3);
      for (const eol of ['\n', '\r\n']) {
        const shown = `${file} ${JSON.stringify(eol)}`;
        expect(messages(lines.map((l) => l + eol)), shown).toEqual(expected);
        // Forward records carry strings too.
        const { n } = makeNormalizer();
        const out = lines.flatMap((l) => n.push(raw(l, { input: 'forward', line: l + eol })));
        out.push(...n.flushAll());
        n.close();
        expect(out.map((e) => e.message), shown).toEqual(expected);
      }
    }
  });
});

/** CPython 3.11.7's output, paths shortened: the lines of a template. */
const py = (text: string): string[] => text.replace(/^\n/, '').split('\n');

describe('Python exception groups (3.11+)', () => {
  const GROUP = py(`
  + Exception Group Traceback (most recent call last):
  |   File "/app/main.py", line 3, in <module>
  |     raise ExceptionGroup("eg", [ValueError(1), TypeError(2)])
  | ExceptionGroup: eg (2 sub-exceptions)
  +-+---------------- 1 ----------------
    | ValueError: 1
    +---------------- 2 ----------------
    | TypeError: 2
    +------------------------------------`);

  /** asyncio.TaskGroup: each sub-exception with a traceback of its own. */
  const TASK_GROUP = py(`
  + Exception Group Traceback (most recent call last):
  |   File "/app/main.py", line 9, in <module>
  |     asyncio.run(main())
  |   File "/usr/local/lib/python3.11/asyncio/runners.py", line 190, in run
  |     return runner.run(main)
  |            ^^^^^^^^^^^^^^^^
  |   File "/usr/local/lib/python3.11/asyncio/runners.py", line 118, in run
  |     return self._loop.run_until_complete(task)
  |            ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  |   File "/usr/local/lib/python3.11/asyncio/base_events.py", line 653, in run_until_complete
  |     return future.result()
  |            ^^^^^^^^^^^^^^^
  |   File "/app/main.py", line 6, in main
  |     async with asyncio.TaskGroup() as tg:
  |   File "/usr/local/lib/python3.11/asyncio/taskgroups.py", line 145, in __aexit__
  |     raise me from None
  | ExceptionGroup: unhandled errors in a TaskGroup (2 sub-exceptions)
  +-+---------------- 1 ----------------
    | Traceback (most recent call last):
    |   File "/app/main.py", line 4, in bad
    |     raise ValueError(f"task {n}")
    | ValueError: task 0
    +---------------- 2 ----------------
    | Traceback (most recent call last):
    |   File "/app/main.py", line 4, in bad
    |     raise ValueError(f"task {n}")
    | ValueError: task 1
    +------------------------------------`);

  /** A group in a group that is not the last sub-exception: its closing line ends only it. */
  const NESTED = py(`
  + Exception Group Traceback (most recent call last):
  |   File "/app/main.py", line 1, in <module>
  |     raise ExceptionGroup("outer", [ExceptionGroup("inner", [ValueError(1), KeyError(2)]), TypeError(3)])
  | ExceptionGroup: outer (2 sub-exceptions)
  +-+---------------- 1 ----------------
    | ExceptionGroup: inner (2 sub-exceptions)
    +-+---------------- 1 ----------------
      | ValueError: 1
      +---------------- 2 ----------------
      | KeyError: 2
      +------------------------------------
    +---------------- 2 ----------------
    | TypeError: 3
    +------------------------------------`);

  /**
   * A sub-exception raised while handling a group: the chain is drawn in the
   * margin, after the inner group's closing line (`${''}` keeps the space
   * Python writes after a margin).
   */
  const CHAIN_IN_GROUP = py(`
  + Exception Group Traceback (most recent call last):
  |   File "/app/main.py", line 11, in <module>
  |     raise ExceptionGroup("outer", errs + [TypeError("t")])
  | ExceptionGroup: outer (2 sub-exceptions)
  +-+---------------- 1 ----------------
    | Exception Group Traceback (most recent call last):
    |   File "/app/main.py", line 3, in sub
    |     raise ExceptionGroup("ctx", [ValueError(1)])
    | ExceptionGroup: ctx (1 sub-exception)
    +-+---------------- 1 ----------------
      | ValueError: 1
      +------------------------------------
    | ${''}
    | During handling of the above exception, another exception occurred:
    | ${''}
    | Traceback (most recent call last):
    |   File "/app/main.py", line 8, in <module>
    |     sub()
    |   File "/app/main.py", line 5, in sub
    |     raise KeyError("during")
    | KeyError: 'during'
    +---------------- 2 ----------------
    | TypeError: t
    +------------------------------------`);

  /** except* raising: a plain traceback chained after the group. */
  const GROUP_THEN_PLAIN = py(`
  + Exception Group Traceback (most recent call last):
  |   File "/app/main.py", line 2, in <module>
  |     raise ExceptionGroup("eg", [ValueError(1)])
  | ExceptionGroup: eg (1 sub-exception)
  +-+---------------- 1 ----------------
    | ValueError: 1
    +------------------------------------

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/app/main.py", line 4, in <module>
    raise RuntimeError("handled badly")
RuntimeError: handled badly`);

  /** A group raised while handling a chained exception. */
  const PLAIN_THEN_GROUP = py(`
Traceback (most recent call last):
  File "/app/main.py", line 3, in inner
    1/0
    ~^~
ZeroDivisionError: division by zero

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "/app/main.py", line 7, in <module>
    inner()
  File "/app/main.py", line 5, in inner
    raise ValueError("v") from e
ValueError: v

During handling of the above exception, another exception occurred:

  + Exception Group Traceback (most recent call last):
  |   File "/app/main.py", line 9, in <module>
  |     raise ExceptionGroup("grp", [v])
  | ExceptionGroup: grp (1 sub-exception)
  +-+---------------- 1 ----------------
    | Traceback (most recent call last):
    |   File "/app/main.py", line 7, in <module>
    |     inner()
    |   File "/app/main.py", line 5, in inner
    |     raise ValueError("v") from e
    | ValueError: v
    +------------------------------------`);

  it('ends at the group\'s closing line: the line after it (uvicorn shutting down) is an event of its own', () => {
    for (const mode of ['auto', 'python']) {
      expect(messages([BEFORE, ...GROUP, 'INFO:     Shutting down', AFTER], { mode })).toEqual([BEFORE, GROUP.join('\n'), 'INFO:     Shutting down', AFTER]);
      expect(messages([...GROUP, 'ValueError', AFTER], { mode })).toEqual([GROUP.join('\n'), 'ValueError', AFTER]);
    }
  });

  const WHOLE: Record<string, string[]> = { TASK_GROUP, NESTED, CHAIN_IN_GROUP, GROUP_THEN_PLAIN, PLAIN_THEN_GROUP };
  for (const [name, lines] of Object.entries(WHOLE)) {
    it(`${name}: one event, and the line after it one of its own`, () => {
      for (const mode of ['auto', 'python']) {
        expect(messages([BEFORE, ...lines, 'INFO:     Shutting down', AFTER], { mode })).toEqual([BEFORE, lines.join('\n'), 'INFO:     Shutting down', AFTER]);
      }
    });
  }

  it('two groups back to back stay two events, as do a group and a plain traceback', () => {
    const plain = trace('python-simple.txt');
    expect(messages([...GROUP, ...TASK_GROUP, ...plain, ...GROUP])).toEqual([GROUP.join('\n'), TASK_GROUP.join('\n'), plain.join('\n'), GROUP.join('\n')]);
  });
});

describe('multiline near misses stay lines of their own', () => {
  const cases: Record<string, string[]> = {
    'a log line with "at " mid-text': ['GET /cart 200 at 12ms', '    at the moment nothing is queued', 'done'],
    'Error: inside a sentence': ['Upload failed with Error: disk full', '    at retry 3 of 5', 'giving up'],
    'an Error line followed by a plain line': ['Error: config not found', 'using defaults'],
    'an indented YAML dump after a plain line': ['config.yaml: loaded', '  server:', '    port: 8080', '    at: night'],
    'a dotted name that is no exception': ['app.server: listening on :8080', 'ready'],
    'a Python-looking error line alone': ['ValueError: bad input from client', 'next'],
    'Go-looking lines without a panic': ['main.main()', '\t/app/main.go:12 +0x1d'],
    'a Ruby-looking line alone': ['app.rb:7:in `total\': undefined method (NoMethodError)', 'recovered'],
  };
  for (const [name, lines] of Object.entries(cases)) {
    it(name, () => expect(messages(lines)).toEqual(lines));
  }

  it('the byte check turns ordinary lines away without a regular expression', () => {
    for (const l of ['2026-11-29T17:00:00Z INFO started', '[info] ready', 'GET /health 200', '{"msg":"x"}', 'level=info msg=ok', '']) {
      expect(mayOpenTrace(Buffer.from(l), 0, l.length), l).toBe(false);
    }
  });

  it('JSON lines', () => {
    expect(messages(['{"level":"error","msg":"boom","err":"TypeError: x"}', '{"level":"info","msg":"    at nothing"}'])).toEqual(['boom', '    at nothing']);
  });

  it('a JSON line ends a held trace and is not joined', () => {
    const lines = trace('java-caused-by.txt');
    const json = '{"msg":"\\tat com.example.Foo.bar(Foo.java:1)"}';
    const out = messages([...lines, json]);
    expect(out).toEqual([lines.join('\n'), '\tat com.example.Foo.bar(Foo.java:1)']);
  });
});

describe('multiline rules on adversarial lines', () => {
  // A unit repeated between a head and a tail, built so that a backtracking
  // pattern would try every split of the line. About 1 MB, the longest line
  // the stage is given (maxLineBytes): at 200 KB the quadratic pattern the Go
  // rule had still finished within vitest's timeout; at this size it takes
  // minutes, a cubic one days. The results are those the rules gave before.
  const line = (head: string, unit: string, tail: string): string => head + unit.repeat(Math.ceil(1_000_000 / unit.length)) + tail;
  /** A rule's function the stage calls: `opens`, or `next` from a state (rules.ts numbers them). */
  const cases: Array<[RuleName, 'opens' | number, [string, string, string], number]> = [
    ['java', 'opens', ['', 'a.', '!'], NO],
    ['java', 'opens', ['', 'a.', 'B:  : : :'], 0],
    ['java', 'opens', ['Exception in thread "', '" ', '!'], NO],
    ['java', 0, ['\tat ', 'a/', '!'], NO],
    ['java', 0, ['\tat ', 'a/', '.'], 1],
    ['java', 0, ['', ' ', '!'], NO],
    ['dotnet', 'opens', ['', 'A.', '!'], NO],
    ['dotnet', 'opens', ['Unhandled exception. ', 'A.', 'B: x'], 0],
    ['dotnet', 0, ['', ' ', 'at x'], NO],
    ['python', 'opens', ['', ' ', '+ Exception Group Traceback (most recent call last):!'], NO],
    ['python', 'opens', ['', ' ', '+ Exception Group Traceback (most recent call last):'], 3],
    ['python', 0 /* Body */, ['', '\t', '^!'], NO],
    ['python', 0 /* Body */, ['', 'a.', '!'], NO],
    ['python', 0 /* Body */, ['', 'a.', 'b: :'], 1],
    ['python', 3 /* Group */, ['  +', '-', '!'], 3],
    ['python', 3 /* Group */, ['  +', '-', ''], 4],
    ['python', 3 /* Group */, ['', ' ', '!'], NO],
    ['python', 4 /* GroupEnd */, ['', ' ', '| x'], 3],
    ['python', 4 /* GroupEnd */, ['', ' ', '+ Exception Group Traceback (most recent call last):'], NO],
    ['python', 4 /* GroupEnd */, ['', ' ', '+ Exception Group Traceback (most recent call last):!'], 3],
    ['go', 'opens', ['goroutine 1 [', '[', ']'], NO],
    ['go', 'opens', ['goroutine ', '1', ' [running]:'], 0],
    ['go', 1, ['', 'a.', '!'], NO],
    ['go', 1, ['', 'a.', 'b()'], 1],
    ['go', 1, ['', 'a.(', '!'], NO],
    ['go', 1, ['', 'a.(', ')'], 1],
    ['go', 1, ['', 'a/', 'b.c()'], 1],
    ['go', 1, ['', 'a/.(', ')'], NO],
    ['go', 1, ['\t', ':1', ' +0x1!'], NO],
    ['go', 1, ['\t', ':1', ' +0x1'], 1],
    ['go', 1, ['panic: ', ' [recovered', '!'], NO],
    ['node', 'opens', ['', 'Error', '!'], NO],
    ['node', 'opens', ['Uncaught ', 'Error', ''], 3],
    ['node', 'opens', ['/', '.js:1', '!'], NO],
    ['node', 'opens', ['/a', '.js:1', ''], 0],
    ['node', 1 /* Excerpt */, ['', ' ', '^!'], NO],
    ['node', 4 /* Stack */, ['', ' ', '...'], NO],
    ['node', 4 /* Stack */, ['', ' ', 'at x'], 4],
    ['node', 5 /* Props */, ['', ' ', ''], 5],
    ['node', 6 /* Done */, ['Node.js v', '1.', ''], NO],
    ['ruby', 'opens', ['Error: ', ":1:in 'x': y", '!'], NO],
    ['ruby', 'opens', ['Error: ', ":1:in 'x': y", ' (A)'], 0],
    ['ruby', 'opens', ['a', ':1', ":in 'x': y (A)"], 0],
    ['ruby', 'opens', ['a:1:in `x', "': ", ' (A'], NO],
    ['ruby', 'opens', ['a:1:in `x', "': ", ' (A)'], 0],
    ['ruby', 'opens', ['a', ' (A', ')'], NO],
    ['ruby', 3 /* Frames */, ['\tfrom a', ':1', ':in'], NO],
    ['ruby', 3 /* Frames */, ['\tfrom a', ':1', ":in '"], 3],
    ['ruby', 2 /* Excerpt */, ['', ' ', '^!'], NO],
  ];
  for (const [name, call, [head, unit, tail], expected] of cases) {
    const shown = `${JSON.stringify(head + unit)}… ${JSON.stringify(tail)}`;
    it(`${name} ${call === 'opens' ? 'opens' : `next from ${call}`} ${shown}: ${expected === NO ? 'no' : expected}`, () => {
      const rule = BUILT_IN[name];
      const l = line(head, unit, tail);
      expect(call === 'opens' ? rule.opens(l) : rule.next(call, l)).toBe(expected);
    });
  }

  it('the lines that hung the event loop go through the stage as they are', () => {
    const ruby = line('Error: ', ":1:in 'x': y", '!');
    const go = line('', 'a.', '!');
    expect(messages([ruby, 'panic: boom', go, ruby])).toEqual([ruby, 'panic: boom', go, ruby]);
  });
});
