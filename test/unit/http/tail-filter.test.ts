import { describe, expect, it } from 'vitest';
import { matchesTailFilter, mayHoldWantedTag, parseTailFilter, wantsContainer, type TailFilter } from '../../../src/http/tail-filter.js';
import { encodeLine } from '../../../src/collector/event-json.js';
import type { LogEvent } from '../../../src/collector/event.js';
import { LineFields } from '../../../src/collector/line-fields.js';
import { container, fakeId, makeEvent } from '../../helpers/tail.js';

const WEB = container(fakeId('aa'), 'web-1', { compose: { project: 'shop', service: 'web' } });
const parse = (q: string): TailFilter => {
  const f = parseTailFilter(new URLSearchParams(q));
  if (typeof f === 'string') throw new Error(f);
  return f;
};

/** Whether the filter passes the event's rendered line, as the live stream reads it. */
function matches(f: TailFilter, e: LogEvent): boolean {
  const fields = new LineFields();
  fields.read(Buffer.from(encodeLine(e)), 0);
  return matchesTailFilter(f, wantsContainer(f, e.container), fields);
}

describe('/tail filter', () => {
  const info = makeEvent({ container: WEB, sec: 1, seq: 1, message: 'Order Placed', stream: 'stdout', level: 'info' });
  const warn = makeEvent({ container: WEB, sec: 1, seq: 2, message: 'slow query', stream: 'stderr', level: 'warn' });
  const plain = makeEvent({ container: WEB, sec: 1, seq: 3, message: 'no level here', stream: 'stdout' });

  it('keeps lines at or above a level, ignoring lines without one', () => {
    const f = parse('level=warn');
    expect([info, warn, plain].filter((e) => matches(f, e))).toEqual([warn]);
  });

  it('matches q as a substring of the message in any case', () => {
    const f = parse('q=order placed&container=web');
    expect([info, warn, plain].filter((e) => matches(f, e))).toEqual([info]);
  });

  it('matches a container by id prefix, name or compose service, and a forward tag', () => {
    const tagged = makeEvent({ sec: 1, seq: 4, message: 'from fluent-logger', tag: 'app.orders' });
    const untagged = makeEvent({ sec: 1, seq: 5, message: 'no tag' });
    for (const want of ['aa', 'web-1', 'web']) expect([info, tagged].filter((e) => matches(parse(`container=${want}`), e))).toEqual([info]);
    expect([info, tagged, untagged].filter((e) => matches(parse('container=app.orders'), e))).toEqual([tagged]);
    expect([untagged].filter((e) => matches(parse('container=forward'), e))).toEqual([]);
  });

  it('treats empty parameters as absent and names a bad one', () => {
    expect(parse('stream=&level=&q=')).toEqual({ containers: [], tagMarks: [] });
    expect(parseTailFilter(new URLSearchParams('level=loud'))).toMatch(/^level: expected one of/);
    expect(parseTailFilter(new URLSearchParams('stream=both'))).toMatch(/^stream: expected/);
  });

  it('passes over a chunk of a container it does not want unless the chunk mentions a wanted tag', () => {
    const other = container(fakeId('bb'), 'db-1');
    const f = parse('container=app.orders&container=web');
    expect(wantsContainer(f, WEB)).toBe(true);
    expect(wantsContainer(f, other)).toBe(false);
    const chunk = (...events: LogEvent[]) => Buffer.from(events.map(encodeLine).join(''));
    const untagged = makeEvent({ container: other, sec: 1, seq: 6, message: 'tag app.orders in the text' });
    const tagged = makeEvent({ container: other, sec: 1, seq: 7, message: 'x', tag: 'app.orders' });
    const inAttrs: LogEvent = { ...makeEvent({ container: other, sec: 1, seq: 8, message: 'x' }), attrs: { a: 1, tag: 'app.orders', seq: 2 } };
    expect(mayHoldWantedTag(f, chunk(untagged, untagged))).toBe(false);
    expect(mayHoldWantedTag(f, chunk(untagged, tagged))).toBe(true);
    // Read line by line then, where the attrs field does not count.
    expect(mayHoldWantedTag(f, chunk(inAttrs))).toBe(true);
    expect(matches(f, inAttrs)).toBe(false);
    expect(matches(f, tagged)).toBe(true);
  });
});
