/**
 * The Docker input renders lines straight from their bytes (line-render.ts)
 * and hands the Normalizer only what the renderer refuses: what a follower
 * ships must be what the Normalizer and event-json.ts write for the same
 * lines, byte for byte, with the same seq and ordinals.
 */
import pino from 'pino';
import { describe, expect, it, vi } from 'vitest';
import type { Positions } from '../../../src/collector/docker/checkpoints.js';
import { Follower } from '../../../src/collector/docker/follower.js';
import type { LogBodyHandlers, OpenLogs } from '../../../src/collector/docker/log-stream.js';
import type { ContainerInfo } from '../../../src/collector/docker/metadata.js';
import type { LineSink } from '../../../src/collector/docker/shipper.js';
import { EncodedBatch } from '../../../src/collector/encoded.js';
import type { Stream } from '../../../src/collector/event.js';
import { LineRenderer } from '../../../src/collector/line-render.js';
import type { NormalizerOptions } from '../../../src/collector/normalize.js';
import { formatNanoTime } from '../../../src/collector/time.js';
import { JSON_LINES, PLAIN_LINES, TEXT_LINES } from '../../helpers/line-shapes.js';
import { checkMarks } from '../../helpers/batch.js';
import { makeNormalizer } from '../multiline/helpers.js';

const ID = 'd'.repeat(64);
const META = Object.freeze({ id: ID, name: 'shop-web-1', image: Object.freeze({ name: 'shop/web:1.2' }), labels: Object.freeze({ team: 'payments' }) });
const INFO: ContainerInfo = { id: ID, name: 'shop-web-1', image: 'shop/web:1.2', labels: {}, tty: false, logDriver: 'json-file', running: true, finishedAtMs: 0, meta: META };
const SEC = 1_795_341_190;

interface Line {
  stream: Stream;
  nsec: number;
  bytes: Buffer;
}

/** Docker's multiplexed frame of one line: header, `RFC3339Nano ` prefix, the line and its "\n". */
function frame(l: Line): Buffer {
  const payload = Buffer.concat([Buffer.from(`${formatNanoTime(SEC, l.nsec)} `), l.bytes, Buffer.from('\n')]);
  const header = Buffer.alloc(8);
  header[0] = l.stream === 'stdout' ? 1 : 2;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

/** The lines through a follower, each read of `perRead` frames; then its stream ends (a stopped container). */
async function followed(lines: Line[], multiline: Record<string, unknown> | undefined, opts: Partial<NormalizerOptions>, perRead: number) {
  const { n } = makeNormalizer(multiline, opts);
  const pushed = vi.spyOn(n, 'push');
  const out = new EncodedBatch();
  const positions: Positions[] = [];
  const sink: LineSink = {
    add: (_id, _name, lines, streams) => {
      out.append(lines);
      positions.push(streams);
      return true;
    },
    hasRoom: () => true,
    whenDrained: () => () => undefined,
    whenNextCycle: () => () => undefined,
  };
  let handlers: LogBodyHandlers | undefined;
  const openLogs: OpenLogs = async (_id, _since, h) => {
    handlers = h;
    return { pause: () => undefined, resume: () => undefined, close: () => undefined };
  };
  const follower = new Follower(INFO, {}, { openLogs, normalizer: n, renderer: new LineRenderer(n), sink, log: pino({ level: 'silent' }), maxLineBytes: 1 << 20, perLine: false, onEnded: () => undefined });
  await follower.start();
  for (let i = 0; i < lines.length; i += perRead) handlers!.data(lines.slice(i, i + perRead).map(frame), true);
  follower.finish();
  checkMarks(out);
  return { text: Buffer.concat([...out.sources()].flatMap((s) => [...s.chunks()])).toString('utf8'), positions, pushed: pushed.mock.calls.length };
}

/** The same lines through the Normalizer and event-json.ts alone. */
function general(lines: Line[], multiline: Record<string, unknown> | undefined, opts: Partial<NormalizerOptions>): string {
  const { n } = makeNormalizer(multiline, opts);
  const out = new EncodedBatch();
  for (const l of lines) {
    const timestamp = formatNanoTime(SEC, l.nsec);
    out.add(n.push({ input: 'docker', time: { sec: SEC, nsec: l.nsec }, timestamp, stream: l.stream, line: l.bytes, container: META }));
  }
  out.add(n.flushAll());
  checkMarks(out);
  return Buffer.concat([...out.sources()].flatMap((s) => [...s.chunks()])).toString('utf8');
}

/** Every shape, on both streams, some lines sharing a timestamp (ordinals count up). */
const SHAPES: Line[] = [...JSON_LINES, ...PLAIN_LINES, ...TEXT_LINES].map((text, i) => ({
  stream: i % 3 === 0 ? 'stderr' : 'stdout',
  nsec: 1000 * Math.floor(i / 4),
  bytes: typeof text === 'string' ? Buffer.from(text) : text,
}));

const TRACE: Line[] = [
  'Exception in thread "main" java.lang.IllegalStateException: order 4711 has no items',
  '\tat com.example.shop.OrderService.place(OrderService.java:42)',
  '\tat com.example.shop.Main.main(Main.java:7)',
  'after the trace',
  '{"level":30,"msg":"json after"}',
].map((text, i) => ({ stream: 'stderr', nsec: 5_000_000 + i, bytes: Buffer.from(text) }));

describe('Docker follower rendering', () => {
  for (const [name, opts] of [
    ['with every stage on', {}],
    ['without terminal stripping', { stripAnsi: false }],
    ['without JSON or logfmt parsing', { parseJson: false, parseLogfmt: false }],
    ['cutting lines over 1 KiB', { maxLineBytes: 1024 }],
  ] as const) {
    it(`writes what the general path writes, ${name}`, async () => {
      const want = general(SHAPES, undefined, opts);
      for (const perRead of [1, 7, SHAPES.length]) {
        const r = await followed(SHAPES, undefined, opts, perRead);
        expect(r.text).toBe(want);
        // Most shapes are the renderer's own; the rest went to the Normalizer.
        expect(r.pushed).toBeGreaterThan(0);
        expect(r.pushed).toBeLessThan(SHAPES.length / 2);
      }
    });
  }

  it('leaves JSON objects and logfmt lines of more than 64 keys to the Normalizer, whose parse is linear in them, writing the same', async () => {
    const keys = (n: number) => Array.from({ length: n }, (_, i) => `k${i.toString(36)}x`);
    const lines: Line[] = [64, 65, 2000].flatMap((n, i): Line[] => [
      { stream: 'stdout', nsec: 10 * i, bytes: Buffer.from(JSON.stringify({ msg: 'm', nested: Object.fromEntries(keys(n).map((k) => [k, 1])) })) },
      { stream: 'stdout', nsec: 10 * i + 1, bytes: Buffer.from(keys(n).map((k) => `${k}=v`).join(' ')) },
    ]);
    const r = await followed(lines, undefined, {}, lines.length);
    expect(r.text).toBe(general(lines, undefined, {}));
    expect(r.pushed).toBe(4);
  });

  it('with stack traces among the lines, holding and joining them as the general path does', async () => {
    const lines = [...SHAPES.slice(0, 10), ...TRACE, ...SHAPES.slice(10)];
    const r = await followed(lines, {}, {}, 3);
    expect(r.text).toBe(general(lines, {}, {}));
    expect(r.text).toContain('order 4711 has no items\\n\\tat com.example.shop.OrderService.place');
  });

  it('moves the checkpoint over lines it rendered itself, counting their ordinals', async () => {
    const lines: Line[] = ['one', 'two', 'three'].map((text) => ({ stream: 'stdout', nsec: 7, bytes: Buffer.from(text) }));
    const r = await followed(lines, undefined, {}, 3);
    expect(r.pushed).toBe(0);
    expect(r.positions.at(-1)).toEqual({ stdout: { ts: formatNanoTime(SEC, 7), lines: 3, ords: 3 } });
  });
});
