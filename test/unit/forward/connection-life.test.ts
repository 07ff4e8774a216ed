/**
 * A forward connection's life against clients that do not play along: one
 * that never reads its acks, one that trickles its PING, and a client
 * without acks still writing while the collector stops.
 */
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { encodeMsgpack } from '../../../src/collector/forward/encode.js';
import { dockerRecord, mp, rawClient, startTestInput, type TestInput } from '../../helpers/forward.js';
import { until } from '../../helpers/until.js';

const T = 1795341190;
let running: TestInput | undefined;

afterEach(async () => {
  vi.useRealTimers();
  await running?.stop();
  running = undefined;
});

describe('forward connection life', () => {
  it('stops reading a client that does not read its acks, and goes on once it does', async () => {
    running = await startTestInput();
    const input = running;
    const socket = connect({ host: '127.0.0.1', port: input.port });
    await new Promise((r) => socket.once('connect', r));
    socket.pause();
    // Acks of 250 bytes: 80,000 of them are 20 MB, past what the two sockets' buffers hold.
    const total = 80_000;
    const chunkId = (n: number): string => String(n).padStart(240, '0');
    let sent = 0;
    const writeAll = async (): Promise<void> => {
      for (; sent < total; sent++) {
        const ok = socket.write(mp.arr(mp.str('t'), mp.int32(T), dockerRecord(`line ${sent}`), encodeMsgpack({ chunk: chunkId(sent) })));
        if (!ok) await new Promise((r) => socket.once('drain', r));
      }
    };
    const writing = writeAll();
    await until('the input paused: no event for a while', async () => {
      const before = input.sink.events.length;
      await new Promise((r) => setTimeout(r, 300));
      return input.sink.events.length === before && before > 0;
    }, 20_000);
    expect(input.sink.events.length).toBeLessThan(total);
    socket.resume();
    await writing;
    await until('every line written once the acks are read', () => input.sink.events.length === total, 30_000);
    socket.destroy();
  });

  it('closes a client whose PING trickles in past the 30 s deadline, however often it sends a byte', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    running = await startTestInput({ shared_key: 'secret' });
    const c = await rawClient(running.port);
    await c.waitReplies(1);
    const ping = mp.arr(mp.str('PING'), mp.str('slow.example'), mp.str('0123456789abcdef'), mp.str('x'.repeat(128)), mp.str(''), mp.str(''));
    // A byte every 9.5 s: an inactivity timer would never fire.
    for (let i = 0; i < 4; i++) {
      await c.send(ping.subarray(i, i + 1));
      await vi.advanceTimersByTimeAsync(9_500);
    }
    vi.useRealTimers();
    await Promise.race([c.closed, new Promise((_, reject) => setTimeout(() => reject(new Error('still open past the deadline')), 3000))]);
    expect(running.logs.find((l) => l.msg === 'closing forward connection: bad input')).toMatchObject({ code: 'CLOGS_AUTH', reason: 'no PING within 30 s of HELO' });
  });

  it('closes a client without acks at once when stopping, so it loses only what it wrote meanwhile', async () => {
    running = await startTestInput();
    const input = running;
    // As fluent-logger-golang without acks: it never reads, a line every 5 ms, and it counts the writes the kernel took.
    const socket: Socket = connect({ host: '127.0.0.1', port: input.port, allowHalfOpen: true });
    socket.on('error', () => undefined);
    await new Promise((r) => socket.once('connect', r));
    let taken = 0;
    let failed = false;
    let n = 0;
    const timer = setInterval(() => {
      if (failed || socket.destroyed) return;
      socket.write(mp.arr(mp.str('t'), mp.int32(T), dockerRecord(`line ${n++}`), mp.map([])), (err) => (err ? (failed = true) : taken++));
    }, 5);
    await until('lines flowing', () => input.sink.events.length > 20, 10_000);
    await input.stop();
    running = undefined;
    await until('the client sees the close', () => failed || socket.destroyed, 10_000);
    clearInterval(timer);
    const stored = input.sink.events.length;
    // Reading on to see the client's FIN dropped everything it wrote for the next second: ~200 lines.
    expect(taken - stored).toBeLessThan(40);
    socket.destroy();
  });
});
