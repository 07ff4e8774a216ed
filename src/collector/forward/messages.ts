/**
 * The forward protocol's wire modes as types (Forward Protocol Specification
 * v1 and v1.5, https://github.com/fluent/fluentd/wiki/Forward-Protocol-Specification-v1.5).
 *
 * A request is told apart by the type of its second element: a time (int,
 * float, EventTime or v1.5 `[time, metadata]`) is Message mode, an array is
 * Forward mode, a str or bin is PackedForward (CompressedPackedForward when the
 * option says `compressed: "gzip"`).
 */
import type { NanoTime } from '../time.js';

/** Spec v1 "EventTime Ext Format": ext type 0, uint32 BE seconds then uint32 BE nanoseconds. */
export const EVENT_TIME_EXT_TYPE = 0;

/**
 * One record as the decoder hands it on. The keys Docker's fluentd driver
 * sends are pulled out (only when their value is a str or bin, as Docker sends
 * them), so the hot path never builds a generic object for a Docker record;
 * every other key is decoded into `rest`.
 */
export interface ForwardRecord {
  containerId: string | undefined;
  containerName: string | undefined;
  source: string | undefined;
  /**
   * The `log` value. Raw bytes when the record is a piece of a split line
   * (`partial_message`): Docker cuts at byte offsets, through multi-byte
   * characters, so pieces are joined before UTF-8 decoding. A string otherwise.
   */
  log: string | Buffer | undefined;
  partialMessage: string | undefined;
  partialId: string | undefined;
  partialOrdinal: string | undefined;
  partialLast: string | undefined;
  /** Every other key, in wire order; undefined when there is none. */
  rest: Record<string, unknown> | undefined;
}

export interface ForwardEntry {
  time: NanoTime;
  record: ForwardRecord;
}

/** The request's option map (spec v1 "Option"); unknown keys are ignored. */
export interface ForwardOption {
  /** The `chunk` value exactly as it was encoded (msgpack header and payload), so the ack echoes it byte for byte. */
  chunk: Buffer | undefined;
  /** `compressed`; `"text"` (what Fluentd's out_forward sends on plain chunks) means not compressed. */
  compressed: string | undefined;
  /** v1.5 `fluent_signal`: 0 (or absent) logs, 1 metrics, 2 traces. */
  signal: number;
}

export type ForwardMessage =
  /** A msgpack nil: the spec's TCP heartbeat. */
  | { mode: 'Heartbeat' }
  /** `entry`: the request's time and record as one PackedForward entry, `[time, record]` in msgpack. */
  | { mode: 'Message'; tag: string; entry: Buffer; option: ForwardOption }
  /**
   * `entries`: the array's items back to back, a PackedForward stream: read
   * once to check them (decodeRequest), decoded again slice by slice.
   */
  | { mode: 'Forward'; tag: string; entries: Buffer; option: ForwardOption }
  /** `entries`: concatenated msgpack `[time, record]` arrays, sent as bin or as str (Fluentd's str32); never UTF-8-decoded. */
  | { mode: 'PackedForward'; tag: string; entries: Buffer; option: ForwardOption }
  /** `entries`: one or more concatenated gzip members holding a PackedForward stream. */
  | { mode: 'CompressedPackedForward'; tag: string; entries: Buffer; option: ForwardOption };

export const FLUENT_SIGNAL_LOGS = 0;

export interface DecodeLimits {
  /** Largest request, and largest decompressed PackedForward stream. */
  maxFrameSize: number;
  /** Most keys in any map of a record. */
  maxRecordKeys: number;
}
