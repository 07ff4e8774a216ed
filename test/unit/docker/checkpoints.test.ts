import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CheckpointStore,
  recordLine,
  recordOrdinal,
  resumeSince,
  ResumeFilter,
  sinceParam,
  type Positions,
} from '../../../src/collector/docker/checkpoints.js';
import { createLogger } from '../../../src/log.js';

const log = createLogger('silent');
const dirs: string[] = [];
const temp = () => {
  const d = mkdtempSync(join(tmpdir(), 'clogs-cp-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const T1 = '2026-11-22T09:54:18.128352973Z';
const T2 = '2026-11-22T09:54:18.230437548Z';
const T3 = '2026-11-22T09:54:19.000000000Z';
const update = (streams: Positions, name = 'web') => new Map([['c1', { name, streams }]]);

describe('since and resume', () => {
  it('renders the engine since format with all 9 digits', () => {
    expect(sinceParam(T1)).toBe('1795341258.128352973');
    expect(sinceParam('2026-11-22T09:54:19.000000001Z')).toBe('1795341259.000000001');
    expect(resumeSince({})).toBeUndefined();
    expect(resumeSince({ stdout: { ts: T2, lines: 1, ords: 1 }, stderr: { ts: T1, lines: 3, ords: 3 } })).toBe('1795341258.128352973');
  });

  it('skips exactly the lines already emitted at the checkpoint timestamp, per stream', () => {
    const f = new ResumeFilter({ stdout: { ts: T2, lines: 2, ords: 2 }, stderr: { ts: T1, lines: 1, ords: 1 } });
    // The engine returns from the earliest position (T1) on, in its file order.
    const read: [('stdout' | 'stderr'), string][] = [
      ['stderr', T1], // emitted
      ['stdout', T1], // older than stdout's position: emitted
      ['stdout', T2], // 1st at T2: emitted
      ['stderr', T2], // new
      ['stdout', T2], // 2nd at T2: emitted
      ['stdout', T2], // 3rd at T2: new
      ['stdout', T3], // new
      ['stdout', T1], // a clock step back after the position: new, not skipped
    ];
    expect(read.map(([s, t]) => f.admit(s, t))).toEqual([false, false, false, true, false, true, true, true]);
  });

  it('reports a gap when the checkpoint line itself is gone (log rotated)', () => {
    const gaps: string[] = [];
    const f = new ResumeFilter({ stdout: { ts: T1, lines: 1, ords: 1 }, stderr: { ts: T1, lines: 1, ords: 1 } }, (s, cp, first) => gaps.push(`${s} ${cp} ${first}`));
    expect(f.admit('stdout', T1)).toBe(false);
    expect(f.admit('stdout', T2)).toBe(true);
    expect(f.admit('stderr', T3)).toBe(true);
    expect(gaps).toEqual([`stderr ${T1} ${T3}`]);
  });

  it('admits everything of a stream without a position', () => {
    const f = new ResumeFilter({ stdout: { ts: T2, lines: 1, ords: 1 } });
    expect(f.admit('stderr', T1)).toBe(true);
    expect(f.admit('stdout', T2)).toBe(false);
    expect(f.admit('stdout', T2)).toBe(true);
  });

  it('records lines and ordinals (a line cut in pieces numbers several events)', () => {
    const p: Positions = {};
    recordLine(p, 'stdout', T1);
    recordOrdinal(p, 'stdout', T1, 0);
    recordLine(p, 'stdout', T1);
    recordOrdinal(p, 'stdout', T1, 1);
    recordOrdinal(p, 'stdout', T1, 2);
    expect(p.stdout).toEqual({ ts: T1, lines: 2, ords: 3 });
    recordLine(p, 'stdout', T2);
    expect(p.stdout).toEqual({ ts: T2, lines: 1, ords: 0 });
  });
});

describe('CheckpointStore', () => {
  it('starts empty without a file, and remembers positions across a reopen', async () => {
    const dir = temp();
    const before = Date.now();
    const a = await CheckpointStore.open(dir, 60_000, log);
    expect(a.firstRunAt).toBeGreaterThanOrEqual(before);
    const prepared = await a.prepare(update({ stdout: { ts: T1, lines: 2, ords: 2 } }));
    // Not visible before the commit: a kill here keeps the previous checkpoint.
    expect(JSON.parse(readFileSync(join(dir, 'checkpoints.json'), 'utf8')).containers).toEqual({});
    expect(a.get('c1')).toBeUndefined();
    await prepared.commit();
    expect(a.get('c1')?.streams.stdout).toEqual({ ts: T1, lines: 2, ords: 2 });
    const b = await CheckpointStore.open(dir, 60_000, log);
    expect(b.get('c1')).toEqual({ name: 'web', streams: { stdout: { ts: T1, lines: 2, ords: 2 } } });
    expect(b.firstRunAt).toBe(a.firstRunAt);
  });

  it('keeps the previous file when a batch is discarded, and merges streams on update', async () => {
    const dir = temp();
    const s = await CheckpointStore.open(dir, 60_000, log);
    await (await s.prepare(update({ stdout: { ts: T1, lines: 1, ords: 1 } }))).commit();
    const before = readFileSync(join(dir, 'checkpoints.json'), 'utf8');
    (await s.prepare(update({ stdout: { ts: T3, lines: 9, ords: 9 } }))).discard();
    await new Promise((r) => setTimeout(r, 20));
    expect(readFileSync(join(dir, 'checkpoints.json'), 'utf8')).toBe(before);
    expect(readdirSync(dir)).toEqual(['checkpoints.json']);
    await (await s.prepare(update({ stderr: { ts: T2, lines: 1, ords: 1 } }))).commit();
    expect(s.get('c1')?.streams).toEqual({ stdout: { ts: T1, lines: 1, ords: 1 }, stderr: { ts: T2, lines: 1, ords: 1 } });
  });

  it('keeps the first run\'s start for every run after it, also when that run never reached a durable point', async () => {
    const dir = temp();
    const first = await CheckpointStore.open(dir, 60_000, log);
    await new Promise((r) => setTimeout(r, 5));
    const next = await CheckpointStore.open(dir, 60_000, log);
    expect(next.firstRunAt).toBe(first.firstRunAt);
    expect(next.ids()).toEqual([]);
    expect(readdirSync(dir)).toEqual(['checkpoints.json']);
    // A later run's checkpoint (its aliveAt later still) does not move it.
    await (await next.prepare(update({ stdout: { ts: T1, lines: 1, ords: 1 } }))).commit();
    expect((await CheckpointStore.open(dir, 60_000, log)).firstRunAt).toBe(first.firstRunAt);
  });

  it('takes the last run\'s life for the first run\'s start in a file written before it was kept', async () => {
    const dir = temp();
    writeFileSync(join(dir, 'checkpoints.json'), JSON.stringify({ version: 1, aliveAt: 1795341190000, containers: {} }));
    expect((await CheckpointStore.open(dir, 60_000, log)).firstRunAt).toBe(1795341190000);
  });

  it('writes the checkpoint after a discarded one at once, its temp file not removed under it', async () => {
    const s = await CheckpointStore.open(temp(), 60_000, log);
    for (let i = 0; i < 50; i++) {
      (await s.prepare(update({ stdout: { ts: T1, lines: i, ords: i } }))).discard();
      await (await s.prepare(update({ stdout: { ts: T2, lines: i, ords: i } }))).commit();
    }
    expect(s.get('c1')?.streams.stdout).toEqual({ ts: T2, lines: 49, ords: 49 });
  });

  it('allows one prepared checkpoint at a time', async () => {
    const s = await CheckpointStore.open(temp(), 60_000, log);
    const p = await s.prepare(new Map());
    await expect(s.prepare(new Map())).rejects.toThrow(/neither committed nor discarded/);
    await p.commit();
    await (await s.prepare(new Map())).commit();
  });

  it('never leaves a half-written checkpoint: a leftover temp file is ignored and replaced', async () => {
    const dir = temp();
    const s = await CheckpointStore.open(dir, 60_000, log);
    await (await s.prepare(update({ stdout: { ts: T1, lines: 1, ords: 1 } }))).commit();
    // What a kill in the middle of writing the temp file leaves behind.
    writeFileSync(join(dir, 'checkpoints.json.tmp'), '{"version":1,"conta');
    const again = await CheckpointStore.open(dir, 60_000, log);
    expect(again.get('c1')?.streams.stdout?.ts).toBe(T1);
    await (await again.prepare(update({ stdout: { ts: T2, lines: 1, ords: 1 } }))).commit();
    expect(JSON.parse(readFileSync(join(dir, 'checkpoints.json'), 'utf8')).containers.c1.streams.stdout.ts).toBe(T2);
    expect(readdirSync(dir)).toEqual(['checkpoints.json']);
  });

  it('moves an unreadable file aside instead of failing to start', async () => {
    const dir = temp();
    writeFileSync(join(dir, 'checkpoints.json'), 'not json');
    const s = await CheckpointStore.open(dir, 60_000, log);
    expect(s.ids()).toEqual([]);
    expect(readdirSync(dir).some((f) => f.startsWith('checkpoints.json.unreadable-'))).toBe(true);
    expect((await CheckpointStore.open(dir, 60_000, log)).firstRunAt).toBeTypeOf('number');
  });

  it('says when a removed container\'s grace is over, until a checkpoint forgets it', async () => {
    const dir = temp();
    const s = await CheckpointStore.open(dir, 1000, log);
    await (await s.prepare(update({ stdout: { ts: T1, lines: 1, ords: 1 } }))).commit();
    const at = Date.now();
    s.markRemoved('c1', at);
    await (await s.prepare(new Map())).commit();
    expect(s.hasExpired(at + 500)).toBe(false);
    expect(s.hasExpired(at + 1500)).toBe(true);
    await new Promise((r) => setTimeout(r, 1100));
    await (await s.prepare(new Map())).commit();
    expect(s.get('c1')).toBeUndefined();
    expect(s.hasExpired(at + 1500)).toBe(false);
  });

  it('forgets removed containers after the grace period, and keeps them when they come back', async () => {
    const dir = temp();
    const s = await CheckpointStore.open(dir, 1000, log);
    const both = new Map([
      ['gone', { name: 'a', streams: { stdout: { ts: T1, lines: 1, ords: 1 } } }],
      ['back', { name: 'b', streams: { stdout: { ts: T1, lines: 1, ords: 1 } } }],
    ]);
    await (await s.prepare(both)).commit();
    s.markRemoved('gone', Date.now() - 5000);
    s.markRemoved('back', Date.now() - 5000);
    s.markPresent('back');
    expect(s.hasStaged()).toBe(true);
    await (await s.prepare(new Map())).commit();
    expect(s.ids()).toEqual(['back']);
    expect(s.get('back')?.removedAt).toBeUndefined();
    s.markRemoved('back');
    await (await s.prepare(new Map())).commit();
    expect(s.get('back')?.removedAt).toBeTypeOf('number');
  });

  it('keeps a removal through the positions of lines read before it, in the same checkpoint or a later one', async () => {
    const dir = temp();
    const s = await CheckpointStore.open(dir, 60_000, log);
    await (await s.prepare(new Map([['c1', { name: 'a', streams: { stdout: { ts: T1, lines: 1, ords: 1 } } }]]))).commit();
    // The container's last lines and its destroy event come in the same cycle.
    s.markRemoved('c1');
    await (await s.prepare(new Map([['c1', { name: 'a', streams: { stdout: { ts: T2, lines: 1, ords: 1 } } }]]))).commit();
    expect(s.get('c1')?.removedAt).toBeTypeOf('number');
    expect(s.get('c1')?.streams.stdout?.ts).toBe(T2);
    await (await s.prepare(new Map([['c1', { name: 'a', streams: { stderr: { ts: T2, lines: 1, ords: 1 } } }]]))).commit();
    expect(s.get('c1')?.removedAt).toBeTypeOf('number');
    const file = JSON.parse(readFileSync(join(dir, 'checkpoints.json'), 'utf8')) as { containers: Record<string, { removedAt?: number }> };
    expect(file.containers.c1?.removedAt).toBeTypeOf('number');
  });

  it('marks a container removed before its first positions were in a checkpoint, once they are, and forgets it after the grace', async () => {
    const dir = temp();
    const s = await CheckpointStore.open(dir, 1000, log);
    // docker run --rm: gone before the first durable point after its first line.
    s.markRemoved('short', Date.now() - 200);
    // Nothing to write for it yet.
    expect(s.hasStaged()).toBe(false);
    const first = new Map([['short', { name: 'job', streams: { stdout: { ts: T1, lines: 1, ords: 1 } } }]]);
    // A failed batch keeps the mark for the positions' next try.
    (await s.prepare(first)).discard();
    await (await s.prepare(first)).commit();
    expect(s.get('short')?.removedAt).toBeTypeOf('number');
    await new Promise((r) => setTimeout(r, 1000));
    await (await s.prepare(new Map())).commit();
    expect(s.ids()).toEqual([]);

    // Removed while the checkpoint that brings its first entry is being written.
    const during = await s.prepare(new Map([['racing', { name: 'r', streams: { stdout: { ts: T1, lines: 1, ords: 1 } } }]]));
    s.markRemoved('racing');
    await during.commit();
    expect(s.hasStaged()).toBe(true);
    await (await s.prepare(new Map())).commit();
    expect(s.get('racing')?.removedAt).toBeTypeOf('number');

    // Seen again before its positions came: no mark.
    s.markRemoved('flaky');
    s.markPresent('flaky');
    await (await s.prepare(new Map([['flaky', { name: 'f', streams: { stdout: { ts: T1, lines: 1, ords: 1 } } }]]))).commit();
    expect(s.get('flaky')?.removedAt).toBeUndefined();
  });
});
