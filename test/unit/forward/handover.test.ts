/**
 * A reload restarts the forward input without closing its connections:
 * clients, with acks or without, go on writing into the same socket, and
 * nothing they wrote is lost or taken twice.
 */
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
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

/** Bytes the forward inputs of this process read so far. */
async function bytesIn(): Promise<number> {
  const { values } = await registry.getSingleMetric('clogs_input_bytes_total')!.get();
  return values.find((v) => v.labels.input === 'forward')?.value ?? 0;
}

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
});
