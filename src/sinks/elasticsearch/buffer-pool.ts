/**
 * Buffers the queue lends out and takes back once nothing reads them.
 *
 * The queue's buffers live until Elasticsearch has answered, long enough to
 * outlive two scavenges; V8 then frees them only in a full collection, which
 * it starts every 64 MB of such external memory. Taken back and lent again,
 * the same memory serves the next batch instead (queue.ts says what was
 * measured).
 */
export class BufferPool {
  private readonly free: ArrayBuffer[] = [];
  private readonly lent = new WeakSet<ArrayBufferLike>();

  /** `max`: most buffers kept for reuse; more given back are left to the collector. */
  constructor(private readonly max: number) {}

  /** `size` bytes, in memory given back earlier when some is large enough, else in new memory of `capacity` bytes. */
  take(size: number, capacity = size): Buffer {
    const at = this.free.findIndex((memory) => memory.byteLength >= size);
    const memory = at >= 0 ? this.free.splice(at, 1)[0]! : Buffer.allocUnsafeSlow(capacity).buffer;
    this.lent.add(memory);
    return Buffer.from(memory, 0, size);
  }

  /** Nothing reads `buf` any more: its memory is taken back if this pool lent it. */
  give(buf: Buffer): void {
    const memory = buf.buffer;
    if (!this.lent.delete(memory)) return;
    if (this.free.length < this.max) this.free.push(memory as ArrayBuffer);
  }
}
