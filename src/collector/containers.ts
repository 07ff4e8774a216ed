/**
 * Container metadata by container id, from the container engine, for inputs
 * whose sources name a container only by id and name (Docker's fluentd
 * driver). docker/directory.ts implements it; the forward input uses it
 * without knowing Docker.
 */
import type { ContainerMeta } from './event.js';

export interface ContainerDirectory {
  /** What is known about the container now, without waiting; undefined when nothing is (yet), or its lookup failed. */
  known(id: string): ContainerMeta | undefined;
  /**
   * Asks the engine about a container not known yet, unless that is under way
   * (the same promise then) or failed a moment ago (undefined). Resolves, never
   * rejects, once the answer is in: known() has it, or the failure is noted.
   */
  lookup(id: string): Promise<void> | undefined;
  /** Calls `listener(id)` whenever what known(id) returns changes; returns what stops it. */
  subscribe(listener: (id: string) => void): () => void;
}

/** A container's name as people type it: Docker's engine API and its fluentd driver put a "/" before it. */
export function containerName(dockerName: string): string {
  return dockerName.startsWith('/') ? dockerName.slice(1) : dockerName;
}
