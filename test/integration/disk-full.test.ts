/**
 * A full disk under the real `clogs collect` (issue 11): a small tmpfs this
 * test mounts (it runs as root) holds the file sink's directory, or the state
 * directory with the Elasticsearch queue; a filler file takes its free space.
 * Two real clients send at once: Message mode without acks (Docker's fluentd
 * driver with its default options) and PackedForward with acks. While the
 * disk is full the collector stops reading, /readyz is 503 with the reason,
 * and no ack leaves; once the filler is deleted, every record lands exactly
 * once, in order, with no torn line, and both connections stayed open.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statfsSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { LogEvent } from '../../src/collector/event.js';
import { encodeMsgpack } from '../../src/collector/forward/encode.js';
import { allMessages, ES_URL, esClient, requireNode, uniqueDataset, waitForCount } from '../helpers/elasticsearch.js';
import { until } from '../helpers/until.js';
import { mp, rawClient, type RawClient } from '../helpers/forward.js';
import { readFileStore, startCollector, tempDir, type RunningCollector } from '../helpers/services.js';

const MESSAGE_RECORDS = 12_000;
// More than a connection holds in flight (8 MiB of rendered lines and waiting
// requests), so a blocked sink must stop its reading.
const PACKED_REQUESTS = 180;
const PER_REQUEST = 200;
const PACKED_RECORDS = PACKED_REQUESTS * PER_REQUEST;
/** Free space the filler leaves: the sinks fill it, part-way through a line, then hit ENOSPC. */
const LEAVE_FREE = 256 * 1024;
const T = 1_795_000_000;
const PAD = 'x'.repeat(80);

const mounts: string[] = [];
const running: RunningCollector[] = [];
const clients: RawClient[] = [];

function mountTmpfs(size: string): string {
  const dir = tempDir('disk-full');
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir]);
  mounts.push(dir);
  return dir;
}

/** Takes all of `dir`'s file system but `leave` bytes; returns the filler's path. */
function fill(dir: string, leave: number): string {
  const path = join(dir, 'filler');
  const st = statfsSync(dir);
  let left = st.bavail * st.bsize - leave;
  const block = Buffer.alloc(1024 * 1024);
  const fd = openSync(path, 'w');
  try {
    while (left > 0) left -= writeSync(fd, block, 0, Math.min(block.length, left));
  } finally {
    closeSync(fd);
  }
  return path;
}

/** A record as Docker's fluentd driver fills it, for container `name`. */
function record(name: string, n: number): Buffer {
  return mp.strMap({ container_id: name.padEnd(64, '0'), container_name: `/${name}`, source: 'stdout', log: `${name} ${n} ${PAD}` });
}

const time = (n: number): Buffer => mp.eventTime(T + Math.floor(n / 1000), (n % 1000) * 1000 + 7);

/** Message mode `[tag, time, record]`, no chunk: nothing is acked, as Docker's driver sends by default. */
function messageRequests(name: string): Buffer[] {
  return Array.from({ length: MESSAGE_RECORDS }, (_, n) => mp.arr(mp.str(name), time(n), record(name, n)));
}

/** PackedForward requests of PER_REQUEST records, each with a chunk to ack. */
function packedRequests(name: string): { requests: Buffer[]; chunks: string[] } {
  const chunks = Array.from({ length: PACKED_REQUESTS }, (_, r) => `${name}-chunk-${r}`);
  const requests = chunks.map((chunk, r) => {
    const entries = Array.from({ length: PER_REQUEST }, (_, k) => mp.arr(time(r * PER_REQUEST + k), record(name, r * PER_REQUEST + k)));
    return mp.arr(mp.str(name), mp.bin(Buffer.concat(entries)), encodeMsgpack({ chunk, size: PER_REQUEST }));
  });
  return { requests, chunks };
}

/** Writes every request as fast as the socket takes them (it stops taking them when clogs stops reading). */
function sendAll(client: RawClient, requests: readonly Buffer[]): void {
  let i = 0;
  const pump = (): void => {
    while (i < requests.length) if (!client.socket.write(requests[i++]!)) return void client.socket.once('drain', pump);
  };
  pump();
}

async function readyz(c: RunningCollector): Promise<{ status: number; body: { ready: boolean; not_ready: string[] } }> {
  const res = await fetch(`http://${c.ready.http}/readyz`);
  return { status: res.status, body: (await res.json()) as { ready: boolean; not_ready: string[] } };
}

/** The value of one series of /metrics, 0 when absent. */
async function metric(c: RunningCollector, name: string, labels: Record<string, string>): Promise<number> {
  const text = await (await fetch(`http://${c.ready.http}/metrics`)).text();
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const labelText = line.slice(name.length + 1, line.indexOf('}'));
    if (want.every((l) => labelText.split(',').includes(l))) return Number(line.slice(line.indexOf('}') + 2));
  }
  return 0;
}

/** Lines of every .ndjson file under `dir`, counted without parsing (a line may be half-written while this reads). */
function countLines(dir: string): number {
  let n = 0;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) n += countLines(p);
    else if (name.endsWith('.ndjson')) for (const b of readFileSync(p)) if (b === 0x0a) n++;
  }
  return n;
}

const expected = (name: string, count: number): string[] => Array.from({ length: count }, (_, n) => `${name} ${n} ${PAD}`);

/**
 * Fills the disk, runs both clients into `c`, checks the blocked state, frees
 * the disk and waits until `landed(n)` says all n records are stored. `sink` and
 * `blockedPath` name what /readyz must report.
 */
async function scenario(c: RunningCollector, disk: string, sink: string, blockedPath: string, landed: (n: number) => Promise<void>): Promise<void> {
  const filler = fill(disk, LEAVE_FREE);
  const plain = await rawClient(c.forwardPort());
  const acked = await rawClient(c.forwardPort());
  clients.push(plain, acked);
  const message = messageRequests('noack');
  const packed = packedRequests('acked');
  const wireBytes = [...message, ...packed.requests].reduce((n, b) => n + b.length, 0);
  sendAll(plain, message);
  sendAll(acked, packed.requests);

  // Full: the sink waits and says why, once.
  await until('the disk-full warning', () => c.lines.some((l) => l.code === 'ENOSPC' && l.level === 40), 60_000);
  const escaped = blockedPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const retriesAtBlock = await metric(c, 'clogs_sink_write_retries_total', { sink, reason: 'ENOSPC' });
  const blocked = await readyz(c);
  expect(blocked.status).toBe(503);
  expect(blocked.body.not_ready).toContainEqual(expect.stringMatching(new RegExp(`^sink ${sink}: disk full: ENOSPC on ${escaped}`)));
  expect(await metric(c, 'clogs_sink_blocked', { sink, reason: 'ENOSPC' })).toBe(1);
  // A few retries later the input has still not read everything: it stopped reading.
  await until('four more retries', async () => (await metric(c, 'clogs_sink_write_retries_total', { sink, reason: 'ENOSPC' })) >= retriesAtBlock + 4, 60_000);
  expect(await metric(c, 'clogs_input_bytes_total', { input: 'forward' })).toBeLessThan(wireBytes);
  expect(acked.replies().length).toBeLessThan(PACKED_REQUESTS);
  expect((await readyz(c)).status).toBe(503);

  // Space returns: everything goes on.
  rmSync(filler);
  const replies = await acked.waitReplies(PACKED_REQUESTS, 120_000);
  expect(replies).toEqual(packed.chunks.map((chunk) => ({ ack: chunk })));
  await landed(MESSAGE_RECORDS + PACKED_RECORDS);
  // Nobody was disconnected.
  expect(plain.socket.destroyed).toBe(false);
  expect(acked.socket.destroyed).toBe(false);
  await until('the recovery line', () => c.lines.some((l) => l.msg === 'the disk takes writes again; what waited is written'), 30_000);
  expect(c.lines.filter((l) => l.code === 'ENOSPC' && l.level === 40)).toHaveLength(1);
  expect(c.lines.filter((l) => l.msg === 'the disk takes writes again; what waited is written')).toHaveLength(1);
  expect(c.lines.filter((l) => (l.level as number) >= 50)).toEqual([]);
  expect(await metric(c, 'clogs_sink_blocked', { sink, reason: 'ENOSPC' })).toBe(0);
  plain.socket.end();
  acked.socket.end();
}

function expectExactlyOnceInOrder(messages: readonly string[]): void {
  for (const [name, count] of [
    ['noack', MESSAGE_RECORDS],
    ['acked', PACKED_RECORDS],
  ] as const) {
    const got = messages.filter((m) => m.startsWith(`${name} `));
    expect(got.length, name).toBe(count);
    expect(got, name).toEqual(expected(name, count));
  }
  expect(messages).toHaveLength(MESSAGE_RECORDS + PACKED_RECORDS);
}

afterAll(async () => {
  for (const cl of clients) cl.socket.destroy();
  await Promise.allSettled(running.map((c) => c.stop('SIGKILL')));
  for (const dir of mounts) {
    execFileSync('umount', [dir]);
    rmSync(dir, { recursive: true, force: true });
  }
});

describe('a full disk loses nothing that was read', () => {
  it('file sink: both clients blocked while full, every record once and whole after space returns', async () => {
    const disk = mountTmpfs('64m');
    const files = join(disk, 'files');
    mkdirSync(files);
    const c = await startCollector(['--no-docker', '--forward', '127.0.0.1:0', '--http', '127.0.0.1:0', '--file', files, '--state', tempDir('disk-full-state')], {
      CLOGS_LOG_LEVEL: 'info',
    });
    running.push(c);
    await scenario(c, disk, 'file', files, (n) => until('every record in the files', () => countLines(files) >= n, 120_000));
    expect((await readyz(c)).status).toBe(200);
    expect(await c.stop()).toBe(0);
    // Every line of every file parses: no torn line.
    const events: LogEvent[] = readFileStore(files);
    expectExactlyOnceInOrder(events.map((e) => e.message));
  }, 300_000);

  it('Elasticsearch queue: both clients blocked while full, every record in Elasticsearch once after space returns', async () => {
    await requireNode(ES_URL);
    const client = esClient();
    try {
      const disk = mountTmpfs('128m');
      const state = join(disk, 'state');
      mkdirSync(state);
      const dataset = uniqueDataset('diskfull');
      const stream = `logs-${dataset}-default`;
      const c = await startCollector(
        ['--no-docker', '--forward', '127.0.0.1:0', '--http', '127.0.0.1:0', '--es', ES_URL, '--state', state, '--file', tempDir('disk-full-files')],
        { CLOGS_SINKS_ELASTICSEARCH_DATA_STREAM_DATASET: dataset, CLOGS_SINKS_ELASTICSEARCH_FLUSH_INTERVAL: '200ms', CLOGS_LOG_LEVEL: 'info' },
      );
      running.push(c);
      await scenario(c, disk, 'elasticsearch', join(state, 'elasticsearch', 'queue'), async (n) => void (await waitForCount(client, stream, n, 120_000)));
      expect((await readyz(c)).status).toBe(200);
      expect(await c.stop()).toBe(0);
      const messages = await allMessages(client, stream);
      // Elasticsearch's order is not the arrival order: compare as sets, and count.
      expectExactlyOnceInOrder(
        [...messages].sort((a, b) => {
          const [na, ia] = a.split(' ');
          const [nb, ib] = b.split(' ');
          return na!.localeCompare(nb!) || Number(ia) - Number(ib);
        }),
      );
    } finally {
      await client.close();
    }
  }, 300_000);
});
