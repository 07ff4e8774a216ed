/**
 * Discovery (discovery.ts) against a scripted engine: which stream's end
 * decides that a stopped container's log is read to its end. The real engine
 * (test/integration/docker-follower.test.ts) hit this order now and then on
 * the loaded machine; here it is forced.
 */
import { addAbortSignal, PassThrough } from 'node:stream';
import type Docker from 'dockerode';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { eventsOf } from '../../helpers/batch.js';
import type { EncodedBatch } from '../../../src/collector/encoded.js';
import type { LogEvent } from '../../../src/collector/event.js';
import type { CheckpointStore } from '../../../src/collector/docker/checkpoints.js';
import { Discovery } from '../../../src/collector/docker/discovery.js';
import type { LogBody, LogBodyHandlers } from '../../../src/collector/docker/log-stream.js';
import type { ContainerInfo, MetadataCache } from '../../../src/collector/docker/metadata.js';
import type { Shipper } from '../../../src/collector/docker/shipper.js';
import { until } from '../../helpers/until.js';
import { makeNormalizer } from '../multiline/helpers.js';

const ID = 'c'.repeat(64);

/** One opening of the container's log: delivers what the test says, when it says. */
class ScriptedBody implements LogBody {
  closed = false;
  constructor(private readonly handlers: LogBodyHandlers) {}
  pause(): void {}
  resume(): void {}
  close(): void {
    this.closed = true;
  }
  deliver(text: string): void {
    if (!this.closed) this.handlers.data([Buffer.from(text)], false);
  }
  end(): void {
    if (!this.closed) this.handlers.end();
  }
}

let discovery: Discovery | undefined;
afterEach(async () => {
  await discovery?.stop();
  discovery = undefined;
});

type GetEvents = (opts: { abortSignal: AbortSignal }) => Promise<NodeJS.ReadableStream>;

function scriptedEngine(getEvents?: GetEvents) {
  const events = new PassThrough();
  const bodies: ScriptedBody[] = [];
  const shipped: LogEvent[] = [];
  const state = { running: true, finishedAtMs: 0, inspectGate: Promise.resolve(), listed: 0, failInspects: 0 };
  const info = (): ContainerInfo => ({
    id: ID,
    name: 'app',
    image: 'busybox',
    labels: {},
    tty: true,
    logDriver: 'json-file',
    running: state.running,
    finishedAtMs: state.running ? 0 : state.finishedAtMs,
    meta: Object.freeze({ id: ID, name: 'app' }),
  });
  const docker = {
    getEvents: getEvents ?? (async () => events),
    listContainers: async () => {
      state.listed++;
      return [{ Id: ID, Names: ['/app'], Image: 'busybox', Labels: {} }];
    },
  } as unknown as Docker;
  const cache = {
    refresh: async () => {
      await state.inspectGate;
      if (state.failInspects > 0) {
        state.failInspects--;
        throw Object.assign(new Error('(HTTP code 500) server error'), { statusCode: 500 });
      }
      return info();
    },
  } as unknown as MetadataCache;
  const store = { get: () => undefined, markPresent: () => undefined, markRemoved: () => undefined, ids: () => [], hasStaged: () => false } as unknown as CheckpointStore;
  const shipper = {
    add: (_id: string, _name: string, lines: EncodedBatch) => (shipped.push(...eventsOf(lines)), true),
    hasRoom: () => true,
    whenDrained: () => () => undefined,
    whenNextCycle: () => () => undefined,
    touch: () => undefined,
    addLoose: (list: LogEvent[]) => shipped.push(...list),
  } as unknown as Shipper;
  const d = new Discovery({
    docker,
    openLogs: async (_id, _since, handlers) => {
      const body = new ScriptedBody(handlers);
      bodies.push(body);
      return body;
    },
    cache,
    store,
    shipper,
    normalizer: makeNormalizer(undefined).n,
    filter: () => undefined,
    log: pino({ level: 'silent' }),
    maxLineBytes: 1024 * 1024,
    followsDriver: () => true,
    horizonMs: 0,
  });
  const event = (action: string) => events.write(JSON.stringify({ Type: 'container', Action: action, Actor: { ID: ID, Attributes: { name: 'app' } } }) + '\n');
  const die = () => event('die');
  return { d, bodies, shipped, state, die, event };
}

describe('Discovery', () => {
  it('tries again a container whose inspect failed before it had a follower', async () => {
    const e = scriptedEngine();
    discovery = e.d;
    e.state.failInspects = 2;
    await e.d.start();
    // Backing off from 100 ms; no event for the container comes.
    await until('the stream after two failed inspects', () => e.bodies.length === 1, 5000);
    expect(e.state.failInspects).toBe(0);
  });

  it('takes a stopped container as read only on the end of its newest stream, not on a stale one', async () => {
    const e = scriptedEngine();
    discovery = e.d;
    await e.d.start();
    await until('the first stream', () => e.bodies.length === 1, 5000);
    const first = e.bodies[0]!;
    first.deliver('2026-11-30T07:00:00.000000001Z line one\r\n');

    // The container stops; its die event's inspect is slow, so the first
    // stream's end waits behind it, and the die event opens a second stream.
    let openGate!: () => void;
    e.state.inspectGate = new Promise<void>((r) => (openGate = r));
    e.state.running = false;
    e.state.finishedAtMs = Date.now();
    e.die();
    await new Promise((r) => setTimeout(r, 50));
    first.end();
    openGate();
    await until('the second stream', () => e.bodies.length === 2, 5000);
    const log = '2026-11-30T07:00:00.000000001Z line one\r\n2026-11-30T07:00:00.000000002Z tail';
    e.bodies[1]!.deliver(log);
    e.bodies[1]!.end();

    // The final read: its own end, and no earlier one, finishes the container.
    await until('the final read', () => e.bodies.length === 3, 5000);
    await new Promise((r) => setTimeout(r, 100));
    e.bodies[2]!.deliver(log);
    e.bodies[2]!.end();
    await until('the last line', () => e.shipped.some((ev) => ev.message === 'tail'), 5000, () => e.shipped.map((ev) => ev.message));
    expect(e.shipped.map((ev) => ev.message)).toEqual(['line one', 'tail']);
  });

  it('reads a run that started and stopped again before its events were looked at, after the log was read to its end', async () => {
    const e = scriptedEngine();
    discovery = e.d;
    e.state.running = false;
    e.state.finishedAtMs = 1_000;
    await e.d.start();
    await until('the first stream', () => e.bodies.length === 1, 5000);
    const first = '2026-11-30T07:00:00.000000001Z first run\n';
    e.bodies[0]!.deliver(first);
    e.bodies[0]!.end();
    await until('the final read', () => e.bodies.length === 2, 5000);
    e.bodies[1]!.deliver(first);
    e.bodies[1]!.end();
    await until('the first run', () => e.shipped.length === 1, 5000);

    // The same run's die again (a reconnect's reconcile would ask the same): nothing to read.
    e.die();
    await new Promise((r) => setTimeout(r, 100));
    expect(e.bodies).toHaveLength(2);

    // A second run, over before its start event's inspect: both events find it stopped.
    e.state.finishedAtMs = 2_000;
    e.event('start');
    e.die();
    await until('the second run\'s stream', () => e.bodies.length === 3, 5000);
    const second = first + '2026-11-30T08:00:00.000000001Z second run\n';
    e.bodies[2]!.deliver(second);
    e.bodies[2]!.end();
    await until('its final read', () => e.bodies.length === 4, 5000);
    e.bodies[3]!.deliver(second);
    e.bodies[3]!.end();
    await until('the second run', () => e.shipped.length === 2, 5000, () => e.shipped.map((ev) => ev.message));
    expect(e.shipped.map((ev) => ev.message)).toEqual(['first run', 'second run']);
  });

  it('reads a run that started and stopped while the final read of the one before was open', async () => {
    const e = scriptedEngine();
    discovery = e.d;
    await e.d.start();
    await until('the first stream', () => e.bodies.length === 1, 5000);
    const one = '2026-11-30T07:00:00.000000001Z run one\n';
    e.bodies[0]!.deliver(one);
    e.state.running = false;
    e.state.finishedAtMs = 1_000;
    e.bodies[0]!.end();
    await until('the final read', () => e.bodies.length === 2, 5000);
    // A second run, started and over while the final read is open: its start event finds the follower following.
    e.state.finishedAtMs = 2_000;
    e.event('start');
    await new Promise((r) => setTimeout(r, 50));
    e.bodies[1]!.deliver(one);
    e.bodies[1]!.end();
    await until('a read of the second run', () => e.bodies.length === 3, 5000);
    e.bodies[2]!.deliver(one + '2026-11-30T08:00:00.000000001Z run two\n');
    e.bodies[2]!.end();
    await until('run two', () => e.shipped.length === 2, 5000, () => e.shipped.map((ev) => ev.message));
    expect(e.shipped.map((ev) => ev.message)).toEqual(['run one', 'run two']);
    await new Promise((r) => setTimeout(r, 100));
    expect(e.bodies).toHaveLength(3);
  });

  it('stopped while the engine has not answered the events request, aborts it and keeps no stream', async () => {
    for (const answeredFirst of [false, true]) {
      const requests: Array<{ signal: AbortSignal; answer(): void }> = [];
      const streams: PassThrough[] = [];
      // As node's HTTP client does: an aborted request rejects, and an
      // answered one's stream is destroyed by the abort.
      const e = scriptedEngine(
        ({ abortSignal: signal }) =>
          new Promise((resolve, reject) => {
            signal.addEventListener('abort', () => reject(signal.reason));
            const answer = () => {
              if (signal.aborted) return;
              const stream = addAbortSignal(signal, new PassThrough());
              streams.push(stream);
              resolve(stream);
            };
            requests.push({ signal, answer });
          }),
      );
      discovery = e.d;
      const started = e.d.start();
      await until('the events request', () => requests.length === 1, 5000);
      if (answeredFirst) requests[0]!.answer();
      await e.d.stop();
      requests[0]!.answer();
      await started;
      expect(requests[0]!.signal.aborted, `answered first: ${answeredFirst}`).toBe(true);
      expect(streams.every((stream) => stream.destroyed), `answered first: ${answeredFirst}`).toBe(true);
      expect(e.state.listed, `answered first: ${answeredFirst}`).toBe(0);
    }
  });
});
