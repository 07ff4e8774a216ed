/**
 * The collected order, and keeping it across stores.
 *
 * Events sort by `@timestamp` (fixed-width RFC 3339, so string order is time
 * order), then by `host.name`, then by `clogs.seq`. The three are also an
 * event's identity for deduplication: the history read from the store and
 * the live stream overlap when `clogs tail -f` switches from one to the
 * other. `seq` counts per collector, so in a store several hosts' collectors
 * share (Elasticsearch) two lines of one time can have one seq: Docker's
 * fluentd driver sends whole seconds, and the host tells them apart.
 */
import type { LogEvent } from '../collector/event.js';
import { formatNanoTime, parseRfc3339 } from '../collector/time.js';

/** An event with the exact text it was stored as (what `-o json` prints). */
export interface StoredEvent {
  event: LogEvent;
  raw: string;
}

/** Whether a line read back (a store's, the live stream's) has what its order and identity are made of; the readers take no other. */
export function hasEventKey(e: Partial<LogEvent> | null | undefined): e is LogEvent {
  return typeof e?.['@timestamp'] === 'string' && typeof e.host?.name === 'string' && typeof e.clogs?.seq === 'number';
}

/** `@timestamp/host/seq`: the order and identity of an event; the page cursor and the dedupe key. */
export function eventKey(event: LogEvent): string {
  return formatKey(event['@timestamp'], event.host.name, event.clogs.seq);
}

/** The key of the line with these parts (eventKey), for a reader that has them without the event (Elasticsearch's sort values). */
export function formatKey(ts: string, host: string, seq: number | string): string {
  return `${ts}/${host}/${seq}`;
}

export interface EventKey {
  ts: string;
  host: string;
  seq: number;
}

/**
 * The host of a key in the form before the host was part of it
 * (`@timestamp/seq`, from a web page loaded before an upgrade): after every
 * host, so a page before it holds every line of its time it may not have
 * shown (the page drops the repeats). U+10FFFF is the last code point.
 */
const AFTER_EVERY_HOST = '\u{10FFFF}';

/** `@timestamp/host/seq` → its parts; undefined when the text is not a key. */
export function parseKey(key: string): EventKey | undefined {
  const first = key.indexOf('/');
  const last = key.lastIndexOf('/');
  const digits = key.slice(last + 1);
  const seq = Number(digits);
  if (first <= 0 || !/^\d+$/.test(digits) || !Number.isSafeInteger(seq)) return undefined;
  const ts = key.slice(0, first);
  // A stored @timestamp, as formatNanoTime writes it: anything else sorts where no line is.
  const time = parseRfc3339(ts);
  if (time === undefined || formatNanoTime(time.sec, time.nsec) !== ts) return undefined;
  return { ts, host: first === last ? AFTER_EVERY_HOST : key.slice(first + 1, last), seq };
}

/** Where an event sorts relative to a key: negative before it, 0 at it, positive after. */
export function compareToKey(e: LogEvent, key: EventKey): number {
  return compareParts(e['@timestamp'], e.host.name, e.clogs.seq, key.ts, key.host, key.seq);
}

export function compareEvents(a: LogEvent, b: LogEvent): number {
  return compareParts(a['@timestamp'], a.host.name, a.clogs.seq, b['@timestamp'], b.host.name, b.clogs.seq);
}

function compareParts(ta: string, ha: string, sa: number, tb: string, hb: string, sb: number): number {
  if (ta !== tb) return ta < tb ? -1 : 1;
  if (ha !== hb) return byCodePoint(ha, hb);
  return sa - sb;
}

/**
 * Elasticsearch orders keywords by their UTF-8 bytes, which is code point
 * order; JavaScript's `<` compares UTF-16 units, which puts U+E000–U+FFFF
 * after the characters past U+FFFF. A page boundary between two hosts must
 * fall where Elasticsearch's search_after puts it.
 */
function byCodePoint(a: string, b: string): number {
  let i = 0;
  while (i < a.length && i < b.length && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  const ca = a.codePointAt(i);
  const cb = b.codePointAt(i);
  if (ca === undefined || cb === undefined) return a.length - b.length;
  return ca - cb;
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

/** A binary min-heap; the merge and the newest-events keeper below need nothing more. */
class MinHeap<T> {
  private readonly items: T[] = [];
  constructor(private readonly less: (a: T, b: T) => boolean) {}

  get size(): number {
    return this.items.length;
  }

  peek(): T | undefined {
    return this.items[0];
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

const lessStored = (a: StoredEvent, b: StoredEvent): boolean => compareStored(a, b) < 0;

/**
 * Merges streams into one stream in order.
 *
 * Streams each in order merge exactly with `window` 0. Streams only nearly in
 * order (a store file is in write order; a container's stdout and stderr can
 * interleave slightly out of time order) merge by their heads as they come,
 * and one window of `window` events sorts the merged stream: the output is in
 * order as long as no event has more than `window` events that sort after it
 * before it in that merge, from its own stream or from any other.
 *
 * Holds at most `window` events plus one head per stream, however many
 * streams there are: a window per stream would hold `window` times the number
 * of streams.
 */
export async function* mergeOrdered(streams: readonly AsyncIterable<StoredEvent>[], window = 0): AsyncGenerator<StoredEvent> {
  const iterators = streams.map((s) => s[Symbol.asyncIterator]());
  type Head = { e: StoredEvent; it: AsyncIterator<StoredEvent> };
  const heads = new MinHeap<Head>((a, b) => lessStored(a.e, b.e));
  const pending = new MinHeap<StoredEvent>(lessStored);
  const take = async (it: AsyncIterator<StoredEvent>): Promise<void> => {
    const r = await it.next();
    if (!r.done) heads.push({ e: r.value, it });
  };
  try {
    await Promise.all(iterators.map(take));
    while (heads.size > 0) {
      const head = heads.pop()!;
      pending.push(head.e);
      if (pending.size > window) yield pending.pop()!;
      await take(head.it);
    }
    while (pending.size > 0) yield pending.pop()!;
  } finally {
    await Promise.allSettled(iterators.map((it) => it.return?.()));
  }
}

/**
 * The newest `max` of the events added, holding no more than that: what a
 * read of the last `max` events across many sources keeps of everything it
 * looked at. Of equal events (same `@timestamp`, host and seq) the ones added last
 * count as newer, as a stable sort of all of them would have it, so the
 * result is the same as sorting everything and keeping the end.
 */
export class NewestEvents {
  private readonly heap = new MinHeap<{ e: StoredEvent; n: number }>((a, b) => {
    const c = compareStored(a.e, b.e);
    return c !== 0 ? c < 0 : a.n < b.n;
  });
  private added = 0;
  constructor(private readonly max: number) {}

  add(e: StoredEvent): void {
    const item = { e, n: this.added++ };
    if (this.heap.size >= this.max) {
      const oldest = this.heap.peek();
      if (oldest === undefined || compareStored(e, oldest.e) < 0) return;
      // Equal to the oldest kept: added later, so newer (see above).
      this.heap.pop();
    }
    this.heap.push(item);
  }

  get size(): number {
    return this.heap.size;
  }

  /** The events kept, oldest first; empties the keeper. */
  drain(): StoredEvent[] {
    const out: StoredEvent[] = [];
    for (let x = this.heap.pop(); x !== undefined; x = this.heap.pop()) out.push(x.e);
    return out;
  }
}
