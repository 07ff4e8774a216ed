/**
 * A reload restarts the forward input without closing its connections:
 * clients, with acks or without, go on writing into the same socket, and
 * nothing they wrote is lost or taken twice.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as connectTls, type TLSSocket } from 'node:tls';
import { gzipSync } from 'node:zlib';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { KeptConnections } from '../../../src/collector/forward/index.js';
import { sharedKeyDigest } from '../../../src/collector/forward/handshake.js';
import { registry } from '../../../src/metrics.js';
import { encodeMsgpack } from '../../../src/collector/forward/encode.js';
import { dockerRecord, mp, rawClient, startTestInput, type TestInput } from '../../helpers/forward.js';
import { until } from '../../helpers/until.js';

const T = 1795341190;
const running: TestInput[] = [];

afterEach(async () => {
  for (const r of running.splice(0)) await r.stop();
});

async function start(overrides: Record<string, unknown> = {}, opts: { stateDir?: string; kept?: KeptConnections } = {}): Promise<TestInput> {
  const input = await startTestInput(overrides, opts);
  running.push(input);
  return input;
}

/** The input a reload starts after `before`: same port and state, `overrides` on top, taking `before`'s connections. */
async function reload(before: TestInput, overrides: Record<string, unknown> = {}): Promise<TestInput> {
  const kept = await before.input.stopKeepingConnections();
  return start({ listen: `127.0.0.1:${before.port}`, ...overrides }, { stateDir: before.stateDir, kept });
}

/** The forward input's value of a metric of this process. */
async function metric(name: string): Promise<number> {
  const { values } = await registry.getSingleMetric(name)!.get();
  return values.find((v) => v.labels.input === 'forward')?.value ?? 0;
}
const bytesIn = (): Promise<number> => metric('clogs_input_bytes_total');

const messages = (...inputs: TestInput[]): string[] => inputs.flatMap((i) => i.sink.events.map((e) => e.message));

describe('the forward input across a reload', () => {
  it('keeps a client without acks connected, and takes every line it wrote, once', async () => {
    const first = await start();
    // As Docker's driver without acks: it never reads, and writes a line every 2 ms.
    const socket: Socket = connect({ host: '127.0.0.1', port: first.port });
    let failed: Error | undefined;
    socket.on('error', (err) => (failed = err));
    await new Promise((r) => socket.once('connect', r));
    let n = 0;
    const timer = setInterval(() => socket.write(mp.arr(mp.str('docker.web'), mp.eventTime(T, n), dockerRecord(`line ${n++}`), mp.map([]))), 2);
    await until('lines flowing', () => first.sink.events.length > 20, 10_000);
    const second = await reload(first, { partial_timeout: '1s' });
    await until('lines flowing into the next input', () => second.sink.events.length > 20, 10_000);
    clearInterval(timer);
    await until('every line written', () => messages(first, second).length >= n, 10_000);
    expect(failed).toBeUndefined();
    expect(socket.destroyed).toBe(false);
    expect(messages(first, second)).toEqual(Array.from({ length: n }, (_, i) => `line ${i}`));
    expect(second.logs.find((l) => l.msg === 'forward input listening')).toMatchObject({ keptConnections: 1 });
    socket.destroy();
  });

  it('reads on in a request the input before it had read part of, and acks it on the same connection', async () => {
    const first = await start();
    const c = await rawClient(first.port);
    await c.send(mp.arr(mp.str('docker.web'), mp.int32(T), dockerRecord('before'), encodeMsgpack({ chunk: 'k0' })));
    await c.waitReplies(1);
    const request = mp.arr(mp.str('docker.web'), mp.int32(T), dockerRecord('split by the reload'), encodeMsgpack({ chunk: 'k1' }));
    const read = bytesIn();
    await c.send(request.subarray(0, 20));
    await until('the first part read', async () => (await bytesIn()) >= (await read) + 20);
    const second = await reload(first);
    expect(second.logs.find((l) => l.msg === 'forward connection taken over at a reload')).toMatchObject({ unread: 20 });
    await c.send(request.subarray(20));
    expect(await c.waitReplies(2)).toEqual([{ ack: 'k0' }, { ack: 'k1' }]);
    expect(messages(first, second)).toEqual(['before', 'split by the reload']);
    c.socket.destroy();
  });

  it('keeps a client past the handshake when the shared key stays, and closes it when the key changed', async () => {
    const handshake = async (port: number): Promise<Awaited<ReturnType<typeof rawClient>>> => {
      const c = await rawClient(port);
      const [helo] = (await c.waitReplies(1)) as Array<[string, { nonce: Buffer }]>;
      const salt = 'a'.repeat(16);
      await c.send(mp.arr(mp.str('PING'), mp.str('client.example'), mp.str(salt), mp.str(sharedKeyDigest(salt, 'client.example', helo![1].nonce, 'secret')), mp.str(''), mp.str('')));
      await c.waitReplies(2);
      return c;
    };
    const first = await start({ shared_key: 'secret', self_hostname: 'clogs.example' });
    const c = await handshake(first.port);
    const second = await reload(first, { shared_key: 'secret', self_hostname: 'clogs.example' });
    await c.send(mp.arr(mp.str('docker.web'), mp.int32(T), dockerRecord('no second handshake'), encodeMsgpack({ chunk: 'k' })));
    expect((await c.waitReplies(3))[2]).toEqual({ ack: 'k' });

    const third = await reload(second, { shared_key: 'another', self_hostname: 'clogs.example' });
    await c.closed;
    expect(third.logs.find((l) => l.msg === 'forward input listening')).toMatchObject({ keptConnections: 0 });
    expect(messages(first, second, third)).toEqual(['no second handshake']);
  });
  for (const cut of [1, 2, 3, 7, 40, 300]) {
    it(`reads on in a request cut at byte ${cut}, behind a gzip chunk`, async () => {
      const first = await start();
      const c = await rawClient(first.port);
      const gz = mp.arr(mp.str('docker.web'), mp.bin(gzipSync(Buffer.concat([mp.arr(mp.int32(T), dockerRecord('gz 1')), mp.arr(mp.int32(T), dockerRecord('gz 2'))]))), encodeMsgpack({ chunk: 'g', compressed: 'gzip' }));
      const big = mp.arr(mp.str('docker.web'), mp.int32(T), dockerRecord('x'.repeat(400)), encodeMsgpack({ chunk: 'k' }));
      const read = bytesIn();
      await c.send(Buffer.concat([gz, big.subarray(0, cut)]));
      await until('both parts read', async () => (await bytesIn()) >= (await read) + gz.length + cut);
      const second = await reload(first);
      await c.send(big.subarray(cut));
      expect(await c.waitReplies(2)).toEqual([{ ack: 'g' }, { ack: 'k' }]);
      expect(messages(first, second)).toEqual(['gz 1', 'gz 2', 'x'.repeat(400)]);
      c.socket.destroy();
    });
  }

  it('takes what a client writes while the inputs restart, and its close', async () => {
    const first = await start();
    const other = await rawClient(first.port);
    const c = await rawClient(first.port);
    await c.send(mp.arr(mp.str('docker.web'), mp.int32(T), dockerRecord('before'), mp.map([])));
    await until('the first line', () => first.sink.events.length === 1);
    // A write of another connection holds the stop while this client writes on and closes.
    first.sink.hold();
    await other.send(mp.arr(mp.str('docker.web'), mp.int32(T), dockerRecord('other'), encodeMsgpack({ chunk: 'o' })));
    await until('the write held', () => first.sink.pendingWrites === 1);
    const stopping = first.input.stopKeepingConnections();
    for (let i = 0; i < 50; i++) await c.send(mp.arr(mp.str('docker.web'), mp.int32(T), dockerRecord(`gap ${i}`), mp.map([])));
    c.socket.end();
    first.sink.release();
    const kept = await stopping;
    expect(kept.size).toBe(2);
    const second = await start({ listen: `127.0.0.1:${first.port}` }, { stateDir: first.stateDir, kept });
    await c.closed;
    expect(messages(first, second)).toEqual(['before', 'other', ...Array.from({ length: 50 }, (_, i) => `gap ${i}`)]);
    expect(await metric('clogs_input_connections')).toBe(1);
    other.socket.destroy();
    await until('no connection counted', async () => (await metric('clogs_input_connections')) === 0);
  });

  it('survives a client that resets its connection while the input stops', async () => {
    const first = await start();
    const a = await rawClient(first.port);
    const b = await rawClient(first.port);
    await a.send(mp.arr(mp.str('docker.web'), mp.int32(T), dockerRecord('a'), encodeMsgpack({ chunk: 'a' })));
    await a.waitReplies(1);
    // b's request is being written when the reload comes: the stop waits for it, a is let go at once.
    first.sink.hold();
    await b.send(mp.arr(mp.str('docker.web'), mp.int32(T), dockerRecord('b'), encodeMsgpack({ chunk: 'b' })));
    await until('b held', () => first.sink.pendingWrites === 1);
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown): void => void uncaught.push(err);
    process.prependListener('uncaughtException', onUncaught);
    try {
      const stopping = first.input.stopKeepingConnections();
      await new Promise((r) => setTimeout(r, 50));
      a.socket.resetAndDestroy();
      await new Promise((r) => setTimeout(r, 200));
      first.sink.release();
      const kept = await stopping;
      const second = await start({ listen: `127.0.0.1:${first.port}` }, { stateDir: first.stateDir, kept });
      expect(second.logs.find((l) => l.msg === 'forward input listening')).toMatchObject({ keptConnections: 1 });
    } finally {
      process.off('uncaughtException', onUncaught);
    }
    expect(uncaught).toEqual([]);
    expect(await metric('clogs_input_connections')).toBe(1);
    b.socket.destroy();
  });

  it('counts the connections it took over against max_connections', async () => {
    const first = await start({ max_connections: 1 });
    const a = await rawClient(first.port);
    await a.send(mp.arr(mp.str('docker.web'), mp.int32(T), dockerRecord('a'), encodeMsgpack({ chunk: 'a' })));
    await a.waitReplies(1);
    const second = await reload(first, { max_connections: 1 });
    const b = await rawClient(first.port);
    await b.send(mp.arr(mp.str('docker.web'), mp.int32(T), dockerRecord('b'), encodeMsgpack({ chunk: 'b' })));
    await b.closed;
    expect(second.logs.find((l) => l.msg === 'refusing forward connection: max_connections reached')).toBeDefined();
    expect(messages(first, second)).toEqual(['a']);
    a.socket.destroy();
  });

  it('acks a chunk the input before acked, sent again after the reload, without writing it twice', async () => {
    const first = await start();
    const c = await rawClient(first.port);
    const request = mp.arr(mp.str('docker.web'), mp.int32(T), dockerRecord('once'), encodeMsgpack({ chunk: 'k1' }));
    await c.send(request);
    await c.waitReplies(1);
    const second = await reload(first);
    // The client missed the ack (Docker's two goroutines read one socket, an ack timeout) and sends it again.
    await c.send(request);
    expect(await c.waitReplies(2)).toEqual([{ ack: 'k1' }, { ack: 'k1' }]);
    const again = await rawClient(second.port);
    await again.send(request);
    expect(await again.waitReplies(1)).toEqual([{ ack: 'k1' }]);
    expect(messages(first, second)).toEqual(['once']);
    c.socket.destroy();
    again.socket.destroy();
  });

  it('closes a connection still in its handshake', async () => {
    const first = await start({ shared_key: 'k' });
    const c = await rawClient(first.port);
    await c.waitReplies(1);
    const kept = await first.input.stopKeepingConnections();
    expect(kept.size).toBe(0);
    await c.closed;
  });
});

/** Where the TLS tests' certificates are: a server's, two CAs, and a client's signed by ca1; ca.pem holds ca1 until a test replaces it. */
let dir = '';
const tls = () => ({ cert: join(dir, 'server.pem'), key: join(dir, 'server.key'), ca: join(dir, 'ca.pem') });

/** A TLS client with ca1's client certificate. */
function client(port: number): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = connectTls({ host: '127.0.0.1', port, ca: readFileSync(join(dir, 'server.pem')), cert: readFileSync(join(dir, 'client.pem')), key: readFileSync(join(dir, 'client.key')) }, () => resolve(s));
    s.once('error', reject);
  });
}

describe('the forward input across a reload, over TLS', () => {
  const ssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'clogs-handover-tls-'));
    for (const ca of ['ca1', 'ca2']) ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${ca}.key`, '-out', `${ca}.pem`, '-days', '2', '-subj', `/CN=${ca}`);
    ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.pem', '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1');
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'client.key', '-out', 'client.csr', '-subj', '/CN=client');
    ssl('x509', '-req', '-in', 'client.csr', '-CA', 'ca1.pem', '-CAkey', 'ca1.key', '-CAcreateserial', '-out', 'client.pem', '-days', '2');
    copyFileSync(join(dir, 'ca1.pem'), join(dir, 'ca.pem'));
  });

  it('keeps a client without acks and takes every line it wrote, once', async () => {
    const first = await start({ tls: tls() });
    const socket = await client(first.port);
    let failed: Error | undefined;
    socket.on('error', (e) => (failed = e));
    let n = 0;
    const timer = setInterval(() => socket.write(mp.arr(mp.str('docker.web'), mp.eventTime(T, n), dockerRecord(`line ${n++}`), mp.map([]))), 2);
    await until('lines flowing', () => first.sink.events.length > 20, 10_000);
    const kept = await first.input.stopKeepingConnections();
    const second = await start({ listen: `127.0.0.1:${first.port}`, tls: tls() }, { stateDir: first.stateDir, kept });
    await until('lines flowing into the next input', () => second.sink.events.length > 20, 10_000);
    clearInterval(timer);
    await until('every line written', () => messages(first, second).length >= n, 10_000);
    expect(failed).toBeUndefined();
    expect(messages(first, second)).toEqual(Array.from({ length: n }, (_, i) => `line ${i}`));
    socket.destroy();
  });

  it('closes a client whose CA the reload replaced in the same file', async () => {
    const first = await start({ tls: tls() });
    const socket = await client(first.port);
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.on('error', () => undefined);
    socket.write(mp.arr(mp.str('docker.web'), mp.int32(T), dockerRecord('before'), mp.map([])));
    await until('the first line', () => first.sink.events.length === 1);
    // ca1 revoked: ca.pem now holds ca2 only, then the reload.
    copyFileSync(join(dir, 'ca2.pem'), join(dir, 'ca.pem'));
    const kept = await first.input.stopKeepingConnections();
    const second = await start({ listen: `127.0.0.1:${first.port}`, tls: tls() }, { stateDir: first.stateDir, kept });
    await closed;
    expect(second.logs.find((l) => l.msg === 'forward input listening')).toMatchObject({ keptConnections: 0 });
    expect(messages(first, second)).toEqual(['before']);
    copyFileSync(join(dir, 'ca1.pem'), join(dir, 'ca.pem'));
  });
});
