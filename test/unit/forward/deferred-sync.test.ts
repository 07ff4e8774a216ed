/**
 * Requests no ack waits on are written deferred and synced within a second
 * (forward/deferred-sync.ts): through the real file sink, their lines are
 * in the file at once, with no fdatasync and no O_DSYNC write of their own,
 * and synced by the timer or at the latest when the input stops; a request
 * with a chunk is still synced before its ack.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeMsgpack } from '../../../src/collector/forward/encode.js';
import { fileSinkSchema } from '../../../src/config/schema.js';
import { createFileSink } from '../../../src/sinks/file/index.js';
import { nodeFileIo, type FileIo } from '../../../src/sinks/file/io.js';
import type { Sink } from '../../../src/sinks/sink.js';
import { captureLogger, dockerRecord, mp, rawClient, startTestInput, type TestInput } from '../../helpers/forward.js';
import { until } from '../../helpers/until.js';

const T = 1795341190;
const dirs: string[] = [];
let running: TestInput<Sink> | undefined;

afterEach(async () => {
  await running?.stop();
  await running?.sink.close();
  running = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** The forward input writing to a real file sink whose fdatasyncs and O_DSYNC opens are counted. */
async function start() {
  const dir = mkdtempSync(join(tmpdir(), 'clogs-deferred-'));
  dirs.push(dir);
  const counts = { syncs: 0, syncedOpens: 0 };
  const io: FileIo = {
    ...nodeFileIo,
    openAppend: (path, syncWrites) => {
      if (syncWrites) counts.syncedOpens++;
      return nodeFileIo.openAppend(path, syncWrites);
    },
    sync: (fd) => {
      counts.syncs++;
      return nodeFileIo.sync(fd);
    },
    syncPath: (path) => {
      counts.syncs++;
      return nodeFileIo.syncPath(path);
    },
  };
  const sink = createFileSink(fileSinkSchema.parse({ dir }), { log: captureLogger().log, io });
  await sink.start();
  const t = await startTestInput({}, { sink });
  running = t;
  const lines = (): string[] =>
    readdirSync(dir, { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ndjson'))
      .flatMap((f) => readFileSync(join(dir, f), 'utf8').split('\n').slice(0, -1));
  return { t, counts, lines };
}

const message = (log: string, option?: Record<string, string>): Buffer =>
  mp.arr(mp.str('docker.web'), mp.eventTime(T, 0), dockerRecord(log), ...(option ? [encodeMsgpack(option)] : []));

describe('forward requests without acks', () => {
  it('are in the file at once and synced within a second, not by a write of their own', async () => {
    const { t, counts, lines } = await start();
    const c = await rawClient(t.port);
    await c.send(message('no ack here'));
    await until('the line in the file', () => lines().length === 1);
    expect(counts).toEqual({ syncs: 0, syncedOpens: 0 });
    await until('the deferred sync', () => counts.syncs === 1, 5000);
    c.socket.destroy();
  });

  it('are synced when the input stops, before the timer', async () => {
    const { t, counts, lines } = await start();
    const c = await rawClient(t.port);
    await c.send(message('synced at stop'));
    await until('the line in the file', () => lines().length === 1);
    c.socket.destroy();
    await t.stop();
    running = undefined;
    expect(counts.syncs).toBe(1);
    await t.sink.close();
  });

  it('leave a request with a chunk synced before its ack', async () => {
    const { t, counts, lines } = await start();
    const c = await rawClient(t.port);
    await c.send(message('first, no ack'));
    await until('the line in the file', () => lines().length === 1);
    await c.send(message('acked', { chunk: 'c-1' }));
    expect(await c.waitReplies(1)).toEqual([{ ack: 'c-1' }]);
    // The file was opened by the deferred write, without O_DSYNC: the acked write is followed by an fdatasync.
    expect(counts.syncs).toBeGreaterThanOrEqual(1);
    expect(lines().map((l) => (JSON.parse(l) as { message: string }).message)).toEqual(['first, no ack', 'acked']);
    c.socket.destroy();
  });
});
