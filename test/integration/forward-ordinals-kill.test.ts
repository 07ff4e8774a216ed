/**
 * kill -9 and identical lines in one whole second, as Docker's fluentd
 * driver sends them (whole-second times unless
 * fluentd-sub-second-precision is set): a line's ordinal tells them apart,
 * and is part of its identity (the file sink's replay guard, the
 * Elasticsearch `_id`). The real collector writes two such lines, acked, is
 * killed with SIGKILL and started again on the same state and file store;
 * a third identical line of that second is a line of its own, not a replay
 * of the first; a request whose ack the client did not see, sent again, is
 * the line stored before the crash, not a second one.
 */
import { rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeMsgpack } from '../../src/collector/forward/encode.js';
import { dockerRecord, mp, rawClient } from '../helpers/forward.js';
import { readFileStore, startCollector, tempDir, type RunningCollector } from '../helpers/services.js';

const T = 1795341190;
const dirs: string[] = [];

afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Sends each record in Message mode with a chunk of its own (the same bytes for the same prefix and place) and waits for every ack. */
async function sendAcked(collector: RunningCollector, records: Buffer[], prefix: string): Promise<void> {
  const c = await rawClient(collector.forwardPort());
  for (const [i, record] of records.entries()) await c.send(mp.arr(mp.str('docker.web'), mp.int32(T), record, encodeMsgpack({ chunk: `${prefix}-${i}` })));
  expect(await c.waitReplies(records.length)).toEqual(records.map((_, i) => ({ ack: `${prefix}-${i}` })));
  c.socket.end();
  await c.closed;
}

/** A file store and state directory kept across restarts, and how to start the collector (without Docker) on them. */
function collectorOn(name: string): { files: string; start: () => Promise<RunningCollector> } {
  const files = tempDir(`${name}-files`);
  const state = tempDir(`${name}-state`);
  dirs.push(files, state);
  return { files, start: () => startCollector(['--no-docker', '--forward', '127.0.0.1:0', '--http', '127.0.0.1:0', '--file', files, '--state', state]) };
}

const storedLines = (files: string) => readFileStore(files).map((e) => [e.message, (e.clogs as { ordinal: number }).ordinal]);

describe('kill -9 between identical lines of one second', () => {
  it('stores the line sent after the restart as a line of its own', async () => {
    const { files, start } = collectorOn('ordkill');

    const first = await start();
    await sendAcked(first, [dockerRecord('tick'), dockerRecord('tick')], 'before');
    await first.stop('SIGKILL');

    const second = await start();
    await sendAcked(second, [dockerRecord('tick')], 'after');
    expect(await second.stop()).toBe(0);

    expect(storedLines(files)).toEqual([
      ['tick', 0],
      ['tick', 1],
      ['tick', 2],
    ]);
  }, 120_000);

  it('takes a request sent again after the restart for the one stored before, and counts on after it', async () => {
    const { files, start } = collectorOn('ordkill-resend');
    const first = await start();
    await sendAcked(first, [dockerRecord('tick'), dockerRecord('tick')], 'before');
    await sendAcked(first, [dockerRecord('tock')], 'lost-ack');
    await first.stop('SIGKILL');

    const second = await start();
    // The client never saw the ack of "tock": it sends that request again, byte for byte.
    await sendAcked(second, [dockerRecord('tock')], 'lost-ack');
    await sendAcked(second, [dockerRecord('tick')], 'after');
    expect(await second.stop()).toBe(0);

    expect(storedLines(files)).toEqual([
      ['tick', 0],
      ['tick', 1],
      ['tock', 2],
      ['tick', 3],
    ]);
  }, 120_000);
});
