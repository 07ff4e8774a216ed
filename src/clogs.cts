#!/usr/bin/env node
/**
 * The `clogs` executable. CommonJS on purpose, and nothing else in it: it
 * sizes libuv's thread pool before the ES module loader starts that pool
 * (reading the first module is its first task, and the pool keeps its size),
 * then loads the command (cli.ts). Setting the size from an ES module came
 * too late: the collector ran with libuv's default of 4 threads.
 *
 * The file sink syncs every file a commit touched at once; with 4 threads the
 * fifth waits. Measured (forward benchmark, 1M records to 20 containers'
 * files, fsync per batch): 16 threads took a commit from 17.7-20.2 ms to
 * 14.6-15.6 ms on average and raised the rate 10-15%; 100 synced files per
 * cycle (the Docker input following 100 containers) took 25.7 ms at the
 * median against 42.4 ms. The threads sleep when idle. UV_THREADPOOL_SIZE,
 * when set, wins.
 */
process.env.UV_THREADPOOL_SIZE ??= '16';
void import('./cli.js');
