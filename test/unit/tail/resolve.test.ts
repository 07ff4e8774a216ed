import { describe, expect, it } from 'vitest';
import { closeMatches, isUnknown, matchesSelection, resolveSource, selectionLineText, type SourceInfo } from '../../../src/tail/resolve.js';
import { container, fakeId, makeEvent } from '../../helpers/tail.js';

const WEB1: SourceInfo = { id: fakeId('ab12'), name: 'shop-web-1', image: 'nginx', project: 'shop', service: 'web' };
const WEB2: SourceInfo = { id: fakeId('ab34'), name: 'shop-web-2', image: 'nginx', project: 'shop', service: 'web' };
const DB: SourceInfo = { id: fakeId('cd56'), name: 'shop-db-1', image: 'postgres', project: 'shop', service: 'db' };
const OLD_DB: SourceInfo = { id: fakeId('ef78'), name: 'shop-db-1', image: 'postgres', project: 'shop', service: 'db' };
const APP: SourceInfo = { tag: 'app.payments' };
const SOURCES = [WEB1, WEB2, DB, OLD_DB, APP];

describe('resolveSource', () => {
  it('takes a full id first', () => {
    expect(resolveSource(WEB1.id!, SOURCES)).toEqual({ selection: { kind: 'id', value: WEB1.id }, matched: [WEB1] });
  });

  it('takes a name (with or without Docker\'s leading slash), covering every container that had it', () => {
    const r = resolveSource('/shop-db-1', SOURCES);
    expect(r.selection).toEqual({ kind: 'name', value: 'shop-db-1', ids: [DB.id, OLD_DB.id] });
    expect(r.matched).toEqual([DB, OLD_DB]);
  });

  it('takes a compose service, covering its replicas', () => {
    const r = resolveSource('web', SOURCES);
    expect(r.selection).toEqual({ kind: 'service', value: 'web', project: 'shop' });
    expect(r.matched).toEqual([WEB1, WEB2]);
  });

  it('takes the tag of a forward source without container', () => {
    expect(resolveSource('app.payments', SOURCES).selection).toEqual({ kind: 'tag', value: 'app.payments' });
  });

  it('takes a unique id prefix, in any case', () => {
    expect(resolveSource('AB1', SOURCES).selection).toEqual({ kind: 'id', value: WEB1.id });
    expect(resolveSource('cd', SOURCES).selection).toEqual({ kind: 'id', value: DB.id });
  });

  it('refuses an ambiguous prefix and lists what it matched', () => {
    expect(() => resolveSource('ab', SOURCES)).toThrow(/"ab" is ambiguous: it is the start of 2 container ids; give more of the id, or the name:\n {2}shop-web-1 \(id ab1200000000.*\n {2}shop-web-2/);
  });

  it('refuses a service name that two compose projects use, and takes it as PROJECT/SERVICE', () => {
    const other: SourceInfo = { id: fakeId('99'), name: 'blog-web-1', project: 'blog', service: 'web' };
    const both = [...SOURCES, other];
    expect(() => resolveSource('web', both)).toThrow(/"web" is ambiguous: it is a compose service in 2 projects; give it as PROJECT\/SERVICE, or the container name/);
    expect(resolveSource('blog/web', both)).toEqual({ selection: { kind: 'service', value: 'web', project: 'blog' }, matched: [other] });
    expect(resolveSource('/shop/web', both).matched.map((s) => s.name)).toEqual(['shop-web-1', 'shop-web-2']);
    expect(isUnknown('blog/web', both)).toBe(false);
    expect(isUnknown('blog/db', both)).toBe(true);
    expect(() => resolveSource('blog/db', both)).toThrow(/no container, compose service or tag matches "blog\/db"/);
  });

  it('refuses an unknown id and suggests close matches', () => {
    let message = '';
    try {
      resolveSource('shop-wbe-1', SOURCES);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/^no container, compose service or tag matches "shop-wbe-1" among the 5 sources/);
    expect(message).toContain('shop-web-1');
    expect(message).toContain('clogs ps');
    expect(() => resolveSource('zzzzzz', SOURCES)).toThrow(/matches "zzzzzz"/);
  });

  it('refuses an empty query', () => {
    expect(() => resolveSource('', SOURCES)).toThrow(/empty/);
  });
});

describe('isUnknown', () => {
  it('is true only when neither an exact key nor an id prefix matches', () => {
    expect(isUnknown('ab', SOURCES)).toBe(false);
    expect(isUnknown('web', SOURCES)).toBe(false);
    expect(isUnknown('nope', SOURCES)).toBe(true);
  });
});

describe('closeMatches', () => {
  it('ranks substrings and small edit distances, at most five', () => {
    expect(closeMatches('shop-db', SOURCES).map((s) => s.name)).toEqual(['shop-db-1', 'shop-db-1']);
    expect(closeMatches('qqqqqqqq', SOURCES)).toEqual([]);
  });
});

describe('matchesSelection', () => {
  const meta = container(WEB1.id!, 'shop-web-1', { compose: { project: 'shop', service: 'web' } });
  const e = makeEvent({ container: meta, sec: 1, seq: 1, message: 'x' });
  const tagged = makeEvent({ tag: 'app.payments', sec: 1, seq: 2, message: 'y' });

  it('matches by the selection kind', () => {
    expect(matchesSelection({ kind: 'id', value: WEB1.id! }, e)).toBe(true);
    expect(matchesSelection({ kind: 'id', value: WEB2.id! }, e)).toBe(false);
    expect(matchesSelection({ kind: 'name', value: 'shop-web-1' }, e)).toBe(true);
    expect(matchesSelection({ kind: 'service', value: 'web', project: 'shop' }, e)).toBe(true);
    expect(matchesSelection({ kind: 'service', value: 'web', project: 'blog' }, e)).toBe(false);
    expect(matchesSelection({ kind: 'tag', value: 'app.payments' }, tagged)).toBe(true);
    expect(matchesSelection({ kind: 'all' }, tagged)).toBe(true);
  });
});

describe('selectionLineText', () => {
  it('is a text every stored line of the selection holds, or nothing', () => {
    const meta = container(WEB1.id!, 'shop-web-1', { compose: { project: 'shop', service: 'wéb' } });
    const line = JSON.stringify(makeEvent({ container: meta, sec: 1, seq: 1, message: 'x' }));
    expect(line).toContain(selectionLineText({ kind: 'id', value: WEB1.id! }));
    expect(line).toContain(selectionLineText({ kind: 'service', value: 'wéb' }));
    // A name JSON writes escaped is no text to look for as it is.
    expect(selectionLineText({ kind: 'service', value: 'wéb "1"' })).toBeUndefined();
    expect(selectionLineText({ kind: 'name', value: 'shop-web-1' })).toBeUndefined();
    expect(selectionLineText({ kind: 'all' })).toBeUndefined();
  });
});

describe('close matches rank typos first', () => {
  it('a swapped pair of letters is one edit', () => {
    expect(closeMatches('shop-wbe-1', SOURCES)[0]!.name).toBe('shop-web-1');
  });

  it('a name longer than any by more than a third of it is near none, and is not compared letter by letter', () => {
    expect(closeMatches('shop-web-1-x', SOURCES)[0]!.name).toBe('shop-web-1');
    // 16,000 characters against every source: a request line's worth.
    expect(closeMatches('~'.repeat(16_000), Array.from({ length: 1000 }, () => SOURCES).flat())).toEqual([]);
  });
});

describe('error messages', () => {
  it('list close matches with their control characters escaped', () => {
    const evil: SourceInfo[] = [{ tag: 'shop-web\x1b]0;T\x07' }, { id: fakeId('ab'), name: 'shop-web-3\r\x9b2J', image: 'nginx\x7f' }];
    let message = '';
    try {
      resolveSource('shop-web', evil);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain('\n  tag shop-web\\x1b]0;T\\x07\n');
    expect(message).toContain('\n  shop-web-3\\x0d\\x9b2J (id ab0000000000, image nginx\\x7f)\n');
    expect(message).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/);
  });

  it('list ambiguous matches with their control characters escaped', () => {
    const evil: SourceInfo[] = [{ id: fakeId('ab1'), name: 'a\x1b[2J' }, { id: fakeId('ab2'), name: 'b' }];
    expect(() => resolveSource('ab', evil)).toThrow(/\n {2}a\\x1b\[2J \(id ab1/);
  });
});
