/**
 * Sizes libuv's thread pool before anything uses it: imported first by the
 * CLI, since the pool starts at its first task and keeps its size.
 *
 * The file sink syncs every file a commit touched at once; with libuv's
 * default of 4 threads the fifth waits. Measured (forward benchmark, 1M
 * records to 20 containers' files, fsync per batch): 16 threads took a
 * commit from 17.7-20.2 ms to 14.6-15.6 ms on average and raised the rate
 * 10-15%. The threads sleep when idle. UV_THREADPOOL_SIZE, when set, wins.
 */
process.env.UV_THREADPOOL_SIZE ??= '16';
