/**
 * Stack traces through the real collector process, from real containers,
 * through both inputs: the Docker input (json-file, read through the Engine
 * API) and Docker's fluentd log driver (forward input). Each trace is one
 * event with the plain lines around it separate; two containers tracing at
 * once never mix; a trace at the very end of a container's output arrives;
 * and after kill -9 of the collector in the middle of a trace the joined
 * event is stored exactly once.
 */
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LogEvent } from '../../src/collector/event.js';
import { docker, ensureBusyboxImage, removeContainers, requireDockerEngine, uniquePrefix, BUSYBOX_IMAGE } from '../helpers/docker.js';
import { until } from '../helpers/until.js';
import { freePort } from '../helpers/elasticsearch.js';
import { readFileStore, startCollector, tempDir, type RunningCollector } from '../helpers/services.js';
import { trace } from '../unit/multiline/helpers.js';

const prefix = uniquePrefix('ml');
const dirs: string[] = [];
const JAVA = trace('java-caused-by.txt');
const PY = trace('python-chained.txt');
const NODE = trace('node-props.txt');
const GO = trace('go-goroutines.txt');

beforeAll(async () => {
  await requireDockerEngine();
  ensureBusyboxImage();
});

afterAll(async () => {
  await removeContainers(prefix);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface Run {
  files: string;
  state: string;
  config: string;
}

function newRun(name: string, extraConfig = ''): Run {
  const files = tempDir(`ml-${name}-files`);
  const state = tempDir(`ml-${name}-state`);
  const etc = tempDir(`ml-${name}-config`);
  dirs.push(files, state, etc);
  const config = join(etc, 'clogs.yaml');
  // The Docker input follows the json-file containers only; fluentd-driver ones come through forward.
  writeFileSync(config, `docker:\n  include:\n    names: ["${prefix}-dk-*"]\n${extraConfig}`);
  return { files, state, config };
}

const collector = (run: Run, forwardPort = 0): Promise<RunningCollector> =>
  startCollector(['--config', run.config, '--forward', `127.0.0.1:${forwardPort}`, '--http', '127.0.0.1:0', '--file', run.files, '--state', run.state]);

/** Shell that writes `lines` to a stream with a quoted heredoc: tabs, quotes and `$` stay as they are. */
const heredoc = (lines: string[], stream: 'stdout' | 'stderr'): string => `cat ${stream === 'stderr' ? '>&2 ' : ''}<<'CLOGS_EOF'\n${lines.join('\n')}\nCLOGS_EOF\n`;

type Input = 'docker' | 'fluentd';

async function run(c: RunningCollector, input: Input, name: string, script: string, args: string[] = []): Promise<string> {
  const driver =
    input === 'fluentd'
      ? ['--log-driver=fluentd', '--log-opt', `fluentd-address=127.0.0.1:${c.forwardPort()}`, '--log-opt', 'fluentd-async=true', '--log-opt', 'fluentd-sub-second-precision=true']
      : [];
  return docker('run', '-d', '--name', `${prefix}-${input === 'docker' ? 'dk' : 'fd'}-${name}`, ...driver, ...args, BUSYBOX_IMAGE, 'sh', '-c', script);
}

function eventsOf(files: string, id: string): LogEvent[] {
  return readFileStore(files)
    .filter((e) => e.container?.id === id)
    .sort((a, b) => a.clogs.seq - b.clogs.seq);
}

const messagesOf = (events: LogEvent[], stream: string) => events.filter((e) => e.stream === stream).map((e) => e.message);

describe.each<Input>(['docker', 'fluentd'])('multiline through the %s input', (input) => {
  let r: Run;
  let c: RunningCollector;

  beforeAll(async () => {
    r = newRun(input);
    c = await collector(r);
  });

  afterAll(async () => {
    await c?.stop();
  });

  it('joins a Java trace on stderr and a Python and a Node trace on stdout, the plain lines around them apart', async () => {
    const script =
      'echo "plain before"\n' +
      heredoc(JAVA, 'stderr') +
      'echo "stderr plain" >&2\n' +
      heredoc(PY, 'stdout') +
      'echo "plain between"\n' +
      heredoc(NODE, 'stdout') +
      'echo "plain after"\nsleep 1\necho "last line"\n';
    const id = await run(c, input, 'three', script);
    await until('the last line stored', () => eventsOf(r.files, id).some((e) => e.message === 'last line'), 60_000);
    const events = eventsOf(r.files, id);
    expect(messagesOf(events, 'stderr')).toEqual([JAVA.join('\n'), 'stderr plain']);
    expect(messagesOf(events, 'stdout')).toEqual(['plain before', PY.join('\n'), 'plain between', NODE.join('\n'), 'plain after', 'last line']);
  });

  it('keeps two containers tracing at the same moment apart', async () => {
    const script = 'for i in 1 2 3; do echo "plain $i" >&2\n' + heredoc(JAVA, 'stderr') + 'done\necho end >&2\n';
    const ids = await Promise.all([run(c, input, 'twin-a', script), run(c, input, 'twin-b', script)]);
    for (const id of ids) {
      await until(`container ${id.slice(0, 12)} done`, () => eventsOf(r.files, id).some((e) => e.message === 'end'), 60_000);
      const trace = JAVA.join('\n');
      expect(messagesOf(eventsOf(r.files, id), 'stderr')).toEqual(['plain 1', trace, 'plain 2', trace, 'plain 3', trace, 'end']);
    }
  });

  it('writes a trace at the very end of a container\'s output', async () => {
    const id = await run(c, input, 'tail', 'echo "about to panic" >&2\n' + heredoc(GO, 'stderr') + 'exit 2\n');
    await until('the panic stored', () => eventsOf(r.files, id).length >= 2, 60_000);
    expect(messagesOf(eventsOf(r.files, id), 'stderr')).toEqual(['about to panic', GO.join('\n')]);
  });
});

describe('multiline under kill -9', () => {
  it('stores the trace a kill cut in two exactly once, through both inputs', async () => {
    // The trace pauses in the middle for as long as the restart takes: a timeout longer than that.
    const r = newRun('kill', 'multiline:\n  timeout: 2m\n');
    const signal = tempDir('ml-signal');
    dirs.push(signal);
    mkdirSync(signal, { recursive: true });
    const half = 6;
    const script =
      'echo "before the trace" >&2\n' +
      heredoc(JAVA.slice(0, half), 'stderr') +
      'while [ ! -e /signal/go ]; do sleep 0.05; done\n' +
      heredoc(JAVA.slice(half), 'stderr') +
      'echo "after the trace" >&2\n' +
      // With fluentd-async, Docker's driver discards what it still queues when
      // the container exits (ForceStopAsyncSend = async in moby's fluentd.go);
      // with request-ack each line waits for its ack, so the queue drains first.
      'sleep 2\n';
    // One port across the restart: the fluentd driver reconnects to it.
    const port = await freePort();
    let c = await collector(r, port);
    const mount = ['-v', `${signal}:/signal`];
    // With request-ack the driver waits for each ack, so the first half is acked while held (stderr
    // only: with request-ack Docker's stdout and stderr copiers race for each other's acks).
    const ids = {
      docker: await run(c, 'docker', 'kill', script, mount),
      fluentd: await run(c, 'fluentd', 'kill', script, [...mount, '--log-opt', 'fluentd-request-ack=true']),
    };
    // The collector has taken the first half: the forward input stored it before acking it
    // (state/forward-partials), the Docker input read its bytes.
    const firstHalfBytes = ['before the trace', ...JAVA.slice(0, half)].reduce((n, l) => n + Buffer.byteLength(l) + 1, 0);
    const partials = join(r.state, 'forward-partials');
    await until('the first half held by both inputs', () => existsSync(partials) && readdirSync(partials).length > 0, 60_000);
    await until('the Docker input read the first half', async () => (await dockerBytesIn(c)) >= firstHalfBytes, 60_000);
    await c.stop('SIGKILL');

    c = await collector(r, port);
    writeFileSync(join(signal, 'go'), '');
    for (const id of Object.values(ids)) {
      await until(`container ${id.slice(0, 12)} done`, () => eventsOf(r.files, id).some((e) => e.message === 'after the trace'), 60_000);
    }
    expect(await c.stop('SIGTERM')).toBe(0);
    // The forward input's first half came back from its store, not from a resend.
    expect(c.lines.some((l) => l.msg === 'loaded acked lines of split lines and traces')).toBe(true);
    for (const [input, id] of Object.entries(ids)) {
      const events = eventsOf(r.files, id);
      expect({ input, messages: events.map((e) => e.message) }).toEqual({ input, messages: ['before the trace', JAVA.join('\n'), 'after the trace'] });
    }
  });
});

/** clogs_input_bytes_total{input="docker"} from the collector's /metrics. */
async function dockerBytesIn(c: RunningCollector): Promise<number> {
  const text = await (await fetch(`http://${c.ready.http}/metrics`)).text();
  const m = /^clogs_input_bytes_total\{input="docker"\} (\d+)/m.exec(text);
  return m ? Number(m[1]) : 0;
}
