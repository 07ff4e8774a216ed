/**
 * The positions a follower hands on while the parser holds the pieces of a
 * split line (over 16 KiB, its end not come yet) on a stream that has handed
 * on no line: the next opening's `since` must not pass them, or the engine
 * never sends that line again (test/integration/docker-follower.test.ts has
 * it against the real engine, across a restart of the input).
 */
import pino from 'pino';
import type { Logger } from '../../../src/log.js';
import { registry } from '../../../src/metrics.js';
import { captureLogger } from '../../helpers/forward.js';
import { describe, expect, it } from 'vitest';
import { sinceParam, type Positions } from '../../../src/collector/docker/checkpoints.js';
import { Follower } from '../../../src/collector/docker/follower.js';
import type { LogBodyHandlers, OpenLogs } from '../../../src/collector/docker/log-stream.js';
import type { ContainerInfo } from '../../../src/collector/docker/metadata.js';
import type { LineSink } from '../../../src/collector/docker/shipper.js';
import type { Stream } from '../../../src/collector/event.js';
import { LineRenderer } from '../../../src/collector/line-render.js';
import { formatNanoTime } from '../../../src/collector/time.js';
import { eventsOf } from '../../helpers/batch.js';
import { makeNormalizer } from '../multiline/helpers.js';

const ID = 'f'.repeat(64);
const INFO: ContainerInfo = { id: ID, name: 'app', image: 'busybox', labels: {}, tty: false, logDriver: 'json-file', running: true, finishedAtMs: 0, meta: Object.freeze({ id: ID, name: 'app' }) };
const ts = (nsec: number) => formatNanoTime(1_795_341_190, nsec);
const PIECE = 'x'.repeat(16 * 1024);

/** One multiplexed frame; `text` ends with "\n" unless it is a piece before a line's last. */
function frame(stream: Stream, nsec: number, text: string): Buffer {
  const payload = Buffer.from(`${ts(nsec)} ${text}`);
  const header = Buffer.alloc(8);
  header[0] = stream === 'stdout' ? 1 : 2;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

async function harness(perLine: boolean, log: Logger = pino({ level: 'silent' })) {
  const { n } = makeNormalizer(undefined);
  const shipped: string[] = [];
  const positions: Positions[] = [];
  const sink: LineSink = {
    add: (_id, _name, lines, streams) => {
      for (const e of eventsOf(lines)) shipped.push(`${e.stream} ${e.message.length > 50 ? `${e.message.length} chars` : e.message}`);
      positions.push(streams);
      return true;
    },
    hasRoom: () => true,
    whenDrained: () => () => undefined,
    whenNextCycle: () => () => undefined,
  };
  const opened: Array<{ since: string | undefined; handlers: LogBodyHandlers }> = [];
  const openLogs: OpenLogs = async (_id, since, handlers) => {
    opened.push({ since, handlers });
    return { pause: () => undefined, resume: () => undefined, close: () => undefined };
  };
  const follower = new Follower(INFO, {}, { openLogs, normalizer: n, renderer: new LineRenderer(n), sink, log, maxLineBytes: 1 << 20, perLine, onEnded: () => undefined });
  await follower.start();
  const read = (...frames: Buffer[]) => opened.at(-1)!.handlers.data(frames, false);
  return { follower, shipped, positions, opened, read };
}

describe('Follower positions with a split line held', () => {
  it('keeps a stream whose first line is held in pieces from being passed by the other stream', async () => {
    const h = await harness(false);
    h.read(frame('stdout', 1, 'a\n'));
    h.read(frame('stderr', 2, PIECE));
    h.read(frame('stdout', 3, 'b\n'));
    expect(h.shipped).toEqual(['stdout a', 'stdout b']);
    expect(h.positions.at(-1)!.stderr).toEqual({ ts: ts(2), lines: 0, ords: 0 });

    // The stream breaks with the line unfinished: the reopening reads it
    // again from its first piece, and nothing of stdout twice.
    await h.follower.start();
    expect(h.opened.at(-1)!.since).toBe(sinceParam(ts(2)));
    h.read(frame('stdout', 1, 'a\n'), frame('stderr', 2, PIECE), frame('stdout', 3, 'b\n'), frame('stderr', 2, '\n'), frame('stdout', 4, 'c\n'));
    expect(h.shipped).toEqual(['stdout a', 'stdout b', 'stderr 16384 chars', 'stdout c']);
    expect(h.positions.at(-1)!.stderr).toEqual({ ts: ts(2), lines: 1, ords: 1 });
    h.follower.stop();
  });

  it('hands a per-line sink no position past a line of the same read it has not had yet', async () => {
    const h = await harness(true);
    h.read(frame('stdout', 1, 'a\n'), frame('stderr', 2, 'e\n'), frame('stderr', 3, PIECE));
    expect(h.shipped).toEqual(['stdout a', 'stderr e']);
    expect(h.positions.map((p) => p.stderr?.ts)).toEqual([undefined, ts(2)]);
    // A stream with a position keeps it: the pieces come after it.
    h.read(frame('stdout', 4, 'b\n'));
    expect(h.positions.at(-1)!.stderr).toEqual({ ts: ts(2), lines: 1, ords: 1 });
    h.follower.stop();
  });
});

describe('Follower: a stream that goes back in time', () => {
  it('takes the lines the engine sends again, and says so once a minute, counted each time', async () => {
    const counted = async (): Promise<number> => (await registry.getSingleMetric('clogs_input_errors_total')!.get()).values.find((v) => v.labels.reason === 'went_back')?.value ?? 0;
    const before = await counted();
    const { log, logs } = captureLogger();
    const { shipped, read } = await harness(false, log);
    // As Docker 20.10 after a json-file rotation: lines again from an earlier point.
    read(frame('stdout', 100, 'a\n'), frame('stdout', 200, 'b\n'), frame('stdout', 300, 'c\n'), frame('stdout', 200, 'b\n'), frame('stdout', 300, 'c\n'), frame('stdout', 250, 'b2\n'));
    expect(shipped).toEqual(['stdout a', 'stdout b', 'stdout c', 'stdout b', 'stdout c', 'stdout b2']);
    expect(logs.filter((l) => (l.msg as string).startsWith('container log went back in time'))).toMatchObject([{ stream: 'stdout', last: ts(300), next: ts(200), times: 1 }]);
    expect((await counted()) - before).toBe(2);
  });
});

describe('Follower failures', () => {
  it('are not ended by lines taken before: a stream that breaks at the same bad frame after each opening backs off further', async () => {
    const h = await harness(false);
    h.read(frame('stdout', 1, 'a\n'));
    // The stream broke, and its openings since failed twice (discovery.ts counts them).
    h.follower.failures = 2;
    await h.follower.start();
    // The engine sends `a` again from the checkpoint: nothing new, still failing.
    h.read(frame('stdout', 1, 'a\n'));
    expect(h.follower.failures).toBe(2);
    const bad = Buffer.from([9, 0, 0, 0, 0, 0, 0, 1, 0x78]);
    h.read(frame('stdout', 1, 'a\n'), bad);
    expect(h.follower.failures).toBe(2);
    await h.follower.start();
    h.read(frame('stdout', 1, 'a\n'), frame('stdout', 2, 'b\n'));
    expect(h.follower.failures).toBe(0);
    expect(h.shipped).toEqual(['stdout a', 'stdout b']);
    h.follower.stop();
  });
});
