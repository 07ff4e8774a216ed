/**
 * The Docker input in-process against the real engine: a real Pipeline with a
 * capturing sink and the real file sink, real containers (busybox).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { dockerSchema, fileSinkSchema, multilineSchema, type DockerConfig } from '../../src/config/schema.js';
import type { LogEvent } from '../../src/collector/event.js';
import type { RunningInput } from '../../src/collector/input.js';
import type { Positions } from '../../src/collector/docker/checkpoints.js';
import { Pipeline } from '../../src/collector/pipeline.js';
import { startDockerInput } from '../../src/collector/docker/index.js';
import { createLogger } from '../../src/log.js';
import { inputErrors } from '../../src/metrics.js';
import { createFileSink } from '../../src/sinks/file/index.js';
import { readFileStore } from '../helpers/services.js';
import { docker, ensureBusyboxImage, removeContainers, requireDockerEngine, runContainer, uniquePrefix, waitExited, CaptureSink } from '../helpers/docker.js';
import { until } from '../helpers/until.js';

const log = createLogger(process.env.CLOGS_TEST_LOG ?? 'silent');
const prefix = uniquePrefix('follow');

interface Harness {
  input: RunningInput;
  events: LogEvent[];
  fileDir: string;
  stop(): Promise<void>;
}

const dirs: string[] = [];
function tempDir(part: string): string {
  const d = mkdtempSync(join(tmpdir(), `clogs-docker-${part}-`));
  dirs.push(d);
  return d;
}

async function startInput(stateDir: string, overrides: Partial<DockerConfig> = {}, fileDir = tempDir('files')): Promise<Harness> {
  const capture = new CaptureSink();
  const file = createFileSink(fileSinkSchema.parse({ dir: fileDir }), { log });
  await file.start();
  const pipeline = new Pipeline([capture, file]);
  const cfg = dockerSchema.parse({ include: { names: [`${prefix}*`] }, ...overrides });
  const input = await startDockerInput(cfg, { pipeline, log, stateDir, hostName: 'test-host', parseJson: true, parseLogfmt: true, stripAnsi: true, maxLineBytes: 1024 * 1024, multiline: multilineSchema.parse({}) });
  if (!input) throw new Error('docker input did not start');
  return {
    input,
    events: capture.events,
    fileDir,
    stop: async () => {
      await input.stop();
      await file.close();
    },
  };
}

const of = (events: LogEvent[], id: string) => events.filter((e) => e.container?.id === id);
const messages = (events: LogEvent[], id: string) => of(events, id).map((e) => e.message);
const seqText = (n: number) => Array.from({ length: 20000 }, (_, i) => String(i + 1)).join(',').slice(0, n);
/** Stream, time and the start of each message: what a timed-out wait shows. */
const brief = (events: LogEvent[]) => events.map((e) => `${e.stream} ${e['@timestamp']} ${e.message.slice(0, 30)}`);

let running: Harness[] = [];

beforeAll(async () => {
  await requireDockerEngine();
  ensureBusyboxImage();
});

afterEach(async () => {
  await Promise.allSettled(running.map((h) => h.stop()));
  running = [];
});

afterAll(async () => {
  await removeContainers(prefix);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function started(stateDir: string, overrides: Partial<DockerConfig> = {}, fileDir?: string): Promise<Harness> {
  const h = await startInput(stateDir, overrides, fileDir);
  running.push(h);
  return h;
}

describe('Docker input against the real engine', () => {
  it('reads a non-TTY container: streams, empty lines, a 40000-char line, invalid UTF-8, no trailing newline', async () => {
    const h = await started(tempDir('state'));
    const id = await runContainer(
      `${prefix}-mixed`,
      [
        'echo "out 1"',
        'echo "err 1" >&2',
        'echo ""',
        'echo "out 2"',
        "printf 'bad: \\377\\376\\n'",
        'busybox seq -s , 1 20000 | busybox head -c 40000; echo',
        'busybox seq -s , 1 20000 | busybox head -c 16384; echo',
        'echo "{\\"level\\":\\"warn\\",\\"msg\\":\\"json line\\",\\"n\\":1}"',
        'echo "err 2" >&2',
        "printf 'no newline at end'",
      ].join('; '),
    );
    await waitExited(`${prefix}-mixed`);
    await until('all lines', () => of(h.events, id).length >= 10, 30_000, () => brief(of(h.events, id)));
    await new Promise((r) => setTimeout(r, 300));
    const evs = of(h.events, id);
    // The engine stamps stdout and stderr in separate goroutines: the order
    // across the two streams is the engine's, within each it is the container's.
    const out = evs.filter((e) => e.stream === 'stdout');
    const err = evs.filter((e) => e.stream === 'stderr');
    expect(out.map((e) => (e.message.length > 50 ? `${e.message.length} chars` : e.message))).toEqual([
      'out 1',
      '',
      'out 2',
      'bad: \ufffd\ufffd',
      '40000 chars',
      '16384 chars',
      'json line',
      'no newline at end',
    ]);
    expect(err.map((e) => e.message)).toEqual(['err 1', 'err 2']);
    expect(evs).toHaveLength(10);
    expect(out[4]!.message).toBe(seqText(40000));
    expect(out[5]!.message).toBe(seqText(16384));
    expect(out[6]!.log?.level).toBe('warn');
    expect(out[6]!.attrs).toEqual({ n: 1 });
    const meta = evs[0]!.container!;
    expect(meta).toMatchObject({ id, name: `${prefix}-mixed`, image: { name: 'clogs-busybox:latest' } });
    expect(evs.every((e) => e.container === meta)).toBe(true);
    expect(Object.isFrozen(meta)).toBe(true);
    for (const e of evs) {
      expect(e['@timestamp']).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
      expect(e.clogs.input).toBe('docker');
      expect(e.host.name).toBe('test-host');
    }
    // The file sink got the same lines.
    await h.stop();
    running = [];
    expect(readFileStore(h.fileDir).filter((e) => e.container?.id === id).map((e) => e.message)).toEqual(evs.map((e) => e.message));
  });

  it('reads a TTY container: no \\r, stderr merged into stdout', async () => {
    const h = await started(tempDir('state'));
    const id = await runContainer(`${prefix}-tty`, 'echo "tty out"; echo "tty err" >&2; printf "tty\\ttab\\n"; busybox seq -s , 1 20000 | busybox head -c 40000; echo; printf "tty tail"', { tty: true });
    await waitExited(`${prefix}-tty`);
    await until('tty lines', () => of(h.events, id).length >= 5, 30_000, () => brief(of(h.events, id)));
    const evs = of(h.events, id);
    expect(evs.map((e) => (e.message.length > 50 ? `${e.message.length} chars` : e.message))).toEqual(['tty out', 'tty err', 'tty\ttab', '40000 chars', 'tty tail']);
    expect(evs[3]!.message).toBe(seqText(40000));
    expect(new Set(evs.map((e) => e.stream))).toEqual(new Set(['stdout']));
  });

  it('keeps stdout and stderr order when they interleave quickly', async () => {
    const h = await started(tempDir('state'));
    const id = await runContainer(`${prefix}-inter`, 'i=0; while [ $i -lt 300 ]; do echo "o$i"; echo "e$i" >&2; i=$((i+1)); done');
    await waitExited(`${prefix}-inter`);
    await until('600 lines', () => of(h.events, id).length >= 600);
    const evs = of(h.events, id);
    expect(evs.filter((e) => e.stream === 'stdout').map((e) => e.message)).toEqual(Array.from({ length: 300 }, (_, i) => `o${i}`));
    expect(evs.filter((e) => e.stream === 'stderr').map((e) => e.message)).toEqual(Array.from({ length: 300 }, (_, i) => `e${i}`));
  });

  it('reads every run of a container started again and again that exits at once (a cron-style job)', async () => {
    const h = await started(tempDir('state'));
    const name = `${prefix}-job`;
    // Each run is over in milliseconds, before the engine's events about it are looked at.
    const id = await runContainer(name, 'echo "run $(cat /proc/uptime)"');
    await waitExited(name);
    await until('first run', () => of(h.events, id).length >= 1);
    for (let run = 2; run <= 4; run++) {
      await docker('start', name);
      await waitExited(name);
      await until(`run ${run}`, () => of(h.events, id).length >= run, 15_000, () => messages(h.events, id));
    }
    await new Promise((r) => setTimeout(r, 500));
    const runs = messages(h.events, id);
    expect(runs).toHaveLength(4);
    expect(new Set(runs).size).toBe(4);
    await h.stop();
  });

  it('marks a --rm container removed in its checkpoint even when it was gone before its first one, and forgets it after the grace', async () => {
    const state = tempDir('state');
    const h = await started(state, { removed_grace: 1000 });
    const name = `${prefix}-rm`;
    // Long enough to be followed before it goes (its log goes with it), gone before the next durable point.
    const id = await runContainer(name, 'echo "short-lived"; sleep 0.3', { args: ['--rm'] });
    await until('its line', () => messages(h.events, id).includes('short-lived'));
    const entries = (): Record<string, { removedAt?: number }> =>
      (JSON.parse(readFileSync(join(state, 'docker', 'checkpoints.json'), 'utf8')) as { containers: Record<string, { removedAt?: number }> }).containers;
    await until('its entry marked removed', () => typeof entries()[id]?.removedAt === 'number', 15_000, () => entries());
    // The next checkpoint after the grace leaves it out: another container's line brings one.
    await new Promise((r) => setTimeout(r, 1100));
    const other = await runContainer(`${prefix}-rm-next`, 'echo "next"');
    await until('the next line', () => messages(h.events, other).includes('next'));
    await until('its entry forgotten', () => !(id in entries()), 15_000, () => entries());
    await h.stop();
  });

  it('follows containers that start, restart, get renamed and are removed while it runs', async () => {
    const state = tempDir('state');
    const h = await started(state);
    const name = `${prefix}-life`;
    const id = await runContainer(name, 'echo "run at $(date +%s)"; sleep 0.3; echo "done"');
    await waitExited(name);
    await until('first run', () => of(h.events, id).length >= 2);
    await docker('start', name);
    await waitExited(name);
    await until('second run', () => of(h.events, id).length >= 4);
    await docker('rename', name, `${name}-renamed`);
    await docker('start', `${name}-renamed`);
    await waitExited(`${name}-renamed`);
    await until('third run', () => of(h.events, id).length >= 6);
    const evs = of(h.events, id);
    expect(evs.length).toBe(6);
    expect(evs.map((e) => e.message.replace(/\d+/, 'N'))).toEqual(['run at N', 'done', 'run at N', 'done', 'run at N', 'done']);
    expect(evs[5]!.container!.name).toBe(`${name}-renamed`);
    expect(evs[0]!.container!.name).toBe(name);

    // A restart of a running container, with a last line without newline before it.
    const rname = `${prefix}-restart`;
    const rid = await runContainer(rname, 'echo "begin"; printf "partial"; sleep 30', { args: ['--stop-timeout', '1'] });
    await until('begin', () => messages(h.events, rid).includes('begin'));
    await docker('restart', '-t', '0', rname);
    await until('second begin', () => messages(h.events, rid).filter((m) => m === 'begin').length === 2);
    await docker('rm', '-f', rname);
    await until('partial flushed', () => messages(h.events, rid).includes('partial'));
    expect(messages(h.events, rid).filter((m) => m === 'begin')).toHaveLength(2);

    await docker('rm', `${name}-renamed`);
    const removedAt = (): unknown =>
      (JSON.parse(readFileSync(join(state, 'docker', 'checkpoints.json'), 'utf8')) as { containers: Record<string, { removedAt?: number }> }).containers[id]?.removedAt;
    // The engine's destroy event comes when it comes: on a busy machine, later than a fixed wait.
    await until('the removal in the checkpoint', () => typeof removedAt() === 'number', 15_000);
    await h.stop();
    running = [];
    expect(removedAt()).toBeTypeOf('number');
  });

  it('reads a container removed as it exits (--rm, docker rm) to the end of its stream', async () => {
    const h = await started(tempDir('state'));
    const script = 'echo ready; sleep 1; i=0; while [ $i -lt 3000 ]; do echo line $i; i=$((i+1)); done';
    const rmId = await runContainer(`${prefix}-autoremove`, script, { args: ['--rm'] });
    const rmName = `${prefix}-removed`;
    const id = await runContainer(rmName, script);
    await until('both followed', () => messages(h.events, rmId).includes('ready') && messages(h.events, id).includes('ready'));
    await waitExited(rmName);
    await docker('rm', rmName);
    // Closed at the removal, the streams lost whatever was not read yet: up to all 3000 lines.
    await until('every line', () => of(h.events, rmId).length === 3001 && of(h.events, id).length === 3001, 30_000);
    for (const c of [rmId, id]) expect(messages(h.events, c)).toEqual(['ready', ...Array.from({ length: 3000 }, (_, i) => `line ${i}`)]);
  });

  it('applies include/exclude filters and the opt-out label', async () => {
    const h = await started(tempDir('state'), { exclude: { names: [], labels: ['test.exclude'], images: [] } });
    const optOut = await runContainer(`${prefix}-optout`, 'echo "should not be read"', { args: ['--label', 'clogs.enable=false'] });
    const excluded = await runContainer(`${prefix}-excl`, 'echo "excluded"', { args: ['--label', 'test.exclude=yes'] });
    const other = await runContainer(`clogs-t-other-${process.pid}`, 'echo "not included"');
    const kept = await runContainer(`${prefix}-kept`, 'echo "kept"', { args: ['--label', 'com.docker.compose.project=proj', '--label', 'com.docker.compose.service=web'] });
    await until('kept line', () => of(h.events, kept).length === 1);
    await new Promise((r) => setTimeout(r, 1000));
    await docker('rm', '-f', other);
    expect(of(h.events, optOut)).toEqual([]);
    expect(of(h.events, excluded)).toEqual([]);
    expect(of(h.events, other)).toEqual([]);
    expect(of(h.events, kept)[0]!.container!.compose).toEqual({ project: 'proj', service: 'web' });
  });

  it('resumes after a stop without losing or repeating a line, and reads containers that ran while it was down', async () => {
    const state = tempDir('state');
    const files = tempDir('files');
    const name = `${prefix}-resume`;
    let h = await startInput(state, {}, files);
    const id = await runContainer(name, 'i=1; while [ $i -le 600 ]; do echo "n $i"; i=$((i+1)); sleep 0.005; done');
    await until('some lines', () => of(h.events, id).length >= 50);
    await h.stop();
    const firstRun = of(h.events, id).length;
    // Down for a while: the container keeps writing, then exits; another one runs whole.
    const late = await runContainer(`${prefix}-while-down`, 'echo "while down 1"; echo "while down 2"');
    await waitExited(name);
    await waitExited(`${prefix}-while-down`);
    h = await startInput(state, {}, files);
    running.push(h);
    await until('the rest', () => of(h.events, id).length >= 600 - firstRun);
    await until('the late container', () => of(h.events, late).length >= 2);
    await new Promise((r) => setTimeout(r, 300));
    await h.stop();
    running = [];
    const all = readFileStore(files).filter((e) => e.container?.id === id).map((e) => e.message);
    expect(all).toEqual(Array.from({ length: 600 }, (_, i) => `n ${i + 1}`));
    expect(firstRun).toBeLessThan(600);
    // Ids stay deterministic: ordinals continue from the checkpoint.
    const keys = readFileStore(files).filter((e) => e.container?.id === id).map((e) => `${e['@timestamp']}/${e.stream}/${e.clogs.ordinal}`);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('keeps a split line that a stream never finished before a stop, when the other stream wrote on after it', async () => {
    const state = tempDir('state');
    const name = `${prefix}-held-pieces`;
    // stderr's first line: its first 16 KiB piece, then "b" on stdout, then
    // (once the test says so, after the restart) the piece that ends the line.
    const script = [
      'echo a',
      'sleep 1',
      "printf '%16384s' | tr ' ' x >&2",
      'sleep 1',
      'echo b',
      'while [ ! -e /tmp/go ]; do sleep 0.05; done',
      'echo >&2',
      'echo y >&2',
      'echo c',
    ].join('; ');
    const first = await started(state);
    const id = await runContainer(name, script);
    await until('b', () => messages(first.events, id).includes('b'), 30_000, () => brief(of(first.events, id)));
    const bAt = of(first.events, id).find((e) => e.message === 'b')!['@timestamp'];
    const checkpointed = (): unknown =>
      (JSON.parse(readFileSync(join(state, 'docker', 'checkpoints.json'), 'utf8')) as { containers: Record<string, { streams: Positions }> }).containers[id]?.streams.stdout?.ts;
    await until('b in the checkpoint', () => checkpointed() === bAt, 15_000, checkpointed);
    await first.stop();
    running = running.filter((r) => r !== first);
    // The line was still unfinished at the stop.
    expect(of(first.events, id).filter((e) => e.stream === 'stderr')).toEqual([]);

    const h = await started(state);
    await docker('exec', name, 'touch', '/tmp/go');
    await waitExited(name);
    await until('c', () => messages(h.events, id).includes('c'), 30_000, () => brief(of(h.events, id)));
    await new Promise((r) => setTimeout(r, 300));
    const all = [...first.events, ...h.events].filter((e) => e.container?.id === id);
    const short = (m: string) => (m.length > 50 ? `${m.length} chars` : m);
    expect(all.filter((e) => e.stream === 'stdout').map((e) => e.message)).toEqual(['a', 'b', 'c']);
    expect(all.filter((e) => e.stream === 'stderr').map((e) => short(e.message))).toEqual(['16384 chars', 'y']);
    expect(all.find((e) => e.stream === 'stderr')!.message).toBe('x'.repeat(16384));
  });

  it('says so when json-file rotated past the checkpoint while it was down, and reads what is left', async () => {
    const state = tempDir('state');
    const name = `${prefix}-rotated`;
    let h = await startInput(state);
    const id = await runContainer(name, 'echo "before"; while [ ! -e /tmp/go ]; do sleep 0.05; done; busybox seq 1 3000 | busybox sed "s/^/after /"; sleep 30', {
      args: ['--log-opt', 'max-size=4k', '--log-opt', 'max-file=2'],
    });
    await until('first line', () => of(h.events, id).length === 1);
    await h.stop();
    const rotatedBefore = (await inputErrors.get()).values.find((v) => v.labels.reason === 'rotated')?.value ?? 0;
    await docker('exec', name, 'touch', '/tmp/go');
    await new Promise((r) => setTimeout(r, 1500));
    h = await startInput(state);
    running.push(h);
    await until('the lines left', () => of(h.events, id).some((e) => e.message === 'after 3000'));
    const rotatedAfter = (await inputErrors.get()).values.find((v) => v.labels.reason === 'rotated')?.value ?? 0;
    expect(rotatedAfter).toBe(rotatedBefore + 1);
    const after = of(h.events, id).map((e) => Number(e.message.split(' ')[1]));
    // What is left is contiguous and ends with the last line.
    expect(after).toEqual(Array.from({ length: after.length }, (_, i) => 3001 - after.length + i));
    await docker('rm', '-f', name);
  });
});
