/**
 * When a follower reads: a container that wrote lately is read at the
 * Shipper's write cycles only; a quiet one wakes the follower on its next
 * line.
 */
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Follower } from '../../../src/collector/docker/follower.js';
import type { LogBodyHandlers, OpenLogs } from '../../../src/collector/docker/log-stream.js';
import type { ContainerInfo } from '../../../src/collector/docker/metadata.js';
import type { LineSink } from '../../../src/collector/docker/shipper.js';
import { LineRenderer } from '../../../src/collector/line-render.js';
import { formatNanoTime } from '../../../src/collector/time.js';
import { makeNormalizer } from '../multiline/helpers.js';

const ID = 'e'.repeat(64);
const INFO: ContainerInfo = { id: ID, name: 'web', image: 'busybox', labels: {}, tty: false, logDriver: 'json-file', running: true, finishedAtMs: 0, meta: Object.freeze({ id: ID, name: 'web' }) };

function frame(text: string, nsec: number): Buffer {
  const payload = Buffer.from(`${formatNanoTime(1_795_341_190, nsec)} ${text}\n`);
  const header = Buffer.alloc(8);
  header[0] = 1;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

async function harness(perLine = false) {
  const { n } = makeNormalizer(undefined);
  const calls: string[] = [];
  const cycles: Array<() => void> = [];
  const sink: LineSink = {
    add: () => true,
    hasRoom: () => true,
    whenDrained: () => () => undefined,
    whenNextCycle: (fn) => {
      cycles.push(fn);
      calls.push('park');
      return () => undefined;
    },
  };
  let handlers: LogBodyHandlers | undefined;
  const openLogs: OpenLogs = async (_id, _since, h) => {
    handlers = h;
    return { pause: () => void calls.push('pause'), resume: () => void calls.push('resume'), close: () => undefined };
  };
  const follower = new Follower(INFO, {}, { openLogs, normalizer: n, renderer: new LineRenderer(n), sink, log: pino({ level: 'silent' }), maxLineBytes: 1 << 20, perLine, onEnded: () => undefined });
  await follower.start();
  let nsec = 0;
  return {
    calls,
    read: (text: string) => handlers!.data([frame(text, (nsec += 1000))], true),
    /** The Shipper starting its next cycle: resumes the parked follower, then lets the poll run. */
    cycle: async () => {
      cycles.shift()!();
      await new Promise((r) => setImmediate(r));
    },
    stop: () => follower.stop(),
  };
}

afterEach(() => vi.restoreAllMocks());

describe('Follower read timing', () => {
  it('parks a container that wrote lately again when a cycle finds its socket empty', async () => {
    const h = await harness();
    h.read('first burst');
    expect(h.calls).toEqual(['resume', 'pause', 'park']);
    h.calls.length = 0;
    await h.cycle();
    expect(h.calls).toEqual(['resume', 'pause', 'park']);
    h.stop();
  });

  it('leaves a quiet container resumed, to wake on its next line', async () => {
    const h = await harness();
    h.read('long ago');
    h.calls.length = 0;
    const now = Date.now();
    vi.spyOn(Date, 'now').mockReturnValue(now + 5000);
    await h.cycle();
    expect(h.calls).toEqual(['resume']);
    h.stop();
  });

  it('leaves a backfill follower resumed: it reads what it can before clogs stops', async () => {
    const h = await harness(true);
    h.read('first burst');
    h.calls.length = 0;
    await h.cycle();
    expect(h.calls).toEqual(['resume']);
    h.stop();
  });
});
