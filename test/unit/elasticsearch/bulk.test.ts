import { hash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { ContainerMeta, LogEvent } from '../../../src/collector/event.js';
import { EncodedBatch } from '../../../src/collector/encoded.js';
import { encodeLine } from '../../../src/collector/event-json.js';
import { LineFields } from '../../../src/collector/line-fields.js';
import { BulkEncoder, indexName, resolveTarget } from '../../../src/sinks/elasticsearch/bulk.js';
import { documentIdOfLine } from '../../../src/sinks/elasticsearch/document-id.js';

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

/** The rule as text, as ids in Elasticsearch were computed: the sink builds the same key from bytes. */
function keyed(e: LogEvent): string {
  const source = e.container?.id || e.clogs.tag || e.clogs.input;
  const level = e.log?.level ?? '';
  const key =
    `${source.length}:${source}|${e['@timestamp']}|${e.stream ?? ''}|${e.clogs.ordinal}|${e.clogs.piece ?? ''}|` +
    `${level.length}:${level}|${e.message.length}:${e.message}|${e.attrs === undefined ? '' : JSON.stringify(e.attrs)}`;
  return hash('sha256', key, 'base64url').slice(0, 22);
}

/** A string of `n` pieces drawn from what takes each branch of the key's decoding: escapes, surrogates alone and paired, every UTF-8 width. */
function randomText(n: number, random: () => number): string {
  const pieces = ['a', 'Z', ' ', '"', '\\', '/', '\b', '\f', '\n', '\r', '\t', '\u0001', '\u001f', '\u007f', '\u00e9', '\u07ff', '\u0800', '\u4e2d', '\uffff', '\ud800', '\udbff', '\udc00', '\udfff', '\ud83d\ude00', '\u2028'];
  let s = '';
  for (let i = 0; i < n; i++) s += pieces[Math.floor(random() * pieces.length)];
  return s;
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

  it('is the hash of the key text docs/elasticsearch.md defines, for every kind of line', () => {
    const messages = ['', 'plain', 'caf\u00e9 \u4e2d\u6587 \ud83d\ude00', 'q"uote \\ back\tslash\u0001', 'lone \ud800 surrogate', '\u2028\u00ff\u07ff\u0800\uffff'];
    const variants: LogEvent[] = [];
    for (const message of messages) {
      variants.push(event({ message }));
      variants.push(event({ message, stream: undefined, log: { level: message || 'x' }, clogs: { input: 'docker', seq: 7, ordinal: 12, piece: 3 } }));
      variants.push(event({ message, container: undefined, attrs: { m: message, n: -1.5e-7, o: { a: [true, null] } }, clogs: { input: 'forward', tag: `t.${message}`, seq: 1, ordinal: 0 } }));
      variants.push(event({ message, container: undefined, clogs: { input: 'forward', tag: '', seq: 1, ordinal: 0 } }));
      variants.push(event({ message, container: { id: `c\u00e9${message}`, name: 'n' } }));
      variants.push(event({ message, container: { id: '', name: 'n' }, clogs: { input: 'forward', tag: 'tag', seq: 1, ordinal: 0 } }));
    }
    for (const e of variants) expect(id(e)).toBe(keyed(e));
  });

  it('decodes any escaped message, tag and level as JSON.parse would, lone surrogates as U+FFFD', () => {
    let seed = 7;
    const random = (): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    for (let i = 0; i < 2000; i++) {
      const message = randomText(1 + (i % 40), random);
      const e = i % 2 === 0 ? event({ message, log: { level: randomText(3, random) } }) : event({ message, container: undefined, clogs: { input: 'forward', tag: randomText(5, random), seq: 1, ordinal: 0 } });
      expect(id(e)).toBe(keyed(e));
    }
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

  it('picks the daily index from each event time', () => {
    const enc = new BulkEncoder(resolveTarget({ index: 'clogs-%Y.%m.%d', data_stream: { dataset: 'clogs', namespace: 'default' } }));
    const days = ['2026-11-22T09:53:10.526990943Z', '2026-11-22T23:59:59.999999999Z', '2026-11-23T00:00:00.000000000Z', '2027-01-01T00:00:00.000000000Z'];
    const lines = enc.encode(EncodedBatch.of(days.map((t) => event({ '@timestamp': t })))).toString().split('\n');
    const indices = [0, 2, 4, 6].map((i) => JSON.parse(lines[i]!).create._index);
    expect(indices).toEqual(['clogs-2026.11.22', 'clogs-2026.11.22', 'clogs-2026.11.23', 'clogs-2027.01.01']);
  });
});

describe('targets', () => {
  it('names the data stream logs-<dataset>-<namespace>', () => {
    expect(resolveTarget({ data_stream: { dataset: 'app.web', namespace: 'prod' } })).toMatchObject({ kind: 'data_stream', name: 'logs-app.web-prod' });
  });

  it('expands %Y %m %d', () => {
    expect(indexName('x-%Y-%m-%d', '2027-01-05T00:00:00.000000000Z')).toBe('x-2027-01-05');
  });
});
