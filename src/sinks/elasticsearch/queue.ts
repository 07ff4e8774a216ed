/**
 * The Elasticsearch sink's durable queue: append-only segment files and a
 * read cursor.
 *
 * `append()` resolves once the events are on disk (fdatasync), which is what
 * lets the forward input ack and the Docker input checkpoint; the sender
 * reads behind it and `release()`s only what Elasticsearch has taken, which
 * advances the cursor. After a crash everything past the cursor is sent
 * again: at least once, and the deterministic `_id` with `op_type: create`
 * turns the repeats into 409s, so Elasticsearch holds each line once.
 *
 * Why segment files rather than an embedded store (SQLite, LevelDB): the
 * access pattern is a pure FIFO, written once and read once in order, which
 * is what append-only files do best (sequential I/O, one fdatasync per group
 * commit, deleting a whole file frees space at once, no compaction or
 * vacuum), and it needs no native module in a collector that must build
 * anywhere Node runs. What an embedded store would add (random access,
 * updates, transactions) the queue does not use; the one thing it needs
 * besides appends, a crash-safe read position, is a 40-byte file replaced
 * atomically by rename.
 *
 * Layout of the queue directory:
 *   0000000000000001.seg  records, appended; a new segment per `segmentBytes`
 *                         and per start (never appends after a possibly torn
 *                         tail), numbered past every segment and cursor before
 *   cursor.json           {segment, offset, skip}: the first record not fully
 *                         delivered and how many of its events were
 *   lock                  pid of the process using the queue
 * Record: 16-byte header (magic, payload length, event count, CRC-32 of the
 * payload; u32 little-endian) and the payload, the bulk lines of `count`
 * events, two "\n"-terminated lines each.
 *
 * Damage: only the last segment written can end in a torn record (a crash
 * during an append, never acknowledged), which the next start cuts off. A
 * bad header anywhere else (no magic, a length past the segment's end) is
 * damage: the queue goes on at the next intact record, a magic whose
 * payload passes the checksum, and logs the stretch it skips. The checksum
 * does not cover the header: a record's events are the entries of its
 * payload, whatever its header counts. (A header checksum would change the
 * format, which an older clogs reading the queue after a downgrade would
 * take for damage.)
 *
 * Bounds: undelivered bytes ≤ `maxBytes` (appends wait for room; one append
 * larger than the bound is let into an empty queue rather than deadlock);
 * memory holds the batches being sent, up to POOLED_BODIES released bodies
 * for reuse, one read chunk (1 MiB, or the largest record read) and up to
 * RECENT_BYTES of records just committed, never the queue.
 *
 * A full or failing disk (ENOSPC, EDQUOT, EIO) rejects no append: the commit
 * cuts the segment back to its committed size, so no torn record is ever
 * left behind for a restart to take or skip, and writes the same group again
 * with backoff (disk-retry.ts) until the disk takes it; the appends stay
 * pending meanwhile, and so do the inputs.
 */
import { mkdir, open, readdir, readFile, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { crc32 } from 'node:zlib';
import type { Logger } from '../../log.js';
import { ClogsError } from '../../errors.js';
import { replaceFile, syncDir } from '../../state-files.js';
import type { BackoffPolicy } from '../backoff.js';
import { DiskRetry } from '../disk-retry.js';
import { BufferPool } from './buffer-pool.js';
import { BulkEntries } from './entries.js';

const MAGIC = 0x31514c43; // "CLQ1"
const MAGIC_BYTES = Buffer.from([0x43, 0x4c, 0x51, 0x31]);
const HEADER = 16;
const READ_CHUNK = 1024 * 1024;
/**
 * Records just committed are kept in memory, up to this many payload bytes,
 * for the sender to take without reading them back: a sender that keeps up
 * reads nothing from disk. Measured on bench/forward.bench.ts es: reading
 * back (a fresh buffer per chunk, a CRC per record) was about 3 % of the
 * main thread's busy time, and its buffers brought on major collections.
 * The disk copy is what survives a crash.
 */
const RECENT_BYTES = 8 * 1024 * 1024;
/**
 * Request bodies kept for reuse once their batch is released: the sender's
 * requests in flight and the one being read. Measured on bench/forward.bench.ts
 * es: a fresh body per request and a fresh buffer per read chunk, each living
 * until Elasticsearch answered, were each about a third of the buffers that
 * made V8 run a full collection every 64 MB of them (about 20 per 200,000
 * events), the collector's largest cost with the sink configured.
 */
const POOLED_BODIES = 4;
/**
 * Payloads (the sink's bulk lines of one write) lent by payload() and taken
 * back once committed and read, for the same reason: they lived until the
 * sender had read them. Kept in capacities of powers of two from
 * MIN_POOLED_PAYLOAD, up to POOLED_PAYLOADS of them; smaller ones come from
 * Node's own pool.
 */
const POOLED_PAYLOADS = 8;
const MIN_POOLED_PAYLOAD = 64 * 1024;
const SEGMENT_SUFFIX = '.seg';

export interface QueueOptions {
  dir: string;
  /** Bound on undelivered payload bytes; appends wait beyond it. */
  maxBytes: number;
  /** Roll to a new segment file past this size (default: maxBytes/8 within 1–64 MiB). */
  segmentBytes?: number;
  log: Logger;
  /** Called whenever the undelivered totals change (metrics). */
  onChange?: (events: number, bytes: number) => void;
  /** The sink's name, for the metrics of a full disk. @default 'elasticsearch' */
  sink?: string;
  /** Retries on a full disk; tests shorten them. @default DISK_BACKOFF */
  diskBackoff?: BackoffPolicy;
  /** Opens a segment for writing; tests break its writes the way a full disk does. @default open(path, 'w') */
  openSegment?: (path: string) => Promise<FileHandle>;
}

/** Where the next event is: a record's offset in a segment and how many of its events come before. */
export interface QueuePosition {
  segment: number;
  offset: number;
  skip: number;
}

export interface QueueBatch {
  /** The events' action and document lines. */
  readonly entries: BulkEntries;
  readonly bytes: number;
  readonly end: QueuePosition;
  done: boolean;
  /** The buffer `entries` are in: reused for a later batch once this one is released. */
  readonly buffer: Buffer;
}

interface LoadedRecord {
  segment: number;
  offset: number;
  next: number;
  payload: Buffer;
  count: number;
  taken: number;
  pos: number;
}

/** Events and their payload bytes. */
interface Totals {
  events: number;
  bytes: number;
}

/** A record as committed: where it is, and its payload. */
interface CommittedRecord {
  segment: number;
  offset: number;
  payload: Buffer;
  count: number;
}

interface PendingAppend {
  header: Buffer;
  payload: Buffer;
  count: number;
  resolve(): void;
  reject(err: unknown): void;
}

const openDirs = new Set<string>();

export class DiskQueue {
  private readonly dir: string;
  private readonly maxBytes: number;
  private readonly segmentBytes: number;
  private readonly log: Logger;
  private readonly onChange: ((events: number, bytes: number) => void) | undefined;
  private readonly disk: DiskRetry;
  private readonly openSegment: (path: string) => Promise<FileHandle>;

  /** Sizes of live segments; the write segment's is its committed (fsync'd) size. */
  private readonly segments = new Map<number, number>();
  private writeSegment = 0;
  private writeHandle: FileHandle | undefined;

  private cursor: QueuePosition = { segment: 0, offset: 0, skip: 0 };
  private readPos: QueuePosition = { segment: 0, offset: 0, skip: 0 };
  private record: LoadedRecord | undefined;
  /**
   * Damaged stretches recovery stepped over, by segment: where each starts →
   * where the next intact record does. The reader steps over the same ones,
   * so it meets the records recovery counted, no more, no fewer.
   */
  private readonly gaps = new Map<number, Map<number, number>>();
  private readHandle: { segment: number; handle: FileHandle } | undefined;
  /** The read-ahead chunk: a view of `chunkBuffer`, copied into a batch's body before the next read overwrites it. */
  private chunk: { segment: number; start: number; buf: Buffer } | undefined;
  private chunkBuffer: Buffer | undefined;
  /** Bodies of full batches, lent by read() and given back by release(). */
  private readonly bodies = new BufferPool(POOLED_BODIES);
  /** Payload memory lent by payload(), given back once its record is read. */
  private readonly payloads = new BufferPool(POOLED_PAYLOADS);
  /** Records committed and not read yet, oldest first; see RECENT_BYTES. */
  private recent: CommittedRecord[] = [];
  private recentBytes = 0;

  private events = 0;
  private bytes = 0;
  private unreadEvents = 0;
  private unreadBytes = 0;
  private unreadSince = 0;

  private readonly outstanding: QueueBatch[] = [];
  private readonly pending: PendingAppend[] = [];
  private committing: Promise<void> | undefined;
  /** A failed append may have left bytes past the write segment's committed size. */
  private cutPending = false;
  private readonly spaceWaiters: { bytes: number; events: number; resolve(): void; reject(err: unknown): void }[] = [];
  private dataWaiters: (() => void)[] = [];
  private cursorWrite: Promise<void> = Promise.resolve();
  private cursorDirty = false;
  private closed = false;
  /** This queue holds the directory's lock (lock()). */
  private locked = false;

  private constructor(opts: QueueOptions) {
    this.dir = resolve(opts.dir);
    this.maxBytes = opts.maxBytes;
    this.segmentBytes = opts.segmentBytes ?? Math.min(64 * 1024 * 1024, Math.max(1024 * 1024, Math.floor(opts.maxBytes / 8)));
    this.log = opts.log;
    this.onChange = opts.onChange;
    this.disk = new DiskRetry({ sink: opts.sink ?? 'elasticsearch', log: opts.log, ...(opts.diskBackoff ? { backoff: opts.diskBackoff } : {}) });
    this.openSegment = opts.openSegment ?? ((path) => open(path, 'w'));
  }

  static async open(opts: QueueOptions): Promise<DiskQueue> {
    const queue = new DiskQueue(opts);
    try {
      await queue.recover();
    } catch (err) {
      // Its lock kept, the directory would stay "already open in this process": no reload could open it once the cause is fixed.
      await queue.abandon();
      throw err;
    }
    return queue;
  }

  /** Undelivered events and payload bytes (read or not). */
  get depth(): { events: number; bytes: number } {
    return { events: this.events, bytes: this.bytes };
  }

  /** While appends wait for a full or failing disk, why: `disk full: ENOSPC on DIR`. */
  blockedReason(): string | undefined {
    return this.disk.reason();
  }

  /** Events on disk the sender has not read yet, and since when some have been waiting (ms epoch). */
  unread(): { events: number; bytes: number; since: number } {
    return { events: this.unreadEvents, bytes: this.unreadBytes, since: this.unreadSince };
  }

  /**
   * A buffer of `size` bytes to write a record's payload into, for append():
   * the queue takes its memory back once the record is committed and read.
   */
  payload(size: number): Buffer {
    if (size < MIN_POOLED_PAYLOAD) return Buffer.allocUnsafe(size);
    return this.payloads.take(size, 2 ** Math.ceil(Math.log2(size)));
  }

  /**
   * Appends the bulk lines of `count` events as one record and resolves once
   * they are fsync'd. Waits while the queue is full; rejects once closed.
   * A payload from payload() is the queue's from here on.
   */
  async append(payload: Buffer, count: number): Promise<void> {
    if (this.closed) throw new ClogsError('CLOGS_QUEUE_CLOSED', 'the elasticsearch queue is closed');
    if (count === 0) return;
    if (this.spaceWaiters.length > 0 || !this.hasRoom(payload.length)) {
      // Waiters are admitted in order and their room is reserved on admission.
      await new Promise<void>((resolve, reject) => {
        this.spaceWaiters.push({ bytes: payload.length, events: count, resolve, reject });
        this.admitWaiters();
      });
      if (this.closed) {
        this.reserve(-payload.length, -count);
        throw new ClogsError('CLOGS_QUEUE_CLOSED', 'the elasticsearch queue closed while waiting for room');
      }
    } else this.reserve(payload.length, count);
    const header = Buffer.allocUnsafe(HEADER);
    header.writeUInt32LE(MAGIC, 0);
    header.writeUInt32LE(payload.length, 4);
    header.writeUInt32LE(count, 8);
    header.writeUInt32LE(crc32(payload), 12);
    await new Promise<void>((resolve, reject) => {
      this.pending.push({ header, payload, count, resolve, reject });
      this.kick();
    });
  }

  /**
   * Resolves when something new is committed, after `timeoutMs`, on
   * `wakeReaders()`, or at close.
   */
  waitForData(timeoutMs?: number): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      this.dataWaiters.push(done);
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          this.dataWaiters = this.dataWaiters.filter((fn) => fn !== done);
          resolve();
        }, Math.max(0, timeoutMs));
      }
    });
  }

  wakeReaders(): void {
    for (const fn of this.dataWaiters.splice(0)) fn();
  }

  /**
   * Reads up to `maxEvents` events and `maxBytes` bytes (at least one event)
   * past what earlier batches took, or undefined when none is left: none on
   * disk yet, or what was unread turned out damaged and was skipped.
   */
  async read(maxEvents: number, maxBytes: number): Promise<QueueBatch | undefined> {
    if (this.unreadEvents === 0 || this.closed) return undefined;
    const ends: number[] = [];
    let body = this.takeBody(maxBytes);
    let bytes = 0;
    fill: while (ends.length < maxEvents) {
      if (!this.record) {
        this.record = await this.loadRecord();
        if (!this.record) {
          if (this.caughtUp()) this.dropLost(this.unreadEvents - ends.length, this.unreadBytes - bytes);
          break;
        }
      }
      const rec = this.record;
      const spanStart = rec.pos;
      const filled = bytes;
      try {
        while (rec.taken < rec.count) {
          if (ends.length >= maxEvents) break fill;
          const end = entryEnd(rec.payload, rec.pos);
          const len = end - rec.pos;
          if (ends.length > 0 && bytes + len > maxBytes) break fill;
          ends.push((bytes += len));
          rec.pos = end;
          rec.taken++;
        }
      } finally {
        // Copied now: the record may be a view of the read-ahead chunk, which the next load reuses.
        if (rec.pos > spanStart) {
          if (body.length < bytes) body = grown(body, filled, bytes);
          rec.payload.copy(body, filled, spanStart, rec.pos);
        }
      }
      this.record = undefined;
      this.payloads.give(rec.payload);
      this.readPos = { segment: rec.segment, offset: rec.next, skip: 0 };
    }
    if (this.record) this.readPos = { segment: this.record.segment, offset: this.record.offset, skip: this.record.taken };
    if (ends.length === 0) {
      this.bodies.give(body);
      return undefined;
    }
    this.unreadEvents -= ends.length;
    this.unreadBytes -= bytes;
    if (this.unreadEvents === 0) this.unreadSince = 0;
    const batch: QueueBatch = { entries: new BulkEntries(body.subarray(0, bytes), ends), bytes, end: { ...this.readPos }, done: false, buffer: body };
    this.outstanding.push(batch);
    return batch;
  }

  /**
   * Marks a batch delivered. The cursor moves over the longest delivered
   * prefix (batches complete out of order with several requests in flight),
   * and segments behind it are deleted.
   */
  release(batch: QueueBatch): void {
    if (batch.done) return;
    batch.done = true;
    this.bodies.give(batch.buffer);
    this.events -= batch.entries.length;
    this.bytes -= batch.bytes;
    this.changed();
    let moved = false;
    while (this.outstanding[0]?.done) {
      this.cursor = this.outstanding.shift()!.end;
      moved = true;
    }
    if (moved) this.persistCursor();
    this.admitWaiters();
  }

  /**
   * Stops taking appends (waiting ones reject), finishes the commits already
   * started, and records the cursor. Unreleased batches stay queued.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.spaceWaiters.splice(0)) w.reject(new ClogsError('CLOGS_QUEUE_CLOSED', 'the elasticsearch queue closed while waiting for room'));
    this.wakeReaders();
    while (this.committing) await this.committing;
    this.persistCursor();
    await this.cursorWrite;
    await this.writeHandle?.close();
    await this.readHandle?.handle.close();
    this.writeHandle = undefined;
    this.readHandle = undefined;
    await this.unlock();
  }

  // --- recovery -------------------------------------------------------------

  private async recover(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    await this.lock();
    const ids = (await readdir(this.dir))
      .filter((f) => f.endsWith(SEGMENT_SUFFIX))
      .map((f) => Number(f.slice(0, -SEGMENT_SUFFIX.length)))
      .filter((n) => Number.isSafeInteger(n) && n > 0)
      .sort((a, b) => a - b);
    const saved = await this.readCursor();
    // A cursor naming a missing segment (a power cut lost the cursor's rename
    // but not the deletions behind it): replay what remains from its start.
    let cursor = saved && ids.includes(saved.segment) ? saved : undefined;
    for (const id of ids) {
      const size = (await stat(this.segmentPath(id))).size;
      // Behind the cursor is delivered; empty ones are left by earlier starts.
      if ((cursor && id < cursor.segment) || size === 0) await rm(this.segmentPath(id), { force: true });
      else this.segments.set(id, size);
    }
    if (cursor && !this.segments.has(cursor.segment)) cursor = undefined;
    const live = [...this.segments.keys()];
    // Past the cursor file's segment too, even one found missing: a segment
    // taking that number would make a start that still reads the old cursor
    // delete every segment before it as delivered.
    const writeSegment = Math.max(0, saved?.segment ?? 0, ...ids) + 1;
    cursor ??= { segment: live[0] ?? writeSegment, offset: 0, skip: 0 };
    for (const id of live) cursor = await this.scanSegment(id, cursor, id === live.at(-1));

    this.cursor = cursor;
    this.readPos = { ...cursor };
    if (!saved || saved.segment !== cursor.segment || saved.offset !== cursor.offset || saved.skip !== cursor.skip) {
      // Durable before any append is acknowledged, for the same reason: a
      // power cut must not bring back a cursor past segments still to deliver.
      await replaceFile(join(this.dir, 'cursor.json'), JSON.stringify(cursor), true);
      await syncDir(this.dir);
    }
    await this.openWriteSegment(writeSegment);
    this.unreadEvents = this.events;
    this.unreadBytes = this.bytes;
    this.unreadSince = this.events > 0 ? 1 : 0; // a backlog is due at once
    this.changed();
    if (this.events > 0) this.log.info({ events: this.events, bytes: this.bytes }, 'queue recovered undelivered events');
  }

  /**
   * Walks a segment's record headers and counts the events past the cursor.
   * A header that cannot be right ends the walk only at the end of the last
   * segment (`last`), where it is a torn tail, cut off; anywhere else the
   * walk goes on at the next intact record, and the reader is left the
   * stretch to step over. Returns the cursor, moved to the segment's start
   * if it falls on neither a record nor a damaged stretch of it.
   */
  private async scanSegment(id: number, cursor: QueuePosition, last: boolean): Promise<QueuePosition> {
    const size = this.segments.get(id)!;
    const inCursorSegment = id === cursor.segment;
    // Which total counts is known only at the end: everything, if the cursor is not found.
    const all: Totals = { events: 0, bytes: 0 };
    const past: Totals = { events: 0, bytes: 0 };
    let counting = !inCursorSegment;
    // The last record walked, and what it added to each total (none to `past` before the cursor).
    let prev: { offset: number; all: Totals; past: Totals } | undefined;
    let offset = 0;
    while (offset < size) {
      if (inCursorSegment && offset === cursor.offset) counting = true;
      const header = offset + HEADER <= size ? await this.readBytes(id, offset, HEADER, size) : undefined;
      if (!header || !isHeader(header, offset, size)) {
        // The length that led here may be what is damaged: an intact record may start inside the previous one.
        const next = await this.nextIntact(id, (prev?.offset ?? offset) + 1, size);
        if (next === undefined && last) {
          this.log.warn({ segment: id, offset, droppedBytes: size - offset }, 'queue segment ends in an incomplete record; cut off (a crash during an append, never acknowledged)');
          await this.truncateSegment(id, offset);
          break;
        }
        const end = next ?? size;
        let from = offset;
        if (prev && end < offset) {
          from = prev.offset;
          subtract(all, prev.all);
          subtract(past, prev.past);
        }
        this.logGap(id, from, end);
        let segmentGaps = this.gaps.get(id);
        if (!segmentGaps) this.gaps.set(id, (segmentGaps = new Map()));
        segmentGaps.set(from, end);
        offset = end;
        prev = undefined;
        continue;
      }
      const len = header.readUInt32LE(4);
      const count = header.readUInt32LE(8);
      prev = { offset, all: { events: count, bytes: len }, past: { events: 0, bytes: 0 } };
      if (inCursorSegment && offset === cursor.offset && cursor.skip > 0) {
        // Not checked yet: the reader skips a damaged payload and takes off what is counted here, reckoned the same way.
        const payload = await this.readBytes(id, offset + HEADER, len, size);
        prev.past = { events: Math.max(0, count - cursor.skip), bytes: len - pastEntries(payload, cursor.skip) };
      } else if (counting) prev.past = prev.all;
      add(all, prev.all);
      add(past, prev.past);
      offset += HEADER + len;
    }
    if (inCursorSegment && offset === cursor.offset) counting = true;
    if (!counting) {
      this.log.warn({ segment: id, offset: cursor.offset }, 'queue cursor does not point at a record; replaying its segment');
      this.events += all.events;
      this.bytes += all.bytes;
      return { segment: id, offset: 0, skip: 0 };
    }
    this.events += past.events;
    this.bytes += past.bytes;
    return cursor;
  }

  /** The offset of the first intact record at or after `from` (its magic, and a payload that passes the checksum), if any. */
  private async nextIntact(segment: number, from: number, size: number): Promise<number | undefined> {
    let pos = from;
    while (pos + HEADER <= size) {
      const window = await this.readBytes(segment, pos, Math.min(READ_CHUNK, size - pos), size);
      const at = window.indexOf(MAGIC_BYTES);
      if (at < 0) {
        // A magic cut off by the window's end is in the next one.
        pos += Math.max(1, window.length - MAGIC_BYTES.length + 1);
        continue;
      }
      const candidate = pos + at;
      if (candidate + HEADER > size) return undefined;
      const header = await this.readBytes(segment, candidate, HEADER, size);
      if (isHeader(header, candidate, size)) {
        const crc = header.readUInt32LE(12);
        if (crc32(await this.readBytes(segment, candidate + HEADER, header.readUInt32LE(4), size)) === crc) return candidate;
      }
      pos = candidate + 1;
    }
    return undefined;
  }

  private logGap(segment: number, from: number, to: number): void {
    this.log.error({ segment, from, to, droppedBytes: to - from }, 'queue segment has a damaged stretch (disk corruption); the records in it are skipped');
  }

  private async truncateSegment(id: number, size: number): Promise<void> {
    const fh = await open(this.segmentPath(id), 'r+');
    try {
      await fh.truncate(size);
      await fh.datasync();
    } finally {
      await fh.close();
    }
    this.segments.set(id, size);
    this.chunk = undefined;
  }

  private async lock(): Promise<void> {
    const path = join(this.dir, 'lock');
    if (openDirs.has(this.dir)) throw new ClogsError('CLOGS_SINK', `the elasticsearch queue ${this.dir} is already open in this process`);
    const owner = Number((await readFile(path, 'utf8').catch(() => '')).trim());
    if (Number.isSafeInteger(owner) && owner > 0 && owner !== process.pid && isAlive(owner)) {
      throw new ClogsError(
        'CLOGS_SINK',
        `the elasticsearch queue ${this.dir} is in use by process ${owner}: run one clogs per state directory (if no clogs runs there, delete ${path})`,
      );
    }
    await writeFile(path, `${process.pid}\n`);
    openDirs.add(this.dir);
    this.locked = true;
  }

  /** After a failed recovery: what it opened is closed, and the lock it took released. */
  private async abandon(): Promise<void> {
    this.closed = true;
    await this.writeHandle?.close().catch(() => undefined);
    await this.readHandle?.handle.close().catch(() => undefined);
    this.writeHandle = undefined;
    this.readHandle = undefined;
    await this.unlock().catch(() => undefined);
  }

  /** Lets the directory be opened again, by this process or another: undoes lock(). */
  private async unlock(): Promise<void> {
    if (!this.locked) return;
    this.locked = false;
    openDirs.delete(this.dir);
    await rm(join(this.dir, 'lock'), { force: true });
  }

  private async readCursor(): Promise<QueuePosition | undefined> {
    try {
      const v = JSON.parse(await readFile(join(this.dir, 'cursor.json'), 'utf8')) as Partial<QueuePosition>;
      if (Number.isSafeInteger(v.segment) && Number.isSafeInteger(v.offset) && Number.isSafeInteger(v.skip)) {
        return { segment: v.segment!, offset: v.offset!, skip: v.skip! };
      }
    } catch {
      // Missing (first start) or unreadable: replay from the oldest segment, 409s absorb the repeats.
    }
    return undefined;
  }

  // --- writing --------------------------------------------------------------

  /** Group commit: every append that arrived while the previous fsync ran shares the next one. */
  private kick(): void {
    if (this.committing) return;
    this.committing = this.commit().finally(() => {
      this.committing = undefined;
      // Appends that arrived after the loop's last look at `pending`.
      if (this.pending.length > 0) this.kick();
    });
  }

  private async commit(): Promise<void> {
    while (this.pending.length > 0) {
      const group = this.pending.splice(0);
      try {
        await this.disk.run(this.dir, () => this.writeGroup(group));
        for (const a of group) a.resolve();
        this.wakeReaders();
      } catch (err) {
        // Not durable, so not acknowledged: the input keeps the data and resends.
        for (const a of group) {
          this.events -= a.count;
          this.bytes -= a.payload.length;
          this.payloads.give(a.payload);
          a.reject(new ClogsError('CLOGS_SINK', `cannot write the elasticsearch queue in ${this.dir}: ${(err as Error).message}`, { cause: err }));
        }
        this.changed();
        this.admitWaiters();
      }
    }
  }

  /**
   * One attempt at writing and syncing a group as records at the committed
   * end of the write segment, completing short writes. A failed attempt cuts
   * the segment back to that end: whatever a write or a failed datasync left
   * past it was never committed, and a datasync that failed (EIO) may have
   * dropped the pages it was to write, so the next attempt writes them again.
   */
  private async writeGroup(group: readonly PendingAppend[]): Promise<void> {
    if (this.cutPending) {
      await this.cutWriteSegment();
      this.cutPending = false;
    }
    if (this.segments.get(this.writeSegment)! >= this.segmentBytes) await this.openWriteSegment(this.writeSegment + 1);
    const at = this.segments.get(this.writeSegment)!;
    const bufs: Buffer[] = [];
    let total = 0;
    let events = 0;
    let payloadBytes = 0;
    for (const a of group) {
      bufs.push(a.header, a.payload);
      total += HEADER + a.payload.length;
      events += a.count;
      payloadBytes += a.payload.length;
    }
    try {
      let written = 0;
      while (written < total) {
        const { bytesWritten } = await this.writeHandle!.writev(written === 0 ? bufs : remainder(bufs, written), at + written);
        if (bytesWritten <= 0) throw new Error(`writev wrote ${bytesWritten} bytes`);
        written += bytesWritten;
      }
      await this.writeHandle!.datasync();
      this.keepRecent(group, at);
    } catch (err) {
      // Cut now, so no restart finds records of an append that was never
      // acknowledged; if the cut fails too, the next attempt starts with it.
      this.cutPending = true;
      await this.cutWriteSegment().then(
        () => (this.cutPending = false),
        () => undefined,
      );
      throw err;
    }
    this.segments.set(this.writeSegment, at + total);
    if (this.unreadEvents === 0) this.unreadSince = Date.now();
    this.unreadEvents += events;
    this.unreadBytes += payloadBytes;
  }

  /** Keeps the records of a group committed at `at` of the write segment while RECENT_BYTES has room. */
  private keepRecent(group: readonly PendingAppend[], at: number): void {
    let offset = at;
    for (const a of group) {
      if (this.recentBytes + a.payload.length <= RECENT_BYTES) {
        this.recent.push({ segment: this.writeSegment, offset, payload: a.payload, count: a.count });
        this.recentBytes += a.payload.length;
      } else this.payloads.give(a.payload);
      offset += HEADER + a.payload.length;
    }
  }

  /** The kept record at this position, if any; those before it are read already, and forgotten. */
  private takeRecent(segment: number, offset: number): CommittedRecord | undefined {
    let first = this.recent[0];
    while (first !== undefined && (first.segment < segment || (first.segment === segment && first.offset < offset))) {
      this.payloads.give(this.forgetRecent().payload);
      first = this.recent[0];
    }
    if (first === undefined || first.segment !== segment || first.offset !== offset) return undefined;
    return this.forgetRecent();
  }

  private forgetRecent(): CommittedRecord {
    const rec = this.recent.shift()!;
    this.recentBytes -= rec.payload.length;
    return rec;
  }

  /** Truncates the write segment to its committed size. */
  private async cutWriteSegment(): Promise<void> {
    await this.writeHandle!.truncate(this.segments.get(this.writeSegment)!);
  }

  /** Starts segment `id`; safe to run again after it failed part-way. */
  private async openWriteSegment(id: number): Promise<void> {
    const handle = await this.openSegment(this.segmentPath(id));
    try {
      // The new file's directory entry must be durable too, or a power cut could lose the whole segment.
      const dir = await open(this.dir, 'r');
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
    } catch (err) {
      await handle.close();
      throw err;
    }
    const previous = this.writeHandle;
    this.writeHandle = handle;
    this.writeSegment = id;
    this.segments.set(id, 0);
    await previous?.close();
  }

  private hasRoom(bytes: number): boolean {
    return this.bytes === 0 || this.bytes + bytes <= this.maxBytes;
  }

  private reserve(bytes: number, events: number): void {
    this.bytes += bytes;
    this.events += events;
    this.changed();
  }

  private admitWaiters(): void {
    while (this.spaceWaiters.length > 0 && this.hasRoom(this.spaceWaiters[0]!.bytes)) {
      const w = this.spaceWaiters.shift()!;
      this.reserve(w.bytes, w.events);
      w.resolve();
    }
  }

  // --- reading --------------------------------------------------------------

  /** The record at the read position, with `skip` events already stepped over; undefined at the end of the data. */
  private async loadRecord(): Promise<LoadedRecord | undefined> {
    for (;;) {
      const { segment, offset, skip } = this.readPos;
      const size = this.segments.get(segment);
      if (size === undefined || offset >= size) {
        const next = [...this.segments.keys()].filter((id) => id > segment).sort((a, b) => a - b)[0];
        if (next === undefined || segment === this.writeSegment) return undefined;
        this.readPos = { segment: next, offset: 0, skip: 0 };
        continue;
      }
      const gapEnd = this.gaps.get(segment)?.get(offset);
      if (gapEnd !== undefined) {
        this.readPos = { segment, offset: gapEnd, skip: 0 };
        continue;
      }
      const kept = this.takeRecent(segment, offset);
      if (kept !== undefined) {
        const rec = this.loaded(segment, offset, offset + HEADER + kept.payload.length, kept.payload, kept.count, skip);
        if (rec !== undefined) return rec;
        continue;
      }
      // Read out before the payload's read, which may reuse the chunk the header is in.
      const header = offset + HEADER <= size ? await this.readBytes(segment, offset, HEADER, size) : undefined;
      if (!header || !isHeader(header, offset, size)) {
        // Damaged since it was written in this run (recovery stepped over what it found):
        // what the records in the stretch counted is dropped once the reader catches up.
        const next = (await this.nextIntact(segment, offset + 1, size)) ?? size;
        this.logGap(segment, offset, next);
        this.readPos = { segment, offset: next, skip: 0 };
        continue;
      }
      const len = header.readUInt32LE(4);
      const count = header.readUInt32LE(8);
      const crc = header.readUInt32LE(12);
      const payload = await this.readBytes(segment, offset + HEADER, len, size);
      const next = offset + HEADER + len;
      if (crc32(payload) !== crc) {
        // Takes off what recovery or the commit counted for it, reckoned the same way.
        const lost = Math.max(0, count - skip);
        this.log.error({ segment, offset, events: lost }, 'queue record fails its checksum (disk corruption); its events are skipped');
        this.dropUnread(lost, len - pastEntries(payload, skip));
        this.readPos = { segment, offset: next, skip: 0 };
        continue;
      }
      const events = countEntries(payload);
      if (events !== count) {
        // The checksum vouches for the payload, not for the header.
        this.log.error({ segment, offset, header: count, events }, 'queue record header miscounts its events (disk corruption); the events of its payload are sent');
        this.dropUnread(Math.max(0, count - skip) - Math.max(0, events - skip), 0);
      }
      const rec = this.loaded(segment, offset, next, payload, events, skip);
      if (rec !== undefined) return rec;
    }
  }

  /** A record read, past its first `skip` events; undefined (and the read position past it) when that leaves none. */
  private loaded(segment: number, offset: number, next: number, payload: Buffer, count: number, skip: number): LoadedRecord | undefined {
    const taken = Math.min(skip, count);
    if (taken < count) return { segment, offset, next, payload, count, taken, pos: pastEntries(payload, taken) };
    this.readPos = { segment, offset: next, skip: 0 };
    return undefined;
  }

  /** Whether the reader is at the committed end of the write segment. */
  private caughtUp(): boolean {
    return this.readPos.segment === this.writeSegment && this.readPos.offset >= this.segments.get(this.writeSegment)!;
  }

  /**
   * Once caught up, whatever is still counted unread was in a stretch found
   * damaged while reading, which recovery had not walked: its records' counts
   * are unknown until now.
   */
  private dropLost(events: number, bytes: number): void {
    if (events === 0 && bytes === 0) return;
    this.log.error({ events, bytes }, 'queue events lost in a damaged stretch are taken off its counts');
    this.dropUnread(events, bytes);
  }

  /** Takes events and bytes that will never be read (lost to damage) off the counts; negative ones add what was found. */
  private dropUnread(events: number, bytes: number): void {
    this.unreadEvents -= events;
    this.unreadBytes -= bytes;
    this.events -= events;
    this.bytes -= bytes;
    if (this.unreadEvents === 0) this.unreadSince = 0;
    this.changed();
    this.admitWaiters();
  }

  /** `len` bytes at `offset` of a segment, through a 1 MiB read-ahead chunk. */
  private async readBytes(segment: number, offset: number, len: number, size: number): Promise<Buffer> {
    const c = this.chunk;
    if (c && c.segment === segment && offset >= c.start && offset + len <= c.start + c.buf.length) {
      return c.buf.subarray(offset - c.start, offset - c.start + len);
    }
    if (this.readHandle?.segment !== segment) {
      await this.readHandle?.handle.close();
      this.readHandle = { segment, handle: await open(this.segmentPath(segment), 'r') };
    }
    const want = Math.max(len, Math.min(READ_CHUNK, size - offset));
    if (this.chunkBuffer === undefined || this.chunkBuffer.length < want) this.chunkBuffer = Buffer.allocUnsafe(Math.max(want, READ_CHUNK));
    const buf = this.chunkBuffer;
    let got = 0;
    while (got < want) {
      const { bytesRead } = await this.readHandle.handle.read(buf, got, want - got, offset + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    if (got < len) throw new ClogsError('CLOGS_SINK', `queue segment ${segment} is shorter than recorded (${offset + got} < ${offset + len})`);
    this.chunk = { segment, start: offset, buf: buf.subarray(0, got) };
    return buf.subarray(0, len);
  }

  /**
   * A body for a batch of up to `maxBytes`: one of its own when less is
   * unread (the batch is short, and so is the body), else a released one.
   */
  private takeBody(maxBytes: number): Buffer {
    return this.unreadBytes < maxBytes ? Buffer.allocUnsafe(this.unreadBytes) : this.bodies.take(maxBytes);
  }

  // --- cursor ---------------------------------------------------------------

  /**
   * Writes the cursor by rename, without fsync: a cursor that lags after a
   * power cut only resends delivered events, which Elasticsearch answers with 409.
   */
  private persistCursor(): void {
    if (this.cursorDirty) return;
    this.cursorDirty = true;
    this.cursorWrite = this.cursorWrite.then(async () => {
      this.cursorDirty = false;
      const cursor = this.cursor;
      try {
        await replaceFile(join(this.dir, 'cursor.json'), JSON.stringify(cursor), false);
        for (const id of [...this.segments.keys()]) {
          if (id < cursor.segment && id !== this.writeSegment) {
            this.segments.delete(id);
            this.gaps.delete(id);
            await rm(this.segmentPath(id), { force: true });
          }
        }
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'cannot record the queue cursor; delivered events may be sent again after a restart');
      }
    });
  }

  private segmentPath(id: number): string {
    return join(this.dir, String(id).padStart(16, '0') + SEGMENT_SUFFIX);
  }

  private changed(): void {
    this.onChange?.(this.events, this.bytes);
  }
}

/** `bufs` without their first `skip` bytes. */
function remainder(bufs: readonly Buffer[], skip: number): Buffer[] {
  const out: Buffer[] = [];
  for (const b of bufs) {
    if (skip >= b.length) skip -= b.length;
    else {
      out.push(skip > 0 ? b.subarray(skip) : b);
      skip = 0;
    }
  }
  return out;
}

/** `body` with room for `size` bytes, its first `filled` kept: one entry was larger than a batch. */
function grown(body: Buffer, filled: number, size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  body.copy(out, 0, 0, filled);
  return out;
}

function add(to: Totals, t: Totals): void {
  to.events += t.events;
  to.bytes += t.bytes;
}

function subtract(from: Totals, t: Totals): void {
  from.events -= t.events;
  from.bytes -= t.bytes;
}

/** Whether a record header at `offset` can be right: its magic, and a payload that ends within the segment. */
function isHeader(header: Buffer, offset: number, size: number): boolean {
  const len = header.readUInt32LE(4);
  return header.readUInt32LE(0) === MAGIC && len > 0 && offset + HEADER + len <= size;
}

/** How many whole entries (two lines each) a payload holds. */
function countEntries(payload: Buffer): number {
  let lines = 0;
  for (let at = payload.indexOf(10); at >= 0; at = payload.indexOf(10, at + 1)) lines++;
  return lines >> 1;
}

/** Where the entries after the first `n` of a payload start; a damaged one with fewer stops after its last whole entry. */
function pastEntries(payload: Buffer, n: number): number {
  let pos = 0;
  let lines = 0;
  for (let at = payload.indexOf(10); at >= 0 && lines < 2 * n; at = payload.indexOf(10, at + 1)) {
    if (++lines % 2 === 0) pos = at + 1;
  }
  return pos;
}

/** The end of the entry starting at `pos`: just past its second "\n". */
function entryEnd(payload: Buffer, pos: number): number {
  const first = payload.indexOf(10, pos);
  const second = first < 0 ? -1 : payload.indexOf(10, first + 1);
  if (second < 0) throw new ClogsError('CLOGS_SINK', 'queue record holds an incomplete entry');
  return second + 1;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
