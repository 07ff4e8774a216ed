import type { MultilineSettings } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { ContainerDirectory } from './containers.js';
import type { NormalizerOptions } from './normalize.js';
import type { Pipeline } from './pipeline.js';

/** What the collector hands every input. */
export interface InputDeps {
  pipeline: Pipeline;
  log: Logger;
  /** The input keeps its own state (checkpoints, pending partial lines) in a folder under here. */
  stateDir: string;
  hostName: string;
  parseJson: boolean;
  parseLogfmt: boolean;
  stripAnsi: boolean;
  maxLineBytes: number;
  /** Present when container metadata can be looked up (a Docker engine answers and `forward.enrich` is on). */
  containers?: ContainerDirectory;
  multiline: MultilineSettings;
}

/** The Normalizer's settings that are the same for every input: what the collector hands it. */
export function sharedNormalizerOptions(deps: InputDeps): Omit<NormalizerOptions, 'partialTimeoutMs' | 'onTimeoutFlush'> {
  return {
    hostName: deps.hostName,
    nextSeq: () => deps.pipeline.nextSeq(),
    parseJson: deps.parseJson,
    parseLogfmt: deps.parseLogfmt,
    stripAnsi: deps.stripAnsi,
    maxLineBytes: deps.maxLineBytes,
    multiline: deps.multiline,
    log: deps.log,
  };
}

export interface RunningInput {
  readonly name: string;
  /** What it listens on or follows, for the ready line (`127.0.0.1:24224`, `unix:///var/run/docker.sock`). */
  readonly address: string;
  /** For /readyz. */
  ready(): boolean;
  /**
   * Stops taking input, writes out held split lines, and resolves once
   * everything it accepted is in the pipeline (and acked or checkpointed).
   */
  stop(): Promise<void>;
}
