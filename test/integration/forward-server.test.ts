/**
 * The forward input as a server: listening, UDP heartbeat, TLS, acks and
 * their order, resends, split lines under acks (and after a crash), stop and
 * backpressure. In process, real sockets, a capturing sink.
 */
import { execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import fluentLogger from 'fluent-logger';
import { afterEach, describe, expect, it } from 'vitest';
import { ClogsError } from '../../src/errors.js';
import { inputErrors, registry } from '../../src/metrics.js';
import { encodeMsgpack } from '../../src/collector/forward/encode.js';
import { MAX_IN_FLIGHT_BYTES } from '../../src/collector/forward/render-budget.js';
import { CONTAINER_ID, type CaptureSink, decodeReplies, dockerRecord, mp, rawClient, type RawClient, startTestInput, type TestInput } from '../helpers/forward.js';
import { until } from '../helpers/until.js';
import { tempDir } from '../helpers/services.js';

const T = 1795341190;
const FIXTURES = join(process.cwd(), 'test/fixtures/docker/fluentd');
const request = (log: string, chunk?: string, tag = 'web'): Buffer =>
  mp.arr(mp.str(tag), mp.int32(T), dockerRecord(log), chunk === undefined ? mp.map([]) : encodeMsgpack({ chunk }));

async function errorCount(reason: string): Promise<number> {
  return (await inputErrors.get()).values.find((v) => v.labels.input === 'forward' && v.labels.reason === reason)?.value ?? 0;
}

const started: TestInput[] = [];
async function start(...args: Parameters<typeof startTestInput<CaptureSink>>): Promise<TestInput> {
  const t = await startTestInput(...args);
  started.push(t);
  return t;
}
afterEach(async () => {
  for (const t of started.splice(0)) {
    t.sink.release();
    await t.stop();
  }
});

describe('listening', () => {
  it('reports the bound port when asked for port 0', async () => {
    const t = await start();
    expect(t.input.address).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(t.port).toBeGreaterThan(0);
    expect(t.input.ready()).toBe(true);
  });

  it('fails to start with CLOGS_LISTEN when the port is taken', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as { port: number }).port;
    try {
      await expect(startTestInput({ listen: `127.0.0.1:${port}` })).rejects.toSatisfy(
        (err: unknown) => err instanceof ClogsError && err.code === 'CLOGS_LISTEN' && err.message.startsWith(`cannot listen on 127.0.0.1:${port}: address in use`),
      );
    } finally {
      blocker.close();
    }
  });

  it('answers a UDP heartbeat on the same port with one zero byte', async () => {
    const t = await start();
    const udp = createSocket('udp4');
    const reply = new Promise<Buffer>((resolve) => udp.once('message', (m) => resolve(m)));
    udp.send(Buffer.from([0]), t.port, '127.0.0.1');
    expect(await reply).toEqual(Buffer.from([0]));
    udp.close();
  });

  it('serves TLS with a certificate, to fluent-logger and to a raw client', async () => {
    const dir = tempDir('forward-tls');
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { stdio: 'ignore' });
    const t = await start({ tls: { cert, key } });
    const ca = readFileSync(cert);

    const s = fluentLogger.createFluentSender<Record<string, unknown>>('tls', {
      host: '127.0.0.1',
      port: t.port,
      tls: true,
      tlsOptions: { ca, servername: 'localhost' },
      requireAckResponse: true,
      enableReconnect: false,
      internalLogger: { info: () => undefined, error: () => undefined },
    } as fluentLogger.Options);
    await new Promise<void>((resolve, reject) => s.emit('x', { msg: 'over tls' }, (err) => (err ? reject(err) : resolve())));
    s.end(undefined as unknown as string, undefined as unknown as Record<string, unknown>, () => undefined);

    const socket = tlsConnect({ host: '127.0.0.1', port: t.port, ca, servername: 'localhost' });
    const data: Buffer[] = [];
    socket.on('data', (d: Buffer) => data.push(d));
    await new Promise<void>((r) => socket.once('secureConnect', () => r()));
    socket.write(request('raw tls', 'tls-1'));
    await until('the TLS ack', () => decodeReplies(Buffer.concat(data)).length === 1, 5000);
    expect(decodeReplies(Buffer.concat(data))).toEqual([{ ack: 'tls-1' }]);
    socket.end();
    expect(t.sink.events.map((e) => e.message).sort()).toEqual(['over tls', 'raw tls']);
  });
});

describe('limits and metrics', () => {
  it('refuses connections beyond max_connections, logged and counted', async () => {
    const t = await start({ max_connections: 2 });
    const a = await rawClient(t.port);
    const b = await rawClient(t.port);
    await a.send(request('a', 'a1'));
    await b.send(request('b', 'b1'));
    await Promise.all([a.waitReplies(1), b.waitReplies(1)]);
    const c = await rawClient(t.port);
    await c.closed;
    await until('the refusal log', () => t.logs.some((l) => l.msg === 'refusing forward connection: max_connections reached'), 5000);
    expect(await errorCount('connection_limit')).toBeGreaterThanOrEqual(1);
    a.socket.end();
    b.socket.end();
  });

  it('counts events, bytes, connections and ack latency', async () => {
    const t = await start();
    const metric = async (name: string) => (await registry.getSingleMetric(name)!.get()).values as Array<{ value: number; labels: Record<string, string | number>; metricName?: string }>;
    const eventsBefore = (await metric('clogs_input_events_total')).find((v) => v.labels.input === 'forward')?.value ?? 0;
    const acksBefore = (await metric('clogs_forward_ack_latency_seconds')).find((v) => v.metricName === 'clogs_forward_ack_latency_seconds_count')?.value ?? 0;
    const c = await rawClient(t.port);
    await c.send(Buffer.concat([request('m1', 'k1'), request('m2', 'k2')]));
    await c.waitReplies(2);
    expect((await metric('clogs_input_connections')).find((v) => v.labels.input === 'forward')?.value).toBeGreaterThanOrEqual(1);
    c.socket.end();
    await c.closed;
    expect((await metric('clogs_input_events_total')).find((v) => v.labels.input === 'forward')?.value).toBe(eventsBefore + 2);
    expect((await metric('clogs_input_bytes_total')).find((v) => v.labels.input === 'forward')?.value).toBeGreaterThan(0);
    expect((await metric('clogs_forward_ack_latency_seconds')).find((v) => v.metricName === 'clogs_forward_ack_latency_seconds_count')?.value).toBe(acksBefore + 2);
    await until('the close', () => t.logs.some((l) => l.msg === 'forward connection closed'), 5000);
  });
});

describe('acks', () => {
  it('echoes the chunk byte for byte (Docker capture g1) and maps Docker records', async () => {
    const t = await start();
    const c = await rawClient(t.port);
    await c.send(readFileSync(join(FIXTURES, 'g1-request-ack-answered.bin')));
    await c.waitReplies(3);
    expect(c.received()).toEqual(readFileSync(join(FIXTURES, 'g1-request-ack-answered.reply.bin')));
    const e = t.sink.events[1]!;
    expect(e).toMatchObject({
      message: 'ack line 2',
      stream: 'stderr',
      container: { id: '525fbef00bf190f5f7fb56badfd7154814cc3972b599c0bebe0759b27d07a4aa', name: 'clogs-cap-g1-request-ack-answered' },
      clogs: { input: 'forward', tag: '525fbef00bf1' },
      '@timestamp': '2026-11-22T09:53:42.000000000Z',
    });
    expect(t.sink.events[0]!.container).toBe(t.sink.events[2]!.container);
    c.socket.end();
  });

  it('acks a resent chunk again without writing it twice (Docker capture g2: same bytes on three connections)', async () => {
    const t = await start();
    for (const name of ['g2-request-ack-withheld.bin', 'g2-request-ack-withheld.conn2.bin', 'g2-request-ack-withheld.conn3.bin']) {
      const c = await rawClient(t.port);
      await c.send(readFileSync(join(FIXTURES, name)));
      expect(await c.waitReplies(1)).toEqual([{ ack: 'qLsCawAAAABbtUTqHID9tg==' }]);
      c.socket.end();
    }
    expect(t.sink.events.map((e) => e.message)).toEqual(['unacked line 1']);
  });

  it.each([
    ['a byte-identical resend overtaking it waits for that write and is not written twice', 'first copy', 1],
    ['the same chunk id with other bytes is new data: written and acked too', 'other bytes', 2],
  ] as const)('while a chunk is being written, %s', async (_what, second, writes) => {
    const t = await start();
    t.sink.hold();
    const a = await rawClient(t.port);
    const b = await rawClient(t.port);
    await a.send(request('first copy', 'same-chunk'));
    await until('the first write', () => t.sink.pendingWrites === 1, 5000);
    await b.send(request(second, 'same-chunk'));
    if (writes === 2) await until('the second write', () => t.sink.pendingWrites === 2, 5000);
    else await new Promise((r) => setTimeout(r, 100));
    expect(a.replies()).toEqual([]);
    expect(b.replies()).toEqual([]);
    t.sink.release();
    expect(await a.waitReplies(1)).toEqual([{ ack: 'same-chunk' }]);
    expect(await b.waitReplies(1)).toEqual([{ ack: 'same-chunk' }]);
    expect(t.sink.events.map((e) => e.message)).toEqual([...new Set(['first copy', second])]);
    a.socket.end();
    b.socket.end();
  });

  it('writes every record of two clients that reuse the same chunk ids, and of one that restarts its numbering', async () => {
    const t = await start();
    // Chunk ids 1..20 on every start, as hand-written clients number them.
    const send = async (client: string): Promise<void> => {
      const c = await rawClient(t.port);
      const requests = Array.from({ length: 20 }, (_, i) => {
        const entries = Array.from({ length: 10 }, (_, j) => mp.arr(mp.int32(T), mp.strMap({ log: `${client} ${i * 10 + j}` })));
        return mp.arr(mp.str('app'), mp.bin(Buffer.concat(entries)), encodeMsgpack({ chunk: String(i + 1) }));
      });
      await c.send(Buffer.concat(requests));
      expect(await c.waitReplies(20)).toEqual(Array.from({ length: 20 }, (_, i) => ({ ack: String(i + 1) })));
      c.socket.end();
    };
    await Promise.all([send('a'), send('b')]);
    await send('a restarted');
    const want = ['a', 'b', 'a restarted'].flatMap((client) => Array.from({ length: 200 }, (_, n) => `${client} ${n}`));
    expect(t.sink.events.map((e) => e.message).sort()).toEqual(want.sort());
  });

  it('acks pipelined requests in order, grouping them into few writes', async () => {
    const t = await start();
    t.sink.hold();
    const c = await rawClient(t.port);
    await c.send(Buffer.concat(Array.from({ length: 200 }, (_, i) => request(`line ${i}`, `c${i}`))));
    await until('the first write', () => t.sink.pendingWrites === 1, 5000);
    await new Promise((r) => setTimeout(r, 50));
    t.sink.release();
    const acks = await c.waitReplies(200);
    expect(acks).toEqual(Array.from({ length: 200 }, (_, i) => ({ ack: `c${i}` })));
    expect(t.sink.events.map((e) => e.message)).toEqual(Array.from({ length: 200 }, (_, i) => `line ${i}`));
    expect(t.sink.writes).toBeLessThanOrEqual(3);
    c.socket.end();
  });

  it('acks in request order even when a later write is durable first', async () => {
    const t = await start();
    t.sink.hold();
    const c = await rawClient(t.port);
    await c.send(request('first', 'o1'));
    await until('the first write', () => t.sink.pendingWrites === 1, 5000);
    await c.send(request('second', 'o2'));
    await until('the second write', () => t.sink.pendingWrites === 2, 5000);
    t.sink.releaseNewest();
    await new Promise((r) => setTimeout(r, 100));
    expect(c.replies()).toEqual([]);
    t.sink.release();
    expect(await c.waitReplies(2)).toEqual([{ ack: 'o1' }, { ack: 'o2' }]);
    c.socket.end();
  });

  it('acks metrics and traces requests (fluent_signal) without writing them', async () => {
    const t = await start();
    const c = await rawClient(t.port);
    await c.send(mp.arr(mp.str('metrics'), mp.bin(mp.arr(mp.int32(T), mp.map([]))), encodeMsgpack({ chunk: 'm1', fluent_signal: 1 })));
    expect(await c.waitReplies(1)).toEqual([{ ack: 'm1' }]);
    expect(t.sink.events).toHaveLength(0);
    c.socket.end();
  });

  it('closes unacked when the sink fails, and the resend is written', async () => {
    const t = await start();
    t.sink.failNext = new Error('disk full');
    const c = await rawClient(t.port);
    await c.send(request('retry me', 'r1'));
    await c.closed;
    expect(c.replies()).toEqual([]);
    const again = await rawClient(t.port);
    await again.send(request('retry me', 'r1'));
    expect(await again.waitReplies(1)).toEqual([{ ack: 'r1' }]);
    expect(t.sink.events.map((e) => e.message)).toEqual(['retry me']);
    again.socket.end();
  });
});

describe('split lines under acks', () => {
  const pid = 'f181013f40a025714573b5b580c00c5746615071966a3130b4efa657a2a38c36';
  const piece = (log: Buffer | string, ordinal: number, last: boolean, chunk: string): Buffer =>
    mp.arr(
      mp.str('web'),
      mp.int32(T),
      mp.map([
        ['container_id', mp.str(CONTAINER_ID)],
        ['container_name', mp.str('/web-1')],
        ['source', mp.str('stdout')],
        ['log', mp.str(log)],
        ['partial_message', mp.str('true')],
        ['partial_id', mp.str(pid)],
        ['partial_ordinal', mp.str(String(ordinal))],
        ['partial_last', mp.str(String(last))],
      ]),
      encodeMsgpack({ chunk }),
    );
  // "✓" is e2 9c 93: the split cuts through it.
  const check = Buffer.from('✓');
  const part1 = Buffer.concat([Buffer.from('a'.repeat(100)), check.subarray(0, 2)]);
  const part2 = Buffer.concat([check.subarray(2), Buffer.from(' done')]);
  const whole = 'a'.repeat(100) + '✓ done';
  const storeDir = (t: TestInput): string => join(t.stateDir, 'forward-partials');

  it('acks piece 1 before the line is complete, stored on disk until the line is written', async () => {
    const t = await start();
    const c = await rawClient(t.port);
    await c.send(piece(part1, 1, false, 'p1'));
    expect(await c.waitReplies(1)).toEqual([{ ack: 'p1' }]);
    expect(t.sink.events).toHaveLength(0);
    expect(readdirSync(storeDir(t))).toEqual([pid]);
    await c.send(piece(part2, 2, true, 'p2'));
    expect(await c.waitReplies(2)).toEqual([{ ack: 'p1' }, { ack: 'p2' }]);
    expect(t.sink.events.map((e) => e.message)).toEqual([whole]);
    await until('the stored piece deleted', () => readdirSync(storeDir(t)).length === 0, 5000);
    c.socket.end();
  });

  it('joins the line whole when the write of its last piece fails and the client resends it', async () => {
    const t = await start();
    const c = await rawClient(t.port);
    await c.send(piece(part1, 1, false, 'p1'));
    expect(await c.waitReplies(1)).toEqual([{ ack: 'p1' }]);
    await until('piece 1 stored', () => readdirSync(storeDir(t)).length === 1, 5000);
    t.sink.failNext = new Error('disk full');
    await c.send(piece(part2, 2, true, 'p2'));
    await c.closed;
    expect(t.sink.events).toHaveLength(0);
    // Piece 1 was acked: only piece 2 comes again.
    const again = await rawClient(t.port);
    await again.send(piece(part2, 2, true, 'p2'));
    expect(await again.waitReplies(1)).toEqual([{ ack: 'p2' }]);
    expect(t.sink.events.map((e) => e.message)).toEqual([whole]);
    await until('the stored piece deleted', () => readdirSync(storeDir(t)).length === 0, 5000);
    again.socket.end();
  });

  /**
   * Piece 1 sent and acked, then the "crash": a second input on the same
   * state, as after a restart (the first never gets to flush); a client of it.
   */
  async function restartedAfterPiece1(): Promise<{ second: TestInput; d: RawClient }> {
    const first = await start();
    const c = await rawClient(first.port);
    await c.send(piece(part1, 1, false, 'p1'));
    await c.waitReplies(1);
    c.socket.destroy();
    const second = await start({}, { stateDir: first.stateDir });
    return { second, d: await rawClient(second.port) };
  }

  it('finds piece 1 again after a crash, when piece 2 comes to the restarted input', async () => {
    const { second, d } = await restartedAfterPiece1();
    await d.send(piece(part2, 2, true, 'p2'));
    expect(await d.waitReplies(1)).toEqual([{ ack: 'p2' }]);
    expect(second.sink.events.map((e) => e.message)).toEqual([whole]);
    expect(second.sink.events[0]!.container).toEqual({ id: CONTAINER_ID, name: 'web-1' });
    d.socket.end();
  });

  it('acks the resend of a piece whose ack a crash took, without joining the piece twice', async () => {
    // The ack was sent, but the client never read it: it resends piece 1 to the restarted input.
    const { second, d } = await restartedAfterPiece1();
    await d.send(piece(part1, 1, false, 'p1'));
    expect(await d.waitReplies(1)).toEqual([{ ack: 'p1' }]);
    await d.send(piece(part2, 2, true, 'p2'));
    expect(await d.waitReplies(2)).toEqual([{ ack: 'p1' }, { ack: 'p2' }]);
    expect(second.sink.events.map((e) => e.message)).toEqual([whole]);
    d.socket.end();
  });

  it('writes a piece whose last piece never comes after partial_timeout, and forgets it on disk', async () => {
    const t = await start({ partial_timeout: '200ms' });
    const c = await rawClient(t.port);
    await c.send(piece('no newline at exit', 1, false, 'p1'));
    await c.waitReplies(1);
    await until('the timeout flush', () => t.sink.events.length === 1, 5000);
    expect(t.sink.events[0]!.message).toBe('no newline at exit');
    await until('the stored piece deleted', () => !existsSync(join(storeDir(t), pid)), 5000);
    c.socket.end();
  });

  it('stores a piece that comes after the timeout wrote its line, as the next part, through a restart', async () => {
    const first = await start({ partial_timeout: '200ms' });
    const c = await rawClient(first.port);
    await c.send(piece('before the pause', 1, false, 'p1'));
    await c.waitReplies(1);
    await until('the timeout flush', () => first.sink.events.length === 1, 5000);
    await until('its stored piece forgotten', () => readdirSync(storeDir(first)).length === 0, 5000);
    await c.send(piece(' and after it', 2, false, 'p2'));
    await c.waitReplies(2);
    await until('piece 2 stored', () => readdirSync(storeDir(first)).length === 1, 5000);
    c.socket.destroy();
    const second = await start({ partial_timeout: '200ms' }, { stateDir: first.stateDir });
    const d = await rawClient(second.port);
    await d.send(piece(', the end', 3, true, 'p3'));
    await d.waitReplies(1);
    expect(first.sink.events.map((e) => e.message)).toEqual(['before the pause']);
    expect(second.sink.events.map((e) => e.message)).toEqual([' and after it, the end']);
    await until('the stored piece deleted', () => readdirSync(storeDir(second)).length === 0, 5000);
    d.socket.end();
  });
});

describe('split lines longer than max_line_size under acks', () => {
  const pid = 'a9d1c2e3f40a025714573b5b580c00c5746615071966a3130b4efa657a2a38c3';
  const MAX = 256;
  const PIECES = Array.from({ length: 10 }, (_, i) => String.fromCharCode(0x61 + i).repeat(100));
  const WHOLE = PIECES.join('');
  const piece = (ordinal: number, chunk = `q${ordinal}`): Buffer =>
    mp.arr(
      mp.str('web'),
      mp.int32(T),
      mp.strMap({
        container_id: CONTAINER_ID,
        source: 'stdout',
        log: PIECES[ordinal - 1]!,
        partial_message: 'true',
        partial_id: pid,
        partial_ordinal: String(ordinal),
        partial_last: String(ordinal === PIECES.length),
      }),
      encodeMsgpack({ chunk }),
    );
  const storeDir = (t: TestInput): string => join(t.stateDir, 'forward-partials');
  /** The pieces stored for the line now. */
  const stored = (t: TestInput): string[] =>
    readdirSync(storeDir(t)).flatMap((f) => readFileSync(join(storeDir(t), f), 'utf8').split('\n').filter(Boolean)).map((l) => Buffer.from((JSON.parse(l) as { l: string }).l, 'base64').toString());
  /** Sends pieces `from`..`to` one at a time, each after the ack of the one before, as Docker's driver does. */
  async function sendPieces(c: RawClient, from: number, to: number, check?: () => void): Promise<void> {
    for (let i = from; i <= to; i++) {
      const acked = c.replies().length;
      await c.send(piece(i));
      await c.waitReplies(acked + 1);
      check?.();
    }
  }
  const messages = (t: TestInput): string[] => t.sink.events.map((e) => e.message);

  it('writes the line in parts as its pieces come, holding at most one part', async () => {
    const t = await start({}, { maxLineBytes: MAX });
    const c = await rawClient(t.port);
    let mostStored = 0;
    await sendPieces(c, 1, PIECES.length, () => (mostStored = Math.max(mostStored, stored(t).join('').length)));
    expect(mostStored).toBeLessThan(MAX);
    // Parts of 300 bytes (three pieces), each cut at MAX like any long line; the last piece is a part of its own.
    expect(messages(t)).toEqual([WHOLE.slice(0, 256), WHOLE.slice(256, 300), WHOLE.slice(300, 556), WHOLE.slice(556, 600), WHOLE.slice(600, 856), WHOLE.slice(856, 900), WHOLE.slice(900)]);
    expect(t.sink.events.map((e) => [e.clogs.ordinal, e.clogs.piece])).toEqual([[0, 0], [0, 1], [1, 0], [1, 1], [2, 0], [2, 1], [3, undefined]]);
    await until('the stored pieces deleted', () => readdirSync(storeDir(t)).length === 0, 5000);
    c.socket.end();
  });

  it('goes on with the stored part after a crash, writing each byte once', async () => {
    const first = await start({}, { maxLineBytes: MAX });
    const c = await rawClient(first.port);
    await sendPieces(c, 1, 5);
    c.socket.destroy();
    await until('piece 5 stored', () => stored(first).length === 2, 5000);
    expect(stored(first)).toEqual([PIECES[3], PIECES[4]]);
    const second = await start({}, { stateDir: first.stateDir, maxLineBytes: MAX });
    const d = await rawClient(second.port);
    await sendPieces(d, 6, PIECES.length);
    expect([...messages(first), ...messages(second)].join('')).toBe(WHOLE);
    expect(messages(second)[0]).toBe(PIECES.slice(3, 6).join('').slice(0, MAX));
    // Part 1 goes on with the ordinal after part 0's, as it would have without the restart.
    expect(second.sink.events.map((e) => e.clogs.ordinal)).toEqual([1, 1, 2, 2, 3]);
    d.socket.end();
  });

  it('writes the part again, whole, when the write that cut it fails and the client resends', async () => {
    const t = await start({}, { maxLineBytes: MAX });
    const c = await rawClient(t.port);
    await sendPieces(c, 1, 2);
    await until('pieces 1 and 2 stored', () => stored(t).length === 2, 5000);
    t.sink.failNext = new Error('disk full');
    await c.send(piece(3));
    await c.closed;
    const again = await rawClient(t.port);
    await sendPieces(again, 3, PIECES.length);
    expect(messages(t).join('')).toBe(WHOLE);
    expect(messages(t).slice(0, 2)).toEqual([WHOLE.slice(0, 256), WHOLE.slice(256, 300)]);
    again.socket.end();
  });
});

describe('stack traces under acks', () => {
  const TRACE = ['Exception in thread "main" java.lang.IllegalStateException: row missing', '\tat com.example.Repo.load(Repo.java:24)', '\tat com.example.Main.main(Main.java:10)'];
  // Second-precision times, as Docker sends by default: lines of one trace share them.
  const line = (log: string, chunk: string, stream: 'stdout' | 'stderr' = 'stderr'): Buffer =>
    mp.arr(mp.str('web'), mp.int32(T), dockerRecord(log, {}, stream), encodeMsgpack({ chunk }));
  const storeDir = (t: TestInput): string => join(t.stateDir, 'forward-partials');

  it('acks the resend of a trace line whose ack a crash took, without taking the line twice', async () => {
    const first = await start();
    const c = await rawClient(first.port);
    await c.send(line(TRACE[0]!, 't1'));
    await c.waitReplies(1);
    await c.send(line(TRACE[1]!, 't2'));
    await c.waitReplies(2);
    c.socket.destroy();
    const second = await start({}, { stateDir: first.stateDir });
    const d = await rawClient(second.port);
    await d.send(line(TRACE[1]!, 't2'));
    expect(await d.waitReplies(1)).toEqual([{ ack: 't2' }]);
    await d.send(line(TRACE[2]!, 't3'));
    await d.waitReplies(2);
    await until('the trace written after its timeout', () => second.sink.events.length > 0, 10_000);
    expect(second.sink.events.map((e) => e.message)).toEqual([TRACE.join('\n')]);
    d.socket.end();
  });

  it('stores a trace that opens in the second of the one it closes apart from it, through a crash', async () => {
    const first = await start();
    const c = await rawClient(first.port);
    const next = ['java.lang.RuntimeException: B', '\tat com.example.B.run(B.java:7)'];
    for (const [i, l] of [TRACE[0]!, TRACE[1]!, ...next].entries()) {
      await c.send(line(l, `s${i}`));
      await c.waitReplies(i + 1);
    }
    c.socket.destroy();
    const second = await start({}, { stateDir: first.stateDir });
    const d = await rawClient(second.port);
    await d.send(line('after the trace', 's9'));
    await d.waitReplies(1);
    await until('the line after the trace', () => second.sink.events.some((e) => e.message === 'after the trace'), 5000);
    expect(second.sink.events.map((e) => e.message)).toEqual([next.join('\n'), 'after the trace']);
    d.socket.end();
  });

  it('writes a trace let go in a write that failed whole, when the client resends', async () => {
    const t = await start();
    const c = await rawClient(t.port);
    for (const [i, l] of TRACE.entries()) {
      await c.send(line(l, `t${i}`));
      await c.waitReplies(i + 1);
    }
    await until('the trace stored', () => readdirSync(storeDir(t)).length === 1, 5000);
    t.sink.failNext = new Error('disk full');
    await c.send(line('after the trace', 'a1'));
    await c.closed;
    expect(t.sink.events).toEqual([]);
    // The trace's lines were acked; only the line that let it go comes again.
    const again = await rawClient(t.port);
    await again.send(line('after the trace', 'a1'));
    expect(await again.waitReplies(1)).toEqual([{ ack: 'a1' }]);
    expect(t.sink.events.map((e) => e.message)).toEqual([TRACE.join('\n'), 'after the trace']);
    await until('the stored trace deleted', () => readdirSync(storeDir(t)).length === 0, 5000);
    again.socket.end();
  });

  /** A request of `record` (a line on stderr) and a line on stdout, whose write the trace's line alone would not make. */
  const withStdout = (record: Buffer, chunk: string): Buffer =>
    mp.arr(mp.str('web'), mp.bin(Buffer.concat([mp.arr(mp.int32(T), record), mp.arr(mp.int32(T), dockerRecord('on stdout', {}, 'stdout'))])), encodeMsgpack({ chunk }));

  /** After the write of `request` failed: sends it again, ends the trace, and finds it whole, once. */
  async function resendAndEnd(t: TestInput, request: Buffer): Promise<void> {
    const again = await rawClient(t.port);
    await again.send(request);
    await again.waitReplies(1);
    await again.send(line(TRACE[2]!, 't2'));
    await again.send(line('after the trace', 'a1'));
    await again.waitReplies(3);
    expect(t.sink.events.map((e) => e.message)).toEqual(['on stdout', TRACE.join('\n'), 'after the trace']);
    again.socket.end();
  }

  it('takes a line of a held trace once when the write of its request failed and the client resends it', async () => {
    const t = await start();
    const c = await rawClient(t.port);
    await c.send(line(TRACE[0]!, 't0'));
    await c.waitReplies(1);
    await until('the first line stored', () => readdirSync(storeDir(t)).length === 1, 5000);
    const request = withStdout(dockerRecord(TRACE[1]!, {}, 'stderr'), 't1');
    t.sink.failNext = new Error('disk full');
    await c.send(request);
    await c.closed;
    await resendAndEnd(t, request);
  });

  it('loses no acked piece of a split line whose joined line a trace took in a write that failed', async () => {
    const t = await start();
    const c = await rawClient(t.port);
    const half = TRACE[1]!.length >> 1;
    const piece = (log: string, ordinal: number, last: boolean): Buffer =>
      dockerRecord(log, { partial_message: 'true', partial_id: 'f0a1', partial_ordinal: String(ordinal), partial_last: String(last) }, 'stderr');
    await c.send(line(TRACE[0]!, 't0'));
    await c.waitReplies(1);
    await c.send(mp.arr(mp.str('web'), mp.int32(T), piece(TRACE[1]!.slice(0, half), 1, false), encodeMsgpack({ chunk: 'p1' })));
    await c.waitReplies(2);
    await until('the first line and piece 1 stored', () => readdirSync(storeDir(t)).length === 2, 5000);
    // Piece 2 ends the line, which joins the trace.
    const request = withStdout(piece(TRACE[1]!.slice(half), 2, true), 'p2');
    t.sink.failNext = new Error('disk full');
    await c.send(request);
    await c.closed;
    await resendAndEnd(t, request);
    await until('the stored lines deleted', () => readdirSync(storeDir(t)).length === 0, 5000);
  });

  it('stores a held line only once the records before it in its request are durable', async () => {
    const t = await start();
    t.sink.hold();
    const c = await rawClient(t.port);
    const entries = Buffer.concat([mp.arr(mp.int32(T), dockerRecord('plain before', {}, 'stderr')), mp.arr(mp.int32(T), dockerRecord(TRACE[0]!, {}, 'stderr'))]);
    await c.send(mp.arr(mp.str('web'), mp.bin(entries), encodeMsgpack({ chunk: 'k1' })));
    await until('the write of the plain line', () => t.sink.pendingWrites === 1, 5000);
    await new Promise((r) => setTimeout(r, 200));
    expect(readdirSync(storeDir(t))).toEqual([]);
    expect(c.replies()).toEqual([]);
    t.sink.release();
    expect(await c.waitReplies(1)).toEqual([{ ack: 'k1' }]);
    expect(readdirSync(storeDir(t))).toHaveLength(1);
    c.socket.end();
  });
});

describe('stop and backpressure', () => {
  it('stop() lets in-flight requests finish and ack, and writes held split lines', async () => {
    const t = await start();
    const c = await rawClient(t.port);
    await c.send(mp.arr(mp.str('web'), mp.int32(T), mp.strMap({ container_id: CONTAINER_ID, source: 'stdout', log: 'held', partial_message: 'true', partial_id: 'x1', partial_ordinal: '1', partial_last: 'false' }), mp.map([])));
    t.sink.hold();
    await c.send(request('in flight', 's1'));
    await until('the held write', () => t.sink.pendingWrites === 1, 5000);
    let stopped = false;
    const stopping = t.input.stop().then(() => (stopped = true));
    await new Promise((r) => setTimeout(r, 100));
    expect(stopped).toBe(false);
    expect(t.input.ready()).toBe(false);
    t.sink.release();
    await stopping;
    expect(c.replies()).toEqual([{ ack: 's1' }]);
    await c.closed;
    expect(t.sink.events.map((e) => e.message)).toEqual(['in flight', 'held']);
  });

  it('stops reading a client whose requests wait for a slow sink, and catches up after', async () => {
    const t = await start();
    t.sink.hold();
    const c = await rawClient(t.port);
    const line = 'x'.repeat(1000);
    const n = 30_000; // ~34 MB
    const big = Buffer.concat(Array.from({ length: n }, (_, i) => request(line, `b${i}`)));
    c.socket.write(big);
    await new Promise((r) => setTimeout(r, 500));
    // The server read at most its bound (plus socket buffers): the rest waits in the client.
    expect(c.socket.writableLength).toBeGreaterThan(big.length - MAX_IN_FLIGHT_BYTES - 16 * 1024 * 1024);
    t.sink.release();
    await c.waitReplies(n, 60_000);
    expect(t.sink.events).toHaveLength(n);
    c.socket.end();
  });
});
