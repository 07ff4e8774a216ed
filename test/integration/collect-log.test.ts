/**
 * The collector's own log: readable lines for a person on a terminal (Debian's
 * tmux gives `clogs collect` a real one), JSON lines for a pipe.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, startCollector, tempDir } from '../helpers/services.js';
import { until } from '../helpers/until.js';

const run = promisify(execFile);
const SOCKET = `clogs-log-test-${process.pid}`;
const tmux = (...args: string[]) => run('tmux', ['-L', SOCKET, ...args]).then((r) => r.stdout);

const quickFlags = (name: string) => {
  const dir = tempDir(name);
  return ['--no-docker', '--forward', '127.0.0.1:0', '--http', '127.0.0.1:0', '--file', `${dir}/data`, '--state', `${dir}/state`];
};

afterAll(async () => {
  // Closing the terminal sends SIGHUP, which makes clogs reload its config,
  // not stop: stop the collectors first, as a person would with Ctrl-C.
  const pids = await tmux('list-panes', '-a', '-F', '#{pane_pid}').catch(() => '');
  for (const pid of pids.split('\n').filter(Boolean)) {
    try {
      process.kill(Number(pid), 'SIGTERM');
    } catch {
      // Already gone.
    }
  }
  await tmux('kill-server').catch(() => undefined);
});

describe('clogs collect logs about itself', () => {
  it('as JSON lines when stdout is a pipe', async () => {
    const c = await startCollector(quickFlags('log-json'));
    expect(c.ready.sinks).toEqual(['file']);
    expect(c.lines.every((l) => typeof l.level === 'number' && typeof l.time === 'number')).toBe(true);
    await c.stop();
  });

  it('as readable lines on a terminal, and as JSON there when asked', async () => {
    const command = (extra: string) => `${process.execPath} ${CLI} collect ${quickFlags('log-tty').join(' ')} ${extra}`;
    await tmux('new-session', '-d', '-s', 'pretty', '-x', '200', '-y', '20', command(''));
    await until('the pretty ready line', async () => (await tmux('capture-pane', '-p', '-t', 'pretty')).includes('INFO: ready'), 30_000);
    const screen = await tmux('capture-pane', '-p', '-t', 'pretty');
    expect(screen).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: sink: file sink started \{"sink":"file",/m);
    expect(screen).not.toContain('"level":30');

    await tmux('new-session', '-d', '-s', 'json', '-x', '400', '-y', '20', command('--log-format json'));
    await until('the JSON ready line', async () => (await tmux('capture-pane', '-p', '-J', '-t', 'json')).includes('"msg":"ready"'), 30_000);
    expect(await tmux('capture-pane', '-p', '-J', '-t', 'json')).toContain('"level":30');
  });
});
