/**
 * Docker's real fluentd log driver against the forward input in process (the
 * end-to-end tests through `clogs collect` are in docker-fluentd.test.ts).
 * Needs the Docker engine: fails, never skips, without it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { docker, ensureBusyboxImage, removeContainers, requireDockerEngine, runContainer, uniquePrefix } from '../helpers/docker.js';
import { startTestInput, type TestInput } from '../helpers/forward.js';
import { until } from '../helpers/until.js';

const prefix = uniquePrefix('fwd');
let running: TestInput;

beforeAll(async () => {
  await requireDockerEngine();
  ensureBusyboxImage();
  running = await startTestInput({ partial_timeout: '1s' });
});
afterAll(async () => {
  await removeContainers(prefix);
  await running?.stop();
});

const eventsOf = (id: string) => running.sink.events.filter((e) => e.container?.id === id);

describe('Docker fluentd driver → forward input', () => {
  // stdout only: with request-ack, Docker's two copiers (stdout, stderr) race
  // for each other's acks (see connection.ts), which can stall a test 10 s.
  it('request-ack, sub-second time, labels, a 40,000-byte line and a tail with no newline: each line once, in order', async () => {
    const name = `${prefix}-ack`;
    const script = [
      'echo "line 1"',
      'busybox seq -s , 1 20000 | busybox head -c 40000; echo',
      'echo "{\\"level\\":\\"warn\\",\\"msg\\":\\"json line\\"}"',
      'printf "no newline"',
    ].join('; ');
    const id = await runContainer(name, script, {
      args: [
        '--log-driver=fluentd',
        '--log-opt', `fluentd-address=127.0.0.1:${running.port}`,
        '--log-opt', 'fluentd-request-ack=true',
        '--log-opt', 'fluentd-sub-second-precision=true',
        '--label', 'com.example.team=clogs',
        '--log-opt', 'labels=com.example.team',
      ],
    });
    await docker('wait', name);
    await until('four events', () => eventsOf(id).length === 4, 15_000);
    const events = eventsOf(id);
    const long = Array.from({ length: 20000 }, (_, i) => i + 1).join(',').slice(0, 40000);
    expect(events.map((e) => e.message)).toEqual(['line 1', long, 'json line', 'no newline']);
    expect(events[2]!.log?.level).toBe('warn');
    for (const e of events) {
      expect(e.stream).toBe('stdout');
      expect(e.container).toEqual({ id, name });
      expect(e.attrs?.['com.example.team']).toBe('clogs');
      expect(e.clogs.tag).toBe(id.slice(0, 12));
      expect(e['@timestamp']).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
    }
    expect(events.some((e) => !e['@timestamp'].endsWith('.000000000Z'))).toBe(true);
  });

  it('stdout and stderr, UTF-8 and invalid bytes, without acks', async () => {
    const name = `${prefix}-streams`;
    const id = await runContainer(name, 'echo out; printf "h\\303\\251llo \\342\\234\\223\\n" >&2; printf "bad \\377\\n"; echo err >&2', {
      args: ['--log-driver=fluentd', '--log-opt', `fluentd-address=127.0.0.1:${running.port}`],
    });
    await docker('wait', name);
    await until('four events', () => eventsOf(id).length === 4, 15_000);
    const byStream = (s: string) => eventsOf(id).filter((e) => e.stream === s).map((e) => e.message);
    expect(byStream('stdout')).toEqual(['out', 'bad \ufffd']);
    expect(byStream('stderr')).toEqual(['héllo ✓', 'err']);
  });
});
