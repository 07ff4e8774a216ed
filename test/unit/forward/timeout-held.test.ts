/**
 * A line a trace holds after a timeout flush, on a real forward input with
 * acks: the flush lets the old trace go and deletes its stored file, so a
 * line a new trace took from it must be stored again, or a crash before
 * that trace's own timeout loses it although its request was acked.
 */
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeMsgpack } from '../../../src/collector/forward/encode.js';
import { dockerRecord, mp, rawClient, startTestInput, type TestInput } from '../../helpers/forward.js';
import { until } from '../../helpers/until.js';

const T = 1795341190;
const running: TestInput[] = [];

afterEach(async () => {
  for (const t of running.splice(0)) await t.stop();
});

describe('a line held anew by a timeout flush', () => {
  it('is stored under its new trace before the old one is forgotten, and comes back after a crash', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'clogs-timeout-held-'));
    const first = await startTestInput({}, { stateDir });
    running.push(first);
    const c = await rawClient(first.port);
    // Node's source excerpt opens a trace; the error line is taken tentatively, and at the
    // timeout the excerpt goes alone while the error line opens a trace of its own.
    const lines = ['/app/src/config.js:12', 'TypeError: x is not a function'];
    for (const [i, line] of lines.entries()) await c.send(mp.arr(mp.str('docker.web'), mp.int32(T + i), dockerRecord(line, {}, 'stderr'), encodeMsgpack({ chunk: `held-${i}` })));
    await c.waitReplies(2);
    await until('the excerpt written by the timeout', () => first.sink.events.some((e) => e.message === lines[0]), 5000);
    const stored = readdirSync(join(stateDir, 'forward-partials')).map((f) => readFileSync(join(stateDir, 'forward-partials', f), 'utf8'));
    expect(stored.join('')).toContain(Buffer.from(lines[1]!).toString('base64'));
    expect(first.sink.events.map((e) => e.message)).not.toContain(lines[1]);

    // The crash: the first input is abandoned as it is; a second one starts on its state.
    const second = await startTestInput({}, { stateDir });
    running.push(second);
    await until('the error line written after the restart', () => second.sink.events.some((e) => e.message === lines[1]), 5000);
    c.socket.destroy();
  });
});
