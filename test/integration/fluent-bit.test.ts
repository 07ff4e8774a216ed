/**
 * Fluent Bit's out_forward as a real client of `clogs collect` (a spawned
 * process, file sink): 10,000 numbered records go into Fluent Bit's
 * in_forward, and every number must be in the file store exactly once, with
 * acks, with the shared-key handshake, with gzip, and with all three.
 * The binary is test/tools/fluent-bit's (test/helpers/fluent-bit.ts).
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeMsgpack } from '../../src/collector/forward/encode.js';
import { until } from '../helpers/until.js';
import { fluentBitBinary, startFluentBit, type RunningFluentBit } from '../helpers/fluent-bit.js';
import { rawClient } from '../helpers/forward.js';
import { readFileStore, startCollector, tempDir, type RunningCollector } from '../helpers/services.js';

const RECORDS = 10_000;
const PER_REQUEST = 500;
const SHARED_KEY = { shared_key: 'fluent-bit-test-key', self_hostname: 'fluent-bit.test' };


let collector: RunningCollector | undefined;
let fb: RunningFluentBit | undefined;
afterEach(async () => {
  await fb?.stop();
  await collector?.stop();
  fb = undefined;
  collector = undefined;
});

/** Writes records `<variant> 0` … `<variant> 9999` into Fluent Bit's in_forward, in Forward-mode requests. */
async function feed(port: number, variant: string): Promise<void> {
  const c = await rawClient(port);
  const time = Math.floor(Date.now() / 1000);
  const requests: Buffer[] = [];
  for (let start = 0; start < RECORDS; start += PER_REQUEST) {
    const entries = Array.from({ length: PER_REQUEST }, (_, i) => [time, { log: `${variant} ${start + i}` }]);
    requests.push(encodeMsgpack(['fluent-bit', entries]));
  }
  await c.send(Buffer.concat(requests));
  c.socket.end();
}

const variants: Array<[string, Record<string, string | boolean>]> = [
  ['require_ack_response', { require_ack_response: true }],
  ['shared_key', SHARED_KEY],
  ['compress gzip', { compress: 'gzip' }],
  ['shared_key, require_ack_response and compress gzip', { ...SHARED_KEY, require_ack_response: true, compress: 'gzip' }],
];

describe('Fluent Bit out_forward into clogs collect', () => {
  it.each(variants)('%s: every one of 10,000 numbered records exactly once', async (variant, options) => {
    const binary = fluentBitBinary();
    const secured = 'shared_key' in options;
    const dir = tempDir('fluent-bit-store');
    const data = join(dir, 'data');
    collector = await startCollector(
      ['--no-docker', '--forward', '127.0.0.1:0', '--http', '127.0.0.1:0', '--file', data, '--state', join(dir, 'state'), '--log-level', 'debug'],
      // clogs's own hostname differs from Fluent Bit's self_hostname, as the handshake requires.
      secured ? { CLOGS_FORWARD_SHARED_KEY: SHARED_KEY.shared_key, CLOGS_FORWARD_SELF_HOSTNAME: 'clogs.test' } : {},
    );
    fb = await startFluentBit(binary, { name: 'forward', host: '127.0.0.1', port: collector.forwardPort(), ...options });
    await feed(fb.port, variant);

    await until(`${RECORDS} records in the file store`, () => readFileStore(data).length >= RECORDS, 40_000).catch((err: Error) => {
      throw new Error(`${err.message} (${readFileStore(data).length} so far); Fluent Bit printed:\n${fb!.output()}`);
    });
    await fb.stop();
    expect(await collector.stop()).toBe(0);

    const times = new Map<number, number>();
    const strangers: string[] = [];
    for (const e of readFileStore(data)) {
      const m = /^(.*) (\d+)$/.exec(e.message ?? '');
      if (m?.[1] === variant) times.set(Number(m[2]), (times.get(Number(m[2])) ?? 0) + 1);
      else strangers.push(String(e.message));
    }
    const missing = Array.from({ length: RECORDS }, (_, n) => n).filter((n) => !times.has(n));
    const twice = [...times].filter(([, k]) => k > 1).map(([n]) => n);
    expect({ missing, twice, strangers }).toEqual({ missing: [], twice: [], strangers: [] });
    if (secured) {
      expect(collector.lines.some((l) => l.msg === 'forward handshake done' && l.client === 'fluent-bit.test')).toBe(true);
    }
    if ('require_ack_response' in options) expect(fb.output()).toContain('protocol: received ACK');
    expect(collector.lines.filter((l) => l.msg === 'closing forward connection: bad input')).toEqual([]);
  });
});
