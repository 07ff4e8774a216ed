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
   * Undefined, without asking, for an id that is no container id (isContainerId).
   */
  lookup(id: string): Promise<void> | undefined;
  /** Calls `listener(id)` whenever what known(id) returns changes; returns what stops it. */
  subscribe(listener: (id: string) => void): () => void;
}

/** A container's name as people type it: Docker's engine API and its fluentd driver put a "/" before it. */
export function containerName(dockerName: string): string {
  return dockerName.startsWith('/') ? dockerName.slice(1) : dockerName;
}

/**
 * Whether a container id sent by a client (a forward record's `container_id`)
 * may be asked about: 12 to 64 lowercase hex characters, the short id `docker
 * ps` shows up to the full one Docker's fluentd driver sends. The engine API
 * takes the id into its path as is (`GET /containers/{id}/json`), so any other
 * text, `../../info?` say, would have clogs send the engine a request the
 * client chose.
 */
export function isContainerId(id: string): boolean {
  return /^[0-9a-f]{12,64}$/.test(id);
}
