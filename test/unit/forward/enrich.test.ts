/**
 * The forward input with a container directory (a fake one here; the real
 * engine in test/integration/forward-enrich.test.ts): Docker records get
 * their container's image and labels, one lookup per container, and a lookup
 * that does not answer holds a request only briefly.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { PassThrough } from 'node:stream';
import type { ContainerDirectory } from '../../../src/collector/containers.js';
import { EngineDirectory, type DirectoryEngine } from '../../../src/collector/docker/directory.js';
import type { ContainerMeta } from '../../../src/collector/event.js';
import { encodeMsgpack } from '../../../src/collector/forward/encode.js';
import { CaptureSink, captureLogger, mp, rawClient, startTestInput, type TestInput } from '../../helpers/forward.js';
import { until } from '../../helpers/until.js';

const T = 1795341190;
const ID_A = 'a'.repeat(64);
const ID_B = 'b'.repeat(64);
const ID_D = 'd'.repeat(64);

/** Answers lookups from `engine` a tick later, or never (`silent`). */
class FakeDirectory implements ContainerDirectory {
  readonly asked: string[] = [];
  readonly engine = new Map<string, ContainerMeta & { id: string }>();
  silent = false;
  private readonly metas = new Map<string, ContainerMeta>();
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly listeners = new Set<(id: string) => void>();

  known(id: string): ContainerMeta | undefined {
    return this.metas.get(id);
  }

  lookup(id: string): Promise<void> | undefined {
    if (this.metas.has(id)) return undefined;
    let p = this.inFlight.get(id);
    if (p === undefined) {
      this.asked.push(id);
      p = new Promise<void>((resolve) => {
        if (this.silent) return;
        setImmediate(() => {
          const meta = this.engine.get(id);
          if (meta !== undefined) this.learn(meta);
          resolve();
        });
      });
      this.inFlight.set(id, p);
    }
    return p;
  }

  subscribe(listener: (id: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** What an events stream would tell. */
  learn(meta: ContainerMeta & { id: string }): void {
    this.metas.set(meta.id, meta);
    for (const l of this.listeners) l(meta.id);
  }
}

const metaOf = (id: string, name: string, labels: Record<string, string>): ContainerMeta & { id: string } =>
  Object.freeze({ id, name, image: { name: 'clogs-busybox:latest' }, labels, compose: { project: 'shop', service: 'web' } });

const record = (id: string, name: string, log: string): Buffer =>
  mp.map([
    ['container_id', mp.str(id)],
    ['container_name', mp.str(`/${name}`)],
    ['source', mp.str('stdout')],
    ['log', mp.str(log)],
  ]);

const message = (id: string, name: string, log: string, chunk: string): Buffer => mp.arr(mp.str('docker'), mp.int32(T), record(id, name, log), encodeMsgpack({ chunk }));

const packed = (entries: Array<[string, string, string]>, chunk: string): Buffer =>
  mp.arr(mp.str('docker'), mp.bin(Buffer.concat(entries.map(([id, name, log]) => mp.arr(mp.eventTime(T, 5), record(id, name, log))))), encodeMsgpack({ chunk }));

let running: TestInput | undefined;
afterEach(async () => {
  await running?.stop();
  running = undefined;
});

async function start(directory: ContainerDirectory, sink = new CaptureSink()): Promise<TestInput> {
  running = await startTestInput({}, { containers: directory, sink });
  return running;
}

describe('forward input with a container directory', () => {
  it('gives the first line of a container its metadata, the directory\'s own object when the name matches', async () => {
    const directory = new FakeDirectory();
    const meta = metaOf(ID_A, 'web-1', { app: 'shop', 'com.docker.compose.service': 'web', 'com.docker.compose.project': 'shop' });
    directory.engine.set(ID_A, meta);
    const { port, sink } = await start(directory);
    const c = await rawClient(port);
    await c.send(message(ID_A, 'web-1', 'first', 'c1'));
    await c.waitReplies(1);
    await c.send(message(ID_A, 'web-1', 'second', 'c2'));
    await c.waitReplies(2);
    expect(sink.events.map((e) => e.message)).toEqual(['first', 'second']);
    for (const e of sink.events) expect(e.container).toBe(meta);
    expect(directory.asked).toEqual([ID_A]);
    c.socket.end();
  });

  it('keeps the name the driver sent, with the image and labels of the directory', async () => {
    const directory = new FakeDirectory();
    directory.engine.set(ID_A, metaOf(ID_A, 'old-name', { app: 'shop' }));
    const { port, sink } = await start(directory);
    const c = await rawClient(port);
    await c.send(message(ID_A, 'new-name', 'x', 'c1'));
    await c.waitReplies(1);
    expect(sink.events[0]!.container).toEqual({ id: ID_A, name: 'new-name', image: { name: 'clogs-busybox:latest' }, labels: { app: 'shop' }, compose: { project: 'shop', service: 'web' } });
    c.socket.end();
  });

  it('does not hold a request for a lookup that does not answer; later lines get the metadata once it is in', async () => {
    const directory = new FakeDirectory();
    directory.silent = true;
    const { port, sink } = await start(directory);
    const c = await rawClient(port);
    await c.send(message(ID_A, 'web-1', 'before', 'c1'));
    expect(await c.waitReplies(1)).toEqual([{ ack: 'c1' }]);
    expect(sink.events[0]!.container).toEqual({ id: ID_A, name: 'web-1' });
    await c.send(message(ID_A, 'web-1', 'still before', 'c2'));
    await c.waitReplies(2);
    expect(directory.asked).toEqual([ID_A]);
    directory.learn(metaOf(ID_A, 'web-1', { app: 'shop' }));
    await c.send(message(ID_A, 'web-1', 'after', 'c3'));
    await c.waitReplies(3);
    const after = sink.events.find((e) => e.message === 'after')!;
    expect(after.container?.image).toEqual({ name: 'clogs-busybox:latest' });
    // The container's ordinals go on across the new object: same second, next ordinal.
    expect(sink.events.map((e) => e.clogs.ordinal)).toEqual([0, 1, 2]);
    c.socket.end();
  });

  it('PackedForward: one lookup per container, every line enriched, each container\'s order kept', async () => {
    const directory = new FakeDirectory();
    directory.engine.set(ID_A, metaOf(ID_A, 'a', { app: 'a' }));
    directory.engine.set(ID_B, metaOf(ID_B, 'b', { app: 'b' }));
    const sink = new CaptureSink();
    const { port } = await start(directory, sink);
    const c = await rawClient(port);
    const lines: Array<[string, string, string]> = [];
    for (let i = 0; i < 50; i++) lines.push(i % 10 < 5 ? [ID_A, 'a', `a ${i}`] : [ID_B, 'b', `b ${i}`]);
    await c.send(packed(lines, 'p1'));
    await c.send(packed(lines.map(([id, name, log]) => [id, name, `${log} again`]), 'p2'));
    expect(await c.waitReplies(2)).toEqual([{ ack: 'p1' }, { ack: 'p2' }]);
    // Rendered batches group lines by container: the order that holds is each container's.
    for (const id of [ID_A, ID_B]) {
      const mine = lines.filter((l) => l[0] === id).map((l) => l[2]);
      expect(sink.events.filter((e) => e.container?.id === id).map((e) => e.message)).toEqual([...mine, ...mine.map((m) => `${m} again`)]);
    }
    for (const e of sink.events) expect(e.container?.labels).toEqual({ app: e.container?.name });
    expect([...directory.asked].sort()).toEqual([ID_A, ID_B]);
    c.socket.end();
    await running!.stop();
    running = undefined;
  });

  it('Message mode read together: each line its own container\'s metadata, from containers in turn, also when it changes while a run waits', async () => {
    const directory = new FakeDirectory();
    directory.learn(metaOf(ID_A, 'a', { app: 'a' }));
    directory.learn(metaOf(ID_B, 'b', { app: 'b' }));
    directory.learn(metaOf(ID_D, 'd', { app: 'd' }));
    const sink = new CaptureSink();
    const { port } = await start(directory, sink);
    const c = await rawClient(port);
    const noAck = (id: string, name: string, log: string): Buffer => mp.arr(mp.str('docker'), mp.int32(T), record(id, name, log), mp.map([]));
    const turn = (round: string): Buffer => Buffer.concat([noAck(ID_A, 'a', `a ${round}`), noAck(ID_B, 'b', `b ${round}`), noAck(ID_D, 'd', `d ${round}`)]);
    // Each write's requests are read, looked up and rendered together; the second finds every container known.
    await c.send(turn('1'));
    await until('the first lines', () => sink.events.length === 3, 5000);
    await c.send(turn('2'));
    await until('the second lines', () => sink.events.length === 6, 5000);
    // A's metadata changes while the run waits for the lookup of a container the engine does not answer for.
    directory.silent = true;
    await c.send(Buffer.concat([noAck(ID_A, 'a', 'a 3'), noAck('c'.repeat(64), 'c', 'c 3')]));
    await new Promise((r) => setTimeout(r, 50));
    directory.learn(metaOf(ID_A, 'a', { app: 'a2' }));
    await until('the last lines', () => sink.events.length === 8, 5000);
    const seen = sink.events.map((e) => [e.message, e.container?.name, e.container?.labels?.app ?? null]);
    expect(seen.sort()).toEqual(
      [
        ...['1', '2'].flatMap((r) => [[`a ${r}`, 'a', 'a'], [`b ${r}`, 'b', 'b'], [`d ${r}`, 'd', 'd']]),
        ['a 3', 'a', 'a2'],
        ['c 3', 'c', null],
      ].sort(),
    );
    c.socket.end();
  });

  it('a gzip request waits for its lookups too, and the requests behind it keep their order', async () => {
    const { gzipSync } = await import('node:zlib');
    const directory = new FakeDirectory();
    directory.engine.set(ID_A, metaOf(ID_A, 'a', { app: 'a' }));
    const { port, sink } = await start(directory);
    const c = await rawClient(port);
    const gz = mp.arr(
      mp.str('docker'),
      mp.bin(gzipSync(mp.arr(mp.eventTime(T, 5), record(ID_A, 'a', 'zipped')))),
      encodeMsgpack({ chunk: 'z1', compressed: 'gzip' }),
    );
    await c.send(Buffer.concat([gz, message(ID_B, 'b', 'plain', 'm2')]));
    expect(await c.waitReplies(2)).toEqual([{ ack: 'z1' }, { ack: 'm2' }]);
    await until('both lines', () => sink.events.length === 2, 5000);
    expect(sink.events.map((e) => [e.message, e.container?.image?.name])).toEqual([
      ['zipped', 'clogs-busybox:latest'],
      ['plain', undefined],
    ]);
    c.socket.end();
  });
  it('asks the engine nothing about a container_id that cannot be a container\'s: it goes into the Engine API path', async () => {
    const inspected: string[] = [];
    const engine: DirectoryEngine = {
      inspect: async (id) => {
        inspected.push(id);
        return { Id: id, Name: '/a', Config: { Image: 'clogs-busybox:latest', Labels: { app: 'a' } } };
      },
      list: async () => [],
      events: async () => new PassThrough(),
    };
    const directory = new EngineDirectory({ engine, log: captureLogger().log });
    const { port, sink } = await start(directory);
    const c = await rawClient(port);
    await c.send(message('../../info?', 'x', 'message mode', 'm1'));
    await c.send(packed([['../secrets/s1?x=', 'y', 'packed'], [ID_A, 'a', 'a real one']], 'p1'));
    expect(await c.waitReplies(2)).toEqual([{ ack: 'm1' }, { ack: 'p1' }]);
    expect(inspected).toEqual([ID_A]);
    // A PackedForward's lines are rendered grouped by container: compared by line, not in order.
    expect(Object.fromEntries(sink.events.map((e) => [e.message, e.container]))).toEqual({
      'message mode': { id: '../../info?', name: 'x' },
      packed: { id: '../secrets/s1?x=', name: 'y' },
      'a real one': { id: ID_A, name: 'a', image: { name: 'clogs-busybox:latest' }, labels: { app: 'a' } },
    });
    expect(sink.events).toHaveLength(3);
    c.socket.end();
    directory.close();
  });
});
