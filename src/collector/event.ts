/**
 * The one event type every input produces and every sink consumes.
 *
 * Field names follow ECS so Elasticsearch and Kibana need no remapping
 * (`@timestamp`, `message`, `container.*`, `host.name`, `log.level`). ECS has no
 * field for stdout/stderr; `stream` is what Filebeat and Elastic Agent write.
 * Everything an application or a client sent that clogs does not map lives under
 * one namespaced object, `attrs`, so no foreign key can land at the top level
 * (and collide with the mapping).
 */

export type Stream = 'stdout' | 'stderr';

/**
 * Container metadata. Inputs keep one object per container and share it between
 * that container's events, and never mutate it once built: serializers may cache
 * its JSON rendering by object identity.
 */
export interface ContainerMeta {
  readonly id?: string;
  /** Without Docker's leading `/`. */
  readonly name?: string;
  readonly image?: { readonly name: string };
  readonly labels?: Readonly<Record<string, string>>;
  /** From the `com.docker.compose.project` / `.service` labels. */
  readonly compose?: { readonly project?: string; readonly service?: string };
}

/** A container's metadata with its id: what the inputs know every container they name by. */
export type ContainerWithId = ContainerMeta & { readonly id: string };

export interface LogEvent {
  /** RFC 3339 UTC with exactly 9 fractional digits; fixed width, so it sorts as a string. */
  '@timestamp': string;
  message: string;
  stream?: Stream;
  container?: ContainerMeta;
  host: { name: string };
  log?: { level?: string };
  /** Record keys clogs does not map, and the fields of a parsed JSON line. */
  attrs?: Record<string, unknown>;
  clogs: ClogsFields;
}

export interface ClogsFields {
  /** Which input made the event. */
  input: 'forward' | 'docker';
  /** The forward-protocol tag, when the event came with one. */
  tag?: string;
  /**
   * The collector's counter (pipeline.ts), increasing across restarts, so
   * events with the same timestamp keep the order they were collected in.
   */
  seq: number;
  /**
   * How many earlier lines of the same source and stream carried exactly this
   * `@timestamp`. Part of a line's identity: with whole-second times (Docker's
   * default) two identical lines in one second differ only here.
   */
  ordinal: number;
  /** Set when clogs cut an over-long line into pieces: the piece's index. */
  piece?: number;
  /**
   * Set on a joined stack trace that reached `multiline.max_lines` or
   * `max_bytes`: it was cut there, and its remaining lines follow as the next event.
   */
  truncated?: boolean;
}
