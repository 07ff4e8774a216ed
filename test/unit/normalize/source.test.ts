import { describe, expect, it } from 'vitest';
import type { ContainerMeta } from '../../../src/collector/event.js';
import { sourceId, sourceName } from '../../../src/collector/source.js';
import { sourceLabel } from '../../../src/tail/resolve.js';
import { makeEvent } from '../../helpers/tail.js';

const ID = 'f'.repeat(64);

describe('one rule for which source a line belongs to', () => {
  it('identifies by container id, else tag, else input; an empty string is absent', () => {
    expect(sourceId({ id: ID, name: 'web' }, 'docker.fff', 'forward')).toBe(ID);
    expect(sourceId({ name: 'web' }, 'docker.fff', 'forward')).toBe('docker.fff');
    expect(sourceId(undefined, '', 'forward')).toBe('forward');
    expect(sourceId({ id: '' }, undefined, 'docker')).toBe('docker');
  });

  it('names by container name, else id, else tag, else input', () => {
    expect(sourceName({ id: ID, name: 'web' }, 'docker.fff', 'forward')).toBe('web');
    expect(sourceName({ id: ID, name: '' }, 'docker.fff', 'forward')).toBe(ID);
    expect(sourceName(undefined, 'app.billing', 'forward')).toBe('app.billing');
    expect(sourceName(undefined, undefined, 'forward')).toBe('forward');
  });

  it('labels output by that name, with a container id cut to its short form', () => {
    const ev = (container: ContainerMeta | undefined, tag?: string) =>
      makeEvent({ ...(container ? { container } : {}), sec: 1795341190, seq: 1, message: 'm', ...(tag ? { tag } : {}) });
    expect(sourceLabel(ev({ id: ID, name: 'web' }))).toBe('web');
    expect(sourceLabel(ev({ id: ID }, 'docker.fff'))).toBe(ID.slice(0, 12));
    expect(sourceLabel(ev(undefined, 'app.billing'))).toBe('app.billing');
  });
});
