/**
 * The `clogs` executable sizes libuv's thread pool before Node's ES module
 * loader starts it (src/clogs.cts): the pool keeps the size it started with,
 * and set from an ES module the size came too late.
 */
import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { startCollector, tempDir } from '../helpers/services.js';

const threadsOf = (pid: number): number => readdirSync(`/proc/${pid}/task`).length;

async function collectorThreads(name: string, env: NodeJS.ProcessEnv): Promise<number> {
  const dir = tempDir(name);
  const c = await startCollector(['--no-docker', '--forward', '127.0.0.1:0', '--http', '127.0.0.1:0', '--file', `${dir}/data`, '--state', `${dir}/state`], env);
  try {
    return threadsOf(c.process.pid!);
  } finally {
    await c.stop();
  }
}

describe('the clogs executable', () => {
  it('runs the collector with a thread pool of 16, unless UV_THREADPOOL_SIZE says otherwise', async () => {
    const sized = await collectorThreads('threads-default', {});
    const four = await collectorThreads('threads-4', { UV_THREADPOOL_SIZE: '4' });
    expect(sized - four).toBe(12);
  });
});
