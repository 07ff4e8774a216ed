/**
 * `clogs tail -f` on a real terminal: Debian's tmux runs it in a detached
 * session; `capture-pane -e` shows what a user would see, colours included.
 */
import { EncodedBatch } from '../../src/collector/encoded.js';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileSinkSchema } from '../../src/config/schema.js';
import { createLogger } from '../../src/log.js';
import { createFileSink } from '../../src/sinks/file/index.js';
import type { Sink } from '../../src/sinks/sink.js';
import { CLI } from '../helpers/services.js';
import { container, fakeId, makeEvent } from '../helpers/tail.js';

const run = promisify(execFile);
// A private tmux server, so the test never touches a user's sessions.
const SOCKET = `clogs-test-${process.pid}`;
const tmux = (...args: string[]) => run('tmux', ['-L', SOCKET, ...args]).then((r) => r.stdout);
const WEB = container(fakeId('ab'), 'web');
const T0 = 1795341190;

let dir: string;
let sink: Sink;
let seq = 1;
const ev = (i: number, stream: 'stdout' | 'stderr', message: string, level?: string) =>
  makeEvent({ container: WEB, sec: T0 + i, seq: seq++, message, stream, ...(level ? { level } : {}) });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'clogs-tty-'));
  sink = createFileSink(fileSinkSchema.parse({ dir }), { log: createLogger('silent') });
  await sink.start();
  await sink.write(EncodedBatch.of([ev(0, 'stdout', 'history one'), ev(1, 'stdout', 'history two')]));
});

afterAll(async () => {
  await sink?.close();
  await tmux('kill-server').catch(() => undefined);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Starts `clogs ARGS` in a new tmux session; the shell prints its exit status after it. */
async function session(name: string, args: string, env = ''): Promise<void> {
  // An unused live endpoint keeps the test to the files; `env -u NO_COLOR` so the caller's environment cannot switch colours off.
  await tmux('new-session', '-d', '-s', name, '-x', '160', '-y', '30', `env -u NO_COLOR ${env} node ${CLI} ${args}; echo "EXIT=$?"; sleep 60`);
}

/**
 * The foreground colour and boldness in effect where `text` first appears.
 * tmux re-encodes attributes as differences from the previous cell, so the
 * sequences a line starts with depend on the line before: replay them all.
 */
function styleAt(screen: string, text: string): { fg?: number; bold: boolean } {
  let fg: number | undefined;
  let bold = false;
  for (let i = 0; i < screen.length; i++) {
    const sgr = /^\x1b\[([0-9;]*)m/.exec(screen.slice(i, i + 32));
    if (sgr) {
      for (const p of (sgr[1] || '0').split(';').map(Number)) {
        if (p === 0) [fg, bold] = [undefined, false];
        else if (p === 1) bold = true;
        else if (p === 22) bold = false;
        else if (p === 39) fg = undefined;
        else if ((p >= 30 && p <= 37) || (p >= 90 && p <= 97)) fg = p;
      }
      i += sgr[0].length - 1;
    } else if (screen.startsWith(text, i)) {
      return fg === undefined ? { bold } : { fg, bold };
    }
  }
  throw new Error(`${text} is not on the screen`);
}

async function screen(name: string): Promise<string> {
  return tmux('capture-pane', '-e', '-p', '-t', name);
}

async function waitScreen(name: string, test: (s: string) => boolean, what: string): Promise<string> {
  const deadline = Date.now() + 15_000;
  let s = '';
  while (Date.now() < deadline) {
    s = await screen(name);
    if (test(s)) return s;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`tmux pane never showed ${what}; it shows:\n${s}`);
}

describe('clogs tail -f in a terminal (tmux)', () => {
  it('shows new lines as they arrive, colours stderr and errors, and exits on Ctrl-C without a trace', async () => {
    await session('follow', `tail -f web --file ${dir} --http 127.0.0.1:1`);
    await waitScreen('follow', (s) => s.includes('history two'), 'the history');
    await sink.write(EncodedBatch.of([ev(2, 'stdout', 'plain new'), ev(3, 'stderr', 'stderr new'), ev(4, 'stdout', 'failed new', 'error'), ev(5, 'stdout', 'careful new', 'warn')]));
    const s = await waitScreen('follow', (t) => t.includes('careful new'), 'the new lines');
    expect(styleAt(s, 'plain new')).toEqual({ bold: false });
    expect(styleAt(s, 'stderr new')).toEqual({ fg: 31, bold: false });
    expect(styleAt(s, 'ERROR')).toEqual({ fg: 31, bold: true });
    expect(styleAt(s, 'failed new')).toEqual({ fg: 31, bold: true });
    expect(styleAt(s, 'careful new')).toEqual({ fg: 33, bold: false });
    await tmux('send-keys', '-t', 'follow', 'C-c');
    const end = await waitScreen('follow', (t) => /EXIT=\d+/.test(t), 'the exit status');
    expect(end).toMatch(/EXIT=(130|0)\b/);
    expect(end).not.toMatch(/^\s+at /m);
    expect(end).not.toMatch(/Error/);
  });

  it('never colours with NO_COLOR or --no-color, even on a terminal', async () => {
    await session('nocolor', `tail web --file ${dir} -n 3`, 'NO_COLOR=1');
    const a = await waitScreen('nocolor', (t) => t.includes('EXIT='), 'the end');
    expect(a).toContain('stderr new');
    expect(a).not.toMatch(/\x1b\[3\dm/);
    await session('noflag', `tail web --file ${dir} -n 3 --no-color`);
    const b = await waitScreen('noflag', (t) => t.includes('EXIT='), 'the end');
    expect(b).toContain('ERROR failed new');
    expect(b).not.toMatch(/\x1b\[3\dm/);
  });
});
