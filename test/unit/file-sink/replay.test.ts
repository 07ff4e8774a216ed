import { afterEach, describe, expect, it, vi } from 'vitest';
import { EncodedBatch } from '../../../src/collector/encoded.js';
import { createFileSink } from '../../../src/sinks/file/index.js';
import { captureLog, config, container, event, readStore, removeTempDirs, tempDir } from './helpers.js';

afterEach(removeTempDirs);

const web = container('web');
const line = (message: string, ordinal: number, stream: 'stdout' | 'stderr' = 'stdout') => {
  const e = event(message, { container: web, stream });
  e.clogs.ordinal = ordinal;
  return e;
};

describe('file sink: a batch written again after a crash', () => {
  it('is dropped when it is already at the end of the file, and what follows is kept', async () => {
    const dir = tempDir();
    const first = createFileSink(config(dir), { log: captureLog().log });
    await first.start();
    await first.write([line('a', 0), line('b', 1), line('c', 2), line('e1', 0, 'stderr')]);
    await first.close();

    // The input never saw the write resolve, so it sends the last batch again.
    const { log, lines } = captureLog();
    const second = createFileSink(config(dir), { log });
    await second.start();
    await second.write([line('b', 1), line('c', 2), line('e1', 0, 'stderr'), line('d', 3), line('e2', 1, 'stderr')]);
    await second.close();

    const stored = (await readStore(dir)).get('web')!.map((e) => (e as { message: string }).message);
    expect(stored).toEqual(['a', 'b', 'c', 'e1', 'd', 'e2']);
    expect(lines.some((l) => l.msg === 'dropped a batch already written before a restart' && l.dropped === 3)).toBe(true);
  });

  it('stops dropping once a stream sent something new: a repeated line later is a new line', async () => {
    const dir = tempDir();
    const first = createFileSink(config(dir), { log: captureLog().log });
    await first.start();
    await first.write([line('same', 0)]);
    await first.close();

    const second = createFileSink(config(dir), { log: captureLog().log });
    await second.start();
    await second.write([line('new', 1)]);
    await second.write([line('same', 0)]);
    await second.close();
    const stored = (await readStore(dir)).get('web')!.map((e) => (e as { message: string }).message);
    expect(stored).toEqual(['same', 'new', 'same']);
  });

  it('checks lines an input rendered too', async () => {
    const dir = tempDir();
    const first = createFileSink(config(dir), { log: captureLog().log });
    await first.start();
    await first.write([line('a', 0), line('b', 1)]);
    await first.close();

    const second = createFileSink(config(dir), { log: captureLog().log });
    await second.start();
    const replay = new EncodedBatch();
    replay.add([line('b', 1), line('c', 2)]);
    await second.writeEncoded!(replay);
    const next = new EncodedBatch();
    next.add([line('b', 1)]);
    await second.writeEncoded!(next);
    await second.close();
    const stored = (await readStore(dir)).get('web')!.map((e) => (e as { message: string }).message);
    expect(stored).toEqual(['a', 'b', 'c', 'b']);
  });

  it('passes rendered lines through as they are when the source has no tail to compare with', async () => {
    const dir = tempDir();
    const sink = createFileSink(config(dir), { log: captureLog().log });
    await sink.start();
    const batch = new EncodedBatch();
    batch.add([line('a', 0), line('b', 1)]);
    const events = vi.spyOn(batch, 'events');
    await sink.writeEncoded!(batch);
    await sink.close();
    expect(events).not.toHaveBeenCalled();
    expect((await readStore(dir)).get('web')!.map((e) => (e as { message: string }).message)).toEqual(['a', 'b']);
  });

  it('keeps a different line with the same timestamp and ordinal', async () => {
    const dir = tempDir();
    const first = createFileSink(config(dir), { log: captureLog().log });
    await first.start();
    await first.write([line('before the crash', 0)]);
    await first.close();

    const second = createFileSink(config(dir), { log: captureLog().log });
    await second.start();
    await second.write([line('after the restart', 0)]);
    await second.close();
    const stored = (await readStore(dir)).get('web')!.map((e) => (e as { message: string }).message);
    expect(stored).toEqual(['before the crash', 'after the restart']);
  });

  it('keeps the order of concurrent writes while a tail is read', async () => {
    const dir = tempDir();
    const sink = createFileSink(config(dir), { log: captureLog().log });
    await sink.start();
    await Promise.all(Array.from({ length: 20 }, (_, i) => sink.write([line(`m${i}`, i)])));
    await sink.close();
    const stored = (await readStore(dir)).get('web')!.map((e) => (e as { message: string }).message);
    expect(stored).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`));
  });
});
