/**
 * `clogs ps`: the sources a store holds, with first and last line, line
 * counts by stream, and whether the container still exists and runs (asked
 * of the Docker engine when it answers; `?` when it does not).
 */
import type { DockerConfig } from '../config/schema.js';
import type { SourceStats } from './store.js';
import { sourceInfoLabel } from './resolve.js';
import { safeField } from './safe-text.js';

const DOCKER_TIMEOUT_MS = 2000;

/** Container id → Docker state (`running`, `exited`, ...); undefined when no engine answers. */
export async function containerStates(cfg: DockerConfig, env: NodeJS.ProcessEnv = process.env): Promise<Map<string, string> | undefined> {
  try {
    // Loaded on demand: only `ps` and the page's container list need the engine.
    const { connectEngine } = await import('../collector/docker/engine.js');
    const { docker } = connectEngine(cfg, env);
    const list = await docker.listContainers({ all: true, abortSignal: AbortSignal.timeout(DOCKER_TIMEOUT_MS) });
    return new Map(list.map((c) => [c.Id, c.State]));
  } catch {
    return undefined;
  }
}

export interface PsRow {
  name: string;
  id: string | null;
  image: string | null;
  project: string | null;
  service: string | null;
  tag: string | null;
  first_seen: string;
  last_seen: string;
  stdout: number;
  stderr: number;
  /** Lines without a stream (records a forward client sent). */
  other: number;
  /** Docker's state, `removed` when the engine no longer knows the id, `?` when no engine answers, `-` for a tag. */
  state: string;
}

export function psRows(stats: readonly SourceStats[], states: Map<string, string> | undefined): PsRow[] {
  return stats
    .map((s): PsRow => {
      const i = s.info;
      let state = '-';
      if (i.id !== undefined) state = states === undefined ? '?' : (states.get(i.id) ?? 'removed');
      return {
        name: sourceInfoLabel(i) || '?',
        id: i.id ?? null,
        image: i.image ?? null,
        project: i.project ?? null,
        service: i.service ?? null,
        tag: i.tag ?? null,
        first_seen: s.first,
        last_seen: s.last,
        stdout: s.stdout,
        stderr: s.stderr,
        other: s.other,
        state,
      };
    })
    .sort((a, b) => (a.last_seen < b.last_seen ? 1 : a.last_seen > b.last_seen ? -1 : a.name.localeCompare(b.name)));
}

/**
 * A table like `docker ps`: columns padded to their widest cell; OTHER only when some source has such lines.
 * Names, tags and images come from the store, as a container or forward client wrote them: each cell goes
 * through safeField (before the widths are measured, so the escapes line up). The rows themselves stay as
 * stored: `ps -o json` and the page's API escape in JSON.
 */
export function formatPsTable(rows: readonly PsRow[]): string {
  const withOther = rows.some((r) => r.other > 0);
  const header = ['NAME', 'CONTAINER ID', 'IMAGE', 'FIRST SEEN', 'LAST SEEN', 'STDOUT', 'STDERR', ...(withOther ? ['OTHER'] : []), 'STATE'];
  const cells = rows.map((r) =>
    [
      r.name,
      r.id?.slice(0, 12) ?? '-',
      r.image ?? '-',
      shortTime(r.first_seen),
      shortTime(r.last_seen),
      String(r.stdout),
      String(r.stderr),
      ...(withOther ? [String(r.other)] : []),
      r.state,
    ].map(safeField),
  );
  const widths = header.map((h, c) => Math.max(h.length, ...cells.map((row) => row[c]!.length)));
  const line = (row: readonly string[]): string =>
    row
      .map((cell, c) => (c === row.length - 1 ? cell : cell.padEnd(widths[c]!)))
      .join('   ')
      .trimEnd() + '\n';
  return line(header) + cells.map(line).join('');
}

/** `2026-11-22T09:53:10.526990943Z` → `2026-11-22 09:53:10` (UTC). */
function shortTime(ts: string): string {
  return ts === '' ? '-' : ts.slice(0, 19).replace('T', ' ');
}
