/**
 * Which live events a `/tail` subscriber wants. Parsed once per request so the
 * per-event check in the pipeline's publish path is a few comparisons.
 */
import type { LogEvent, Stream } from '../collector/event.js';

export interface TailFilter {
  /**
   * Each value matches a container id prefix, a container name, a compose
   * service or a forward tag; an event matches when any value does. Empty: all.
   */
  containers: readonly string[];
  stream?: Stream;
}

export function parseTailFilter(params: URLSearchParams): TailFilter | string {
  const containers = params.getAll('container').filter((c) => c.length > 0);
  const stream = params.get('stream');
  if (stream !== null && stream !== 'stdout' && stream !== 'stderr') {
    return `stream: expected "stdout" or "stderr", got ${JSON.stringify(stream)}`;
  }
  return stream === null ? { containers } : { containers, stream };
}

export function matchesTailFilter(filter: TailFilter, event: LogEvent): boolean {
  if (filter.stream !== undefined && event.stream !== filter.stream) return false;
  if (filter.containers.length === 0) return true;
  const c = event.container;
  const tag = event.clogs.tag;
  for (const want of filter.containers) {
    if (c?.id?.startsWith(want) || c?.name === want || c?.compose?.service === want || tag === want) return true;
  }
  return false;
}
