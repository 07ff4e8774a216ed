import { describe, expect, it } from 'vitest';
import { matchesLine, mayTakeName, parseTailQuery, tailFilter, takesContainer, takesTag, type TailFilter } from '../../../src/http/tail-filter.js';
import { encodeLine } from '../../../src/collector/event-json.js';
import type { LogEvent } from '../../../src/collector/event.js';
import { LineFields } from '../../../src/collector/line-fields.js';
import type { SourceInfo } from '../../../src/tail/resolve.js';
import type { Store } from '../../../src/tail/store.js';
import { createLogger } from '../../../src/log.js';
import { container, fakeId, makeEvent } from '../../helpers/tail.js';

const WEB = container(fakeId('aa'), 'web-1', { compose: { project: 'shop', service: 'web' } });
const WEB2 = container(fakeId('ab'), 'web-2', { compose: { project: 'shop', service: 'web' } });
/** A store that lists these sources, as the page's history resolves against them. */
const listing = (sources: SourceInfo[]): Store => ({ sources: () => Promise.resolve(sources) }) as Partial<Store> as Store;
const STORE = listing([
  { id: WEB.id!, name: 'web-1', project: 'shop', service: 'web' },
  { id: WEB2.id!, name: 'web-2', project: 'shop', service: 'web' },
  { tag: 'app.orders' },
]);

async function parse(q: string, store?: Store): Promise<TailFilter> {
  const query = parseTailQuery(new URLSearchParams(q));
  if (typeof query === 'string') throw new Error(query);
  return tailFilter(query, store, createLogger('silent'));
}

/** Whether the filter passes the event's rendered line, as the live stream reads it. */
function matches(f: TailFilter, e: LogEvent): boolean {
  const fields = new LineFields();
  fields.read(Buffer.from(encodeLine(e)), 0);
  const taken = e.container !== undefined ? takesContainer(f, e.container) : takesTag(f, e.clogs.tag);
  return taken && matchesLine(f, fields);
}

describe('/tail filter', () => {
  const info = makeEvent({ container: WEB, sec: 1, seq: 1, message: 'Order Placed', stream: 'stdout', level: 'info' });
  const warn = makeEvent({ container: WEB, sec: 1, seq: 2, message: 'slow query', stream: 'stderr', level: 'warn' });
  const plain = makeEvent({ container: WEB, sec: 1, seq: 3, message: 'no level here', stream: 'stdout' });
  const second = makeEvent({ container: WEB2, sec: 1, seq: 4, message: 'from web-2' });
  const tagged = makeEvent({ sec: 1, seq: 5, message: 'from fluent-logger', tag: 'app.orders' });
  const taggedContainer = makeEvent({ container: WEB2, sec: 1, seq: 6, message: 'driver line', tag: 'app.orders' });
  const untagged = makeEvent({ sec: 1, seq: 7, message: 'no tag' });

  it('keeps lines at or above a level, ignoring lines without one', async () => {
    const f = await parse('level=warn');
    expect([info, warn, plain].filter((e) => matches(f, e))).toEqual([warn]);
  });

  it('matches q as a substring of the message in any case', async () => {
    const f = await parse('q=order placed&container=web-1', STORE);
    expect([info, warn, plain].filter((e) => matches(f, e))).toEqual([info]);
  });

  it('selects what the history selects: an id, its unique start, a name, a compose service, a tag of lines without a container', async () => {
    const all = [info, second, tagged, taggedContainer, untagged];
    const selected = async (value: string): Promise<LogEvent[]> => {
      const f = await parse(`container=${encodeURIComponent(value)}`, STORE);
      return all.filter((e) => matches(f, e));
    };
    expect(await selected(WEB.id!)).toEqual([info]);
    expect(await selected('aa')).toEqual([info]);
    expect(await selected('/web-2')).toEqual([second, taggedContainer]);
    expect(await selected('web')).toEqual([info, second, taggedContainer]);
    expect(await selected('shop/web')).toEqual([info, second, taggedContainer]);
    expect(await selected('app.orders')).toEqual([tagged]);
    expect(await selected('forward')).toEqual([]);
  });

  it('takes a container or tag the store does not list yet by the start of its id, its name, compose service or tag when it comes', async () => {
    const f = await parse('container=web-1&container=app.orders');
    expect([info, second, tagged, untagged].filter((e) => matches(f, e))).toEqual([info, tagged]);
    const short = await parse(`container=${WEB2.id!.slice(0, 12)}`);
    expect([info, second].filter((e) => matches(short, e))).toEqual([second]);
    const blog = container(fakeId('bb'), 'blog-web-1', { compose: { project: 'blog', service: 'web' } });
    const fromBlog = makeEvent({ container: blog, sec: 1, seq: 8, message: 'from blog' });
    const scoped = await parse('container=blog/web', STORE);
    expect([info, second, fromBlog].filter((e) => matches(scoped, e))).toEqual([fromBlog]);
  });

  it('takes the values as they are when the store cannot be read', async () => {
    const broken = { sources: () => Promise.reject(new Error('Elasticsearch is down')) } as Partial<Store> as Store;
    const f = await parse('container=web', broken);
    expect([info, second, tagged].filter((e) => matches(f, e))).toEqual([info, second]);
  });

  it('refuses an ambiguous value as the history does', async () => {
    await expect(parse('container=a', STORE)).rejects.toThrow(/"a" is ambiguous: it is the start of 2 container ids/);
  });

  it('passes over a source without a container only when it came under a name no tag selection asks for', async () => {
    const f = await parse('container=app.orders', STORE);
    expect(mayTakeName(f, 'app.orders')).toBe(true);
    expect(mayTakeName(f, 'forward')).toBe(false);
    expect(mayTakeName(await parse(''), 'forward')).toBe(true);
  });

  it('treats empty parameters as absent and names a bad one', async () => {
    expect(await parse('stream=&level=&q=')).toEqual({ selections: [], idPrefixes: [] });
    expect(parseTailQuery(new URLSearchParams('level=loud'))).toMatch(/^level: expected one of/);
    expect(parseTailQuery(new URLSearchParams('stream=both'))).toMatch(/^stream: expected/);
  });

  it('bounds the container values as the history API does: each is checked against every line published', () => {
    const many = new URLSearchParams(Array.from({ length: 101 }, (_, i) => ['container', `c${i}`]));
    expect(parseTailQuery(many)).toBe('container: expected at most 100 values, got 101');
    expect(parseTailQuery(new URLSearchParams({ container: 'x'.repeat(513) }))).toMatch(/^container: expected a name, id, service or tag of at most 512 characters, got one of 513$/);
    expect(parseTailQuery(new URLSearchParams(Array.from({ length: 100 }, (_, i) => ['container', `c${i}`])))).toMatchObject({ containers: expect.arrayContaining(['c0', 'c99']) });
  });
});
