import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Client } from '@elastic/elasticsearch';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DeadLetterFile } from '../../../src/sinks/elasticsearch/dead-letter.js';
import { DiskQueue } from '../../../src/sinks/elasticsearch/queue.js';
import { Sender } from '../../../src/sinks/elasticsearch/sender.js';
import { deadLettered } from '../../../src/metrics.js';
import { memoryLogger } from '../../helpers/elasticsearch.js';
import { tempDir } from '../../helpers/services.js';

/** `n` queue entries (two lines each), numbered from `from`. */
function entries(n: number, from = 0): Buffer {
  let s = '';
  for (let i = from; i < from + n; i++) s += `{"create":{"_id":"${i}"}}\n{"n":${i}}\n`;
  return Buffer.from(s);
}

/**
 * A stand-in for Elasticsearch: the template API answers `template`, `_bulk`
 * takes every document but those `refused` (a 400 mapping conflict) and
 * remembers its number.
 */
async function fakeElasticsearch(
  template: { status: number; body: unknown } = { status: 200, body: { acknowledged: true } },
  refused: (n: number) => boolean = () => false,
): Promise<{
  url: string;
  documents: number[];
  templatePuts: () => number;
  close(): Promise<void>;
}> {
  const documents: number[] = [];
  let puts = 0;
  const reply = (res: ServerResponse, status: number, body: unknown): void => {
    res.writeHead(status, { 'content-type': 'application/json', 'x-elastic-product': 'Elasticsearch' });
    res.end(JSON.stringify(body));
  };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = req.url ?? '';
      if (path.startsWith('/_index_template/') && req.method === 'GET') return reply(res, 404, { index_templates: [] });
      if (path.startsWith('/_index_template/')) {
        puts++;
        return reply(res, template.status, template.body);
      }
      if (path.startsWith('/_bulk')) {
        const lines = Buffer.concat(chunks).toString().split('\n').filter((l) => l !== '');
        const items = [];
        for (let i = 1; i < lines.length; i += 2) {
          const { n } = JSON.parse(lines[i]!) as { n: number };
          if (refused(n)) {
            items.push({ create: { status: 400, error: { type: 'document_parsing_exception', reason: 'object mapping for [n] tried to parse field [n] as object' } } });
            continue;
          }
          documents.push(n);
          items.push({ create: { status: 201 } });
        }
        return reply(res, 200, { errors: items.some((it) => it.create.status !== 201), items });
      }
      reply(res, 404, { error: 'no such path' });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, documents, templatePuts: () => puts, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

const cleanup: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

/** A sender over `queue` to the fake at `url`, with fast retries; stopped (and the client closed) after the test. */
function sender(queue: DiskQueue, url: string, log = memoryLogger().log): Sender {
  const client = new Client({ node: url, maxRetries: 0 });
  const s = new Sender({
    client,
    queue,
    deadLetter: new DeadLetterFile(join(tempDir('dl'), 'dead-letter.ndjson')),
    target: { kind: 'data_stream', name: 'logs-t-default', dataset: 't', namespace: 'default' },
    log,
    urls: [url],
    batchEvents: 100,
    batchBytes: 1 << 20,
    flushIntervalMs: 20,
    inFlight: 2,
    backoff: { initialMs: 10, maxMs: 50 },
  });
  cleanup.push(async () => {
    await s.stop(100);
    await queue.close();
    await client.close();
  });
  return s;
}

describe('Sender', () => {
  it('keeps waiting for events after a damaged record was the only one unread', async () => {
    const es = await fakeElasticsearch();
    cleanup.push(es.close);
    const dir = tempDir('q');
    let queue = await DiskQueue.open({ dir, maxBytes: 1 << 20, log: memoryLogger().log });
    await queue.append(entries(2), 2);
    await queue.close();
    const seg = join(dir, readdirSync(dir).find((f) => f.endsWith('.seg'))!);
    const bytes = readFileSync(seg);
    const at = bytes.length - 5; // in the payload: its checksum fails
    bytes[at] = bytes[at]! ^ 0x20;
    writeFileSync(seg, bytes);
    queue = await DiskQueue.open({ dir, maxBytes: 1 << 20, log: memoryLogger().log });
    const s = sender(queue, es.url);
    s.start();
    await vi.waitFor(() => expect(queue.unread().events).toBe(0));
    await new Promise((r) => setTimeout(r, 50));
    await queue.append(entries(2, 10), 2);
    await vi.waitFor(() => expect(es.documents).toEqual([10, 11]), { timeout: 5000 });
    await s.stop(1000);
  });

  it('reports a queue it cannot read as not ready, backs off, and sends once reading works again', async () => {
    const es = await fakeElasticsearch();
    cleanup.push(es.close);
    const mem = memoryLogger();
    const queue = await DiskQueue.open({ dir: tempDir('q'), maxBytes: 1 << 20, log: mem.log });
    const s = sender(queue, es.url, mem.log);
    const eio = Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' });
    let retried!: () => void;
    const retry = new Promise<void>((resolve) => (retried = resolve));
    const read = vi
      .spyOn(queue, 'read')
      .mockRejectedValueOnce(eio)
      .mockImplementationOnce(async () => {
        await retry;
        throw eio;
      });
    s.start();
    await vi.waitFor(() => expect(s.ready()).toBe(true));
    await queue.append(entries(3), 3);
    await vi.waitFor(() => expect(read).toHaveBeenCalledTimes(2));
    expect(s.ready()).toBe(false);
    expect(s.notReadyReason()).toBe('cannot read the elasticsearch queue: EIO: i/o error, read');
    retried();
    await vi.waitFor(() => expect(es.documents).toEqual([0, 1, 2]), { timeout: 5000 });
    expect(read).toHaveBeenCalledTimes(3);
    expect(s.ready()).toBe(true);
    expect(s.notReadyReason()).toBeUndefined();
    expect(mem.lines.filter((l) => l.msg === 'cannot read the elasticsearch queue; retrying')).toMatchObject([{ level: 50, err: 'EIO: i/o error, read' }]);
    expect(mem.lines.some((l) => l.msg === 'the elasticsearch queue can be read again')).toBe(true);
    await expect(s.stop(1000)).resolves.toBeUndefined();
  });

  it('sends the documents, with one warning, when Elasticsearch refuses the index template with a 400', async () => {
    const refusal = {
      error: {
        type: 'illegal_argument_exception',
        reason: 'index template [clogs-logs-t] has index patterns [logs-t-*] matching patterns from existing templates [mine] that have the same priority [200]',
      },
      status: 400,
    };
    const es = await fakeElasticsearch({ status: 400, body: refusal });
    cleanup.push(es.close);
    const mem = memoryLogger();
    const queue = await DiskQueue.open({ dir: tempDir('q'), maxBytes: 1 << 20, log: mem.log });
    const s = sender(queue, es.url, mem.log);
    s.start();
    await queue.append(entries(2), 2);
    await vi.waitFor(() => expect(es.documents).toEqual([0, 1]), { timeout: 5000 });
    expect(es.templatePuts()).toBe(1);
    expect(mem.lines.filter((l) => String(l.msg).startsWith('elasticsearch refused the index template'))).toMatchObject([
      { level: 40, status: 400, template: 'clogs-logs-t', reason: expect.stringContaining('same priority') },
    ]);
  });

  it('counts dead-lettered documents in one series per sink, whatever container or tag they came from, and logs their sources', async () => {
    const es = await fakeElasticsearch(undefined, (n) => n % 2 === 0);
    cleanup.push(es.close);
    const mem = memoryLogger();
    const queue = await DiskQueue.open({ dir: tempDir('q'), maxBytes: 1 << 20, log: mem.log });
    const s = sender(queue, es.url, mem.log);
    deadLettered.reset();
    s.start();
    let body = '';
    for (let n = 0; n < 6; n++) body += `{"create":{"_id":"${n}"}}\n{"n":${n},"container":{"name":"app-${n}"},"clogs":{"input":"forward","tag":"tag-${n}"}}\n`;
    await queue.append(Buffer.from(body), 6);
    await vi.waitFor(() => expect(queue.depth.events).toBe(0), { timeout: 5000 });
    expect(es.documents).toEqual([1, 3, 5]);
    expect((await deadLettered.get()).values).toEqual([{ labels: { sink: 'elasticsearch' }, value: 3 }]);
    expect(mem.lines.filter((l) => l.msg === 'elasticsearch rejected documents for good; written to the dead-letter file')).toMatchObject([
      { level: 40, documents: 3, sources: ['app-0', 'app-2', 'app-4'], status: 400 },
    ]);
  });

  it('still retries the index template on a 401 until the credentials work', async () => {
    const es = await fakeElasticsearch({ status: 401, body: { error: { type: 'security_exception', reason: 'unable to authenticate' }, status: 401 } });
    cleanup.push(es.close);
    const queue = await DiskQueue.open({ dir: tempDir('q'), maxBytes: 1 << 20, log: memoryLogger().log });
    const s = sender(queue, es.url);
    s.start();
    await queue.append(entries(2), 2);
    await vi.waitFor(() => expect(es.templatePuts()).toBeGreaterThan(2));
    expect(es.documents).toEqual([]);
    expect(s.ready()).toBe(false);
  });
});
