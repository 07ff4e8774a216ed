import { describe, expect, it } from 'vitest';
import type { ContainerMeta, LogEvent } from '../../../src/collector/event.js';
import { EncodedBatch } from '../../../src/collector/encoded.js';
import { encodeLine } from '../../../src/collector/event-json.js';
import { LineFields } from '../../../src/collector/line-fields.js';
import { BulkEncoder, documentIdOfLine, indexName, resolveTarget } from '../../../src/sinks/elasticsearch/bulk.js';

const container: ContainerMeta = { id: 'a'.repeat(64), name: 'web', image: { name: 'nginx' }, labels: { 'com.x': 'y' } };

function event(over: Partial<LogEvent> = {}): LogEvent {
  return {
    '@timestamp': '2026-11-22T09:53:10.526990943Z',
    message: 'GET / 200',
    stream: 'stdout',
    container,
    host: { name: 'h1' },
    clogs: { input: 'docker', seq: 1, ordinal: 0 },
    ...over,
  };
}

/** The `_id` of an event's rendered line, which the sink computes. */
function id(e: LogEvent): string {
  const fields = new LineFields();
  fields.read(Buffer.from(encodeLine(e)), 0);
  return documentIdOfLine(fields, e.container);
}


describe('documentId', () => {
  it('keeps the rule of docs/elasticsearch.md: ids computed by earlier releases come out the same', () => {
    // Pinned from the release that hashed event objects rather than reading lines.
    expect(id(event())).toBe('5XvCBvy3G_qkriphTaL_-1');
    const other = event({
      message: 'caf\u00e9 "q" \\ \ud83d\ude00',
      stream: 'stderr',
      container: undefined,
      log: { level: 'warn' },
      attrs: { n: 1.5, o: { a: [1, 'x'] } },
      clogs: { input: 'forward', tag: 'app.a', seq: 1, ordinal: 3, piece: 2 },
    });
    expect(id(other)).toBe('Q3LUtz8tFM7Hf1fF4wdVmd');
  });

  it('is 22 base64url characters and the same for the same line', () => {
    const a = id(event());
    expect(a).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(id(event())).toBe(a);
  });

  it('ignores what differs between deliveries of one line: seq, host, input metadata objects', () => {
    const a = id(event());
    expect(id(event({ clogs: { input: 'docker', seq: 99, ordinal: 0 } }))).toBe(a);
    expect(id(event({ host: { name: 'other' } }))).toBe(a);
    expect(id(event({ container: { ...container, name: 'renamed', labels: {} } }))).toBe(a);
  });

  it('differs for everything that identifies a line', () => {
    const base = id(event());
    const variants: LogEvent[] = [
      event({ '@timestamp': '2026-11-22T09:53:10.526990944Z' }),
      event({ stream: 'stderr' }),
      event({ stream: undefined }),
      event({ clogs: { input: 'docker', seq: 1, ordinal: 1 } }),
      event({ clogs: { input: 'docker', seq: 1, ordinal: 0, piece: 0 } }),
      event({ clogs: { input: 'docker', seq: 1, ordinal: 0, piece: 1 } }),
      event({ message: 'GET / 201' }),
      event({ container: { ...container, id: 'b'.repeat(64) } }),
      event({ log: { level: 'info' } }),
      event({ attrs: { user: 1 } }),
      event({ attrs: { user: 2 } }),
    ];
    const ids = variants.map(id);
    expect(new Set([base, ...ids]).size).toBe(variants.length + 1);
  });

  it('uses the tag, then the input, as the source when there is no container', () => {
    const tagged = id(event({ container: undefined, clogs: { input: 'forward', tag: 'app.web', seq: 1, ordinal: 0 } }));
    const other = id(event({ container: undefined, clogs: { input: 'forward', tag: 'app.db', seq: 1, ordinal: 0 } }));
    const untagged = id(event({ container: undefined, clogs: { input: 'forward', seq: 1, ordinal: 0 } }));
    expect(new Set([tagged, other, untagged]).size).toBe(3);
  });

  it('cannot be confused by separators inside the parts', () => {
    const a = id(event({ container: undefined, clogs: { input: 'forward', tag: 'a|1', seq: 1, ordinal: 0 }, message: 'x' }));
    const b = id(event({ container: undefined, clogs: { input: 'forward', tag: 'a', seq: 1, ordinal: 0 }, message: '1|x' }));
    expect(a).not.toBe(b);
  });
});

describe('BulkEncoder', () => {
  it('renders a create action and the document, two lines per event', () => {
    const enc = new BulkEncoder(resolveTarget({ data_stream: { dataset: 'clogs', namespace: 'default' } }));
    const lines = enc.encode(EncodedBatch.of([event({ attrs: { k: 'v' }, log: { level: 'warn' } }), event({ message: 'second\nline' })])).toString().split('\n');
    expect(lines).toHaveLength(5);
    expect(lines[4]).toBe('');
    const action = JSON.parse(lines[0]!);
    expect(action).toEqual({ create: { _index: 'logs-clogs-default', _id: id(event({ attrs: { k: 'v' }, log: { level: 'warn' } })) } });
    expect(JSON.parse(lines[1]!)).toEqual(event({ attrs: { k: 'v' }, log: { level: 'warn' } }));
    expect(JSON.parse(lines[3]!).message).toBe('second\nline');
  });

  it('renders the same bytes for the same events (a replay sends identical requests)', () => {
    const a = new BulkEncoder(resolveTarget({ data_stream: { dataset: 'clogs', namespace: 'default' } })).encode(EncodedBatch.of([event(), event()]));
    const b = new BulkEncoder(resolveTarget({ data_stream: { dataset: 'clogs', namespace: 'default' } })).encode(EncodedBatch.of([event(), event()]));
    expect(a.equals(b)).toBe(true);
  });

  it('picks the daily index from the event time', () => {
    const enc = new BulkEncoder(resolveTarget({ index: 'clogs-%Y.%m.%d', data_stream: { dataset: 'clogs', namespace: 'default' } }));
    const action = JSON.parse(enc.encode(EncodedBatch.of([event()])).toString().split('\n')[0]!);
    expect(action.create._index).toBe('clogs-2026.11.22');
  });
});

describe('targets', () => {
  it('names the data stream logs-<dataset>-<namespace>', () => {
    expect(resolveTarget({ data_stream: { dataset: 'app.web', namespace: 'prod' } })).toMatchObject({ kind: 'data_stream', name: 'logs-app.web-prod' });
  });

  it('expands %Y %m %d', () => {
    expect(indexName('x-%Y-%m-%d', '2027-01-05T00:00:00.000000000Z')).toBe('x-2027-01-05');
  });

  it('refuses index patterns Elasticsearch would refuse, with the key and an example', () => {
    for (const bad of ['Clogs-%Y', 'clogs logs', '_clogs', 'clogs-%H', 'a*b', '']) {
      expect(() => resolveTarget({ index: bad, data_stream: { dataset: 'c', namespace: 'd' } })).toThrow(/sinks\.elasticsearch\.index: .*clogs-%Y\.%m\.%d/);
    }
  });
});
