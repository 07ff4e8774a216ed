/**
 * The file sink: NDJSON files, one directory per container, rotated by size
 * and by day, group-committed with a configurable fsync policy. The layout is
 * described in layout.ts (which `clogs tail` reads), the write path in
 * sink.ts, the commit loop and the memory bound in commit-loop.ts.
 */
import type { FileSinkConfig } from '../../config/schema.js';
import type { Sink } from '../sink.js';
import { FileSink, type FileSinkDeps } from './sink.js';

export type { FileSinkDeps } from './sink.js';

export function createFileSink(cfg: FileSinkConfig, deps: FileSinkDeps): Sink {
  return new FileSink(cfg, deps);
}
