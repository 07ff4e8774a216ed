/**
 * Which containers the Docker input follows: the include / exclude lists and
 * the opt-out label of the config, and never clogs' own container (its output
 * would come back in as input, forever).
 */
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import type { DockerConfig } from '../../config/schema.js';

export interface FilterSubject {
  id: string;
  name: string;
  image: string;
  labels: Readonly<Record<string, string>>;
}

/** Why a container is not followed; undefined when it is. */
export type Rejection = 'self' | 'opt-out' | 'excluded' | 'not-included';

export type ContainerFilter = (c: FilterSubject) => Rejection | undefined;

interface Matchers {
  names: RegExp[];
  images: RegExp[];
  labels: LabelSpec[];
}

interface LabelSpec {
  key: string;
  value?: string;
}

export function compileFilter(cfg: Pick<DockerConfig, 'include' | 'exclude' | 'opt_out_label'>, ownIds: readonly string[]): ContainerFilter {
  const include = compile(cfg.include);
  const exclude = compile(cfg.exclude);
  const optOut = cfg.opt_out_label ? parseLabel(cfg.opt_out_label) : undefined;
  const anyInclude = include.names.length + include.images.length + include.labels.length > 0;
  return (c) => {
    if (ownIds.some((own) => c.id.startsWith(own))) return 'self';
    if (optOut && hasLabel(c.labels, optOut)) return 'opt-out';
    if (matches(exclude, c)) return 'excluded';
    if (anyInclude && !matches(include, c)) return 'not-included';
    return undefined;
  };
}

function compile(lists: { names: string[]; images: string[]; labels: string[] }): Matchers {
  return { names: lists.names.map(globToRegExp), images: lists.images.map(globToRegExp), labels: lists.labels.map(parseLabel) };
}

function matches(m: Matchers, c: FilterSubject): boolean {
  if (m.names.some((re) => re.test(c.name))) return true;
  if (m.images.length > 0) {
    const bare = imageWithoutTag(c.image);
    if (m.images.some((re) => re.test(c.image) || re.test(bare))) return true;
  }
  return m.labels.some((l) => hasLabel(c.labels, l));
}

/** `nginx:1.25` → `nginx`, `reg:5000/app@sha256:…` → `reg:5000/app`: a pattern without a tag matches every tag. */
export function imageWithoutTag(image: string): string {
  const at = image.indexOf('@');
  const noDigest = at >= 0 ? image.slice(0, at) : image;
  const colon = noDigest.lastIndexOf(':');
  return colon > noDigest.lastIndexOf('/') ? noDigest.slice(0, colon) : noDigest;
}

/** `*` any run of characters, `?` one character; everything else literal; the whole string must match. */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (const ch of glob) {
    if (ch === '*') re += '.*';
    else if (ch === '?') re += '.';
    else re += ch.replace(/[.+^${}()|[\]\\/-]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 's');
}

/** `key` (present, any value) or `key=value`, as Docker's `--filter label=` reads it. */
export function parseLabel(spec: string): LabelSpec {
  const eq = spec.indexOf('=');
  return eq < 0 ? { key: spec } : { key: spec.slice(0, eq), value: spec.slice(eq + 1) };
}

function hasLabel(labels: Readonly<Record<string, string>>, spec: LabelSpec): boolean {
  if (!Object.hasOwn(labels, spec.key)) return false;
  return spec.value === undefined || labels[spec.key] === spec.value;
}

/**
 * The id (or id prefix) of the container clogs itself runs in, if any. Docker
 * shows it in the cgroup path (cgroup v1, and v2 with cgroupns=host), in the
 * mount sources of /etc/hostname and friends (any cgroup setup), and by
 * default as the hostname (the first 12 hex digits).
 */
export async function detectOwnContainerIds(proc = '/proc/self', host = hostname()): Promise<string[]> {
  const ids = new Set<string>();
  const fullId = /[0-9a-f]{64}/g;
  const cgroup = await readFile(`${proc}/cgroup`, 'utf8').catch(() => '');
  for (const line of cgroup.split('\n')) {
    if (/docker|containerd|moby/.test(line)) for (const m of line.match(fullId) ?? []) ids.add(m);
  }
  const mountinfo = await readFile(`${proc}/mountinfo`, 'utf8').catch(() => '');
  for (const m of mountinfo.matchAll(/\/containers\/([0-9a-f]{64})\/(?:hostname|hosts|resolv\.conf)/g)) ids.add(m[1]!);
  if (/^[0-9a-f]{12}$/.test(host)) ids.add(host);
  return [...ids];
}
