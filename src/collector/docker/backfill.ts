/**
 * Fluentd-driver backfill (`docker.fluentd_backfill`): containers that log
 * through the fluentd driver reach clogs' forward input live, but lose lines
 * while that input is down (async mode drops its buffer, a sync driver gives
 * up after its retries: fixtures/docker MANIFEST §1, f3 and g2). Docker 20.10+
 * also keeps a local copy of every driver's output ("dual logging"), which the
 * logs API reads. So the Docker input follows these containers too, but
 * through this gate: each line read from the API is held for `holdMs`, and
 * dropped if the forward input delivered the same line meanwhile (same
 * container, stream, second and message: the driver sends whole seconds
 * unless `fluentd-sub-second-precision` is set). A trace is matched line by
 * line, since the two inputs may join it differently (the forward input
 * knows a container's `clogs.multiline` label only once its lookup answers,
 * and a stop cuts what it holds): an event is dropped when each of its
 * lines was delivered, alone or in a trace. Only the lines the forward
 * input never delivered go on to the Shipper. Checkpoints advance either way,
 * in order, once the lines are decided; followers hand lines over one at a
 * time here, so a checkpoint can stop exactly at an undecided line.
 *
 * Forward deliveries are taken from the pipeline's subscribers, which see a
 * batch only once the sinks have it: a line the gate drops is already stored.
 *
 * Across a stop, the deliveries not matched yet are kept in a file (save(),
 * load()): a line the forward input delivered just before the stop, whose
 * copy the gate reads only after the restart, is then still dropped, not
 * written a second time. A run killed with SIGKILL saves nothing, and a stop
 * longer than the match window (`windowMs`) outlives what it saved: such a
 * line can then be stored twice.
 */
import { readFile, unlink } from 'node:fs/promises';
import { isMissing } from '../../errors.js';
import type { Logger } from '../../log.js';
import { replaceFile } from '../../state-files.js';
import { EncodedBatch } from '../encoded.js';
import { LineFields } from '../line-fields.js';
import type { Pipeline } from '../pipeline.js';
import type { Positions } from './checkpoints.js';
import type { LineSink, Shipper } from './shipper.js';

export interface BackfillOptions {
  shipper: Pick<Shipper, 'add' | 'hasRoom' | 'whenDrained' | 'whenNextCycle'>;
  pipeline: Pick<Pipeline, 'subscribe'>;
  /** Where the deliveries not matched yet wait from a stop to the next start. */
  memoryFile: string;
  log: Logger;
  /** How long a line read from the API waits for the forward input to deliver it. */
  holdMs: number;
  /** How long a forward delivery is remembered for matching. */
  windowMs: number;
  /** Bound on lines held; the followers pause beyond it. */
  maxHeldEvents: number;
  /** Bound on forward deliveries remembered; the oldest are forgotten first. */
  maxRemembered: number;
}

interface Held {
  id: string;
  name: string;
  lines: EncodedBatch;
  /** The match keys of each of its events, in order (lineKeys()). */
  keys: string[][];
  streams: Positions;
  at: number;
}

export class BackfillGate implements LineSink {
  private readonly watched = new Set<string>();
  /** Unwatched containers with lines still held. */
  private readonly leaving = new Set<string>();
  /** Per container: match key → how many forward deliveries are not yet matched. */
  private readonly delivered = new Map<string, Map<string, number>>();
  /** Forward deliveries in arrival order, for expiry. */
  private readonly remembered: { id: string; key: string; at: number }[] = [];
  private rememberedHead = 0;
  private held: Held[] = [];
  private heldHead = 0;
  private heldEvents = 0;
  private readonly waiting = new Set<() => void>();
  private cancelShipperWait: (() => void) | undefined;
  private readonly timer: NodeJS.Timeout;
  private readonly unsubscribe: () => void;
  private readonly fields = new LineFields();

  constructor(private readonly opts: BackfillOptions) {
    this.unsubscribe = opts.pipeline.subscribe((batch) => this.noteForward(batch));
    this.timer = setInterval(() => this.release(), Math.max(50, Math.min(1000, opts.holdMs / 4)));
    this.timer.unref();
  }

  /** Starts remembering forward deliveries for this container. */
  watch(id: string): void {
    this.watched.add(id);
    this.leaving.delete(id);
  }

  /**
   * The container is gone. Its held lines are still decided as usual (the
   * driver may have delivered them, or never will): it is forgotten once
   * none is left.
   */
  unwatch(id: string): void {
    this.leaving.add(id);
    this.forgetLeft();
  }

  /** Forgets the held lines of a container that will read them again (its follower was rewound). */
  drop(id: string): void {
    const keep = this.held.slice(this.heldHead).filter((h) => h.id !== id);
    this.held = keep;
    this.heldHead = 0;
    this.heldEvents = keep.reduce((n, h) => n + h.keys.length, 0);
  }

  add(containerId: string, name: string, lines: EncodedBatch, streams: Positions): boolean {
    const keys: string[][] = [];
    for (const source of lines.sources()) source.forEachLine(this.fields, (f) => void keys.push(lineKeys(f)));
    this.held.push({ id: containerId, name, lines, keys, streams, at: Date.now() });
    this.heldEvents += keys.length;
    return this.hasRoom();
  }

  hasRoom(): boolean {
    return this.heldEvents < this.opts.maxHeldEvents;
  }

  whenDrained(fn: () => void): () => void {
    this.waiting.add(fn);
    return () => this.waiting.delete(fn);
  }

  whenNextCycle(fn: () => void): () => void {
    return this.opts.shipper.whenNextCycle(fn);
  }

  /**
   * Shutdown: hands on each container's held lines the forward input did
   * deliver, up to its first one it did not; that one and the container's
   * lines after it stay unread (no checkpoint), to be held again after the
   * restart, when the driver may still deliver them from its buffer, and
   * their deliveries are remembered (save()).
   */
  settle(): void {
    const blocked = new Set<string>();
    for (let i = this.heldHead; i < this.held.length; i++) {
      const h = this.held[i]!;
      if (blocked.has(h.id)) continue;
      const m = this.delivered.get(h.id);
      const keys = h.keys.flat();
      if (!m || !allDelivered(m, keys)) {
        blocked.add(h.id);
        continue;
      }
      for (const k of keys) this.consume(m, k);
      this.opts.shipper.add(h.id, h.name, new EncodedBatch(), h.streams);
    }
    this.held = [];
    this.heldHead = 0;
    this.heldEvents = 0;
  }

  /** Keeps the deliveries not matched yet for the next start; after settle(). */
  async save(): Promise<void> {
    this.expire(Date.now());
    const left = new Map<string, Map<string, number>>();
    for (const [id, m] of this.delivered) left.set(id, new Map(m));
    const deliveries: Array<[string, string, number]> = [];
    // Newest first: a delivery matched since is an older one of the same line.
    for (let i = this.remembered.length - 1; i >= this.rememberedHead; i--) {
      const r = this.remembered[i]!;
      const m = left.get(r.id);
      if (m === undefined || !this.consume(m, r.key)) continue;
      deliveries.push([r.id, r.key, r.at]);
    }
    await replaceFile(this.opts.memoryFile, JSON.stringify({ deliveries: deliveries.reverse() }), false);
  }

  /**
   * Takes back what save() kept, once: the file is removed, so that a later
   * run does not match lines against deliveries already matched. A memory
   * that cannot be read costs at most lines written twice, never the start.
   */
  async load(): Promise<void> {
    const file = this.opts.memoryFile;
    let deliveries: Array<[string, string, number]> | undefined;
    try {
      deliveries = parseMemory(await readFile(file, 'utf8'));
    } catch (err) {
      if (isMissing(err)) return;
      this.opts.log.warn({ err, file }, 'backfill memory unreadable; lines delivered just before the last stop may be written twice');
      return;
    }
    if (deliveries === undefined) this.opts.log.warn({ file }, 'backfill memory unreadable; lines delivered just before the last stop may be written twice');
    const oldest = Date.now() - this.opts.windowMs;
    for (const [id, key, at] of deliveries ?? []) if (at >= oldest) this.remember(id, key, at);
    await unlink(file).catch((err: unknown) => this.opts.log.warn({ err, file }, 'could not remove the backfill memory; a later start may drop a line it matches again'));
  }

  close(): void {
    clearInterval(this.timer);
    this.unsubscribe();
    this.cancelShipperWait?.();
  }

  private noteForward(batch: EncodedBatch): void {
    const now = Date.now();
    for (const source of batch.sources()) {
      const id = source.container?.id;
      if (id === undefined || !this.watched.has(id)) continue;
      source.forEachLine(this.fields, (f) => {
        if (f.input() === 'forward') for (const key of lineKeys(f)) this.remember(id, key, now);
      });
    }
    this.expire(now);
  }

  private expire(now: number): void {
    const oldest = now - this.opts.windowMs;
    const list = this.remembered;
    while (this.rememberedHead < list.length) {
      const r = list[this.rememberedHead]!;
      if (r.at >= oldest && list.length - this.rememberedHead <= this.opts.maxRemembered) break;
      this.rememberedHead++;
      // May forget a newer identical delivery instead of this one: the worst
      // case is a line written twice, never one lost.
      const m = this.delivered.get(r.id);
      const n = m?.get(r.key) ?? 0;
      if (m && n > 1) m.set(r.key, n - 1);
      else m?.delete(r.key);
    }
    if (this.rememberedHead > 1024 && this.rememberedHead * 2 > list.length) {
      list.splice(0, this.rememberedHead);
      this.rememberedHead = 0;
    }
  }

  private release(): void {
    const cutoff = Date.now() - this.opts.holdMs;
    this.expire(Date.now());
    while (this.heldHead < this.held.length) {
      const h = this.held[this.heldHead]!;
      if (h.at > cutoff) break;
      if (!this.opts.shipper.hasRoom()) {
        this.cancelShipperWait ??= this.opts.shipper.whenDrained(() => {
          this.cancelShipperWait = undefined;
          this.release();
        });
        break;
      }
      this.heldHead++;
      this.heldEvents -= h.keys.length;
      const m = this.delivered.get(h.id);
      this.opts.shipper.add(h.id, h.name, m ? this.missing(h, m) : h.lines, h.streams);
    }
    if (this.heldHead === this.held.length) {
      this.held = [];
      this.heldHead = 0;
    } else if (this.heldHead > 1024 && this.heldHead * 2 > this.held.length) {
      this.held.splice(0, this.heldHead);
      this.heldHead = 0;
    }
    if (this.leaving.size > 0) this.forgetLeft();
    if (this.hasRoom() && this.waiting.size > 0) {
      const fns = [...this.waiting];
      this.waiting.clear();
      for (const fn of fns) fn();
    }
  }

  private forgetLeft(): void {
    const holding = new Set<string>();
    for (let i = this.heldHead; i < this.held.length; i++) holding.add(this.held[i]!.id);
    for (const id of this.leaving) {
      if (holding.has(id)) continue;
      this.leaving.delete(id);
      this.watched.delete(id);
      this.delivered.delete(id);
    }
  }

  /** The held events the forward input did not deliver every line of. */
  private missing(h: Held, m: Map<string, number>): EncodedBatch {
    const out = new EncodedBatch();
    let i = 0;
    for (const source of h.lines.sources()) {
      const kept = out.source(source.container, source.name);
      source.forEachLine(this.fields, (f) => {
        const keys = h.keys[i++]!;
        if (!allDelivered(m, keys)) kept.addLine(f);
        else for (const k of keys) this.consume(m, k);
      });
    }
    return out;
  }

  private remember(id: string, key: string, at: number): void {
    let m = this.delivered.get(id);
    if (!m) this.delivered.set(id, (m = new Map()));
    m.set(key, (m.get(key) ?? 0) + 1);
    this.remembered.push({ id, key, at });
  }

  private consume(m: Map<string, number>, key: string): boolean {
    const n = m.get(key);
    if (n === undefined) return false;
    if (n > 1) m.set(key, n - 1);
    else m.delete(key);
    return true;
  }
}

/** Whether `m` holds a delivery for each of `keys`, one per time a key is there. */
function allDelivered(m: Map<string, number>, keys: readonly string[]): boolean {
  const wanted = new Map<string, number>();
  for (const k of keys) wanted.set(k, (wanted.get(k) ?? 0) + 1);
  for (const [k, n] of wanted) if ((m.get(k) ?? 0) < n) return false;
  return true;
}

/** save()'s file: `{"deliveries": [[container id, line key, ms], ...]}`; undefined for anything else. */
function parseMemory(text: string): Array<[string, string, number]> | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  const list = (v as { deliveries?: unknown } | null)?.deliveries;
  if (!Array.isArray(list)) return undefined;
  const ok = list.every((d): d is [string, string, number] => Array.isArray(d) && typeof d[0] === 'string' && typeof d[1] === 'string' && typeof d[2] === 'number');
  return ok ? list : undefined;
}

/** Per line of the message: same container (the map it is in), stream, whole second (the event's) and line. */
function lineKeys(f: LineFields): string[] {
  const head = `${f.stream ?? ''}\0${f.timestamp().slice(0, 19)}\0`;
  return f.message().split('\n').map((line) => head + line);
}
