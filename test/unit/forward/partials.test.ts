/**
 * The store of held lines (partials.ts) on its own: a line is stored only
 * once what it waits for is durable, not at all when its event was written
 * meanwhile, and the chunk keys of stored lines come back after a restart.
 */
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PartialStore, pieceOf, traceId, type HeldLine } from '../../../src/collector/forward/partials.js';
import { IntegerText } from '../../../src/collector/json-values.js';
import type { RawLine } from '../../../src/collector/normalize.js';
import { captureLogger } from '../../helpers/forward.js';

const CONTAINER = { id: 'a1b2c3d4e5f6', name: 'web' };
const raw = (line: string, nsec = 0): RawLine => ({ input: 'forward', time: { sec: 1795341190, nsec }, stream: 'stderr', line: Buffer.from(line), container: CONTAINER });

function traceLine(first: RawLine, line: RawLine, key: string): HeldLine {
  return { id: traceId(first), first, line, key };
}

function newStore(dir = mkdtempSync(join(tmpdir(), 'clogs-partials-'))): { store: PartialStore; dir: string } {
  return { store: new PartialStore(dir, captureLogger().log), dir };
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** A loaded store asked to persist a trace's first line (request `key-1`) once `after` resolves. */
async function persistingFirstLine() {
  const { store, dir } = newStore();
  await store.load();
  const first = raw('Exception in thread "main" java.lang.RuntimeException');
  const after = deferred();
  const stored = store.persist([traceLine(first, first, 'key-1')], after.promise);
  return { store, dir, first, after, stored };
}

describe('PartialStore', () => {
  it('stores a line once what it waits for is durable, and gives back its chunk key after a restart', async () => {
    const { dir, first, after, stored } = await persistingFirstLine();
    await new Promise((r) => setTimeout(r, 50));
    expect(readdirSync(dir)).toEqual([]);
    after.resolve();
    await stored;
    expect(readdirSync(dir)).toHaveLength(1);

    const again = newStore(dir).store;
    const lines = await again.load();
    expect(lines.map((l) => l.line.toString())).toEqual([first.line.toString()]);
    expect([...again.chunks()]).toEqual(['key-1']);
  });

  it("gives back a record's other keys as they were, long integers too", async () => {
    const { store, dir } = newStore();
    await store.load();
    const first: RawLine = { ...raw('Exception in thread "main" java.lang.RuntimeException'), extra: { n: new IntegerText('18446744073709551615'), s: '18446744073709551615', f: 1.5 } };
    await store.persist([traceLine(first, first, 'k1')], Promise.resolve());
    const [back] = await newStore(dir).store.load();
    expect(back!.extra).toEqual(first.extra);
  });

  it('gives back traces of the same second in the order they opened, many times over', async () => {
    for (let round = 0; round < 20; round++) {
      const { store, dir } = newStore();
      await store.load();
      const a = raw('Exception in thread "main" java.lang.IllegalStateException: A');
      const b = raw('java.lang.RuntimeException: B');
      await store.persist([traceLine(a, a, 'k1'), traceLine(a, raw('\tat A.main(A.java:1)'), 'k2')], Promise.resolve());
      await store.persist([traceLine(b, b, 'k3')], Promise.resolve());
      const lines = await newStore(dir).store.load();
      expect(lines.map((l) => l.line.toString())).toEqual([a.line.toString(), '\tat A.main(A.java:1)', b.line.toString()]);
    }
  });

  it('does not store a line whose event was written while it waited', async () => {
    const { store, dir, first, after, stored } = await persistingFirstLine();
    // The timeout wrote the trace before the request's other records were durable.
    await store.complete([traceId(first)]);
    after.resolve();
    await stored;
    expect(readdirSync(dir)).toEqual([]);
  });

  it('stores nothing when what it waits for failed, and the next lines still go', async () => {
    const { store, dir } = newStore();
    await store.load();
    const a = raw('Exception in thread "a" java.lang.RuntimeException', 1);
    const b = raw('Exception in thread "b" java.lang.RuntimeException', 2);
    await expect(store.persist([traceLine(a, a, 'key-a')], Promise.reject(new Error('sink down')))).rejects.toThrow('sink down');
    await store.persist([traceLine(b, b, 'key-b')], Promise.resolve());
    expect(readdirSync(dir)).toHaveLength(1);
    const again = newStore(dir).store;
    expect((await again.load()).map((l) => l.line.toString())).toEqual([b.line.toString()]);
    expect([...again.chunks()]).toEqual(['key-b']);
  });

  describe('the parts of a split line cut at maxLineBytes', () => {
    const piece = (text: string, ordinal: number): RawLine => ({ ...raw(text), partial: { id: 'long', ordinal, last: false } });
    const texts = (lines: readonly RawLine[]) => lines.map((l) => `${l.line.toString()}:${l.partial?.part ?? 0}`);

    it('forgets the pieces of the parts written, keeps the later ones, and gives them back after a restart with their part', async () => {
      const { store, dir } = newStore();
      await store.load();
      await store.persist([pieceOf(piece('a', 1), 'k1', 0), pieceOf(piece('b', 2), 'k2', 0), pieceOf(piece('c', 4), 'k3', 1)], Promise.resolve());
      expect(texts(store.restore(['long']))).toEqual(['a:0', 'b:0', 'c:1']);
      const cut = store.cut([{ id: 'long', part: 0 }]);
      // At once, before the file is rewritten: a failed write now must not take back the parts written.
      expect(texts(store.restore(['long']))).toEqual(['c:1']);
      await cut;
      expect(readdirSync(dir)).toEqual(['long']);
      const again = newStore(dir).store;
      expect(texts(await again.load())).toEqual(['c:1']);
      expect([...again.chunks()]).toEqual(['k3']);
    });

    it('deletes the file when no later part is stored, and stores the next part afresh', async () => {
      const { store, dir } = newStore();
      await store.load();
      await store.persist([pieceOf(piece('a', 1), 'k1', 0)], Promise.resolve());
      await store.cut([{ id: 'long', part: 0 }]);
      expect(readdirSync(dir)).toEqual([]);
      await store.persist([pieceOf(piece('d', 5), 'k5', 1)], Promise.resolve());
      expect(texts(await newStore(dir).store.load())).toEqual(['d:1']);
    });

    it('takes no half-made rewrite for a held line after a crash', async () => {
      const { store, dir } = newStore();
      await store.load();
      await store.persist([pieceOf(piece('a', 1), 'k1', 0)], Promise.resolve());
      writeFileSync(join(dir, 'long.tmp'), '{"torn":');
      const again = newStore(dir).store;
      expect(texts(await again.load())).toEqual(['a:0']);
      expect(readdirSync(dir)).toEqual(['long']);
    });
  });
});
