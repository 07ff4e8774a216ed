/**
 * A request and its byte-identical resend in one read (a client that resends
 * before its first copy's ack could arrive) go out in the same write: the
 * resend is acked with its first copy, not left waiting for a write that
 * waits for it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { encodeMsgpack } from '../../../src/collector/forward/encode.js';
import { dockerRecord, mp, rawClient, startTestInput, until, type TestInput } from '../../helpers/forward.js';

const T = 1795341190;

let running: TestInput | undefined;
afterEach(async () => {
  await running?.stop();
  running = undefined;
});

describe('a resend in the same read as its first copy', () => {
  it('is acked with it, and written once', async () => {
    running = await startTestInput();
    const t = running;
    const c = await rawClient(t.port);
    const request = mp.arr(mp.str('docker.web'), mp.bin(mp.arr(mp.eventTime(T, 1), dockerRecord('once'))), encodeMsgpack({ chunk: 'r-1' }));
    await c.send(Buffer.concat([request, request]));
    expect(await c.waitReplies(2)).toEqual([{ ack: 'r-1' }, { ack: 'r-1' }]);
    await until(() => t.sink.events.length > 0, 10_000, 'the record');
    expect(t.sink.events.map((e) => e.message)).toEqual(['once']);
    c.socket.end();
  });
});
