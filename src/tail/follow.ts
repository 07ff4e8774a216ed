/**
 * Runs a tail: history from the store, then (with -f) new lines as they come.
 *
 * With -f, new lines come from two places at once, merged through one
 * Deduper keyed on (@timestamp, host, seq):
 * - the store, followed (files watched, Elasticsearch polled): always there,
 *   and the only source of lines collected while no live stream was up;
 * - the collector's live `/tail` stream when it is reachable: lines show as
 *   soon as they are durable, without waiting for a file event or a poll.
 *
 * The switch loses nothing: the live subscription is made before the store
 * reader opens, and the collector publishes a line only after every sink has
 * it durably, so a line is either in the store's history (published before
 * we subscribed) or on the live stream (published after), or in both, which
 * the Deduper folds. Each line reaches the Deduper at most twice (once from
 * the store, once live), so it forgets a key at its second sighting and holds
 * only lines one side has not delivered yet.
 *
 * "Durable" is not "searchable": Elasticsearch's sink is durable once its
 * disk queue has a line, and searchable a bulk request and a refresh later.
 * Lines published just before the subscription can reach the store after
 * the history was read. So after each (re)connection the live lines wait
 * (see LiveSwitch) until the store caught up, i.e. delivered a line the live
 * stream also had, or CATCH_UP_MS passed: the late lines print first, in order.
 */
import { matchesFilter } from './filter.js';
import { connectLive, type LiveRefusal, type LiveSink, type LiveStream } from './live.js';
import { Deduper, eventKey, type StoredEvent } from './order.js';
import type { Output } from './output.js';
import { matchesSelection, type Selection } from './resolve.js';
import type { ReadRequest, Store, Warn } from './store.js';

/** Live lines held while the store catches up; beyond this the stream is paused (TCP pushes back). */
const MAX_HELD_LIVE = 10_000;
/** Longest wait for the store to catch up before live lines print anyway (a store that is down). */
const CATCH_UP_MS = 5000;
const RECONNECT_MS = 2000;

export interface TailRun {
  store: Store;
  request: ReadRequest;
  follow: boolean;
  /** `HOST:PORT` of the collector's HTTP endpoint; undefined: store only. */
  live?: string;
  /** The Authorization header its `http.auth` asks for. */
  liveAuthorization?: string;
  format(e: StoredEvent): string;
  output: Output;
  warn: Warn;
  signal?: AbortSignal;
}

export async function runTail(run: TailRun): Promise<void> {
  const { store, request: req, output } = run;
  const print = (e: StoredEvent): Promise<void> | undefined => output.write(run.format(e));

  if (!run.follow) {
    const reader = await store.open(req);
    for await (const e of reader.history()) {
      const full = print(e);
      if (full) await full;
    }
    return;
  }

  const controller = new AbortController();
  run.signal?.addEventListener('abort', () => controller.abort(), { once: true });
  const { signal } = controller;
  const merge = new LiveSwitch(new Deduper(), print, output);

  const onLive: LiveSink = (e) => {
    if (!matchesSelection(req.selection, e.event) || !matchesFilter(req.filter, e.event)) return true;
    return merge.live(e);
  };
  let live: LiveStream | undefined;
  let connecting = false;
  /** The refusals warned about: a collector that keeps refusing is named once, not every RECONNECT_MS. */
  const warned = new Set<string>();
  const refused = (address: string, refusal: LiveRefusal): void => {
    // Asking again gets the same answer, except for a timeout or a rate limit.
    const final = refusal.status >= 400 && refusal.status < 500 && refusal.status !== 408 && refusal.status !== 429;
    if (final) clearInterval(reconnect);
    const key = `${refusal.status} ${refusal.reason}`;
    if (warned.has(key)) return;
    warned.add(key);
    const why =
      refusal.status === 401
        ? run.liveAuthorization === undefined
          ? 'set http.auth.token in the config clogs tail reads, or CLOGS_HTTP_AUTH_TOKEN'
          : "the credentials of http.auth in the config clogs tail reads are not the collector's"
        : refusal.reason;
    const then = final ? 'following the store only' : `following the store, asking again every ${RECONNECT_MS / 1000} s`;
    run.warn(`the collector's live stream at ${address} answered HTTP ${refusal.status}${why === '' ? '' : `: ${why}`}; ${then}`);
  };
  const connect = async (address: string): Promise<void> => {
    if (signal.aborted || live || connecting) return;
    connecting = true;
    const answer = await connectLive(address, run.liveAuthorization, liveParams(req.selection, req.filter.stream), onLive, () => merge.resumed());
    connecting = false;
    if (answer === undefined) return;
    if ('status' in answer) {
      refused(address, answer);
      return;
    }
    if (signal.aborted) {
      // Stopped while connecting: the abort listener found no stream to close.
      answer.close();
      return;
    }
    live = answer;
    merge.connected();
    void answer.ended.then((reason) => {
      live = undefined;
      if (reason.startsWith('dropped')) run.warn(`the collector's live stream ${reason}; following the store`);
    });
  };
  const address = run.live;
  const reconnect = address === undefined ? undefined : setInterval(() => void connect(address), RECONNECT_MS);
  signal.addEventListener('abort', () => live?.close(), { once: true });
  if (address !== undefined) await connect(address);

  try {
    const reader = await store.open(req);
    merge.seed(await reader.recentKeys());
    for await (const e of reader.history()) {
      const full = print(e);
      if (full) await full;
    }
    merge.historyPrinted();
    for await (const e of reader.follow(signal)) {
      const full = merge.store(e);
      if (full) await full;
    }
  } finally {
    clearInterval(reconnect);
    // Also when the store failed: a connection still under way then closes as it arrives, arming nothing.
    controller.abort();
    merge.close();
  }
}

/**
 * Where the store's and the live stream's lines meet. Live lines are held
 * while the history prints and after each (re)connection until the store
 * caught up with the live stream (one line seen on both sides) or
 * CATCH_UP_MS passed; from then on they print at once.
 */
class LiveSwitch {
  private held: StoredEvent[] | undefined = [];
  private readonly heldKeys = new Set<string>();
  private historyDone = false;
  private timer: NodeJS.Timeout | undefined;
  private resume: Promise<void>;
  private resumeNow!: () => void;

  constructor(
    private readonly dedupe: Deduper,
    private readonly print: (e: StoredEvent) => Promise<void> | undefined,
    private readonly output: Output,
  ) {
    this.resume = new Promise((resolve) => (this.resumeNow = resolve));
  }

  /** The keys of the store's newest lines at the snapshot: the store's side of lines both may deliver. */
  seed(keys: readonly string[]): void {
    for (const key of keys) this.dedupe.seed(key);
  }

  /** A live line; false asks the stream to pause until `resumed()` resolves. */
  live(e: StoredEvent): boolean {
    if (this.held) {
      // The store already had this line: it caught up with the live stream.
      if (this.historyDone && this.dedupe.knows(e.event)) this.release();
      else {
        this.held.push(e);
        this.heldKeys.add(eventKey(e.event));
        return this.held.length < MAX_HELD_LIVE;
      }
    }
    if (this.dedupe.admit(e.event)) void this.print(e);
    return !this.output.full;
  }

  /** A line from the store's follower. */
  store(e: StoredEvent): Promise<void> | undefined {
    // The live stream had this line: the store caught up with it.
    if (this.held && this.heldKeys.has(eventKey(e.event))) this.release();
    return this.dedupe.admit(e.event) ? this.print(e) : undefined;
  }

  historyPrinted(): void {
    this.historyDone = true;
    if (this.held?.some((e) => this.dedupe.knows(e.event))) this.release();
    else this.armTimer();
  }

  /** A new live subscription: hold its lines until the store catches up again. */
  connected(): void {
    if (this.held) return;
    this.held = [];
    this.resume = new Promise((resolve) => (this.resumeNow = resolve));
    this.armTimer();
  }

  /** Resolves when a paused live stream may read again. */
  async resumed(): Promise<void> {
    await this.resume;
    await this.output.drained();
  }

  close(): void {
    clearTimeout(this.timer);
  }

  private armTimer(): void {
    if (!this.historyDone || !this.held) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.release(), CATCH_UP_MS);
  }

  private release(): void {
    const held = this.held ?? [];
    this.held = undefined;
    this.heldKeys.clear();
    clearTimeout(this.timer);
    for (const e of held) if (this.dedupe.admit(e.event)) void this.print(e);
    this.resumeNow();
  }
}

/** The `/tail` query that narrows the live stream to the selection (the client filters exactly). */
function liveParams(sel: Selection, stream: string | undefined): URLSearchParams {
  const params = new URLSearchParams();
  if (sel.kind !== 'all') params.set('container', sel.value);
  if (stream !== undefined) params.set('stream', stream);
  return params;
}
