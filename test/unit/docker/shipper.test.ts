import { afterEach, describe, expect, it } from 'vitest';
import { eventsOf } from '../../helpers/batch.js';
import { EncodedBatch } from '../../../src/collector/encoded.js';
import type { LogEvent } from '../../../src/collector/event.js';
import { Pipeline } from '../../../src/collector/pipeline.js';
import type { CheckpointStore } from '../../../src/collector/docker/checkpoints.js';
import { Shipper } from '../../../src/collector/docker/shipper.js';
import type { WriteOptions } from '../../../src/sinks/sink.js';
import { createLogger } from '../../../src/log.js';
import { until } from '../../helpers/until.js';
import { event } from '../file-sink/helpers.js';


/**
 * A pipeline whose sink records each batch's messages (and, in `steps`, each
 * write and sync), and a store that records each checkpoint.
 */
function harness(maxBytes = 1 << 20, durableMs = 0, heartbeatMs = 60_000) {
  const batches: string[][] = [];
  const checkpoints: string[][] = [];
  const steps: string[] = [];
  const lost: string[][] = [];
  const control: { failSync?: Error; expired?: boolean } = {};
  const pipeline = new Pipeline([
    {
      name: 'capture',
      start: async () => {},
      close: async () => {},
      write: async (batch: EncodedBatch, opts?: WriteOptions) => {
        batches.push(eventsOf(batch).map((e) => e.message));
        steps.push(opts?.deferred ? 'write deferred' : 'write');
      },
      sync: async () => {
        steps.push('sync');
        if (control.failSync) throw control.failSync;
      },
    },
  ]);
  const store = {
    hasStaged: () => false,
    hasExpired: () => control.expired === true,
    prepare: async (updates: ReadonlyMap<string, unknown>) => ({
      commit: async () => {
        checkpoints.push([...updates.keys()]);
        steps.push('checkpoint');
      },
      discard: () => undefined,
    }),
  } as unknown as CheckpointStore;
  const shipper = new Shipper({ pipeline, store, log: createLogger('silent'), maxEvents: 100, maxBytes, heartbeatMs, minCycleMs: 50, durableMs, onLost: (ids) => void lost.push([...ids]) });
  return { shipper, batches, checkpoints, steps, lost, control };
}

const shippers: Shipper[] = [];
afterEach(() => {
  for (const s of shippers.splice(0)) s.close();
});

describe('Shipper', () => {
  it('resumes parked followers just before it takes a batch, so what they read then joins it', async () => {
    const { shipper, batches, checkpoints } = harness();
    shippers.push(shipper);
    shipper.add('a', 'a', EncodedBatch.of([event('a1')]), {});
    await until('the first write', () => checkpoints.length === 1);
    shipper.add('a', 'a', EncodedBatch.of([event('a2')]), {});
    // b's socket held a line while it was parked: it reads it when released.
    shipper.whenNextCycle(() => shipper.add('b', 'b', EncodedBatch.of([event('b1')]), {}));
    await until('the second write', () => checkpoints.length === 2);
    expect(batches).toEqual([['a1'], ['a2', 'b1']]);
    expect(checkpoints[1]).toEqual(['a', 'b']);
  });

  it('runs a cycle for parked followers even when nothing else is waiting', async () => {
    const { shipper, batches } = harness();
    shippers.push(shipper);
    let released = 0;
    shipper.whenNextCycle(() => released++);
    await until('the release', () => released === 1);
    await shipper.drained();
    expect(batches).toEqual([]);
  });

  it('releases a follower that parks again between its release and the cycle, at the next cycle', async () => {
    const { shipper } = harness();
    shippers.push(shipper);
    let released = 0;
    // As a follower that read lately does when its socket is empty: it parks again as soon as it is released.
    const park = (): void => {
      released++;
      if (released < 3) shipper.whenNextCycle(park);
    };
    shipper.whenNextCycle(park);
    await until('three releases, one per cycle', () => released === 3, 2000, () => released);
    await shipper.drained();
  });

  it('releases a follower that keeps parking again once a cycle, not in a loop', async () => {
    const { shipper } = harness();
    shippers.push(shipper);
    let released = 0;
    let parking = true;
    const park = (): void => {
      released++;
      if (parking) shipper.whenNextCycle(park);
    };
    shipper.whenNextCycle(park);
    await new Promise((r) => setTimeout(r, 500));
    parking = false;
    // minCycleMs is 50: about 10 cycles in 500 ms, where an empty cycle that rescheduled at once ran thousands.
    expect(released).toBeGreaterThan(2);
    expect(released).toBeLessThan(30);
    await shipper.drained();
  });

  it('writes a checkpoint on its heartbeat only when a removed container\'s grace is over', async () => {
    const { shipper, checkpoints, control } = harness(1 << 20, 0, 20);
    shippers.push(shipper);
    await new Promise((r) => setTimeout(r, 200));
    expect(checkpoints).toEqual([]);
    control.expired = true;
    await until('a checkpoint', () => checkpoints.length > 0, 2000);
  });

  it('forgets a parked follower whose wait was cancelled', async () => {
    const { shipper, checkpoints } = harness();
    shippers.push(shipper);
    let released = 0;
    const cancel = shipper.whenNextCycle(() => released++);
    cancel();
    shipper.add('a', 'a', EncodedBatch.of([event('a1')]), {});
    await until('the write', () => checkpoints.length === 1);
    expect(released).toBe(0);
  });

  it('counts the filling batch by its rendered lines, and wakes the followers once it is taken', async () => {
    const { shipper, batches } = harness(1000);
    shippers.push(shipper);
    expect(shipper.add('a', 'a', EncodedBatch.of([event('x'.repeat(600))]), {})).toBe(true);
    expect(shipper.add('a', 'a', EncodedBatch.of([event('y'.repeat(600))]), {})).toBe(false);
    let woken = false;
    shipper.whenDrained(() => (woken = true));
    await until('the batch taken', () => woken);
    await shipper.drained();
    expect(batches.map((b) => b.map((m) => m.length))).toEqual([[600, 600]]);
  });

  it('writes every cycle deferred, and syncs and checkpoints once per durable interval', async () => {
    const { shipper, batches, checkpoints, steps } = harness(1 << 20, 60_000);
    shippers.push(shipper);
    shipper.add('a', 'a', EncodedBatch.of([event('a1')]), {});
    await until('the first write', () => batches.length === 1);
    shipper.add('b', 'b', EncodedBatch.of([event('b1')]), {});
    await until('the second write', () => batches.length === 2);
    expect(checkpoints).toEqual([]);
    // Stopping asks for the durable point now: the sinks synced before the checkpoint that covers both writes.
    await shipper.drained();
    expect(steps).toEqual(['write deferred', 'write deferred', 'sync', 'checkpoint']);
    expect(checkpoints).toEqual([['a', 'b']]);
  });

  it('comes to the durable point after durableMs with nothing more to write', async () => {
    const { shipper, checkpoints, steps } = harness(1 << 20, 100);
    shippers.push(shipper);
    shipper.add('a', 'a', EncodedBatch.of([event('a1')]), {});
    await until('the checkpoint', () => checkpoints.length === 1);
    expect(steps).toEqual(['write deferred', 'sync', 'checkpoint']);
  });

  it('comes to the durable point sooner when the unsynced lines would exceed maxBytes', async () => {
    const { shipper, batches, checkpoints } = harness(1000, 60_000);
    shippers.push(shipper);
    shipper.add('a', 'a', EncodedBatch.of([event('x'.repeat(600))]), {});
    await until('the first write', () => batches.length === 1);
    expect(checkpoints).toEqual([]);
    shipper.add('b', 'b', EncodedBatch.of([event('y'.repeat(600))]), {});
    await until('the checkpoint', () => checkpoints.length === 1);
    expect(checkpoints).toEqual([['a', 'b']]);
  });

  it('re-reads every container written since the last durable point when the sync fails, and checkpoints none of them', async () => {
    const { shipper, batches, checkpoints, lost, control } = harness(1 << 20, 60_000);
    shippers.push(shipper);
    shipper.add('a', 'a', EncodedBatch.of([event('a1')]), {});
    await until('the first write', () => batches.length === 1);
    shipper.add('b', 'b', EncodedBatch.of([event('b1')]), {});
    await until('the second write', () => batches.length === 2);
    control.failSync = new Error('EIO');
    await shipper.drained();
    expect(lost).toEqual([['a', 'b']]);
    expect(checkpoints).toEqual([]);
  });

  it('record() resolves once a checkpoint holds the positions, while other containers keep it busy', async () => {
    const { shipper, batches, checkpoints } = harness(1 << 20, 60_000);
    shippers.push(shipper);
    let n = 0;
    const busy = setInterval(() => shipper.add('a', 'a', EncodedBatch.of([event(`a${n++}`)]), {}), 5);
    try {
      await until('a few writes', () => batches.length >= 2);
      await shipper.record('f', 'f', { stdout: { ts: '2026-11-30T04:00:00.000000000Z', lines: 0, ords: 0 } });
      expect(checkpoints.some((c) => c.includes('f'))).toBe(true);
    } finally {
      clearInterval(busy);
    }
  });

  it('record() resolves when the write of its positions failed', async () => {
    const { shipper, checkpoints, lost, control } = harness(1 << 20, 60_000);
    shippers.push(shipper);
    control.failSync = new Error('EIO');
    await shipper.record('f', 'f', { stdout: { ts: '2026-11-30T04:00:00.000000000Z', lines: 0, ords: 0 } });
    expect(checkpoints).toEqual([]);
    expect(lost).toEqual([['f']]);
  });

  it('leaves out an event that cannot be rendered and keeps the others', async () => {
    const { shipper, batches } = harness();
    shippers.push(shipper);
    const broken = { ...event('broken'), clogs: undefined } as unknown as LogEvent;
    shipper.addLoose([event('a1'), broken, event('a2')]);
    await shipper.drained();
    expect(batches).toEqual([['a1', 'a2']]);
  });
});
