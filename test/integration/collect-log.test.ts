/**
 * The collector's own log: readable lines for a person on a terminal (Debian's
 * tmux gives `clogs collect` a real one), JSON lines for a pipe; and what it
 * says and does when its start fails or a signal comes in the middle of it.
 */
import { execFile, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/elasticsearch.js';
import { CLI, startCollector, tempDir } from '../helpers/services.js';
import { until } from '../helpers/until.js';

const run = promisify(execFile);
const SOCKET = `clogs-log-test-${process.pid}`;
const tmux = (...args: string[]) => run('tmux', ['-L', SOCKET, ...args]).then((r) => r.stdout);

const quickFlags = (name: string, { forward = '127.0.0.1:0', http = '127.0.0.1:0' } = {}) => {
  const dir = tempDir(name);
  return ['--no-docker', '--forward', forward, '--http', http, '--file', `${dir}/data`, '--state', `${dir}/state`];
};

/** A TCP server on 127.0.0.1 that accepts connections and never answers them. */
function silentServer(): Promise<{ server: Server; port: number; accepted: Socket[] }> {
  const accepted: Socket[] = [];
  const server = createServer((socket) => accepted.push(socket));
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as AddressInfo).port, accepted })));
}

/** `clogs collect ARGS`, whether it gets ready or not. */
function spawnCollect(args: string[], env: NodeJS.ProcessEnv = {}) {
  const child = spawn(process.execPath, [CLI, 'collect', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Record<string, unknown>[] = [];
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  createInterface({ input: child.stdout }).on('line', (line) => {
    try {
      lines.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // Not a pino line.
    }
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, lines, msgs: () => lines.map((l) => l.msg), stderr: () => stderr, exited };
}

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

describe('clogs collect start', () => {
  it('exits 2 naming the flag for a log level or format it does not know, as for any config mistake', async () => {
    for (const [flag, value, expected] of [
      ['--log-level', 'bogus', 'clogs: flag --log-level: log_level: Invalid option: expected one of "trace"|"debug"|"info"|"warn"|"error"|"fatal"'],
      ['--log-format', 'xml', 'clogs: flag --log-format: log_format: Invalid option: expected one of "auto"|"pretty"|"json"'],
    ] as const) {
      const c = spawnCollect([...quickFlags('bad-flag'), flag, value]);
      expect(await c.exited, flag).toBe(2);
      expect(c.stderr().trim(), flag).toBe(expected);
    }
  });

  it('refuses a config with no input (exit 2), and says when --forward or --http names an address for what is off', async () => {
    const dir = tempDir('no-inputs');
    const config = join(dir, 'off.yaml');
    writeFileSync(config, 'forward:\n  enabled: false\nhttp:\n  enabled: false\ndocker:\n  enabled: false\n');
    const files = ['--file', join(dir, 'data'), '--state', join(dir, 'state')];
    // The flags name addresses; what the file turned off stays off (the image passes both flags by default).
    const refused = spawnCollect(['-c', config, ...files, '--forward', '127.0.0.1:0']);
    expect(await refused.exited).toBe(2);
    expect(refused.stderr().trim()).toBe(`clogs: nothing to collect: forward.enabled and docker.enabled are both false (${config}, CLOGS_ variables); enable one`);

    const c = await startCollector(['-c', config, ...files, '--forward', '127.0.0.1:0', '--http', '127.0.0.1:0'], { CLOGS_FORWARD_ENABLED: 'true' });
    try {
      expect(c.forwardPort()).toBeGreaterThan(0);
      expect(c.ready.http).toBeUndefined();
      expect(c.lines).toContainEqual(expect.objectContaining({ level: 40, flag: '--http', msg: 'http.enabled is false: the HTTP endpoint does not listen' }));
    } finally {
      await c.stop();
    }
  });

  it('exits 1 before any input listens when its HTTP port is taken', async () => {
    const { server: taken, port } = await silentServer();
    try {
      const forward = await freePort();
      const c = spawnCollect(quickFlags('http-taken', { forward: `127.0.0.1:${forward}`, http: `127.0.0.1:${port}` }));
      expect(await c.exited).toBe(1);
      expect(c.stderr()).toContain(`clogs: http: cannot listen on 127.0.0.1:${port} (EADDRINUSE)`);
      expect(c.msgs()).not.toContain('forward input listening');
      expect(c.msgs()).not.toContain('file sink started');
    } finally {
      await new Promise((r) => taken.close(r));
    }
  });

  it('exits 1 with its sinks closed when its forward port is taken', async () => {
    const { server: taken, port } = await silentServer();
    try {
      const c = spawnCollect(quickFlags('forward-taken', { forward: `127.0.0.1:${port}` }));
      expect(await c.exited).toBe(1);
      expect(c.stderr()).toContain(`127.0.0.1:${port}`);
      expect(c.msgs().filter((m) => m === 'file sink started' || m === 'file sink closed')).toEqual(['file sink started', 'file sink closed']);
    } finally {
      await new Promise((r) => taken.close(r));
    }
  });

  it('on SIGTERM in the middle of its start, finishes it, stops everything and exits 0', async () => {
    // forward.enrich pings this "Docker engine" before the forward input
    // listens, and waits 3 s for an answer: the start is held there, with the
    // HTTP endpoint and the sinks up.
    const engine = await silentServer();
    try {
      const http = await freePort();
      const c = spawnCollect(quickFlags('term-in-start', { http: `127.0.0.1:${http}` }), { DOCKER_HOST: `tcp://127.0.0.1:${engine.port}` });
      await until('the engine ping', () => engine.accepted.length > 0);
      const res = await fetch(`http://127.0.0.1:${http}/readyz`);
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ ready: false, not_ready: ['collector starting'] });
      expect(c.msgs()).not.toContain('ready');

      c.child.kill('SIGTERM');
      expect(await c.exited).toBe(0);
      const order = ['stopping', 'ready', 'forward input stopped', 'file sink closed', 'stopped'];
      expect(c.msgs().filter((m) => order.includes(m as string))).toEqual(order);
    } finally {
      for (const socket of engine.accepted) socket.destroy();
      await new Promise((r) => engine.server.close(r));
    }
  });
});
