/**
 * The body of `GET /events?filters={"type":["container"]}`: one JSON object
 * per line (fixtures/docker/events/events-stream.bin). Bytes in, container
 * events out; no socket here.
 */
import { ClogsError } from '../../errors.js';

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

export class EventStreamParser {
  private held: Buffer[] = [];
  private heldBytes = 0;

  push(chunk: Buffer): ContainerEvent[] {
    const out: ContainerEvent[] = [];
    let from = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, from);
      if (nl < 0) break;
      const part = chunk.subarray(from, nl);
      const line = this.heldBytes > 0 ? Buffer.concat([...this.held, part]) : part;
      this.held = [];
      this.heldBytes = 0;
      const event = parseEvent(line);
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
  if (!(WATCHED_ACTIONS as readonly string[]).includes(e.Action)) return undefined;
  const event: ContainerEvent = { action: e.Action as WatchedAction, id: e.Actor.ID };
  const name = e.Actor.Attributes?.name;
  if (typeof name === 'string') event.name = name.replace(/^\//, '');
  return event;
}
