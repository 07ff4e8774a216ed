/**
 * The container directory (../containers.ts) the Docker Engine answers:
 * container id → ContainerMeta with image, labels and compose project/service.
 *
 * - One inspect per container id, however many lines name it; the answers
 *   are kept for the MAX_ENTRIES containers used last.
 * - A failed inspect (404, engine down or slow) is remembered for
 *   FAILURE_TTL_MS, so a container that cannot be looked up costs one try per
 *   period, and is logged once; when the engine did not answer, it is asked
 *   again after that period.
 * - At start, one list of the containers there are (running or not) fills it
 *   before the forward input listens: lines of containers that started
 *   before clogs then wait for no lookup. Measured on the kill test of
 *   multiline.test.ts: a 200 ms inspect before the first ack after a restart
 *   was long enough for Docker's fluentd driver, with `fluentd-request-ack`,
 *   to close the logger of an exiting container mid-ack and drop its last
 *   lines. A container the list names by its image's id is inspected
 *   instead, before the input listens too (fill()).
 * - The events stream (create/start/die/destroy/rename) carries a container's
 *   image and every label: what it says is kept too, so a `--rm` container
 *   that is gone before its lines are read still has its metadata.
 * - Only ids that can be a container's are looked up (isContainerId): a
 *   forward client's id goes into an Engine API path.
 *
 * One ContainerMeta object per container, frozen, replaced only when its
 * metadata changes (serializers cache its JSON by identity).
 */
import type Docker from 'dockerode';
import type { DockerConfig } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import { isContainerId, type ContainerDirectory } from '../containers.js';
import type { ContainerMeta } from '../event.js';
import { connectEngine, containerEvents, pingEngine, reconnectDelay } from './engine.js';
import { EventStreamParser, parseSighting, SIGHTING_ACTIONS, type ContainerSighting } from './events.js';
import { buildMeta, containerInfo, describes, listedSubject, type InspectAnswer } from './metadata.js';

/** Containers kept; far more than one host runs at once. */
export const MAX_ENTRIES = 4096;
/** How long a failed lookup is not retried. */
export const FAILURE_TTL_MS = 30_000;
/** Readers wait far less (forward/records.ts); this only bounds a hung engine's cost. */
const INSPECT_TIMEOUT_MS = 5000;
/** Inspects fill() runs at once for the containers listed by image id. */
const INSPECTS_AT_ONCE = 4;
const PING_TIMEOUT_MS = 3000;

/** The two Engine API calls the directory makes; a fake engine in the unit tests. */
export interface DirectoryEngine {
  inspect(id: string, signal: AbortSignal): Promise<InspectAnswer>;
  /** `GET /containers/json?all=1`: every container, with its name, image and labels. */
  list(signal: AbortSignal): Promise<ListedContainer[]>;
  /** The body of `GET /events` for container events of SIGHTING_ACTIONS. */
  events(signal: AbortSignal): Promise<NodeJS.ReadableStream>;
}

/** The part of a `GET /containers/json` item read here. */
export interface ListedContainer {
  Id: string;
  Names?: string[] | null;
  /**
   * The image the container was created from, as inspect's `Config.Image`;
   * but its id (`sha256:…`) once that name names another image or none (a
   * `docker pull` moved the tag, or the image was removed): moby's list
   * (daemon/list.go refreshImage) replaces it, inspect and events do not.
   */
  Image?: string;
  Labels?: Record<string, string> | null;
}

export interface DirectoryOptions {
  engine: DirectoryEngine;
  log: Logger;
  maxEntries?: number;
  failureTtlMs?: number;
  now?: () => number;
}

interface Entry {
  meta: ContainerMeta | undefined;
  /** While meta is undefined: no new lookup before this (ms). */
  retryAt: number;
  /** A failed lookup of this container was logged. */
  warned: boolean;
}

/** Connects when `docker.host` (else DOCKER_HOST, else the local socket) answers; undefined when it does not. */
export async function openContainerDirectory(cfg: DockerConfig, log: Logger): Promise<EngineDirectory | undefined> {
  const engine = connectEngine(cfg);
  if (!(await pingEngine(engine.docker, PING_TIMEOUT_MS))) {
    log.info({ address: engine.address }, 'no docker engine answers; forward events get no container metadata');
    return undefined;
  }
  const directory = new EngineDirectory({ engine: dockerodeEngine(engine.docker), log });
  directory.start();
  await directory.fill();
  log.info({ address: engine.address }, 'forward events get container metadata from the docker engine');
  return directory;
}

function dockerodeEngine(docker: Docker): DirectoryEngine {
  return {
    inspect: async (id, signal) => (await docker.getContainer(id).inspect({ abortSignal: signal })) as InspectAnswer,
    list: async (signal) => (await docker.listContainers({ all: true, abortSignal: signal })) as ListedContainer[],
    events: (signal) => containerEvents(docker, SIGHTING_ACTIONS, signal),
  };
}

export class EngineDirectory implements ContainerDirectory {
  /** In order of last use, oldest first. */
  private readonly entries = new Map<string, Entry>();
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly listeners = new Set<(id: string) => void>();
  private readonly closing = new AbortController();
  private readonly maxEntries: number;
  private readonly failureTtlMs: number;
  private readonly now: () => number;
  private reconnectDelay = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: DirectoryOptions) {
    this.maxEntries = opts.maxEntries ?? MAX_ENTRIES;
    this.failureTtlMs = opts.failureTtlMs ?? FAILURE_TTL_MS;
    this.now = opts.now ?? Date.now;
  }

  /** Follows the events stream, reconnecting with backoff while not closed. */
  start(): void {
    void this.follow();
  }

  /**
   * Takes in every container the engine lists. Those it lists by image id
   * are inspected for their image's name, a few at a time so a host with many
   * does not flood the engine; fill() waits for those answers at most one
   * inspect's timeout. A failure of the list is logged and costs nothing
   * else: lines then wait for their container's inspect.
   */
  async fill(): Promise<void> {
    const repointed: string[] = [];
    try {
      const listed = await this.opts.engine.list(AbortSignal.any([this.closing.signal, AbortSignal.timeout(INSPECT_TIMEOUT_MS)]));
      for (const c of listed) {
        const { id, name, image, labels } = listedSubject(c);
        // Name and labels from the list in any case: an inspect that fails keeps them.
        this.set(id, name, image, labels);
        // An image id here is the list's, not the container's (ListedContainer.Image):
        // its name, as the Docker input and events give it, is inspect's.
        if (image.startsWith('sha256:')) repointed.push(id);
      }
    } catch (err) {
      // Also an answer not shaped as the API says (a proxy, a broken engine), which no start should fail on.
      this.opts.log.warn({ err }, 'could not list the containers; their metadata comes from an inspect each');
      return;
    }
    if (repointed.length === 0) return;
    const next = (): Promise<void> => {
      const id = repointed.shift();
      return id === undefined ? Promise.resolve() : (this.ask(id) ?? Promise.resolve()).then(next);
    };
    const inspected = Promise.all(Array.from({ length: Math.min(INSPECTS_AT_ONCE, repointed.length) }, next));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([inspected, new Promise<void>((resolve) => (timer = setTimeout(resolve, INSPECT_TIMEOUT_MS)))]);
    clearTimeout(timer);
  }

  close(): void {
    this.closing.abort();
    clearTimeout(this.reconnectTimer);
    this.listeners.clear();
  }

  get size(): number {
    return this.entries.size;
  }

  known(id: string): ContainerMeta | undefined {
    const entry = this.entries.get(id);
    if (entry === undefined) return undefined;
    this.entries.delete(id);
    this.entries.set(id, entry);
    return entry.meta;
  }

  lookup(id: string): Promise<void> | undefined {
    if (!isContainerId(id)) return undefined;
    const entry = this.entries.get(id);
    if (entry !== undefined && (entry.meta !== undefined || this.now() < entry.retryAt)) return undefined;
    return this.ask(id);
  }

  /** The inspect of this container under way, or a new one. */
  private ask(id: string): Promise<void> | undefined {
    let running = this.inFlight.get(id);
    if (running === undefined && !this.closing.signal.aborted) {
      running = this.inspect(id).finally(() => this.inFlight.delete(id));
      this.inFlight.set(id, running);
    }
    return running;
  }

  subscribe(listener: (id: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** What an event of the engine's stream said about a container. */
  sighted(s: ContainerSighting): void {
    this.set(s.id, s.name, s.image, s.labels);
  }

  private async inspect(id: string): Promise<void> {
    let answer: InspectAnswer;
    try {
      answer = await this.opts.engine.inspect(id, AbortSignal.any([this.closing.signal, AbortSignal.timeout(INSPECT_TIMEOUT_MS)]));
    } catch (err) {
      this.failed(id, err);
      return;
    }
    const info = containerInfo(answer);
    this.set(id, info.name, info.image, info.labels);
  }

  private failed(id: string, err: unknown): void {
    // An event may have told us meanwhile.
    if (this.entries.get(id)?.meta !== undefined || this.closing.signal.aborted) return;
    const warned = this.entries.get(id)?.warned === true;
    this.put(id, { meta: undefined, retryAt: this.now() + this.failureTtlMs, warned: true });
    const e = err as { statusCode?: number; code?: string; message?: string };
    // The engine did not answer: ask again once the failure expires, so the
    // container's later lines get its metadata. A 404 stays: only an event
    // can tell about a container the engine no longer has.
    if (e.statusCode !== 404) {
      setTimeout(() => {
        if (this.entries.has(id) && this.entries.get(id)!.meta === undefined) void this.ask(id);
      }, this.failureTtlMs).unref();
    }
    const fields = { container: id.slice(0, 12), statusCode: e.statusCode, code: e.code, reason: e.message };
    if (warned) this.opts.log.debug(fields, 'container lookup failed again');
    else this.opts.log.warn(fields, 'container lookup failed; its lines go without image and labels until it succeeds');
  }

  private set(id: string, name: string, image: string, labels: Readonly<Record<string, string>>): void {
    const entry = this.entries.get(id);
    const meta = entry?.meta;
    if (meta !== undefined && describes(meta, id, name, image, labels)) {
      this.known(id);
      return;
    }
    this.put(id, { meta: buildMeta(id, name, image, labels), retryAt: 0, warned: entry?.warned === true });
    for (const listener of this.listeners) listener(id);
  }

  private put(id: string, entry: Entry): void {
    this.entries.delete(id);
    this.entries.set(id, entry);
    if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
  }

  private async follow(): Promise<void> {
    const signal = this.closing.signal;
    let body: NodeJS.ReadableStream;
    try {
      body = await this.opts.engine.events(signal);
    } catch (err) {
      this.reconnect(err);
      return;
    }
    this.reconnectDelay = 0;
    const parser = new EventStreamParser(parseSighting);
    let ended = false;
    const lost = (err?: unknown): void => {
      if (ended) return;
      ended = true;
      this.reconnect(err);
    };
    body.on('data', (chunk: Buffer) => {
      if (ended) return;
      try {
        for (const s of parser.push(chunk)) this.sighted(s);
      } catch (err) {
        (body as NodeJS.ReadableStream & { destroy(): void }).destroy();
        lost(err);
      }
    });
    body.once('end', () => lost());
    body.once('error', (err: Error) => lost(err));
  }

  private reconnect(err: unknown): void {
    if (this.closing.signal.aborted) return;
    this.opts.log.debug({ reason: (err as Error | undefined)?.message }, 'docker events stream lost; reconnecting');
    this.reconnectDelay = reconnectDelay(this.reconnectDelay);
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => void this.follow(), this.reconnectDelay);
    this.reconnectTimer.unref();
  }
}
