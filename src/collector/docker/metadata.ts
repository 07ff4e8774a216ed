/**
 * `GET /containers/{id}/json` → what the Docker input needs to know about a
 * container, cached per container. The ContainerMeta inside is built once per
 * name, frozen, and shared by every event of the container (serializers cache
 * its JSON by identity); a rename makes a new one. When the container
 * directory (directory.ts) already holds the same metadata, its object is
 * taken, so the forward input's events of the container share it too.
 */
import type Docker from 'dockerode';
import { containerName, type ContainerDirectory } from '../containers.js';
import type { ContainerMeta, ContainerWithId } from '../event.js';
import type { FilterSubject } from './filters.js';

export interface ContainerInfo {
  id: string;
  /** Without the leading `/`. */
  name: string;
  /** As the container was created with it (`Config.Image`, e.g. `clogs-busybox:latest`). */
  image: string;
  labels: Readonly<Record<string, string>>;
  tty: boolean;
  logDriver: string;
  /** Running or paused: its log stream may still grow. */
  running: boolean;
  /** `State.FinishedAt` in ms since the epoch; 0 when it never stopped. */
  finishedAtMs: number;
  meta: ContainerWithId;
}

/** The part of an inspect answer read here (dockerode's type, loosened for missing fields). */
export interface InspectAnswer {
  Id: string;
  Name?: string;
  Config?: { Image?: string; Labels?: Record<string, string> | null; Tty?: boolean };
  HostConfig?: { LogConfig?: { Type?: string } };
  State?: { Running?: boolean; Paused?: boolean; Restarting?: boolean; FinishedAt?: string };
}

export function containerInfo(answer: InspectAnswer, previous?: ContainerInfo, shared?: ContainerMeta): ContainerInfo {
  const name = containerName(answer.Name ?? '');
  const image = answer.Config?.Image ?? '';
  const labels = answer.Config?.Labels ?? {};
  const same = previous && previous.name === name && previous.image === image && sameLabels(previous.labels, labels);
  const finished = Date.parse(answer.State?.FinishedAt ?? '');
  return {
    id: answer.Id,
    name,
    image,
    labels: same ? previous.labels : Object.freeze({ ...labels }),
    tty: answer.Config?.Tty === true,
    logDriver: answer.HostConfig?.LogConfig?.Type ?? 'json-file',
    running: answer.State?.Running === true || answer.State?.Restarting === true,
    finishedAtMs: Number.isNaN(finished) || finished < 0 ? 0 : finished,
    meta: same ? previous.meta : shared !== undefined && describes(shared, answer.Id, name, image, labels) ? shared : buildMeta(answer.Id, name, image, labels),
  };
}

/**
 * What the engine's list (`GET /containers/json`) says of a container: the
 * Docker input's filters and the container directory read the same fields.
 * An entry not shaped as the API says (a proxy, a broken engine) throws, and
 * the caller takes the whole list as failed.
 */
export function listedSubject(c: { readonly Id: string; readonly Names?: readonly string[] | null; readonly Image?: string; readonly Labels?: Readonly<Record<string, string>> | null }): FilterSubject {
  const name = c.Names?.[0] ?? '';
  if (typeof c.Id !== 'string' || typeof name !== 'string' || (c.Image !== undefined && typeof c.Image !== 'string') || (c.Labels != null && typeof c.Labels !== 'object')) {
    throw new TypeError(`a listed container is not shaped as the API says: ${JSON.stringify(c).slice(0, 200)}`);
  }
  return { id: c.Id, name: containerName(name), image: c.Image ?? '', labels: c.Labels ?? {} };
}

export function buildMeta(id: string, name: string, image: string, labels: Record<string, string>): ContainerWithId {
  const project = labels['com.docker.compose.project'];
  const service = labels['com.docker.compose.service'];
  const meta: { -readonly [K in keyof ContainerWithId]: ContainerWithId[K] } = { id, name };
  if (image) meta.image = Object.freeze({ name: image });
  if (Object.keys(labels).length > 0) meta.labels = Object.freeze({ ...labels });
  if (project !== undefined || service !== undefined) {
    const compose: { project?: string; service?: string } = {};
    if (project !== undefined) compose.project = project;
    if (service !== undefined) compose.service = service;
    meta.compose = Object.freeze(compose);
  }
  return Object.freeze(meta);
}

/** Whether `meta` is what buildMeta would make of these. */
export function describes(meta: ContainerMeta, id: string, name: string, image: string, labels: Readonly<Record<string, string>>): meta is ContainerWithId {
  return meta.id === id && (meta.name ?? '') === name && (meta.image?.name ?? '') === image && sameLabels(meta.labels ?? {}, labels);
}

function sameLabels(a: Readonly<Record<string, string>>, b: Record<string, string>): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => a[k] === b[k]);
}

/** An engine that takes longer than this to answer an inspect is treated as unreachable. */
export const API_TIMEOUT_MS = 15_000;

export class MetadataCache {
  private readonly known = new Map<string, ContainerInfo>();

  constructor(
    private readonly docker: Docker,
    private readonly directory?: ContainerDirectory,
  ) {}

  /** Inspects the container again (its state changes); undefined once it is gone. */
  async refresh(id: string): Promise<ContainerInfo | undefined> {
    let answer: InspectAnswer;
    try {
      answer = (await this.docker.getContainer(id).inspect({ abortSignal: AbortSignal.timeout(API_TIMEOUT_MS) })) as InspectAnswer;
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) {
        this.known.delete(id);
        return undefined;
      }
      throw err;
    }
    const info = containerInfo(answer, this.known.get(id), this.directory?.known(id));
    this.known.set(id, info);
    return info;
  }

  forget(id: string): void {
    this.known.delete(id);
  }
}
