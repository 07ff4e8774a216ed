import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it, vi } from 'vitest';
import { dockerSchema } from '../../../src/config/schema.js';
import { EngineDirectory, openContainerDirectory, type DirectoryEngine, type ListedContainer } from '../../../src/collector/docker/directory.js';
import { containerInfo, type InspectAnswer } from '../../../src/collector/docker/metadata.js';
import { captureLogger } from '../../helpers/forward.js';
import { until } from '../../helpers/until.js';

const captured = readFileSync(join(process.cwd(), 'test/fixtures/docker/events/events-stream.bin'));
const inspected = JSON.parse(readFileSync(join(process.cwd(), 'test/fixtures/docker/events/container-inspect.json'), 'utf8')) as InspectAnswer;
const CAPTURED_ID = '0ec64f8cbc0382482a42b64e809c07265559bdf2b245b7f42ba9d72f91dc62be';

/** An engine that answers inspects from `containers` (404 for others) and hands out event streams the test writes to. */
class FakeEngine implements DirectoryEngine {
  readonly inspects: string[] = [];
  readonly streams: PassThrough[] = [];
  down = false;
  /** Containers whose image's name a `docker pull` moved to another image: the list gives the image id for their image. */
  readonly repointed = new Set<string>();
  /** While set, inspects wait for it. */
  gate: Promise<void> | undefined;

  constructor(readonly containers: Map<string, InspectAnswer> = new Map()) {}

  async inspect(id: string): Promise<InspectAnswer> {
    this.inspects.push(id);
    await this.gate;
    if (this.down) throw Object.assign(new Error('connect ECONNREFUSED /var/run/docker.sock'), { code: 'ECONNREFUSED' });
    const answer = this.containers.get(id);
    if (answer === undefined) throw Object.assign(new Error(`(HTTP code 404) no such container - ${id}`), { statusCode: 404 });
    return answer;
  }

  async list(): Promise<ListedContainer[]> {
    if (this.down) throw Object.assign(new Error('connect ECONNREFUSED /var/run/docker.sock'), { code: 'ECONNREFUSED' });
    return [...this.containers.values()].map((a) => ({
      Id: a.Id,
      Names: [a.Name ?? ''],
      Image: this.repointed.has(a.Id) ? `sha256:${'9'.repeat(64)}` : (a.Config?.Image ?? ''),
      Labels: a.Config?.Labels ?? null,
    }));
  }

  async events(): Promise<NodeJS.ReadableStream> {
    const s = new PassThrough();
    this.streams.push(s);
    return s;
  }
}

function answer(id: string, name: string, image: string, labels: Record<string, string>): InspectAnswer {
  return { Id: id, Name: `/${name}`, Config: { Image: image, Labels: labels } };
}

function setup(opts: { maxEntries?: number; failureTtlMs?: number; containers?: Map<string, InspectAnswer> } = {}) {
  const engine = new FakeEngine(opts.containers);
  const { log, logs } = captureLogger();
  let now = 1_000_000;
  const directory = new EngineDirectory({
    engine,
    log,
    ...(opts.maxEntries !== undefined ? { maxEntries: opts.maxEntries } : {}),
    ...(opts.failureTtlMs !== undefined ? { failureTtlMs: opts.failureTtlMs } : {}),
    now: () => now,
  });
  const changed: string[] = [];
  directory.subscribe((id) => changed.push(id));
  return { engine, directory, logs, changed, advance: (ms: number) => (now += ms) };
}

describe('container directory', () => {
  it('knows every listed container at start, without an inspect each', async () => {
    const id = 'c'.repeat(64);
    const { engine, directory } = setup({ containers: new Map([[id, answer(id, 'shop-web-1', 'nginx:1.27', { 'com.docker.compose.service': 'web' })]]) });
    await directory.fill();
    expect(directory.known(id)).toMatchObject({ id, name: 'shop-web-1', image: { name: 'nginx:1.27' }, compose: { service: 'web' } });
    expect(directory.lookup(id)).toBeUndefined();
    expect(engine.inspects).toEqual([]);
  });

  it('starts on a list answer not shaped as the API says, as on a failed list: metadata then comes from an inspect each', async () => {
    for (const odd of [{}, [{ Id: 'd'.repeat(64), Names: [5] }], [{ Id: 'e'.repeat(64), Image: 5 }], [{ Id: 5 }], [{ Id: 'f'.repeat(64), Labels: 'x' }]]) {
      const { engine, directory, logs } = setup();
      engine.list = async () => odd as unknown as ListedContainer[];
      await directory.fill();
      expect(logs.map((l) => l.msg)).toContain('could not list the containers; their metadata comes from an inspect each');
      expect(directory.known('f'.repeat(64))).toBeUndefined();
      directory.close();
    }
  });

  it('takes the image name from an inspect, before fill() resolves, for a container the list names by image id', async () => {
    const web = 'c'.repeat(64);
    const db = 'd'.repeat(64);
    const labels = { 'com.docker.compose.service': 'web' };
    const { engine, directory } = setup({
      containers: new Map([
        [web, answer(web, 'shop-web-1', 'nginx:latest', labels)],
        [db, answer(db, 'shop-db-1', 'postgres:17', {})],
      ]),
    });
    engine.repointed.add(web);
    await directory.fill();
    expect(directory.known(web)).toEqual({ id: web, name: 'shop-web-1', image: { name: 'nginx:latest' }, labels, compose: { service: 'web' } });
    expect(directory.known(db)?.image).toEqual({ name: 'postgres:17' });
    expect(engine.inspects).toEqual([web]);
  });

  it('keeps what the list says of a container listed by image id while its inspect hangs, and asks a few at a time', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const ids = Array.from({ length: 10 }, (_, i) => String(i).repeat(64));
      const { engine, directory } = setup({ containers: new Map(ids.map((id, i) => [id, answer(id, `app-${i}`, 'app:latest', { 'com.docker.compose.service': 'app' })])) });
      for (const id of ids) engine.repointed.add(id);
      let release!: () => void;
      engine.gate = new Promise((resolve) => (release = resolve));
      const filling = directory.fill();
      await vi.advanceTimersByTimeAsync(0);
      expect(engine.inspects).toHaveLength(4);
      // fill() waits one inspect's timeout at most: start goes on with the list's metadata.
      await vi.advanceTimersByTimeAsync(5000);
      await filling;
      expect(directory.known(ids[0]!)).toMatchObject({ name: 'app-0', image: { name: `sha256:${'9'.repeat(64)}` }, compose: { service: 'app' } });
      release();
      await vi.advanceTimersByTimeAsync(0);
      await vi.waitFor(() => expect(engine.inspects).toHaveLength(10));
      await vi.waitFor(() => expect(directory.known(ids[9]!)?.image).toEqual({ name: 'app:latest' }));
    } finally {
      vi.useRealTimers();
    }
  });

  it('goes on without the list when the engine does not answer it', async () => {
    const { engine, directory, logs } = setup();
    engine.down = true;
    await directory.fill();
    expect(logs.some((l) => l.level === 40 && String(l.msg).includes('could not list'))).toBe(true);
  });

  it('inspects a container once, however often it is asked, and builds its metadata', async () => {
    const { engine, directory, changed } = setup({ containers: new Map([[CAPTURED_ID, inspected]]) });
    expect(directory.known(CAPTURED_ID)).toBeUndefined();
    const first = directory.lookup(CAPTURED_ID);
    expect(directory.lookup(CAPTURED_ID)).toBe(first);
    await first;
    expect(directory.lookup(CAPTURED_ID)).toBeUndefined();
    expect(engine.inspects).toEqual([CAPTURED_ID]);
    const meta = directory.known(CAPTURED_ID)!;
    expect(meta).toEqual({
      id: CAPTURED_ID,
      name: 'clogs-cap-ev-renamed',
      image: { name: 'clogs-busybox:latest' },
      labels: { 'com.example.team': 'clogs', name: 'label-called-name' },
    });
    expect(Object.isFrozen(meta)).toBe(true);
    expect(directory.known(CAPTURED_ID)).toBe(meta);
    expect(changed).toEqual([CAPTURED_ID]);
  });

  it('never asks the engine about an id that cannot be a container\'s', async () => {
    const { engine, directory } = setup();
    for (const id of ['../../info?', '../secrets/s1?x=', 'web-1', 'abc', 'A'.repeat(64), 'a'.repeat(65), `${'a'.repeat(63)}/`]) {
      expect(directory.lookup(id)).toBeUndefined();
      expect(directory.known(id)).toBeUndefined();
    }
    expect(engine.inspects).toEqual([]);
    // The short id and the full one are asked about.
    await directory.lookup('0123456789ab');
    await directory.lookup('f'.repeat(64));
    expect(engine.inspects).toEqual(['0123456789ab', 'f'.repeat(64)]);
  });

  it('sends dockerode no request for an id that cannot be a container\'s', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'clogs-directory-'));
    const requests: string[] = [];
    const server = createServer((req, res) => {
      const path = req.url ?? '';
      if (path === '/_ping') return void res.end('OK');
      if (path.startsWith('/containers/json?')) return void res.setHeader('content-type', 'application/json').end('[]');
      // The events stream stays open until the server closes.
      if (path.startsWith('/events?')) return void res.writeHead(200, { 'content-type': 'application/json' }).flushHeaders();
      requests.push(`${req.method} ${path}`);
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"message":"No such container"}');
    });
    const socketPath = join(dir, 'docker.sock');
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    const { log } = captureLogger();
    const directory = await openContainerDirectory(dockerSchema.parse({ host: `unix://${socketPath}` }), log);
    try {
      expect(directory).toBeDefined();
      for (const id of ['../../info?', '../secrets/s1?x=']) await directory!.lookup(id);
      const id = 'f'.repeat(64);
      await directory!.lookup(id);
      expect(requests).toEqual([`GET /containers/${id}/json`]);
    } finally {
      directory?.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps compose project and service apart', async () => {
    const labels = { 'com.docker.compose.project': 'shop', 'com.docker.compose.service': 'web', app: 'shop' };
    const id = 'c1'.repeat(32);
    const { directory } = setup({ containers: new Map([[id, answer(id, 'shop-web-1', 'nginx:1.27', labels)]]) });
    await directory.lookup(id);
    expect(directory.known(id)).toEqual({ id, name: 'shop-web-1', image: { name: 'nginx:1.27' }, labels, compose: { project: 'shop', service: 'web' } });
  });

  it('keeps at most maxEntries containers, dropping the one used longest ago', async () => {
    const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((x) => x.repeat(64)) as [string, string, string, string];
    const containers = new Map([a, b, c, d].map((id) => [id, answer(id, id[0]!, 'img', {})]));
    const { engine, directory } = setup({ maxEntries: 3, containers });
    for (const id of [a, b, c]) await directory.lookup(id);
    directory.known(a);
    await directory.lookup(d);
    expect(directory.size).toBe(3);
    expect(directory.known(b)).toBeUndefined();
    for (const id of [a, c, d]) expect(directory.known(id)?.name).toBe(id[0]);
    await directory.lookup(b);
    expect(engine.inspects).toEqual([a, b, c, d, b]);
  });

  it('remembers a failed lookup for failureTtlMs and logs it once per container', async () => {
    const gone = 'e'.repeat(64);
    const { engine, directory, logs, advance } = setup({ failureTtlMs: 30_000 });
    await directory.lookup(gone);
    expect(directory.known(gone)).toBeUndefined();
    expect(directory.lookup(gone)).toBeUndefined();
    advance(29_999);
    expect(directory.lookup(gone)).toBeUndefined();
    expect(engine.inspects).toEqual([gone]);
    advance(2);
    await directory.lookup(gone);
    expect(engine.inspects).toEqual([gone, gone]);
    const warnings = logs.filter((l) => l.level === 40);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ container: 'eeeeeeeeeeee', statusCode: 404 });
  });

  it('treats an engine that does not answer as a failed lookup, and asks again once it expires', async () => {
    const id = 'c1'.repeat(32);
    const { engine, directory } = setup({ failureTtlMs: 50, containers: new Map([[id, answer(id, 'web', 'img', { app: 'shop' })]]) });
    engine.down = true;
    await directory.lookup(id);
    expect(directory.known(id)).toBeUndefined();
    engine.down = false;
    await until('the retry after the failure expired', () => directory.known(id) !== undefined, 10_000);
    expect(directory.known(id)?.labels).toEqual({ app: 'shop' });
  });

  it('takes image and labels from the events stream, without an inspect, and keeps them after destroy', async () => {
    const { engine, directory, changed } = setup();
    directory.start();
    await until('the events stream', () => engine.streams.length === 1, 10_000);
    // Split at an arbitrary byte: lines cross chunks.
    engine.streams[0]!.write(captured.subarray(0, 1000));
    await until('the create event', () => directory.known(CAPTURED_ID) !== undefined, 10_000);
    const created = directory.known(CAPTURED_ID)!;
    expect(created).toEqual({ id: CAPTURED_ID, name: 'clogs-cap-ev', image: { name: 'clogs-busybox:latest' }, labels: { 'com.example.team': 'clogs' } });
    engine.streams[0]!.write(captured.subarray(1000));
    await until('the rename event', () => directory.known(CAPTURED_ID)?.name === 'clogs-cap-ev-renamed', 10_000);
    // exitCode (die) and oldName (rename) are not labels.
    expect(directory.known(CAPTURED_ID)!.labels).toEqual({ 'com.example.team': 'clogs' });
    // One object per content: the starts and dies after create changed nothing, the rename did.
    expect(changed).toEqual([CAPTURED_ID, CAPTURED_ID]);
    expect(directory.lookup(CAPTURED_ID)).toBeUndefined();
    expect(engine.inspects).toEqual([]);
    expect(created).not.toBe(directory.known(CAPTURED_ID));
    directory.close();
  });

  it('an event answers a lookup that failed', async () => {
    const { directory } = setup();
    await directory.lookup(CAPTURED_ID);
    expect(directory.known(CAPTURED_ID)).toBeUndefined();
    directory.sighted({ id: CAPTURED_ID, name: 'x', image: 'img', labels: { a: 'b' } });
    expect(directory.known(CAPTURED_ID)).toMatchObject({ name: 'x', image: { name: 'img' }, labels: { a: 'b' } });
  });

  it('lends its object to the Docker input\'s inspect of the same container, when the metadata is the same', async () => {
    const { directory } = setup({ containers: new Map([[CAPTURED_ID, inspected]]) });
    await directory.lookup(CAPTURED_ID);
    const shared = directory.known(CAPTURED_ID)!;
    expect(containerInfo(inspected, undefined, shared).meta).toBe(shared);
    const relabelled = { ...inspected, Config: { ...inspected.Config, Labels: { other: 'x' } } };
    expect(containerInfo(relabelled, undefined, shared).meta).not.toBe(shared);
    expect(containerInfo(relabelled, undefined, shared).meta.labels).toEqual({ other: 'x' });
  });

  it('follows the events stream again after it ends', async () => {
    const { engine, directory } = setup();
    directory.start();
    await until('the events stream', () => engine.streams.length === 1, 10_000);
    engine.streams[0]!.end();
    await until('the reconnect', () => engine.streams.length === 2, 10_000);
    engine.streams[1]!.write(captured.subarray(0, captured.indexOf(0x0a) + 1));
    await until('an event on the new stream', () => directory.known(CAPTURED_ID) !== undefined, 10_000);
    directory.close();
  });
});
