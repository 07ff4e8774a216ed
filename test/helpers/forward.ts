/**
 * Test helpers for the forward input: a msgpack builder that controls the
 * exact wire format (str32, ext8, ...), an in-process input with a capturing
 * sink, and a raw TCP client that reads acks.
 */
import { eventsOf } from './batch.js';
import { connect, type Socket } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import pino from 'pino';
import { forwardSchema, multilineSchema, type ForwardConfig } from '../../src/config/schema.js';
import type { ContainerDirectory } from '../../src/collector/containers.js';
import type { EncodedBatch } from '../../src/collector/encoded.js';
import type { LogEvent } from '../../src/collector/event.js';
import type { Logger } from '../../src/log.js';
import { Pipeline } from '../../src/collector/pipeline.js';
import type { Sink, WriteOptions } from '../../src/sinks/sink.js';
import { startForwardInput, type KeptConnections, type RunningForwardInput } from '../../src/collector/forward/index.js';
import { Framer } from '../../src/collector/forward/framer.js';
import { decodeEntries, decodeRequest, decodeValue } from '../../src/collector/forward/decoder.js';
import type { DecodeLimits, ForwardEntry, ForwardMessage } from '../../src/collector/forward/messages.js';

// ---------- msgpack builder: every function returns the exact bytes ----------

const u8 = (...b: number[]): Buffer => Buffer.from(b);
const be16 = (n: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
};
const be32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

export type StrFormat = 'fix' | 'str8' | 'str16' | 'str32';

export const mp = {
  nil: (): Buffer => u8(0xc0),
  bool: (v: boolean): Buffer => u8(v ? 0xc3 : 0xc2),
  /** Smallest format, like fluent-logger-golang's int64 ends up: int32 (0xd2) for times, as Docker sends. */
  int32: (n: number): Buffer => {
    const b = Buffer.alloc(5);
    b[0] = 0xd2;
    b.writeInt32BE(n, 1);
    return b;
  },
  uint32: (n: number): Buffer => Buffer.concat([u8(0xce), be32(n)]),
  uint64: (n: bigint): Buffer => {
    const b = Buffer.alloc(9);
    b[0] = 0xcf;
    b.writeBigUInt64BE(n, 1);
    return b;
  },
  fixint: (n: number): Buffer => u8(n & 0xff),
  f64: (x: number): Buffer => {
    const b = Buffer.alloc(9);
    b[0] = 0xcb;
    b.writeDoubleBE(x, 1);
    return b;
  },
  f32: (x: number): Buffer => {
    const b = Buffer.alloc(5);
    b[0] = 0xca;
    b.writeFloatBE(x, 1);
    return b;
  },
  str: (s: string | Buffer, fmt?: StrFormat): Buffer => {
    const bytes = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
    const n = bytes.length;
    const f = fmt ?? (n < 32 ? 'fix' : n <= 0xff ? 'str8' : n <= 0xffff ? 'str16' : 'str32');
    const hdr = f === 'fix' ? u8(0xa0 | n) : f === 'str8' ? u8(0xd9, n) : f === 'str16' ? Buffer.concat([u8(0xda), be16(n)]) : Buffer.concat([u8(0xdb), be32(n)]);
    return Buffer.concat([hdr, bytes]);
  },
  bin: (bytes: Buffer, fmt?: 'bin8' | 'bin16' | 'bin32'): Buffer => {
    const n = bytes.length;
    const f = fmt ?? (n <= 0xff ? 'bin8' : n <= 0xffff ? 'bin16' : 'bin32');
    const hdr = f === 'bin8' ? u8(0xc4, n) : f === 'bin16' ? Buffer.concat([u8(0xc5), be16(n)]) : Buffer.concat([u8(0xc6), be32(n)]);
    return Buffer.concat([hdr, bytes]);
  },
  arr: (...items: Buffer[]): Buffer => {
    const n = items.length;
    const hdr = n < 16 ? u8(0x90 | n) : n <= 0xffff ? Buffer.concat([u8(0xdc), be16(n)]) : Buffer.concat([u8(0xdd), be32(n)]);
    return Buffer.concat([hdr, ...items]);
  },
  map: (entries: Array<[Buffer | string, Buffer]>): Buffer => {
    const n = entries.length;
    const hdr = n < 16 ? u8(0x80 | n) : n <= 0xffff ? Buffer.concat([u8(0xde), be16(n)]) : Buffer.concat([u8(0xdf), be32(n)]);
    return Buffer.concat([hdr, ...entries.flatMap(([k, v]) => [typeof k === 'string' ? mp.str(k) : k, v])]);
  },
  /** A map with string values. */
  strMap: (obj: Record<string, string>): Buffer => mp.map(Object.entries(obj).map(([k, v]) => [k, mp.str(v)])),
  eventTime: (sec: number, nsec: number, fmt: 'fixext8' | 'ext8' = 'fixext8'): Buffer =>
    Buffer.concat([fmt === 'fixext8' ? u8(0xd7, 0) : u8(0xc7, 8, 0), be32(sec), be32(nsec)]),
  /** Raw header bytes, for hostile input. */
  raw: (...b: number[]): Buffer => u8(...b),
};

export const CONTAINER_ID = 'a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2';

export function dockerRecord(log: string | Buffer, extra: Record<string, string> = {}, stream: 'stdout' | 'stderr' = 'stdout'): Buffer {
  return mp.map([
    ['container_id', mp.str(CONTAINER_ID)],
    ['container_name', mp.str('/web-1')],
    ['source', mp.str(stream)],
    ['log', mp.str(log)],
    ...Object.entries(extra).map(([k, v]): [string, Buffer] => [k, mp.str(v)]),
  ]);
}

export const LIMITS: DecodeLimits = { maxFrameSize: 8 * 1024 * 1024, maxRecordKeys: 1024 };

/** A decoded request with its entries (PackedForward streams decoded, gzip inflated). */
export interface Decoded {
  message: ForwardMessage;
  entries: ForwardEntry[];
  frame: Buffer;
}

export function entriesOf(message: ForwardMessage, limits: DecodeLimits = LIMITS): ForwardEntry[] {
  switch (message.mode) {
    case 'Heartbeat': return [];
    case 'Message': return decodeEntries(message.entry, limits);
    case 'Forward': return decodeEntries(message.entries, limits);
    case 'PackedForward': return decodeEntries(message.entries, limits);
    case 'CompressedPackedForward': return decodeEntries(gunzipSync(message.entries), limits);
  }
}

/** Feeds `bytes` to a Framer in the given read sizes and decodes every request. */
export function decodeStream(bytes: Buffer, readSizes: Iterable<number> = [bytes.length], limits: DecodeLimits = LIMITS): Decoded[] {
  const framer = new Framer(limits.maxFrameSize);
  const frames: Buffer[] = [];
  let pos = 0;
  for (const size of readSizes) {
    if (pos >= bytes.length) break;
    // A copy per read, as a socket would hand out; requests copied, since the Framer reuses its buffer.
    const n = frames.length;
    framer.push(Buffer.from(bytes.subarray(pos, pos + size)), frames);
    for (let i = n; i < frames.length; i++) frames[i] = Buffer.from(frames[i]!);
    pos += size;
  }
  if (pos < bytes.length) framer.push(Buffer.from(bytes.subarray(pos)), frames);
  if (framer.midFrame) throw new Error(`stream ends inside a request (${framer.buffered} bytes held)`);
  return frames.map((frame) => {
    const message = decodeRequest(frame, limits);
    return { message, entries: entriesOf(message, limits), frame };
  });
}

/** Decodes a reply stream (acks, HELO, PONG) into values. */
export function decodeReplies(bytes: Buffer): unknown[] {
  const framer = new Framer(LIMITS.maxFrameSize);
  const frames: Buffer[] = [];
  framer.push(bytes, frames);
  return frames.map((f) => decodeValue(f, LIMITS));
}

// ---------- in-process input ----------

/** A sink that takes every write and keeps nothing: a pipeline for the live stream alone. */
export function discardSink(): Sink {
  return { name: 'discard', start: async () => {}, write: async () => {}, close: async () => {} };
}

/** A sink that keeps what it is given; `hold()` keeps writes pending until released. */
export class CaptureSink implements Sink {
  readonly name = 'capture';
  readonly events: LogEvent[] = [];
  writes = 0;
  /** Writes made with `deferred` (durable only after a later sync()). */
  deferredWrites = 0;
  syncs = 0;
  private held: Array<() => void> | undefined;
  failNext: Error | undefined;

  async start(): Promise<void> {}
  async close(): Promise<void> {}

  /** Keeps the lines as the events they stand for. */
  write(batch: EncodedBatch, opts?: WriteOptions): Promise<void> {
    if (opts?.deferred === true) this.deferredWrites++;
    return this.take(() => this.events.push(...eventsOf(batch)));
  }

  async sync(): Promise<void> {
    this.syncs++;
  }

  /** Counts a write and runs `done` once it completes: now, or when released. */
  protected take(done: () => void): Promise<void> {
    this.writes++;
    if (this.failNext) {
      const err = this.failNext;
      this.failNext = undefined;
      return Promise.reject(err);
    }
    if (this.held) return new Promise((resolve) => this.held!.push(() => (done(), resolve())));
    done();
    return Promise.resolve();
  }

  hold(): void {
    this.held ??= [];
  }

  /** Completes every held write and stops holding. */
  release(): void {
    const held = this.held ?? [];
    this.held = undefined;
    for (const fn of held) fn();
  }

  /** Completes the oldest held write only; the others stay held. */
  releaseOldest(): void {
    this.held?.shift()?.();
  }

  /** Completes the newest held write only; the others stay held. */
  releaseNewest(): void {
    this.held?.pop()?.();
  }

  get pendingWrites(): number {
    return this.held?.length ?? 0;
  }
}

export interface TestInput<S extends Sink = CaptureSink> {
  input: RunningForwardInput;
  sink: S;
  pipeline: Pipeline;
  port: number;
  stateDir: string;
  /** The input's pino lines. */
  logs: Array<Record<string, unknown>>;
  stop(): Promise<void>;
}

/** A debug-level pino logger whose lines are kept, parsed, in `logs`. */
export function captureLogger(): { log: Logger; logs: Array<Record<string, unknown>> } {
  const logs: Array<Record<string, unknown>> = [];
  const log = pino(
    { level: 'debug' },
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
        cb();
      },
    }),
  );
  return { log, logs };
}

export async function startTestInput<S extends Sink = CaptureSink>(
  overrides: Record<string, unknown> = {},
  opts: { stateDir?: string; sink?: S; containers?: ContainerDirectory; maxLineBytes?: number; kept?: KeptConnections } = {},
): Promise<TestInput<S>> {
  const cfg: ForwardConfig = forwardSchema.parse({ listen: '127.0.0.1:0', partial_timeout: '500ms', ...overrides });
  const sink = opts.sink ?? (new CaptureSink() as Sink as S);
  const pipeline = new Pipeline([sink]);
  const stateDir = opts.stateDir ?? mkdtempSync(join(tmpdir(), 'clogs-forward-'));
  const { log, logs } = captureLogger();
  const input = await startForwardInput(cfg, {
    pipeline,
    log,
    stateDir,
    hostName: 'clogs-test',
    parseJson: true,
    parseLogfmt: true,
    stripAnsi: true,
    maxLineBytes: opts.maxLineBytes ?? 1024 * 1024,
    multiline: multilineSchema.parse({}),
    ...(opts.containers ? { containers: opts.containers } : {}),
  }, opts.kept);
  return { input, sink, pipeline, port: Number(input.address.split(':').pop()), stateDir, logs, stop: () => input.stop() };
}

// ---------- raw client ----------

export interface RawClient {
  socket: Socket;
  /** Every byte the server sent. */
  received(): Buffer;
  /** Decoded replies so far. */
  replies(): unknown[];
  /** Resolves once `n` replies arrived. */
  waitReplies(n: number, timeoutMs?: number): Promise<unknown[]>;
  /** Resolves when the server closed the connection. */
  closed: Promise<void>;
  send(bytes: Buffer): Promise<void>;
}

export function rawClient(port: number): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    const framer = new Framer(LIMITS.maxFrameSize);
    const frames: Buffer[] = [];
    const decoded: unknown[] = [];
    let waiters: Array<() => void> = [];
    const closed = new Promise<void>((res) => socket.once('close', () => res()));
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      framer.push(d, frames);
      for (const f of frames.splice(0)) decoded.push(decodeValue(f, LIMITS));
      const w = waiters;
      waiters = [];
      for (const fn of w) fn();
    });
    socket.on('error', () => undefined);
    socket.once('connect', () => {
      const client: RawClient = {
        socket,
        received: () => Buffer.concat(chunks),
        replies: () => decoded.slice(),
        closed,
        send: (bytes) => new Promise((res, rej) => socket.write(bytes, (err) => (err ? rej(err) : res()))),
        waitReplies: (n, timeoutMs = 10_000) =>
          new Promise((res, rej) => {
            const timer = setTimeout(() => rej(new Error(`only ${client.replies().length} of ${n} replies after ${timeoutMs} ms`)), timeoutMs);
            const check = (): void => {
              if (decoded.length >= n) {
                clearTimeout(timer);
                res(decoded.slice());
              } else waiters.push(check);
            };
            check();
          }),
      };
      resolve(client);
    });
    socket.once('error', reject);
  });
}
