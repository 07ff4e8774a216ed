/**
 * The first complete path: Docker's real fluentd log driver → `clogs collect`
 * → NDJSON files. Every line a container writes appears exactly once, in order,
 * with its metadata.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { docker, readFileStore, requireDocker, startCollector, tempDir, TEST_IMAGE, type RunningCollector } from '../helpers/services.js';
import type { LogEvent } from '../../src/collector/event.js';

let collector: RunningCollector;
let dataDir: string;
const names: string[] = [];
const prefix = `clogs-it-fluentd-${process.pid}`;

beforeAll(async () => {
  await requireDocker();
  dataDir = tempDir('fluentd-data');
  collector = await startCollector(['--no-docker', '--forward', '127.0.0.1:0', '--http', '127.0.0.1:0', '--file', dataDir, '--state', tempDir('fluentd-state')]);
});

afterAll(async () => {
  if (names.length > 0) await docker('rm', '-f', ...names).catch(() => undefined);
  await collector?.stop();
});

/** Runs a container with the fluentd driver pointed at clogs (`to`, else the shared collector) and waits for it to exit. */
async function runContainer(name: string, script: string, opts: string[] = [], to = collector): Promise<string> {
  const full = `${prefix}-${name}`;
  names.push(full);
  const id = (
    await docker('run', '-d', '--name', full, '--log-driver=fluentd', '--log-opt', `fluentd-address=127.0.0.1:${to.forwardPort()}`, ...opts, TEST_IMAGE, 'sh', '-c', script)
  ).trim();
  await docker('wait', id);
  return id;
}

async function eventsOf(id: string, count: number, dir = dataDir): Promise<LogEvent[]> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const events = readFileStore(dir).filter((e) => e.container?.id === id);
    if (events.length >= count || Date.now() > deadline) return events.sort((a, b) => a.clogs.seq - b.clogs.seq);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('Docker fluentd driver → clogs → files', () => {
  it('delivers every line once, in order, with container metadata (defaults)', async () => {
    const id = await runContainer('defaults', 'for i in $(seq 1 200); do echo "line $i"; done; echo "to stderr" >&2; echo ""; printf "h\\303\\251llo \\342\\234\\223\\n"');
    const events = await eventsOf(id, 203);
    const stdout = events.filter((e) => e.stream === 'stdout').map((e) => e.message);
    expect(stdout).toEqual([...Array.from({ length: 200 }, (_, i) => `line ${i + 1}`), '', 'héllo ✓']);
    expect(events.filter((e) => e.stream === 'stderr').map((e) => e.message)).toEqual(['to stderr']);
    const e = events[0]!;
    expect(e.container).toMatchObject({ id, name: `${prefix}-defaults` });
    expect(e.clogs).toMatchObject({ input: 'forward', tag: id.slice(0, 12) });
    expect(e['@timestamp']).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000000000Z$/);
    // Whole-second times: lines of one second are told apart by their ordinal.
    const keys = new Set(events.map((x) => `${x['@timestamp']}|${x.stream}|${x.clogs.ordinal}`));
    expect(keys.size).toBe(events.length);
  });

  it('keeps nanoseconds with fluentd-sub-second-precision', async () => {
    const id = await runContainer('subsecond', 'echo one; sleep 0.1; echo two >&2; sleep 0.1; echo three', ['--log-opt', 'fluentd-sub-second-precision=true']);
    const events = await eventsOf(id, 3);
    expect(events.map((e) => e.message)).toEqual(['one', 'two', 'three']);
    expect(events.some((e) => !e['@timestamp'].endsWith('000000000Z'))).toBe(true);
    const times = events.map((e) => e['@timestamp']);
    expect([...times].sort()).toEqual(times);
  });

  it('answers request-ack so the driver keeps sending', async () => {
    const id = await runContainer('ack', 'for i in $(seq 1 50); do echo "ack $i"; done', ['--log-opt', 'fluentd-request-ack=true']);
    const events = await eventsOf(id, 50);
    expect(events.map((e) => e.message)).toEqual(Array.from({ length: 50 }, (_, i) => `ack ${i + 1}`));
  });

  it('keeps labels and env sent by the driver under attrs', async () => {
    const id = await runContainer('labels', 'echo labelled', [
      '--label', 'com.example.team=clogs', '--log-opt', 'labels=com.example.team',
      '-e', 'APP_ENV=test', '--log-opt', 'env=APP_ENV',
      '--log-opt', 'tag=docker.{{.Name}}',
    ]);
    const [e] = await eventsOf(id, 1);
    expect(e!.message).toBe('labelled');
    expect(e!.attrs).toMatchObject({ 'com.example.team': 'clogs', APP_ENV: 'test' });
    expect(e!.clogs.tag).toBe(`docker.${prefix}-labels`);
  });

  it('puts a 40,000-character line back together, and a line of exactly 16384', async () => {
    const id = await runContainer('long', 'busybox seq -s , 1 20000 | busybox head -c 40000; echo; busybox seq -s , 1 20000 | busybox head -c 16384; echo; echo after');
    const events = await eventsOf(id, 3);
    expect(events.map((e) => e.message.length)).toEqual([40000, 16384, 5]);
    const expected = Array.from({ length: 20000 }, (_, i) => i + 1).join(',');
    expect(events[0]!.message).toBe(expected.slice(0, 40000));
    expect(events[1]!.message).toBe(expected.slice(0, 16384));
  });

  it('writes a line longer than max_line_size in parts as the driver sends its pieces, each acked', async () => {
    const dir = tempDir('fluentd-parts');
    const small = await startCollector(['--no-docker', '--forward', '127.0.0.1:0', '--http', '127.0.0.1:0', '--file', dir, '--state', tempDir('fluentd-parts-state')], {
      CLOGS_MAX_LINE_SIZE: '32KiB',
    });
    try {
      const id = await runContainer('parts', 'busybox seq -s , 1 30000 | busybox head -c 100000; echo; echo after', ['--log-opt', 'fluentd-request-ack=true'], small);
      const events = await eventsOf(id, 5, dir);
      // Docker's pieces are 16 KiB: a part is written every two of them.
      expect(events.map((e) => e.message.length)).toEqual([32768, 32768, 32768, 1696, 5]);
      expect(events.slice(0, 4).map((e) => e.message).join('')).toBe(Array.from({ length: 30000 }, (_, i) => i + 1).join(',').slice(0, 100000));
      expect(events.slice(0, 4).map((e) => e.clogs.ordinal)).toEqual([0, 1, 2, 3]);
    } finally {
      await small.stop();
    }
  });

  it('writes output that ends without a newline', async () => {
    const id = await runContainer('nonl', 'echo complete; printf "no newline"');
    const events = await eventsOf(id, 2);
    expect(events.map((e) => e.message)).toEqual(['complete', 'no newline']);
  });

  it('strips the carriage return of a TTY container', async () => {
    const id = await runContainer('tty', 'echo "tty line"; printf "tty\\ttab\\n"', ['-t']);
    const events = await eventsOf(id, 2);
    expect(events.map((e) => e.message)).toEqual(['tty line', 'tty\ttab']);
  });
});
