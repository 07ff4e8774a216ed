/**
 * Authentication against the secured node (security on, basic auth over
 * plain HTTP; scripts/elasticsearch.sh ensure).
 */
import { EncodedBatch } from '../../src/collector/encoded.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createElasticsearchSink } from '../../src/sinks/elasticsearch/index.js';
import type { Sink } from '../../src/sinks/sink.js';
import { tempDir } from '../helpers/services.js';
import {
  count,
  ES_SECURE_PASSWORD,
  ES_SECURE_URL,
  ES_SECURE_USER,
  esClient,
  makeEvents,
  memoryLogger,
  requireNode,
  secureAuth,
  sinkConfig,
  uniqueDataset,
  waitForCount,
} from '../helpers/elasticsearch.js';
import { until } from '../helpers/until.js';

const admin = esClient(ES_SECURE_URL, secureAuth);
const fastBackoff = { initialMs: 50, maxMs: 500 };
const open: Sink[] = [];

function sink(overrides: Record<string, unknown>, stateDir: string, log = memoryLogger().log): Sink {
  const s = createElasticsearchSink(sinkConfig({ url: ES_SECURE_URL, flush_interval: '100ms', ...overrides }), {
    log,
    stateDir,
    backoff: fastBackoff,
  });
  open.push(s);
  return s;
}

beforeAll(async () => {
  await requireNode(ES_SECURE_URL, secureAuth);
});

afterAll(async () => {
  await Promise.allSettled(open.map((s) => s.close()));
  await admin.close();
});

describe('elasticsearch sink: authentication', () => {
  it('logs a clear error for wrong credentials, keeps the data queued, and delivers it with the right ones', async () => {
    const dataset = uniqueDataset('auth');
    const state = tempDir('es-auth');
    const mem = memoryLogger();
    const wrong = sink({ username: ES_SECURE_USER, password: 'not-the-password', data_stream: { dataset, namespace: 'default' } }, state, mem.log);
    await wrong.start();
    await wrong.write(EncodedBatch.of(makeEvents(50)));
    await until('auth error logged', () => mem.lines.some((l) => typeof l.msg === 'string' && l.msg.startsWith('elasticsearch rejected the credentials (401)')), 10_000);
    const line = mem.lines.find((l) => typeof l.msg === 'string' && l.msg.startsWith('elasticsearch rejected the credentials'))!;
    expect(line.level).toBe(50);
    expect(line.status).toBe(401);
    expect(line.urls).toEqual([ES_SECURE_URL]);
    expect(wrong.ready!()).toBe(false);
    await wrong.close();
    expect(mem.text()).not.toContain('not-the-password');
    expect(mem.text()).not.toContain(ES_SECURE_PASSWORD);
    expect(mem.lines.some((l) => l.msg === 'elasticsearch sink closed; undelivered events stay queued for the next start' && l.events === 50)).toBe(true);

    const right = sink({ username: ES_SECURE_USER, password: ES_SECURE_PASSWORD, data_stream: { dataset, namespace: 'default' } }, state);
    await right.start();
    await waitForCount(admin, `logs-${dataset}-default`, 50);
    await until('ready', () => right.ready!(), 5000);
    await right.close();
    expect(await count(admin, `logs-${dataset}-default`)).toBe(50);
  });

  it('keeps credentials out of the logs when they are in the URL', async () => {
    const mem = memoryLogger();
    const url = new URL(ES_SECURE_URL);
    url.username = ES_SECURE_USER;
    url.password = 'url-secret-pw';
    const s = sink({ url: url.toString(), data_stream: { dataset: uniqueDataset('urlauth'), namespace: 'default' } }, tempDir('es-url'), mem.log);
    await s.start();
    await s.write(EncodedBatch.of(makeEvents(3)));
    await until('auth error logged', () => mem.lines.some((l) => typeof l.msg === 'string' && l.msg.includes('(401)')), 10_000);
    await s.close();
    expect(mem.text()).not.toContain('url-secret-pw');
  });

  // The test distribution cannot create API keys (its .security index mapping
  // needs the analysis-common module), so this checks the key is sent as
  // `Authorization: ApiKey …` by the node's answer naming the key id.
  it('sends an API key as ApiKey credentials, and keeps it out of the logs', async () => {
    const mem = memoryLogger();
    const apiKey = Buffer.from('clogs-key-id:clogs-key-secret').toString('base64');
    const s = sink({ api_key: apiKey, data_stream: { dataset: uniqueDataset('apikey'), namespace: 'default' } }, tempDir('es-key'), mem.log);
    await s.start();
    await s.write(EncodedBatch.of(makeEvents(5)));
    await until('auth error logged', () => mem.lines.some((l) => typeof l.msg === 'string' && l.msg.includes('(401)')), 10_000);
    await s.close();
    const line = mem.lines.find((l) => typeof l.msg === 'string' && l.msg.includes('(401)'))!;
    expect(String(line.reason)).toContain('API key');
    expect(String(line.reason)).toContain('clogs-key-id');
    expect(mem.text()).not.toContain('clogs-key-secret');
    expect(mem.text()).not.toContain(apiKey);
  });
});
