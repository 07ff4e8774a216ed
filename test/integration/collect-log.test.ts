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

  it('still stops on SIGTERM after its terminal was closed, in either format', async () => {
    for (const format of ['pretty', 'json']) {
      const flags = quickFlags(`log-gone-${format}`);
      const state = flags[flags.indexOf('--state') + 1]!;
      await tmux('new-session', '-d', '-s', `gone-${format}`, '-x', '400', '-y', '20', `${process.execPath} ${CLI} collect ${flags.join(' ')} --log-format ${format}`);
      await until(`the ${format} collector's ready line`, async () => /INFO: ready|"msg":"ready"/.test(await tmux('capture-pane', '-p', '-J', '-t', `gone-${format}`)), 30_000);
      const pid = Number((await run('pgrep', ['-f', state])).stdout.trim().split('\n')[0]);
      // The terminal goes away: SIGHUP (a reload, which logs), then every write to it fails.
      await tmux('kill-session', '-t', `gone-${format}`);
      process.kill(pid, 'SIGTERM');
      await until(`the ${format} collector to exit`, () => {
        try {
          process.kill(pid, 0);
          return false;
        } catch {
          return true;
        }
      }, 30_000);
    }
  });
});

