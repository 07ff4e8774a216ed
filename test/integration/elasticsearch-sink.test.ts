/**
 * The Elasticsearch sink against the real plain node (scripts/elasticsearch.sh
 * ensure): mapping, search, order, exactly-once, dead letters, the disk queue.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EncodedBatch } from '../../src/collector/encoded.js';
import type { LogEvent } from '../../src/collector/event.js';
import { BulkEncoder, resolveTarget } from '../../src/sinks/elasticsearch/bulk.js';
import { createElasticsearchSink } from '../../src/sinks/elasticsearch/index.js';
import { DiskQueue } from '../../src/sinks/elasticsearch/queue.js';
import { buildTemplate, TEMPLATE_VERSION, templateName } from '../../src/sinks/elasticsearch/template.js';
import type { Sink } from '../../src/sinks/sink.js';
import { tempDir } from '../helpers/services.js';
import {
  count,
  ES_URL,
  esClient,
  freePort,
  makeEvent,
  makeEvents,
  memoryLogger,
  requireNode,
  searchAll,
  sinkConfig,
  uniqueDataset,
  waitForCount,
} from '../helpers/elasticsearch.js';
import { until } from '../helpers/until.js';

const client = esClient();
const fastBackoff = { initialMs: 50, maxMs: 500 };
const open: Sink[] = [];

function sink(overrides: Record<string, unknown>, stateDir = tempDir('es'), log = memoryLogger().log): Sink {
  const s = createElasticsearchSink(sinkConfig({ flush_interval: '100ms', ...overrides }), { log, stateDir, backoff: fastBackoff });
  open.push(s);
  return s;
}

beforeAll(async () => {
  await requireNode(ES_URL);
});

afterAll(async () => {
  await Promise.allSettled(open.map((s) => s.close()));
  await client.close();
});

describe('elasticsearch sink: data stream', () => {
  const dataset = uniqueDataset('map');
  const stream = `logs-${dataset}-default`;
  const events: LogEvent[] = [
    ...makeEvents(20),
    makeEvent(20, { stream: 'stderr', message: 'database connection refused', log: { level: 'error' }, attrs: { user: { id: 42 }, 'a.b': 'dotted' } }),
    makeEvent(21, { container: { id: 'b'.repeat(64), name: 'worker-2', image: { name: 'busybox' }, labels: { 'x.y.z': '1' } }, message: 'job done' }),
  ];

  beforeAll(async () => {
    const s = sink({ data_stream: { dataset, namespace: 'default' } });
    await s.start();
    await s.write(EncodedBatch.of(events));
    await waitForCount(client, stream, events.length);
    await s.close();
  });

  it('installs the template and maps the fields as specified', async () => {
    const tpl = await client.indices.getIndexTemplate({ name: templateName({ kind: 'data_stream', name: stream, dataset, namespace: 'default' }) });
    const t = tpl.index_templates[0]!.index_template;
    expect(t.version).toBe(TEMPLATE_VERSION);
    expect(t.priority).toBeGreaterThan(100);
    expect(t.index_patterns).toEqual([`logs-${dataset}-*`]);
    expect(t.data_stream).toBeDefined();

    const mapping = await client.indices.getMapping({ index: stream });
    const props = Object.values(mapping)[0]!.mappings.properties as Record<string, any>;
    expect(props['@timestamp'].type).toBe('date_nanos');
    expect(props.message.type).toBe('text');
    expect(props.stream.type).toBe('keyword');
    expect(props.container.properties.id.type).toBe('keyword');
    expect(props.container.properties.name.type).toBe('keyword');
    expect(props.container.properties.image.properties.name.type).toBe('keyword');
    expect(props.container.properties.compose.properties.project.type).toBe('keyword');
    expect(props.container.properties.compose.properties.service.type).toBe('keyword');
    expect(props.container.properties.labels.type).toBe('flattened');
    expect(props.host.properties.name.type).toBe('keyword');
    expect(props.log.properties.level.type).toBe('keyword');
    expect(props.attrs.type).toBe('flattened');
    expect(props.clogs.properties.tag.type).toBe('keyword');
    expect(props.clogs.properties.seq.type).toBe('long');
    expect(props.clogs.properties.ordinal.type).toBe('integer');

    const settings = await client.indices.getSettings({ index: stream, flat_settings: true });
    const flat = Object.values(settings)[0]!.settings as Record<string, string>;
    expect(flat['index.mapping.ignore_malformed']).toBe('true');
    expect(flat['index.mapping.total_fields.ignore_dynamic_beyond_limit']).toBe('true');
    expect(Number(flat['index.mapping.total_fields.limit'])).toBeGreaterThanOrEqual(10_000);
  });

  it('finds events by container.name, stream and a word of the message', async () => {
    const hits = await searchAll<LogEvent>(client, stream, {
      bool: { filter: [{ term: { 'container.name': 'web-1' } }, { term: { stream: 'stderr' } }], must: [{ match: { message: 'refused' } }] },
    });
    expect(hits).toHaveLength(1);
    expect(hits[0]!.message).toBe('database connection refused');
    expect(hits[0]!.log?.level).toBe('error');
    expect(hits[0]!.container?.labels?.['com.docker.compose.project']).toBe('shop');

    const labelled = await searchAll(client, stream, { term: { 'container.labels.x.y.z': '1' } });
    expect(labelled).toHaveLength(1);
    const attrs = await searchAll(client, stream, { term: { 'attrs.user.id': '42' } });
    expect(attrs).toHaveLength(1);
  });

  it('keeps nanosecond order', async () => {
    const hits = await searchAll<LogEvent>(client, stream);
    expect(hits.map((h) => h['@timestamp'])).toEqual(events.map((e) => e['@timestamp']));
    expect(hits[1]!['@timestamp']).toMatch(/\.\d{9}Z$/);
  });

  it('replaying the same events gives 409s, not duplicates', async () => {
    const s = sink({ data_stream: { dataset, namespace: 'default' } });
    await s.start();
    await s.write(EncodedBatch.of(events));
    await until('sink ready', () => s.ready!(), 10_000);
    await s.close();
    expect(await count(client, stream)).toBe(events.length);
  });
});

describe('elasticsearch sink: index template', () => {
  it('replaces an older template of its own, and leaves a newer one alone', async () => {
    const dataset = uniqueDataset('tplv');
    const target = resolveTarget({ data_stream: { dataset, namespace: 'default' } });
    const name = templateName(target);
    const installed = async (): Promise<number | undefined> =>
      (await client.indices.getIndexTemplate({ name })).index_templates[0]!.index_template.version;

    await client.indices.putIndexTemplate({ ...buildTemplate(target), version: TEMPLATE_VERSION - 1 });
    let mem = memoryLogger();
    let s = sink({ data_stream: { dataset, namespace: 'default' } }, tempDir('es-tpl'), mem.log);
    await s.start();
    await until('template checked', () => mem.lines.some((l) => l.msg === 'index template checked'), 10_000);
    await s.close();
    expect(mem.lines.find((l) => l.msg === 'index template checked')!.result).toBe('installed');
    expect(await installed()).toBe(TEMPLATE_VERSION);

    await client.indices.putIndexTemplate({ ...buildTemplate(target), version: TEMPLATE_VERSION + 10, _meta: { managed_by: 'someone' } });
    mem = memoryLogger();
    s = sink({ data_stream: { dataset, namespace: 'default' } }, tempDir('es-tpl'), mem.log);
    await s.start();
    await until('template checked', () => mem.lines.some((l) => l.msg === 'index template checked'), 10_000);
    await s.close();
    expect(mem.lines.find((l) => l.msg === 'index template checked')!.result).toBe('newer');
    expect(await installed()).toBe(TEMPLATE_VERSION + 10);
    await client.indices.deleteIndexTemplate({ name });
  });
});

describe('elasticsearch sink: identity and rejection', () => {
  it('keeps two identical lines of the same second apart by their ordinal', async () => {
    const dataset = uniqueDataset('ord');
    const s = sink({ data_stream: { dataset, namespace: 'default' } });
    await s.start();
    const base = { '@timestamp': '2026-11-22T10:00:00.000000000Z', message: 'same line' };
    await s.write(EncodedBatch.of([makeEvent(0, { ...base, clogs: { input: 'docker', seq: 1, ordinal: 0 } }), makeEvent(0, { ...base, clogs: { input: 'docker', seq: 2, ordinal: 1 } })]));
    // And the same pair again (a redelivery): still two.
    await s.write(EncodedBatch.of([makeEvent(0, { ...base, clogs: { input: 'docker', seq: 3, ordinal: 0 } }), makeEvent(0, { ...base, clogs: { input: 'docker', seq: 4, ordinal: 1 } })]));
    await waitForCount(client, `logs-${dataset}-default`, 2);
    await s.close();
    expect(await count(client, `logs-${dataset}-default`)).toBe(2);
  });

  it('dead-letters a document Elasticsearch refuses and indexes the rest of the batch', async () => {
    const dataset = uniqueDataset('dlq');
    const state = tempDir('es-dlq');
    const s = sink({ data_stream: { dataset, namespace: 'default' } }, state);
    await s.start();
    // Deeper than the template's flattened depth_limit (50) for attrs: a JSON line Elasticsearch refuses.
    let deep: Record<string, unknown> = { leaf: true };
    for (let i = 0; i < 60; i++) deep = { d: deep };
    const bad = makeEvent(5, { message: 'too deep', attrs: deep });
    const batch = [...makeEvents(5), bad, ...makeEvents(5, 6)];
    await s.write(EncodedBatch.of(batch));
    await waitForCount(client, `logs-${dataset}-default`, 10);
    const file = join(state, 'elasticsearch', 'dead-letter.ndjson');
    await until('dead-letter file', () => existsSync(file) && readFileSync(file, 'utf8').includes('too deep'), 10_000);
    await s.close();
    expect(await count(client, `logs-${dataset}-default`)).toBe(10);
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toHaveLength(1);
    expect(lines[0].status).toBe(400);
    expect(lines[0].error.type).toMatch(/parsing_exception/);
    expect(lines[0].event.message).toBe('too deep');
    expect(lines[0].event.attrs).toEqual(deep);
    expect(lines[0].index).toBe(`logs-${dataset}-default`);
  });

  it('splits a request Elasticsearch refuses as a whole until the entry at fault is alone, and dead-letters only that', async () => {
    const dataset = uniqueDataset('split');
    const state = tempDir('es-split');
    // A malformed action line cannot come from the encoder; put one in the queue as a corrupted entry would be.
    const queue = await DiskQueue.open({ dir: join(state, 'elasticsearch', 'queue'), maxBytes: 1 << 20, log: memoryLogger().log });
    const enc = new BulkEncoder(resolveTarget({ data_stream: { dataset, namespace: 'default' } }));
    const bad = Buffer.from(`{"create":{"_index":"logs-${dataset}-default","_id":"bad"},"oops":1}\n{"@timestamp":"2026-11-22T10:00:00.000000000Z","message":"broken"}\n`);
    await queue.append(Buffer.concat([enc.encode(EncodedBatch.of(makeEvents(5))), bad, enc.encode(EncodedBatch.of(makeEvents(5, 5)))]), 11);
    await queue.close();

    const s = sink({ data_stream: { dataset, namespace: 'default' } }, state);
    await s.start();
    await waitForCount(client, `logs-${dataset}-default`, 10);
    const file = join(state, 'elasticsearch', 'dead-letter.ndjson');
    await until('dead-letter file', () => existsSync(file) && readFileSync(file, 'utf8').includes('broken'), 10_000);
    await s.close();
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ status: 400, _id: 'bad', event: { message: 'broken' } });
    expect(await count(client, `logs-${dataset}-default`)).toBe(10);
  });

  it('dead-letters late lines whose daily index is closed to writes, each in a request of its own, and goes on with the queue', async () => {
    const prefix = uniqueDataset('blocked');
    const state = tempDir('es-blocked');
    await client.indices.create({ index: `${prefix}-2026.11.20` });
    await client.indices.putSettings({ index: `${prefix}-2026.11.20`, settings: { 'index.blocks.write': true } });
    // One document a request: no other item of a late line's request goes in.
    const s = sink({ index: `${prefix}-%Y.%m.%d`, batch_events: 1 }, state);
    await s.start();
    const late = makeEvent(3, { '@timestamp': '2026-11-20T23:59:59.000000001Z', message: 'late' });
    await s.write(EncodedBatch.of([...makeEvents(3, 0, { '@timestamp': '2026-11-22T00:00:00.000000001Z' }), late]));
    await s.write(EncodedBatch.of([makeEvent(7, { '@timestamp': '2026-11-20T23:59:59.000000002Z', message: 'later' })]));
    await s.write(EncodedBatch.of(makeEvents(3, 4, { '@timestamp': '2026-11-22T00:00:01.000000001Z' })));
    await waitForCount(client, `${prefix}-2026.11.22`, 6);
    const file = join(state, 'elasticsearch', 'dead-letter.ndjson');
    await until('dead-letter file', () => existsSync(file) && readFileSync(file, 'utf8').includes('later'), 10_000);
    await s.close();
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => [l.status, l.error.type, l.event.message]).sort()).toEqual([
      [403, 'cluster_block_exception', 'late'],
      [403, 'cluster_block_exception', 'later'],
    ]);
    await client.indices.putSettings({ index: `${prefix}-2026.11.20`, settings: { 'index.blocks.write': false } });
    await client.indices.delete({ index: `${prefix}-*` });
  });

  it('writes to a daily index pattern chosen by the event time', async () => {
    const prefix = uniqueDataset('idx');
    const s = sink({ index: `${prefix}-%Y.%m.%d` });
    await s.start();
    await s.write(EncodedBatch.of([makeEvent(0, { '@timestamp': '2026-11-21T23:59:59.999999999Z' }), makeEvent(1, { '@timestamp': '2026-11-22T00:00:00.000000001Z' })]));
    await waitForCount(client, `${prefix}-*`, 2);
    await s.close();
    expect(await count(client, `${prefix}-2026.11.21`)).toBe(1);
    expect(await count(client, `${prefix}-2026.11.22`)).toBe(1);
    const mapping = await client.indices.getMapping({ index: `${prefix}-2026.11.22` });
    expect((Object.values(mapping)[0]!.mappings.properties as Record<string, any>)['@timestamp'].type).toBe('date_nanos');
    await client.indices.delete({ index: `${prefix}-*` });
  });
});

describe('elasticsearch sink: disk queue', () => {
  it('keeps events queued while the host is unreachable, and delivers them once after a restart', async () => {
    const dataset = uniqueDataset('q');
    const state = tempDir('es-q');
    const port = await freePort();
    const mem = memoryLogger();
    const down = sink({ url: `http://127.0.0.1:${port}`, data_stream: { dataset, namespace: 'default' } }, state, mem.log);
    await down.start();
    await down.write(EncodedBatch.of(makeEvents(300)));
    await down.write(EncodedBatch.of(makeEvents(200, 300)));
    await until('connection error logged', () => mem.lines.some((l) => l.msg === 'cannot reach elasticsearch; events stay queued and are retried'), 10_000);
    expect(down.ready!()).toBe(false);
    await down.close();
    expect(mem.lines.some((l) => l.msg === 'elasticsearch sink closed; undelivered events stay queued for the next start' && l.events === 500)).toBe(true);

    const up = sink({ data_stream: { dataset, namespace: 'default' } }, state);
    await up.start();
    await waitForCount(client, `logs-${dataset}-default`, 500);
    await up.write(EncodedBatch.of(makeEvents(10, 500)));
    await waitForCount(client, `logs-${dataset}-default`, 510);
    await up.close();
    expect(await count(client, `logs-${dataset}-default`)).toBe(510);
  });

  it('makes write() wait while the queue is full, and resumes once Elasticsearch takes events', async () => {
    const dataset = uniqueDataset('full');
    // flush_interval far out and batches larger than the queue: nothing is sent until the flush timer fires.
    const s = sink({ data_stream: { dataset, namespace: 'default' }, queue_max_size: 64 * 1024, batch_size: '1MiB', batch_events: 100_000, flush_interval: '2s' });
    await s.start();
    const first = makeEvents(150); // ~60 KiB of bulk lines
    await s.write(EncodedBatch.of(first));
    let resolved = false;
    const second = s.write(EncodedBatch.of(makeEvents(150, 150))).then(() => {
      resolved = true;
    });
    await new Promise((r) => setTimeout(r, 1000));
    expect(resolved).toBe(false);
    await second;
    await waitForCount(client, `logs-${dataset}-default`, 300);
    await s.close();
    expect(await count(client, `logs-${dataset}-default`)).toBe(300);
  });

  it('rejects writes after close', async () => {
    const s = sink({ data_stream: { dataset: uniqueDataset('closed'), namespace: 'default' } });
    await s.start();
    await s.close();
    await expect(s.write(EncodedBatch.of(makeEvents(1)))).rejects.toMatchObject({ code: 'CLOGS_QUEUE_CLOSED' });
  });
});

