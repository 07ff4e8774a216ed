/**
 * A failed fdatasync of a Docker-input file, run by the forward input's
 * deferred sync (a background sync, which only logs), stays for the Docker
 * Shipper's own sync: it re-reads the container and does not move its
 * checkpoint past lines the failed sync may have dropped.
 */
import { describe, expect, it } from 'vitest';
import { EncodedBatch } from '../../../src/collector/encoded.js';
import { Pipeline } from '../../../src/collector/pipeline.js';
import type { CheckpointStore } from '../../../src/collector/docker/checkpoints.js';
import { Shipper } from '../../../src/collector/docker/shipper.js';
import { DeferredSync } from '../../../src/collector/forward/deferred-sync.js';
import { createFileSink } from '../../../src/sinks/file/index.js';
import { nodeFileIo, type FileIo } from '../../../src/sinks/file/io.js';
import { captureLog, config, container, event, tempDir } from '../file-sink/helpers.js';

describe('a sync failure met by the forward input\'s deferred sync', () => {
  it('reaches the Docker input, whose checkpoint stays before the lines', async () => {
    const dir = tempDir();
    const { log, lines } = captureLog();
    let failNextSync = false;
    const paths = new Map<number, string>();
    const io: FileIo = {
      ...nodeFileIo,
      openAppend: async (path, syncWrites) => {
        const fd = await nodeFileIo.openAppend(path, syncWrites);
        paths.set(fd, path);
        return fd;
      },
      sync: async (fd) => {
        if (failNextSync && paths.get(fd)!.includes('web')) {
          failNextSync = false;
          throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
        }
        return nodeFileIo.sync(fd);
      },
      // The background sync's, through a descriptor of its own.
      syncPath: async (path) => {
        if (failNextSync && path.includes('web')) {
          failNextSync = false;
          throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
        }
        return nodeFileIo.syncPath(path);
      },
    };
    const sink = createFileSink(config(dir), { log, io });
    await sink.start();
    const pipeline = new Pipeline([sink]);

    const checkpoints: string[][] = [];
    const lost: string[][] = [];
    const store = {
      hasStaged: () => false,
      prepare: async (updates: ReadonlyMap<string, unknown>) => ({
        commit: async () => void checkpoints.push([...updates.keys()]),
        discard: () => undefined,
      }),
    } as unknown as CheckpointStore;
    // Docker input: durable point 300 ms after a write.
    const shipper = new Shipper({ pipeline, store, log, maxEvents: 100, maxBytes: 1 << 20, heartbeatMs: 60_000, minCycleMs: 10, durableMs: 300, onLost: (ids) => void lost.push([...ids]) });
    // Forward input's deferred sync, 50 ms (1 s in production; only the order matters).
    const syncs = new DeferredSync(pipeline, { sync: async () => undefined }, log, 50);

    // 1. the Docker input writes a line (deferred) for container "web".
    shipper.add('web', 'web', EncodedBatch.of([event('docker line', { container: container('web') })]), {});
    await new Promise((r) => setTimeout(r, 30));
    // 2. a forward request without a chunk is written deferred (another container) and arms the timer.
    await pipeline.write(EncodedBatch.of([event('forward line', { container: container('fwd') })]), { deferred: true });
    syncs.written();
    // 3. the next fdatasync of web's file fails (EIO): the forward timer's sync runs it.
    failNextSync = true;
    await new Promise((r) => setTimeout(r, 100));
    // 4. the Docker durable point comes.
    await shipper.drained();
    shipper.close();
    await sink.close();

    expect(lines.some((l) => l.msg === 'could not sync lines of forward requests without acks')).toBe(true);
    expect(lost).toEqual([['web']]);
    expect(checkpoints).toEqual([]);
  });
});
