/**
 * The body of `GET /events?filters={"type":["container"]}`: one JSON object
 * per line (fixtures/docker/events/events-stream.bin). Bytes in, container
 * events out; no socket here. Two readings of a line: what the Docker input
 * acts on (parseEvent), and what a container's metadata is (parseSighting).
 */
import { ClogsError } from '../../errors.js';
import { containerName } from '../containers.js';

/** The container actions the Docker input acts on. */
export const WATCHED_ACTIONS = ['start', 'die', 'destroy', 'rename', 'pause', 'unpause'] as const;
export type WatchedAction = (typeof WATCHED_ACTIONS)[number];

export interface ContainerEvent {
  action: WatchedAction;
  id: string;
  /** `Actor.Attributes.name`: the container's name without `/` (after a rename, the new one). */
  name?: string;
}

/** An event line far beyond this is not an event; labels are flattened into it, so allow some room. */
export const MAX_EVENT_BYTES = 1024 * 1024;

/**
 * The actions whose `Actor.Attributes` are the container's image, name and
 * every label (plus the keys of NOT_LABELS): the engine copies the labels
 * into each container event (daemon/events.go).
 */
export const SIGHTING_ACTIONS = ['create', 'start', 'die', 'destroy', 'rename'] as const;
/** Attributes the engine adds besides the labels. */
const NOT_LABELS = new Set(['image', 'name', 'exitCode', 'execDuration', 'oldName']);

/** What an event says about a container: enough to label its lines after it is gone. */
export interface ContainerSighting {
  id: string;
  /** Without `/`. */
  name: string;
  image: string;
  labels: Record<string, string>;
}

export class EventStreamParser<T = ContainerEvent> {
  private held: Buffer[] = [];
  private heldBytes = 0;

  constructor(private readonly parse: (line: Buffer) => T | undefined = parseEvent as (line: Buffer) => T | undefined) {}

  push(chunk: Buffer): T[] {
    const out: T[] = [];
    let from = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, from);
      if (nl < 0) break;
      const part = chunk.subarray(from, nl);
      const line = this.heldBytes > 0 ? Buffer.concat([...this.held, part]) : part;
      this.held = [];
      this.heldBytes = 0;
      const event = this.parse(line);
      if (event) out.push(event);
      from = nl + 1;
    }
    if (from < chunk.length) {
      this.heldBytes += chunk.length - from;
      if (this.heldBytes > MAX_EVENT_BYTES) {
        throw new ClogsError('CLOGS_FRAME_TOO_LARGE', `docker events stream: a line longer than ${MAX_EVENT_BYTES} bytes`);
      }
      this.held.push(chunk.subarray(from));
    }
    return out;
  }
}

/** One event line; undefined for what clogs does not act on (other types and actions). */
export function parseEvent(line: Buffer | string): ContainerEvent | undefined {
  const e = containerEventOf(line, WATCHED_ACTIONS);
  if (e === undefined) return undefined;
  const event: ContainerEvent = { action: e.action as WatchedAction, id: e.id };
  const name = e.attributes.name;
  if (typeof name === 'string') event.name = containerName(name);
  return event;
}

/** One event line as a container's metadata; undefined for other types and actions. */
export function parseSighting(line: Buffer | string): ContainerSighting | undefined {
  const e = containerEventOf(line, SIGHTING_ACTIONS);
  if (e === undefined) return undefined;
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(e.attributes)) if (!NOT_LABELS.has(k) && typeof v === 'string') labels[k] = v;
  const { name, image } = e.attributes;
  return { id: e.id, name: typeof name === 'string' ? containerName(name) : '', image: typeof image === 'string' ? image : '', labels };
}

function containerEventOf(line: Buffer | string, actions: readonly string[]): { action: string; id: string; attributes: Record<string, unknown> } | undefined {
  const text = typeof line === 'string' ? line : line.toString('utf8');
  if (text.trim() === '') return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ClogsError('CLOGS_FRAME_MALFORMED', 'docker events stream: a line that is not JSON', { cause: err });
  }
  if (typeof raw !== 'object' || raw === null) return undefined;
  const e = raw as { Type?: unknown; Action?: unknown; Actor?: { ID?: unknown; Attributes?: Record<string, unknown> } };
  if (e.Type !== 'container' || typeof e.Action !== 'string' || typeof e.Actor?.ID !== 'string') return undefined;
  if (!actions.includes(e.Action)) return undefined;
  return { action: e.Action, id: e.Actor.ID, attributes: e.Actor.Attributes ?? {} };
}
