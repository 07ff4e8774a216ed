/**
 * SIGHUP on the real collector: a new config that does not start (its forward
 * or HTTP port is taken) leaves the one before it running, all of it, later
 * reloads still apply, every setting the inputs are built from restarts them,
 * and the collector still stops cleanly.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeMsgpack } from '../../src/collector/forward/encode.js';
import { mp, rawClient } from '../helpers/forward.js';
import { until } from '../helpers/until.js';
import { readFileStore, startCollector, tempDir, type RunningCollector } from '../helpers/services.js';

const T = 1795341190;
let collector: RunningCollector | undefined;

afterAll(async () => {
  await collector?.stop('SIGKILL');
});

function listening(): Promise<Server> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

/** A port nothing listens on now. */
async function freePort(): Promise<number> {
  const server = await listening();
  const port = (server.address() as AddressInfo).port;
  await new Promise((r) => server.close(r));
  return port;
}

/** Whether the collector's HTTP endpoint answers on `port`. */
async function answers(port: number): Promise<boolean> {
  try {
    return (await fetch(`http://127.0.0.1:${port}/healthz`)).ok;
  } catch {
    return false;
  }
}

/** One acked record, in Message mode. */
function record(line: string): Buffer {
  return mp.arr(mp.str('reload'), mp.int32(T), mp.strMap({ log: line }), encodeMsgpack({ chunk: line }));
}

/** Sends one acked record to the forward port and waits for its ack. */
async function sendLine(port: number, line: string): Promise<void> {
  const client = await rawClient(port);
  await client.send(record(line));
  await client.waitReplies(1);
  client.socket.destroy();
}

describe('clogs collect on SIGHUP', () => {
  it('keeps the running config when the new one does not start, and applies later ones', async () => {
    const dir = tempDir('reload');
    const file = join(dir, 'clogs.yaml');
    const config = (port: number, extra = '', httpPort = 0): void =>
      writeFileSync(
        file,
        `state_dir: ${dir}/state\ndocker:\n  enabled: false\nforward:\n  listen: 127.0.0.1:${port}\nsinks:\n  file:\n    dir: ${dir}/data\nhttp:\n  listen: 127.0.0.1:${httpPort}\n${extra}`,
      );
    const taken = await listening();
    const free = await listening();
    const [takenPort, freePort] = [(taken.address() as AddressInfo).port, (free.address() as AddressInfo).port];
    await new Promise((r) => free.close(r));
    config(freePort);
    collector = await startCollector(['--config', file]);
    const c = collector;
    const logged = (msg: string): number => c.lines.filter((l) => l.msg === msg).length;

    config(takenPort);
    c.process.kill('SIGHUP');
    await until('the failed reload', () => logged('config reload failed: what could not start runs as before the reload') === 1);
    await sendLine(freePort, 'after the failed reload');

    await new Promise((r) => taken.close(r));
    c.process.kill('SIGHUP');
    await until('the reload', () => logged('config reloaded') === 1);
    await sendLine(takenPort, 'on the new port');

    config(takenPort, 'multiline:\n  mode: off\nlog_level: debug\n');
    c.process.kill('SIGHUP');
    await until('the multiline reload', () => logged('config reloaded') === 2);
    expect(c.lines.find((l) => l.msg === 'config reload: this key takes effect at the next start')).toMatchObject({ key: 'log_level', next: 'debug' });
    expect(c.lines.filter((l) => l.msg === 'config reloaded')[1]).toMatchObject({ restarted: ['inputs'] });
    await sendLine(takenPort, 'with multiline off');

    // The HTTP endpoint's port taken: it runs as before; once the port is free, the same config applies.
    const httpTaken = await listening();
    const httpPort = (httpTaken.address() as AddressInfo).port;
    config(takenPort, 'multiline:\n  mode: off\nlog_level: debug\n', httpPort);
    c.process.kill('SIGHUP');
    await until('the failed HTTP reload', () => logged('config reload failed: what could not start runs as before the reload') === 2);
    await new Promise((r) => httpTaken.close(r));
    c.process.kill('SIGHUP');
    await until('the HTTP reload', () => logged('config reloaded') === 3);
    expect(c.lines.filter((l) => l.msg === 'config reloaded')[2]).toMatchObject({ restarted: ['http'] });
    expect(await (await fetch(`http://127.0.0.1:${httpPort}/healthz`)).text()).toBe('ok\n');

    expect(await c.stop()).toBe(0);
    collector = undefined;
    expect(readFileStore(join(dir, 'data')).map((e) => e.message)).toEqual(['after the failed reload', 'on the new port', 'with multiline off']);
  });

  it('starts nothing of a new config whose HTTP address cannot be bound, and puts the HTTP endpoint back when its inputs do not start', async () => {
    const dir = tempDir('reload-http');
    const file = join(dir, 'clogs.yaml');
    const config = (forwardPort: number, httpPort: number, data: string): void =>
      writeFileSync(
        file,
        `state_dir: ${dir}/state\ndocker:\n  enabled: false\nforward:\n  listen: 127.0.0.1:${forwardPort}\nsinks:\n  file:\n    dir: ${dir}/${data}\nhttp:\n  listen: 127.0.0.1:${httpPort}\n`,
      );
    const [forwardPort, httpPort] = [await freePort(), await freePort()];
    config(forwardPort, httpPort, 'data');
    collector = await startCollector(['--config', file]);
    const c = collector;
    const logged = (msg: string): number => c.lines.filter((l) => l.msg === msg).length;
    const stored = (data: string): string[] => (existsSync(join(dir, data)) ? readFileStore(join(dir, data)).map((e) => e.message) : []);

    // New sinks, and the HTTP endpoint on the collector's own forward port.
    config(forwardPort, forwardPort, 'data2');
    c.process.kill('SIGHUP');
    await until('the failed HTTP reload', () => logged('config reload failed: what could not start runs as before the reload') === 1);
    expect(logged('config reload failed: starting the running HTTP endpoint again')).toBe(1);
    expect((await fetch(`http://127.0.0.1:${httpPort}/readyz`)).status).toBe(200);
    await sendLine(forwardPort, 'after the failed HTTP reload');
    expect(stored('data')).toEqual(['after the failed HTTP reload']);
    expect(stored('data2')).toEqual([]);

    // New sinks and HTTP address, and a forward port that is taken: the new endpoint goes again.
    const taken = await listening();
    const newHttpPort = await freePort();
    config((taken.address() as AddressInfo).port, newHttpPort, 'data2');
    c.process.kill('SIGHUP');
    await until('the failed input reload', () => logged('config reload failed: what could not start runs as before the reload') === 2);
    await new Promise((r) => taken.close(r));
    expect(await answers(httpPort)).toBe(true);
    expect(await answers(newHttpPort)).toBe(false);
    await sendLine(forwardPort, 'after the failed input reload');

    // The config before both still runs, all of it: reloading it restarts nothing.
    config(forwardPort, httpPort, 'data');
    c.process.kill('SIGHUP');
    await until('the reload of the running config', () => logged('config reloaded: nothing to restart') === 1);
    expect(logged('config reloaded')).toBe(0);

    expect(await c.stop()).toBe(0);
    collector = undefined;
    expect(stored('data')).toEqual(['after the failed HTTP reload', 'after the failed input reload']);
    expect(stored('data2')).toEqual([]);
  });

  it('replaces the sinks under a running forward input: its clients keep their connections, also when the new sinks do not start', async () => {
    const dir = tempDir('reload-sinks');
    const file = join(dir, 'clogs.yaml');
    const port = await freePort();
    const config = (data: string): void =>
      writeFileSync(file, `state_dir: ${dir}/state\ndocker:\n  enabled: false\nforward:\n  listen: 127.0.0.1:${port}\nsinks:\n  file:\n    dir: ${dir}/${data}\nhttp:\n  enabled: false\n`);
    config('data');
    collector = await startCollector(['--config', file]);
    const c = collector;
    const logged = (msg: string): number => c.lines.filter((l) => l.msg === msg).length;
    const stored = (data: string): string[] => (existsSync(join(dir, data)) ? readFileStore(join(dir, data)).map((e) => e.message) : []);
    const client = await rawClient(port);
    let closed = false;
    void client.closed.then(() => (closed = true));
    await client.send(record('before'));
    await client.waitReplies(1);

    config('data2');
    c.process.kill('SIGHUP');
    await until('the reload', () => logged('config reloaded') === 1);
    expect(c.lines.find((l) => l.msg === 'config reloaded')).toMatchObject({ restarted: ['sinks'] });
    await client.send(record('after'));
    await client.waitReplies(2);

    // A sink directory that cannot be made: the running sinks start again, and the client goes on.
    writeFileSync(join(dir, 'not-a-dir'), '');
    config('not-a-dir/data');
    c.process.kill('SIGHUP');
    await until('the failed reload', () => logged('config reload failed: what could not start runs as before the reload') === 1);
    await client.send(record('after the failed reload'));
    await client.waitReplies(3);
    expect(closed).toBe(false);
    client.socket.destroy();

    expect(await c.stop()).toBe(0);
    collector = undefined;
    expect(stored('data')).toEqual(['before']);
    expect(stored('data2')).toEqual(['after', 'after the failed reload']);
  });

  it('keeps forward clients without acks connected through a restart of the inputs, and stores every line they wrote once', async () => {
    const dir = tempDir('reload-inputs');
    const file = join(dir, 'clogs.yaml');
    const port = await freePort();
    const config = (host: string): void =>
      writeFileSync(file, `state_dir: ${dir}/state\nhost_name: ${host}\ndocker:\n  enabled: false\nforward:\n  listen: 127.0.0.1:${port}\nsinks:\n  file:\n    dir: ${dir}/data\nhttp:\n  enabled: false\n`);
    config('host-0');
    collector = await startCollector(['--config', file]);
    const c = collector;
    const logged = (msg: string): number => c.lines.filter((l) => l.msg === msg).length;
    // As Docker's fluentd driver by default: no acks, never reads, a line every 2 ms.
    const socket = connect({ host: '127.0.0.1', port });
    let failed: Error | undefined;
    socket.on('error', (err) => (failed = err));
    await new Promise((r) => socket.once('connect', r));
    let n = 0;
    const timer = setInterval(() => socket.write(mp.arr(mp.str('reload'), mp.eventTime(T, n), mp.strMap({ log: `line ${n++}` }), mp.map([]))), 2);
    for (let i = 1; i <= 3; i++) {
      await new Promise((r) => setTimeout(r, 300));
      config(`host-${i}`);
      c.process.kill('SIGHUP');
      await until('the reload', () => logged('config reloaded') === i);
      expect(c.lines.filter((l) => l.msg === 'config reloaded')[i - 1]).toMatchObject({ restarted: ['inputs'] });
    }
    await new Promise((r) => setTimeout(r, 300));
    clearInterval(timer);
    await new Promise<void>((r) => socket.end(() => r()));
    expect(await c.stop()).toBe(0);
    collector = undefined;
    expect(failed).toBeUndefined();
    const stored = readFileStore(join(dir, 'data'));
    expect(stored.map((e) => e.message)).toEqual(Array.from({ length: n }, (_, i) => `line ${i}`));
    expect(new Set(stored.map((e) => e.host.name))).toEqual(new Set(['host-0', 'host-1', 'host-2', 'host-3']));
  });

  it('restarts only the sink whose settings changed', async () => {
    const dir = tempDir('reload-one-sink');
    const file = join(dir, 'clogs.yaml');
    const port = await freePort();
    // Nothing listens there: the Elasticsearch sink keeps what it takes in its disk queue.
    const config = (esPort: number): void =>
      writeFileSync(
        file,
        `state_dir: ${dir}/state\ndocker:\n  enabled: false\nforward:\n  listen: 127.0.0.1:${port}\nsinks:\n  file:\n    dir: ${dir}/data\n  elasticsearch:\n    url: http://127.0.0.1:${esPort}\nhttp:\n  enabled: false\n`,
      );
    config(await freePort());
    collector = await startCollector(['--config', file]);
    const c = collector;
    const logged = (msg: string): number => c.lines.filter((l) => l.msg === msg).length;
    await sendLine(port, 'before');

    config(await freePort());
    c.process.kill('SIGHUP');
    await until('the reload', () => logged('config reloaded') === 1);
    expect([logged('elasticsearch sink closed; undelivered events stay queued for the next start'), logged('file sink closed')]).toEqual([1, 0]);
    await sendLine(port, 'after');

    expect(await c.stop()).toBe(0);
    collector = undefined;
    expect(readFileStore(join(dir, 'data')).map((e) => e.message)).toEqual(['before', 'after']);
  });
});
