/**
 * Following Elasticsearch without the live stream: polls against an in-memory
 * fake of the three calls the store's follow makes (search with sort keys and
 * search_after, count, mget), so a line can be indexed late, after lines
 * newer than it, as the Docker input's backfill and a retried queue do.
 */
import type { Client } from '@elastic/elasticsearch';
import { afterEach, describe, expect, it } from 'vitest';
import type { LogEvent } from '../../../src/collector/event.js';
import { elasticsearchSchema } from '../../../src/config/schema.js';
import type { StoredEvent } from '../../../src/tail/order.js';
import { readPage } from '../../../src/tail/page.js';
import { createEsStore } from '../../../src/tail/store-es.js';
import { container, fakeId, makeEvent } from '../../helpers/tail.js';
import { until } from '../../helpers/until.js';

const WEB = container(fakeId('aa'), 'web');
const T0 = 1795341190;

interface Doc {
  _index: string;
  _id: string;
  _source: LogEvent;
}
type Range = { gte?: string; lt?: string };
type Body = { query?: { bool?: { filter?: Record<string, unknown>[] } }; sort?: Record<string, { order: 'asc' | 'desc' }>[]; size?: number; search_after?: [string, string, number]; _source?: boolean };

/** The queries this test sends: no selection, no filter, `@timestamp` ranges only. */
class FakeEs {
  readonly docs: Doc[] = [];
  /** The `@timestamp` lower bound of every key search, in order. */
  readonly searchedFrom: (string | undefined)[] = [];

  index(e: LogEvent): void {
    this.docs.push({ _index: 'logs-clogs-default', _id: String(this.docs.length), _source: e });
  }

  private matching(body: Body): Doc[] {
    const ranges = (body.query?.bool?.filter ?? []).map((q) => (q.range as { '@timestamp'?: Range } | undefined)?.['@timestamp']).filter((r) => r !== undefined);
    return this.docs.filter((d) => ranges.every((r) => (r.gte === undefined || d._source['@timestamp'] >= r.gte) && (r.lt === undefined || d._source['@timestamp'] < r.lt)));
  }

  client(): Client {
    const fake = {
      search: async (body: Body) => {
        const ranges = (body.query?.bool?.filter ?? []).map((q) => (q.range as { '@timestamp'?: Range } | undefined)?.['@timestamp']);
        this.searchedFrom.push(ranges.find((r) => r?.gte !== undefined)?.gte);
        const desc = body.sort?.[0]?.['@timestamp']?.order === 'desc';
        // Elasticsearch's order: the sort's fields in turn (tail/store-es.ts sort()).
        const keyOf = (d: Doc): [string, string, number] => [d._source['@timestamp'], d._source.host.name, d._source.clogs.seq];
        const cmpKeys = (a: [string, string, number], b: [string, string, number]) =>
          (a[0] !== b[0] ? (a[0] < b[0] ? -1 : 1) : a[1] !== b[1] ? (a[1] < b[1] ? -1 : 1) : a[2] - b[2]) * (desc ? -1 : 1);
        let hits = this.matching(body).sort((a, b) => cmpKeys(keyOf(a), keyOf(b)));
        const after = body.search_after;
        if (after) hits = hits.filter((d) => cmpKeys(keyOf(d), after) > 0);
        return {
          hits: {
            hits: hits.slice(0, body.size ?? 10).map((d) => ({ _index: d._index, _id: d._id, sort: keyOf(d), ...(body._source ? { _source: d._source } : {}) })),
          },
        };
      },
      count: async (body: Body) => ({ count: this.matching(body).length }),
      mget: async (body: { docs: { _id: string }[] }) => ({ docs: body.docs.map((d) => ({ ...this.docs[Number(d._id)]!, found: true })) }),
      close: async () => undefined,
    };
    return fake as unknown as Client;
  }
}

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

const line = (sec: number, seq: number, message: string) => makeEvent({ container: WEB, stream: 'stdout', sec, seq, message });

/** Opens a follow and collects what it yields. */
async function follow(es: FakeEs): Promise<{ seen: string[]; history: string[] }> {
  const store = createEsStore(elasticsearchSchema.parse({ url: 'http://127.0.0.1:1' }), () => undefined, es.client());
  const reader = await store.open({ selection: { kind: 'all' }, matched: [], filter: {}, limit: Infinity });
  const history: string[] = [];
  for await (const e of reader.history()) history.push(e.event.message);
  const controller = new AbortController();
  cleanups.push(() => controller.abort());
  const seen: string[] = [];
  void (async () => {
    for await (const e of reader.follow(controller.signal) as AsyncIterable<StoredEvent>) seen.push(e.event.message);
  })();
  return { seen, history };
}

describe('Elasticsearch pages', () => {
  it('page backwards across two hosts\' lines of one time and seq, each once', async () => {
    const es = new FakeEs();
    // Two hosts' collectors counted to the same seq within one whole second.
    for (const host of ['host-b', 'host-a']) for (let seq = 1; seq <= 3; seq++) es.index({ ...line(T0, seq, `${host} ${seq}`), host: { name: host } });
    const store = createEsStore(elasticsearchSchema.parse({ url: 'http://127.0.0.1:1' }), () => undefined, es.client());
    const shown: string[] = [];
    let before: string | undefined;
    do {
      const page = await readPage(store, { containers: [], filter: {} }, 2, before);
      shown.unshift(...page.events.map((e) => e.event.message));
      before = page.next;
    } while (before !== undefined);
    expect(shown).toEqual(['host-a 1', 'host-a 2', 'host-a 3', 'host-b 1', 'host-b 2', 'host-b 3']);
  });
});

describe('Elasticsearch searches while a new data stream starts', () => {
  /** What Elasticsearch answers a search before the first shard of a new index has started. */
  const allShardsFailed = (): Error =>
    Object.assign(new Error('search_phase_execution_exception'), {
      meta: { statusCode: 503, body: { error: { type: 'search_phase_execution_exception', reason: 'all shards failed', root_cause: [] } } },
    });

  it('asks again while no shard answers, and finds the line once one does', async () => {
    const es = new FakeEs();
    es.index(line(T0, 1, 'first line'));
    const client = es.client();
    const search = client.search.bind(client);
    let refused = 0;
    (client as { search: unknown }).search = async (body: unknown) => {
      if (refused < 2) {
        refused++;
        throw allShardsFailed();
      }
      return search(body as never);
    };
    const store = createEsStore(elasticsearchSchema.parse({ url: 'http://127.0.0.1:1' }), () => undefined, client);
    const page = await readPage(store, { containers: [], filter: {} }, 10);
    expect(page.events.map((e) => e.event.message)).toEqual(['first line']);
    expect(refused).toBe(2);
  });

  it('says so when no shard answers for good', async () => {
    const client = new FakeEs().client();
    let tries = 0;
    (client as { search: unknown }).search = async () => {
      tries++;
      throw allShardsFailed();
    };
    const store = createEsStore(elasticsearchSchema.parse({ url: 'http://127.0.0.1:1' }), () => undefined, client);
    await expect(readPage(store, { containers: [], filter: {} }, 10)).rejects.toThrow(/HTTP 503: all shards failed/);
    expect(tries).toBe(5);
  });
});

describe('Elasticsearch follow', () => {
  it('shows a line indexed late with an older @timestamp, within the late window, once', async () => {
    const es = new FakeEs();
    for (let i = 0; i < 10; i++) es.index(line(T0 + i, i + 1, `old ${i}`));
    const { seen, history } = await follow(es);
    expect(history).toHaveLength(10);

    es.index(line(T0 + 40, 100, 'new'));
    await until('the new line', () => seen.includes('new'), 10_000, () => seen);
    // Backfilled: 15 s older than the newest line, indexed after it.
    es.index(line(T0 + 25, 101, 'backfilled'));
    // Late by almost the whole window (2 minutes), e.g. a queue retried after an outage.
    es.index(line(T0 + 40 - 115, 102, 'late'));
    await until('the late lines', () => seen.includes('backfilled') && seen.includes('late'), 10_000, () => seen);
    es.index(line(T0 + 41, 103, 'newer'));
    await until('the next line', () => seen.includes('newer'), 10_000, () => seen);
    // A few more polls: nothing is repeated.
    const searches = es.searchedFrom.length;
    await until('two more polls', () => es.searchedFrom.length >= searches + 2, 10_000);
    // The two late lines came in one poll, which returns them in time order.
    expect(seen).toEqual(['new', 'late', 'backfilled', 'newer']);
    // With no late line in a poll, only the last 5 s are read key by key.
    expect(es.searchedFrom.at(-1)).toBe(line(T0 + 36, 0, '')['@timestamp']);
  }, 30_000);

  it('does not repeat history lines within the late window', async () => {
    const es = new FakeEs();
    // History spread over the 100 s before the newest line, more lines than the recent keys kept for the live stream.
    for (let i = 0; i < 1500; i++) es.index(makeEvent({ container: WEB, stream: 'stdout', sec: T0 + Math.floor(i / 15), nsec: i % 15, seq: i + 1, message: `old ${i}` }));
    const { seen } = await follow(es);
    const searches = es.searchedFrom.length;
    await until('two polls', () => es.searchedFrom.length >= searches + 2, 10_000);
    es.index(line(T0 + 50, 200, 'late'));
    await until('the late line', () => seen.includes('late'), 10_000, () => seen);
    expect(seen).toEqual(['late']);
  }, 30_000);
});
