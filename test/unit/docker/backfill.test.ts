import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EncodedBatch } from '../../../src/collector/encoded.js';
import type { Stream } from '../../../src/collector/event.js';
import type { Subscriber } from '../../../src/collector/pipeline.js';
import { BackfillGate } from '../../../src/collector/docker/backfill.js';
import type { Positions } from '../../../src/collector/docker/checkpoints.js';
import { until } from '../../helpers/until.js';
import { captureLog, container, event, removeTempDirs, tempDir } from '../file-sink/helpers.js';

const A = container('a');
const B = container('b');

/** A line of `c` at whole second `sec`, as the forward input or the Docker input renders it. */
function lines(c: typeof A, input: 'forward' | 'docker', ...messages: Array<[string, number]>): EncodedBatch {
  const stream: Stream = 'stdout';
  return EncodedBatch.of(
    messages.map(([message, sec]) =>
      event(message, { container: c, stream, '@timestamp': `2026-11-30T10:00:${String(sec).padStart(2, '0')}.${input === 'forward' ? '000000000' : '123456789'}Z`, clogs: { input, seq: sec, ordinal: 0 } }),
    ),
  );
}

const at = (ts: string): Positions => ({ stdout: { ts, lines: 1, ords: 1 } });

/** A gate with a pipeline and a shipper of its own, recording what it hands on. */
function gate(memoryFile: string, holdMs = 60_000) {
  const subscribers: Subscriber[] = [];
  const shipped: Array<{ id: string; count: number; streams: Positions }> = [];
  const { log, lines: logged } = captureLog();
  const g = new BackfillGate({
    shipper: {
      add: (id, _name, batch, streams) => (shipped.push({ id, count: batch.count, streams }), true),
      hasRoom: () => true,
      whenDrained: () => () => undefined,
      whenNextCycle: () => () => undefined,
    },
    pipeline: { subscribe: (fn) => (subscribers.push(fn), () => undefined) },
    memoryFile,
    log,
    holdMs,
    windowMs: 5 * 60_000,
    maxHeldEvents: 1000,
    maxRemembered: 1000,
  });
  g.watch(A.id!);
  g.watch(B.id!);
  const deliver = (batch: EncodedBatch) => {
    for (const fn of subscribers) fn(batch);
  };
  return { g, shipped, deliver, logged };
}

afterEach(removeTempDirs);

describe('BackfillGate across a stop', () => {
  it('hands on each container’s delivered lines at a stop, whatever another container still waits for', () => {
    const { g, shipped, deliver } = gate(join(tempDir(), 'memory.json'));
    deliver(lines(B, 'forward', ['b1', 1]));
    g.add(A.id!, 'a', lines(A, 'docker', ['a1 not delivered yet', 1]), at('a1'));
    g.add(B.id!, 'b', lines(B, 'docker', ['b1', 1]), at('b1'));
    g.add(A.id!, 'a', lines(A, 'docker', ['a2', 2]), at('a2'));
    deliver(lines(A, 'forward', ['a2', 2]));
    g.settle();
    g.close();
    // B's line is stored: its checkpoint moves. A's stop at its first line the driver may still send.
    expect(shipped).toEqual([{ id: B.id, count: 0, streams: at('b1') }]);
  });

  it('drops after a restart a line the forward input delivered just before the stop', async () => {
    const file = join(tempDir(), 'memory.json');
    const first = gate(file);
    first.deliver(lines(A, 'forward', ['read before the stop', 1], ['read after the restart', 1], ['twice', 2], ['twice', 2]));
    first.g.add(A.id!, 'a', lines(A, 'docker', ['read before the stop', 1], ['twice', 2]), at('x'));
    first.g.settle();
    first.g.close();
    await first.g.save();
    expect(first.shipped).toEqual([{ id: A.id, count: 0, streams: at('x') }]);

    const second = gate(file, 0);
    await second.g.load();
    // Taken back once: a third run must not match against it again.
    expect(existsSync(file)).toBe(false);
    second.g.add(A.id!, 'a', lines(A, 'docker', ['read after the restart', 1], ['twice', 2], ['never delivered', 3]), at('y'));
    await until('the held lines are decided', () => second.shipped.length === 1);
    second.g.close();
    expect(second.shipped).toEqual([{ id: A.id, count: 1, streams: at('y') }]);
  });

  it('starts without a memory when its file is unreadable, and says so', async () => {
    const file = join(tempDir(), 'memory.json');
    writeFileSync(file, '{"deliveries":[["id"]]}');
    const { g, logged } = gate(file);
    await g.load();
    g.close();
    expect(existsSync(file)).toBe(false);
    expect(logged.some((l) => l.level === 40 && String(l.msg).includes('backfill memory unreadable'))).toBe(true);
  });
});

describe('BackfillGate and stack traces', () => {
  it('matches a trace line by line, however each input joined it', async () => {
    const { g, shipped, deliver } = gate(join(tempDir(), 'memory.json'), 50);
    const trace = ['java.lang.IllegalStateException: boom', '\tat a.B.c(B.java:1)', '\tat a.B.main(B.java:9)'];
    // The forward input joined it (it knew the container's multiline rule); the follower did not (its label says off).
    deliver(lines(A, 'forward', [trace.join('\n'), 1], ['ready', 1]));
    g.add(A.id!, 'a', lines(A, 'docker', ...trace.map((l): [string, number] => [l, 1]), ['ready', 1]), at('a1'));
    // And the other way round: delivered line by line, read back joined.
    deliver(lines(A, 'forward', ...trace.map((l): [string, number] => [l, 2])));
    g.add(A.id!, 'a', lines(A, 'docker', [trace.join('\n'), 2]), at('a2'));
    // A trace with a line the driver never delivered is written whole.
    deliver(lines(A, 'forward', [trace[0]!, 3], [trace[1]!, 3]));
    g.add(A.id!, 'a', lines(A, 'docker', [trace.join('\n'), 3]), at('a3'));
    await until('the held lines are decided', () => shipped.length === 3);
    g.close();
    expect(shipped.map((s) => s.count)).toEqual([0, 0, 1]);
  });
});

describe('BackfillGate when a container is removed', () => {
  it('still decides the lines it holds for it, against deliveries that come after the removal', async () => {
    const { g, shipped, deliver } = gate(join(tempDir(), 'memory.json'), 50);
    g.add(A.id!, 'a', lines(A, 'docker', ['delivered late', 1], ['never delivered', 2]), at('a2'));
    g.unwatch(A.id!);
    deliver(lines(A, 'forward', ['delivered late', 1]));
    await until('the held lines are decided', () => shipped.length === 1);
    expect(shipped).toEqual([{ id: A.id, count: 1, streams: at('a2') }]);
    // Forgotten once nothing of it is held: a delivery now is not remembered.
    deliver(lines(A, 'forward', ['after', 3]));
    g.add(A.id!, 'a', lines(A, 'docker', ['after', 3]), at('a3'));
    await until('the next line is decided', () => shipped.length === 2);
    g.close();
    expect(shipped[1]).toEqual({ id: A.id, count: 1, streams: at('a3') });
  });
});
