/**
 * Which source a line belongs to: the one rule for every stage. A container's
 * lines are its own; a line without a container (a forward client's record)
 * belongs to its tag, else to its input.
 *
 * - `sourceId`: what never changes for a source (ordinals, split lines being
 *   joined, Elasticsearch `_id`s): the container id, else the tag, else the input.
 * - `sourceName`: what people and the file layout call it: the container's
 *   name, else its id, else the tag, else the input.
 *
 * An empty string counts as absent everywhere.
 */
import type { ContainerMeta, LogEvent } from './event.js';

/** The source of a line without a container: its tag, else its input. */
export function looseSourceName(tag: string | undefined, input: string): string {
  return tag || input;
}

export function sourceId(container: ContainerMeta | undefined, tag: string | undefined, input: string): string {
  return container?.id || looseSourceName(tag, input);
}

export function sourceName(container: ContainerMeta | undefined, tag: string | undefined, input: string): string {
  return container?.name || container?.id || looseSourceName(tag, input);
}

export function eventSourceName(e: LogEvent): string {
  return sourceName(e.container, e.clogs.tag, e.clogs.input);
}
