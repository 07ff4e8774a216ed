import { afterEach, describe, expect, it } from 'vitest';
import { eventsOf } from '../../helpers/batch.js';
import type { EncodedBatch } from '../../../src/collector/encoded.js';
import type { LogEvent } from '../../../src/collector/event.js';
import { Pipeline } from '../../../src/collector/pipeline.js';
import type { CheckpointStore } from '../../../src/collector/docker/checkpoints.js';
import { Shipper } from '../../../src/collector/docker/shipper.js';
import { createLogger } from '../../../src/log.js';
import { until } from '../../helpers/until.js';
import { event } from '../file-sink/helpers.js';


/** A pipeline whose sink records each batch's messages, and a store that records each checkpoint. */
function harness(maxBytes = 1 << 20) {
  const batches: string[][] = [];
  const checkpoints: string[][] = [];
  const pipeline = new Pipeline([
    {
      name: 'capture',
      start: async () => {},
      close: async () => {},
      write: async (batch: EncodedBatch) => void batches.push(eventsOf(batch).map((e) => e.message)),
    },
  ]);
  const store = {
    hasStaged: () => false,
    prepare: async (updates: ReadonlyMap<string, unknown>) => ({
      commit: async () => void checkpoints.push([...updates.keys()]),
      discard: () => undefined,
    }),
  } as unknown as CheckpointStore;
  const shipper = new Shipper({ pipeline, store, log: createLogger('silent'), maxEvents: 100, maxBytes, heartbeatMs: 60_000, minCycleMs: 50, onLost: () => undefined });
  return { shipper, batches, checkpoints };
}

const shippers: Shipper[] = [];
afterEach(() => {
  for (const s of shippers.splice(0)) s.close();
});

describe('Shipper', () => {
  it('resumes parked followers just before it takes a batch, so what they read then joins it', async () => {
    const { shipper, batches, checkpoints } = harness();
    shippers.push(shipper);
    shipper.add('a', 'a', [event('a1')], {});
    await until('the first write', () => checkpoints.length === 1);
    shipper.add('a', 'a', [event('a2')], {});
    // b's socket held a line while it was parked: it reads it when released.
    shipper.whenNextCycle(() => shipper.add('b', 'b', [event('b1')], {}));
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

  it('forgets a parked follower whose wait was cancelled', async () => {
    const { shipper, checkpoints } = harness();
    shippers.push(shipper);
    let released = 0;
    const cancel = shipper.whenNextCycle(() => released++);
    cancel();
    shipper.add('a', 'a', [event('a1')], {});
    await until('the write', () => checkpoints.length === 1);
    expect(released).toBe(0);
  });

  it('counts the filling batch by its rendered lines, and wakes the followers once it is taken', async () => {
    const { shipper, batches } = harness(1000);
    shippers.push(shipper);
    expect(shipper.add('a', 'a', [event('x'.repeat(600))], {})).toBe(true);
    expect(shipper.add('a', 'a', [event('y'.repeat(600))], {})).toBe(false);
    let woken = false;
    shipper.whenDrained(() => (woken = true));
    await until('the batch taken', () => woken);
    await shipper.drained();
    expect(batches.map((b) => b.map((m) => m.length))).toEqual([[600, 600]]);
  });

  it('leaves out an event that cannot be rendered and keeps the others', async () => {
    const { shipper, batches } = harness();
    shippers.push(shipper);
    const broken = { ...event('broken'), clogs: undefined } as unknown as LogEvent;
    shipper.add('a', 'a', [event('a1'), broken, event('a2')], {});
    await shipper.drained();
    expect(batches).toEqual([['a1', 'a2']]);
  });
});
