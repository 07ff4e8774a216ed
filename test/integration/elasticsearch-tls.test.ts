/**
 * TLS to Elasticsearch: a throwaway node with HTTPS and a CA of its own
 * (scripts/elasticsearch.sh start NAME PORT tls), reached with a CA file,
 * with the CA's fingerprint, and refused without either.
 */
import { EncodedBatch } from '../../src/collector/encoded.js';
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createElasticsearchSink } from '../../src/sinks/elasticsearch/index.js';
import type { Sink } from '../../src/sinks/sink.js';
import { tempDir } from '../helpers/services.js';
import {
  ES_SECURE_PASSWORD,
  ES_SECURE_USER,
  esNodeDir,
  esScript,
  freePort,
  makeEvents,
  memoryLogger,
  sinkConfig,
  uniqueDataset,
  waitForCount,
} from '../helpers/elasticsearch.js';
import { until } from '../helpers/until.js';
import { Client } from '@elastic/elasticsearch';

let node: string;
let url: string;
let caFile: string;
let admin: Client;
const open: Sink[] = [];

function sink(overrides: Record<string, unknown>, log = memoryLogger().log): Sink {
  const s = createElasticsearchSink(
    sinkConfig({ url, username: ES_SECURE_USER, password: ES_SECURE_PASSWORD, flush_interval: '100ms', ...overrides }),
    { log, stateDir: tempDir('es-tls'), backoff: { initialMs: 50, maxMs: 500 } },
  );
  open.push(s);
  return s;
}

beforeAll(async () => {
  const port = await freePort();
  node = `tls-${port}`;
  await esScript('start', node, String(port), 'tls', '384m');
  url = `https://127.0.0.1:${port}`;
  caFile = join(esNodeDir(node), 'ca.crt');
  admin = new Client({ node: url, auth: { username: ES_SECURE_USER, password: ES_SECURE_PASSWORD }, tls: { ca: readFileSync(caFile) } });
}, 240_000);

afterAll(async () => {
  await Promise.allSettled(open.map((s) => s.close()));
  await admin?.close();
  if (node) await esScript('wipe', node);
});

describe('elasticsearch sink over TLS', () => {
  it('trusts the cluster through a CA file', async () => {
    const dataset = uniqueDataset('tlsca');
    const s = sink({ ca: caFile, data_stream: { dataset, namespace: 'default' } });
    await s.start();
    await s.write(EncodedBatch.of(makeEvents(10)));
    await waitForCount(admin, `logs-${dataset}-default`, 10);
    await s.close();
  });

  it('trusts the cluster through the CA fingerprint', async () => {
    const dataset = uniqueDataset('tlsfp');
    const fingerprint = new X509Certificate(readFileSync(caFile)).fingerprint256;
    const s = sink({ fingerprint, data_stream: { dataset, namespace: 'default' } });
    await s.start();
    await s.write(EncodedBatch.of(makeEvents(10)));
    await waitForCount(admin, `logs-${dataset}-default`, 10);
    await s.close();
  });

  it('refuses an untrusted certificate or a wrong fingerprint, with a clear error, and keeps the events queued', async () => {
    for (const overrides of [{}, { fingerprint: 'AA:'.repeat(31) + 'AA' }]) {
      const mem = memoryLogger();
      const s = sink({ ...overrides, data_stream: { dataset: uniqueDataset('tlsno'), namespace: 'default' } }, mem.log);
      await s.start();
      await s.write(EncodedBatch.of(makeEvents(3)));
      await until('TLS error logged', () => mem.lines.some((l) => l.msg === 'cannot reach elasticsearch; events stay queued and are retried'), 10_000);
      const line = mem.lines.find((l) => l.msg === 'cannot reach elasticsearch; events stay queued and are retried')!;
      expect(String(line.error)).toMatch(/certificate|fingerprint/i);
      await s.close();
      expect(mem.lines.some((l) => l.msg === 'elasticsearch sink closed; undelivered events stay queued for the next start' && l.events === 3)).toBe(true);
    }
  });

  it('refuses to start when the CA file cannot be read, naming the key and the file', async () => {
    const s = sink({ ca: '/nonexistent/ca.pem' });
    await expect(s.start()).rejects.toMatchObject({ code: 'CLOGS_CONFIG', message: expect.stringContaining('sinks.elasticsearch.ca: cannot read /nonexistent/ca.pem') });
  });
});
