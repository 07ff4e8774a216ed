/**
 * The collector's HTTP endpoint: the built CLI's `clogs collect` fed by the
 * real fluent-logger client, the real Elasticsearch for /readyz, and the
 * server in-process for the slow-client bound.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { LogEvent } from '../../src/collector/event.js';
import { Pipeline } from '../../src/collector/pipeline.js';
import { CLIENT_BUFFER_BYTES, DROPPED_COMMENT } from '../../src/http/sse.js';
import { startHttpServer } from '../../src/http/server.js';
import { ES_URL, freePort, memoryLogger, requireNode } from '../helpers/elasticsearch.js';
import { startCollector, type RunningCollector } from '../helpers/services.js';
import { emitRecord as emit, endSender, fluentSender as sender, makeEvent, NO_STORE } from '../helpers/tail.js';

async function get(url: string, method = 'GET'): Promise<{ status: number; type: string; body: string }> {
  const res = await fetch(url, { method });
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: await res.text() };
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * A strict reader of the Prometheus text format 0.0.4: every line is a
 * comment (# HELP / # TYPE), blank, or `name{label="value",...} number`.
 */
function parsePrometheus(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?[0-9.eE+-]+|NaN|\+Inf|-Inf)(?: -?\d+)?$/;
  const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('# HELP ')) continue;
    if (line.startsWith('# TYPE ')) {
      const [, , name, type] = line.split(' ');
      expect(['counter', 'gauge', 'histogram', 'summary', 'untyped']).toContain(type);
      types.set(name!, type!);
      continue;
    }
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`not Prometheus text: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { samples, types };
}

const value = (samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined =>
  samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;

const dirs: string[] = [];
const collectors: RunningCollector[] = [];
afterEach(async () => {
  for (const c of collectors.splice(0)) await c.stop();
});
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function collector(...extra: string[]): Promise<RunningCollector> {
  const dir = mkdtempSync(join(tmpdir(), 'clogs-http-'));
  dirs.push(dir);
  const c = await startCollector(['--no-docker', '--forward', '127.0.0.1:0', '--http', '127.0.0.1:0', '--file', join(dir, 'data'), '--state', join(dir, 'state'), ...extra]);
  collectors.push(c);
  return c;
}

describe('HTTP endpoint of clogs collect', () => {
  it('/healthz, /readyz, 404 and 405', async () => {
    const c = await collector();
    const base = `http://${c.ready.http}`;
    expect(c.ready.http).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(await get(`${base}/healthz`)).toMatchObject({ status: 200, body: 'ok\n' });
    const ready = await get(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.body)).toEqual({ ready: true, inputs: { forward: true }, sinks: { file: true }, not_ready: [] });
    expect((await get(`${base}/nope`)).status).toBe(404);
    expect((await get(`${base}/metrics`, 'POST')).status).toBe(405);
    expect((await get(`${base}/tail?stream=both`)).status).toBe(400);
  });

  it('/metrics parses as Prometheus text and counts what fluent-logger sent', async () => {
    const c = await collector();
    const s = sender(c.forwardPort());
    const n = 137;
    for (let i = 0; i < n; i++) await emit(s, 'metrics', { message: `line ${i}`, level: 'info' });
    await endSender(s);
    const res = await get(`http://${c.ready.http}/metrics`);
    expect(res.status).toBe(200);
    expect(res.type).toMatch(/^text\/plain; version=0\.0\.4/);
    const { samples, types } = parsePrometheus(res.body);
    expect(value(samples, 'clogs_input_events_total', { input: 'forward' })).toBe(n);
    expect(value(samples, 'clogs_sink_events_total', { sink: 'file' })).toBe(n);
    expect(value(samples, 'clogs_input_bytes_total', { input: 'forward' })).toBeGreaterThan(n * 10);
    expect(value(samples, 'clogs_sink_bytes_total', { sink: 'file' })).toBeGreaterThan(n * 10);
    expect(value(samples, 'clogs_forward_ack_latency_seconds_count')).toBe(n);
    expect(types.get('clogs_input_events_total')).toBe('counter');
    expect(types.get('clogs_forward_ack_latency_seconds')).toBe('histogram');
    for (const name of ['clogs_input_connections', 'clogs_queue_events', 'clogs_sink_errors_total', 'clogs_sink_retries_total', 'clogs_sink_dead_lettered_total', 'clogs_docker_containers_followed']) {
      expect(types.has(name), name).toBe(true);
    }
    // A healthy sink's failure series are there, at 0, for alerts to tell from a missing metric.
    expect(value(samples, 'clogs_sink_errors_total', { sink: 'file' })).toBe(0);
    for (const reason of ['ENOSPC', 'EDQUOT', 'EIO']) {
      expect(value(samples, 'clogs_sink_blocked', { sink: 'file', reason })).toBe(0);
      expect(value(samples, 'clogs_sink_write_retries_total', { sink: 'file', reason })).toBe(0);
    }
    // The process's own series, as every Node service has them.
    expect(value(samples, 'process_resident_memory_bytes')).toBeGreaterThan(10 * 1024 * 1024);
    expect(value(samples, 'process_cpu_seconds_total')).toBeGreaterThan(0);
    for (const name of ['nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes', 'nodejs_gc_duration_seconds', 'process_open_fds']) {
      expect(types.has(name), name).toBe(true);
    }
  });

  it('/tail streams the live normalized events as SSE, filtered by container', async () => {
    const c = await collector();
    const events: { id: string; data: LogEvent }[] = [];
    let raw = '';
    const req = request(`http://${c.ready.http}/tail?container=app.sse`);
    const subscribed = new Promise<void>((resolve, reject) => {
      req.on('response', (res) => {
        expect(res.headers['content-type']).toMatch(/^text\/event-stream/);
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          raw += chunk;
          if (raw.startsWith(': subscribed\n\n')) resolve();
          for (const block of raw.split('\n\n').slice(events.length + 1, -1)) {
            const id = /^id: (.*)$/m.exec(block)![1]!;
            events.push({ id, data: JSON.parse(/^data: (.*)$/m.exec(block)![1]!) as LogEvent });
          }
        });
      });
      req.on('error', reject);
    });
    req.end();
    await subscribed;
    const s = sender(c.forwardPort());
    await emit(s, 'other', { message: 'not for us' });
    for (let i = 0; i < 3; i++) await emit(s, 'sse', { message: `live ${i}` });
    const deadline = Date.now() + 5000;
    while (events.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    req.destroy();
    await endSender(s);
    expect(events.map((e) => e.data.message)).toEqual(['live 0', 'live 1', 'live 2']);
    for (const e of events) {
      expect(e.id).toBe(`${e.data['@timestamp']}/${e.data.clogs.seq}`);
      expect(e.data['@timestamp']).toMatch(/\.\d{9}Z$/);
      expect(e.data.clogs.tag).toBe('app.sse');
    }
  });

  it('/readyz turns 503 and names the sink when Elasticsearch cannot be reached', async () => {
    await requireNode(ES_URL);
    const up = await collector('--es', ES_URL);
    const upUrl = `http://${up.ready.http}/readyz`;
    let res = await get(upUrl);
    for (let i = 0; i < 100 && res.status !== 200; i++) {
      await new Promise((r) => setTimeout(r, 100));
      res = await get(upUrl);
    }
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body).sinks).toEqual({ file: true, elasticsearch: true });

    const down = await collector('--es', `http://127.0.0.1:${await freePort()}`);
    const downUrl = `http://${down.ready.http}/readyz`;
    res = await get(downUrl);
    for (let i = 0; i < 100 && res.status !== 503; i++) {
      await new Promise((r) => setTimeout(r, 100));
      res = await get(downUrl);
    }
    expect(res.status).toBe(503);
    expect(JSON.parse(res.body)).toEqual({ ready: false, inputs: { forward: true }, sinks: { file: true, elasticsearch: false }, not_ready: ['sink elasticsearch'] });
  });
});

describe('/tail bound per client', () => {
  it('drops a client that stops reading, with a final comment, and never holds up the pipeline', async () => {
    const { log, lines } = memoryLogger();
    const pipeline = new Pipeline([{ name: 'null', start: async () => undefined, close: async () => undefined, write: async () => undefined }]);
    const http = await startHttpServer({ enabled: true, listen: { host: '127.0.0.1', port: 0 } }, { log, pipeline, inputs: () => [], sinks: () => pipeline.sinkList, reader: NO_STORE });
    try {
      const [host, port] = http.address.split(':');
      const socket = connect(Number(port), host!);
      socket.write(`GET /tail HTTP/1.1\r\nHost: ${http.address}\r\n\r\n`);
      let received = '';
      await new Promise<void>((resolve) => socket.once('data', (d: Buffer) => ((received += d.toString()), resolve())));
      socket.pause();
      // Far more than the client buffer and the kernel's socket buffers hold.
      const big = 'x'.repeat(16 * 1024);
      let seq = 0;
      const t0 = Date.now();
      for (let i = 0; i < 1000 && !lines.some((l) => l.msg === 'tail client dropped: too slow'); i++) {
        await pipeline.write(Array.from({ length: 10 }, () => makeEvent({ sec: 1795341190, seq: seq++, message: big, tag: 'slow' })));
      }
      expect(lines.some((l) => l.msg === 'tail client dropped: too slow')).toBe(true);
      // Every write returned at once: the dropped client never blocked the pipeline.
      expect(Date.now() - t0).toBeLessThan(20_000);
      expect(seq * big.length).toBeGreaterThan(CLIENT_BUFFER_BYTES);
      socket.on('data', (d: Buffer) => (received += d.toString()));
      socket.resume();
      await new Promise<void>((resolve) => socket.on('end', () => resolve()));
      expect(received).toContain(': subscribed');
      expect(received).toContain(DROPPED_COMMENT);
      socket.destroy();
    } finally {
      await http.close();
    }
  });
});
