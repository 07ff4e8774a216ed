/**
 * The collected order, and keeping it across stores.
 *
 * Events sort by `@timestamp` (fixed-width RFC 3339, so string order is time
 * order) and then by `clogs.seq`. The pair is also an event's identity for
 * deduplication: the history read from the store and the live stream overlap
 * when `clogs tail -f` switches from one to the other.
 */
import type { LogEvent } from '../collector/event.js';

/** An event with the exact text it was stored as (what `-o json` prints). */
export interface StoredEvent {
  event: LogEvent;
  raw: string;
}

/** `@timestamp/seq`: the SSE `id:` the collector sends, and the dedupe key. */
export function eventKey(event: LogEvent): string {
  return `${event['@timestamp']}/${event.clogs.seq}`;
}

/** `@timestamp/seq` → its parts; undefined when the text is not a key. */
export function parseKey(key: string): { ts: string; seq: number } | undefined {
  const slash = key.lastIndexOf('/');
  const seq = Number(key.slice(slash + 1));
  if (slash <= 0 || !Number.isSafeInteger(seq)) return undefined;
  return { ts: key.slice(0, slash), seq };
}

/** Where an event sorts relative to a key: negative before it, 0 at it, positive after. */
export function compareToKey(e: LogEvent, key: { ts: string; seq: number }): number {
  const ts = e['@timestamp'];
  if (ts !== key.ts) return ts < key.ts ? -1 : 1;
  return e.clogs.seq - key.seq;
}

export function compareEvents(a: LogEvent, b: LogEvent): number {
  const ta = a['@timestamp'];
  const tb = b['@timestamp'];
  if (ta !== tb) return ta < tb ? -1 : 1;
  return a.clogs.seq - b.clogs.seq;
}

export const compareStored = (a: StoredEvent, b: StoredEvent): number => compareEvents(a.event, b.event);

/**
 * Folds the two deliveries of one event (from the store and from the live
 * stream) into one. Every event reaches it at most twice, so a key is
 * forgotten at its second sighting; keys whose second sighting never comes
 * (lines printed from history alone) are forgotten oldest first beyond `max`,
 * so memory stays bounded however long a follow runs.
 */
export class Deduper {
  private readonly keys = new Set<string>();
  constructor(private readonly max = 100_000) {}

  /** True at an event's first sighting (print it), false at its second. */
  admit(event: LogEvent): boolean {
    return this.sight(eventKey(event));
  }

  /** Whether one side delivered the event already (the other side's copy is pending). */
  knows(event: LogEvent): boolean {
    return this.keys.has(eventKey(event));
  }

  /** Records a sighting of a key without an event (a line the store holds but did not print). */
  seed(key: string): void {
    this.sight(key);
  }

  private sight(key: string): boolean {
    if (this.keys.delete(key)) return false;
    this.keys.add(key);
    if (this.keys.size > this.max) {
      // A Set iterates in insertion order: the first key is the oldest.
      const oldest = this.keys.values().next().value as string;
      this.keys.delete(oldest);
    }
    return true;
  }

  get size(): number {
    return this.keys.size;
  }
}

/** A binary min-heap; the merge and the reorder window below need nothing more. */
class MinHeap<T> {
  private readonly items: T[] = [];
  constructor(private readonly less: (a: T, b: T) => boolean) {}

  get size(): number {
    return this.items.length;
  }

  push(item: T): void {
    const a = this.items;
    a.push(item);
    let i = a.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(a[i]!, a[parent]!)) break;
      [a[i], a[parent]] = [a[parent]!, a[i]!];
      i = parent;
    }
  }

  pop(): T | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length === 0 || last === undefined) return top;
    a[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < a.length && this.less(a[l]!, a[m]!)) m = l;
      if (r < a.length && this.less(a[r]!, a[m]!)) m = r;
      if (m === i) break;
      [a[i], a[m]] = [a[m]!, a[i]!];
      i = m;
    }
    return top;
  }
}

/**
 * Sorts a stream that is already nearly in order (a file is in write order;
 * a container's stdout and stderr can interleave slightly out of time order)
 * while holding at most `window` events.
 */
export async function* reorderWindow(events: AsyncIterable<StoredEvent>, window = 4096): AsyncGenerator<StoredEvent> {
  const heap = new MinHeap<StoredEvent>((a, b) => compareStored(a, b) < 0);
  for await (const e of events) {
    heap.push(e);
    if (heap.size > window) yield heap.pop()!;
  }
  while (heap.size > 0) yield heap.pop()!;
}

/** Merges streams that are each in order into one stream in order. */
export async function* mergeOrdered(streams: readonly AsyncIterable<StoredEvent>[]): AsyncGenerator<StoredEvent> {
  if (streams.length === 1) {
    yield* streams[0]!;
    return;
  }
  const iterators = streams.map((s) => s[Symbol.asyncIterator]());
  type Head = { e: StoredEvent; it: AsyncIterator<StoredEvent> };
  const heap = new MinHeap<Head>((a, b) => compareStored(a.e, b.e) < 0);
  try {
    const firsts = await Promise.all(iterators.map(async (it) => ({ it, r: await it.next() })));
    for (const { it, r } of firsts) if (!r.done) heap.push({ e: r.value, it });
    while (heap.size > 0) {
      const head = heap.pop()!;
      yield head.e;
      const r = await head.it.next();
      if (!r.done) heap.push({ e: r.value, it: head.it });
    }
  } finally {
    await Promise.allSettled(iterators.map((it) => it.return?.()));
  }
}
