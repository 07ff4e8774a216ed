/**
 * Ordinals across a stop of the forward input: identical lines with the same
 * whole-second time, as Docker's driver sends them, keep distinct
 * identities when the input starts again between them.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeMsgpack } from '../../../src/collector/forward/encode.js';
import { dockerRecord, mp, rawClient, startTestInput, type TestInput } from '../../helpers/forward.js';

const T = 1795341190;
let running: TestInput | undefined;

afterEach(async () => {
  await running?.stop();
  running = undefined;
});

/** Sends the records, each acked, on one connection, and closes it. */
async function send(input: TestInput, records: Array<[number, Buffer]>): Promise<void> {
  const c = await rawClient(input.port);
  for (const [i, [time, record]] of records.entries()) await c.send(mp.arr(mp.str('docker.web'), mp.int32(time), record, encodeMsgpack({ chunk: `c-${Date.now()}-${i}` })));
  await c.waitReplies(records.length);
  c.socket.end();
  await c.closed;
}

describe('forward ordinals across a stop', () => {
  it('count on from where the stopped input was, per source and stream', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'clogs-ordinals-'));
    running = await startTestInput({}, { stateDir });
    await send(running, [[T, dockerRecord('same line')], [T, dockerRecord('same line')], [T, dockerRecord('other stream', {}, 'stderr')]]);
    expect(running.sink.events.map((e) => e.clogs.ordinal)).toEqual([0, 1, 0]);
    await running.stop();

    running = await startTestInput({}, { stateDir });
    await send(running, [[T, dockerRecord('same line')], [T, dockerRecord('other stream', {}, 'stderr')], [T + 1, dockerRecord('same line')]]);
    expect(running.sink.events.map((e) => [e.message, e.stream, e.clogs.ordinal])).toEqual([
      ['same line', 'stdout', 2],
      ['other stream', 'stderr', 1],
      ['same line', 'stdout', 0],
    ]);
  });

  it('count on across starts that saw none of a source\'s lines, as async Docker drivers send buffered lines late', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'clogs-ordinals-'));
    running = await startTestInput({}, { stateDir });
    await send(running, [[T, dockerRecord('same line')], [T, dockerRecord('same line')]]);
    await running.stop();
    running = await startTestInput({}, { stateDir });
    await running.stop();
    running = await startTestInput({}, { stateDir });
    await send(running, [[T, dockerRecord('same line')]]);
    expect(running.sink.events.map((e) => e.clogs.ordinal)).toEqual([2]);
  });

  it('count from 0 when what the last stop saved is damaged', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'clogs-ordinals-'));
    writeFileSync(join(stateDir, 'forward-ordinals.json'), '{"ordinals":[{"source"');
    running = await startTestInput({}, { stateDir });
    await send(running, [[T, dockerRecord('same line')]]);
    expect(running.sink.events.map((e) => e.clogs.ordinal)).toEqual([0]);
    expect(running.logs.some((l) => l.msg === 'the ordinals of the last stop are damaged; counting from 0')).toBe(true);
  });
});
