#!/usr/bin/env node
/**
 * The `clogs` executable. CommonJS on purpose, and nothing else in it: it
 * tunes V8's heap growth and sizes libuv's thread pool before the ES
 * module loader starts that pool (reading the first module is its first task,
 * and the pool keeps its size), then loads the command (cli.ts). Setting the
 * size from an ES module came too late: the collector ran with libuv's
 * default of 4 threads.
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

/*
 * The young generation starts at 1 MiB and doubles as objects survive it, up
 * to 16 MiB. While it is small, a burst of requests keeps most of what it
 * holds alive through a scavenge, and V8 then allocates those objects'
 * allocation sites straight in the old generation from then on: per-record
 * objects become garbage that only a full collection frees. Measured (bench
 * tiny, 500 connections at once): peak RSS 161-247 MB, bimodal, run to run;
 * growing to 16 MiB at the first growth instead, 140-155 MB in 6 of 6 runs,
 * and the PackedForward run within noise (median wall 3.39 s against 3.45 s
 * over 5 pairs). The cost: a collector under steady load keeps the larger
 * young generation (bench docker rate, 100 containers: RSS 116-117 MB
 * against 97-99, the same CPU and lag). Unlike `--min-semi-space-size`, this
 * one is read when the space grows, so it can be set here rather than on
 * node's command line.
 */
require('node:v8').setFlagsFromString('--semi-space-growth-factor=16');

/*
 * V8 starts a full collection once the old generation, plus the external
 * memory (Buffers) allocated since the last full one, reaches a limit it sets
 * after each at about 1.8 times what survived: for this collector's ~28 MB
 * heap, 24 MB of room (--trace-incremental-marking: "Start (allocation
 * limit) 28MB / 51MB" as external memory had grown 24 MB). With the
 * Elasticsearch sink on, the buffers in flight (bulk bodies, payloads, reads)
 * swing by more than that, and full collections ran back to back. Measured
 * (200,000 PackedForward records, then as many more, file sink and
 * Elasticsearch, two runs each way): 12 full collections a run and V8's
 * threads at 0.51-0.70 CPU s in the second pass; at a factor of 2.5, 5 a run
 * and 0.28-0.34 s, peak RSS 210-216 MB either way. The cost is room for
 * garbage: bench tiny peaks at 168-179 MB against 145-193. The flag also
 * replaces V8's smaller factors (low memory, the memory reducer's
 * collections once the collector goes quiet); RSS 30 s after 300,000
 * records was the same either way (141 against 140 MB).
 */
require('node:v8').setFlagsFromString('--heap-growing-percent=150');
void import('./cli.js');
