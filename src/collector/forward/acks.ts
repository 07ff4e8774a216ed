/**
 * Acks (spec v1 "Response"): `{"ack": <chunk>}` with the chunk value echoed
 * byte for byte, and the memory of which chunks were already made durable.
 *
 * Docker's driver resends a request whose ack it did not get, byte-identical
 * and on a new connection (MANIFEST "No ack"); Fluentd's out_forward and
 * fluent-logger retry the same way. A chunk already written is acked again
 * without writing its events twice.
 *
 * A chunk id alone does not make a resend: hand-written clients number their
 * chunks from 1 again on every start, and two clients may pick the same ids.
 * A chunk is known by its id and a checksum of the whole request, so only a
 * byte-identical request is taken for a resend; a reused id with other bytes
 * is new data, written and acked.
 */
import { crc32 } from 'node:zlib';

/** `fixmap(1)`, `fixstr(3) "ack"`; the chunk's own msgpack bytes follow. */
const ACK_PREFIX = Buffer.from([0x81, 0xa3, 0x61, 0x63, 0x6b]);

/** The acks of several chunks, back to back, in one buffer (one socket write). */
export function encodeAcks(chunks: readonly Buffer[]): Buffer {
  let size = 0;
  for (const c of chunks) size += ACK_PREFIX.length + c.length;
  const out = Buffer.allocUnsafe(size);
  let pos = 0;
  for (const c of chunks) {
    pos += ACK_PREFIX.copy(out, pos);
    pos += c.copy(out, pos);
  }
  return out;
}

type Latin1Slice = (this: Buffer, start: number, end: number) => string;
const latin1Slice = (Buffer.prototype as unknown as { latin1Slice: Latin1Slice }).latin1Slice;

/**
 * The key a chunk is remembered by: the CRC-32 of the request's bytes as
 * received, then the chunk id's bytes, one char each.
 * Measured on the 2-core VM: zlib.crc32 over one 190 KB PackedForward
 * request (1,000 records of the bench mix) in a loop, 4.7 GB/s, 40 ns a
 * record (2026-12-01); in the collector, where the request was just copied
 * out of the socket's reads, about 3 % of the main thread.
 */
export function chunkKey(chunk: Buffer, request: Buffer): string {
  return crc32(request).toString(16).padStart(8, '0') + latin1Slice.call(chunk, 0, chunk.length);
}

/** A chunk whose write is under way; resends of it wait for the outcome. */
export class PendingChunk {
  private waiters: Array<(ok: boolean) => void> | undefined;
  /**
   * Kept once settled: a resend asks for the outcome only when its own
   * write goes out, which may be after the first copy settled (it waited
   * behind the writes already under way); asked then, it would never come.
   */
  private result: boolean | undefined;

  /** Resolves true when the first copy became durable, false when its write failed. */
  outcome(): Promise<boolean> {
    if (this.result !== undefined) return Promise.resolve(this.result);
    return new Promise((resolve) => (this.waiters ??= []).push(resolve));
  }

  settle(ok: boolean): void {
    this.result = ok;
    for (const resolve of this.waiters ?? []) resolve(ok);
    this.waiters = undefined;
  }
}

/**
 * How long an acked chunk is remembered at least. A client resends a request
 * whose ack it did not get: Docker's driver as soon as it has reconnected
 * (fixtures MANIFEST g2), Fluentd's out_forward after ack_response_timeout
 * (190 s by default). A bound by count alone forgot chunks within seconds
 * on a busy host: at 1,000 acked requests a second, 8,192 keys last 8 s.
 */
export const REMEMBER_ACKED_MS = 5 * 60_000;
/**
 * At most this many acked chunks, however young: ~100 bytes each with the
 * map's entry for the ids clients send (decoder.ts caps an id at 256 bytes:
 * ~45 MB at worst), so about 13 MB; it covers REMEMBER_ACKED_MS up to about
 * 440 acked requests a second.
 */
const MAX_REMEMBERED_ACKS = 131_072;

/**
 * Chunks acked recently (oldest forgotten first, see REMEMBER_ACKED_MS), and
 * chunks being written now, so a resend that overtakes the first copy waits
 * for it instead of writing it again. Chunks being written are bounded by the
 * connections' in-flight bytes, not here.
 */
export class ChunkLedger {
  /** Acked chunk key → when it was acked (ms), oldest first. */
  private readonly acked = new Map<string, number>();
  private readonly pending = new Map<string, PendingChunk>();
  private nextForgetAt = 0;

  constructor(
    private readonly max = MAX_REMEMBERED_ACKS,
    private readonly keepMs = REMEMBER_ACKED_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** `true` when acked already, the pending write when one is under way, else undefined. */
  lookup(key: string): PendingChunk | true | undefined {
    return this.pending.get(key) ?? (this.acked.has(key) || undefined);
  }

  /** A chunk written whole before a restart (partials.ts): its resend is acked without being written. */
  remember(key: string): void {
    this.acked.set(key, this.now());
  }

  begin(key: string): PendingChunk {
    const pending = new PendingChunk();
    this.pending.set(key, pending);
    return pending;
  }

  settle(key: string, pending: PendingChunk, ok: boolean): void {
    if (this.pending.get(key) === pending) this.pending.delete(key);
    if (ok) {
      const now = this.now();
      // Deleted first, so that a chunk acked again goes to the back, with its new time.
      this.acked.delete(key);
      this.acked.set(key, now);
      // By age once a second: an iterator per ack would cost Message mode with acks.
      if (this.acked.size > this.max || now >= this.nextForgetAt) {
        this.forget(now);
        this.nextForgetAt = now + 1000;
      }
    }
    pending.settle(ok);
  }

  private forget(now: number): void {
    const oldest = now - this.keepMs;
    for (const [k, at] of this.acked) {
      if (this.acked.size <= this.max && at >= oldest) break;
      this.acked.delete(k);
    }
  }
}
