/**
 * Container metadata on forward events, with the real engine: `docker run
 * --rm --log-driver=fluentd` with labels against `clogs collect`, with the
 * Docker follower off and on. Every stored event has the image, the labels
 * and compose project/service, though the driver sends only id and name and
 * the container is gone by the time most of its lines are read; `clogs ps`
 * shows the image and `clogs tail` finds the container by its compose service.
 * Needs the Docker engine: fails, never skips, without it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LogEvent } from '../../src/collector/event.js';
import { removeContainers, uniquePrefix } from '../helpers/docker.js';
import { docker, readFileStore, requireDocker, startCollector, tempDir, TEST_IMAGE, type RunningCollector } from '../helpers/services.js';
import { outputLines, runCli } from '../helpers/tail.js';
import { until } from '../helpers/until.js';

const prefix = uniquePrefix('enrich');
const LINES = 20;

beforeAll(async () => {
  await requireDocker();
});
afterAll(async () => {
  await removeContainers(prefix);
});

/** Runs a `--rm` fluentd-driver container with labels to its end; its lines, in order, are `line 1` … `line N` (stderr: `err`). */
async function runLabelled(port: number, name: string, project: string): Promise<void> {
  await docker(
    'run', '--rm', '--name', name,
    '--log-driver=fluentd', '--log-opt', `fluentd-address=127.0.0.1:${port}`,
    '--label', 'app=shop',
    '--label', 'com.docker.compose.service=web',
    '--label', `com.docker.compose.project=${project}`,
    TEST_IMAGE, 'sh', '-c', `for i in $(seq 1 ${LINES}); do echo "line $i"; done; echo err >&2`,
  );
}

async function storedOf(dir: string, name: string, count: number): Promise<LogEvent[]> {
  let events: LogEvent[] = [];
  await until(`${count} events of ${name}`, () => (events = readFileStore(dir).filter((e) => e.container?.name === name)).length >= count, 30_000);
  return events;
}

describe.each([
  { follower: 'off', args: ['--no-docker'] },
  { follower: 'on', args: [] },
])('forward events get container metadata from the engine (Docker follower $follower)', ({ follower, args }) => {
  let collector: RunningCollector;
  let dataDir: string;

  beforeAll(async () => {
    dataDir = tempDir(`enrich-${follower}`);
    collector = await startCollector([...args, '--forward', '127.0.0.1:0', '--http', '127.0.0.1:0', '--file', dataDir, '--state', tempDir(`enrich-state-${follower}`)]);
  });
  afterAll(async () => {
    await collector?.stop();
  });

  it('every event of a --rm container has its image, labels and compose project/service; ps and tail show them', async () => {
    const name = `${prefix}-${follower}`;
    const project = `${prefix}-p-${follower}`;
    await runLabelled(collector.forwardPort(), name, project);
    const events = await storedOf(dataDir, name, LINES + 1);
    expect(events.filter((e) => e.stream === 'stdout').map((e) => e.message)).toEqual(Array.from({ length: LINES }, (_, i) => `line ${i + 1}`));
    for (const e of events) {
      expect(e.clogs.input).toBe('forward');
      expect(e.container).toMatchObject({
        name,
        image: { name: TEST_IMAGE },
        labels: { app: 'shop', 'com.docker.compose.service': 'web', 'com.docker.compose.project': project },
        compose: { project, service: 'web' },
      });
    }
    expect(collector.lines.some((l) => l.msg === 'forward events get container metadata from the docker engine')).toBe(true);

    const store = ['--file', dataDir];
    const env = { CLOGS_HTTP_ENABLED: 'false' };
    const ps = outputLines((await runCli(['ps', ...store], { env })).stdout);
    expect(ps.find((l) => l.startsWith(`${name} `))?.split(/\s{2,}/)[2]).toBe(TEST_IMAGE);
    const tail = await runCli(['tail', 'web', '-n', '2', '-o', 'json', ...store], { env });
    const tailed = outputLines(tail.stdout).map((l) => JSON.parse(l) as LogEvent);
    expect(tailed).toHaveLength(2);
    for (const e of tailed) expect(e.container?.image?.name).toBe(TEST_IMAGE);
  });
});

describe('forward.enrich: off', () => {
  it('leaves the id and name the driver sent', async () => {
    const dataDir = tempDir('enrich-offdata');
    const collector = await startCollector(['--no-docker', '--forward', '127.0.0.1:0', '--http', '127.0.0.1:0', '--file', dataDir, '--state', tempDir('enrich-offstate')], {
      CLOGS_FORWARD_ENRICH: 'off',
    });
    try {
      const name = `${prefix}-enrich-off`;
      await runLabelled(collector.forwardPort(), name, `${prefix}-p-off`);
      const events = await storedOf(dataDir, name, LINES + 1);
      for (const e of events) expect(Object.keys(e.container ?? {}).sort()).toEqual(['id', 'name']);
    } finally {
      await collector.stop();
    }
  });
});
