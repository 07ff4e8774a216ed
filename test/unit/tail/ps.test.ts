import { describe, expect, it } from 'vitest';
import { formatPsTable, psRows } from '../../../src/tail/ps.js';
import type { SourceStats } from '../../../src/tail/store.js';
import { fakeId } from '../../helpers/tail.js';

const stats = (info: SourceStats['info']): SourceStats => ({
  info,
  first: '2026-11-22T09:53:10.000000005Z',
  last: '2026-11-22T09:53:11.000000005Z',
  stdout: 0,
  stderr: 0,
  other: 3,
});

describe('formatPsTable', () => {
  it('shows the control characters of a tag, a name and an image as escapes', () => {
    const rows = psRows(
      [stats({ tag: 'evil\x1b[2J\x1b]0;T\x07tag' }), stats({ id: fakeId('ab'), name: 'web\rroot\x7f\x9b', image: 'img\x1b]52;c;eA==\x07' })],
      new Map([[fakeId('ab'), 'running']]),
    );
    const table = formatPsTable(rows);
    expect(table).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/);
    expect(table).toContain('evil\\x1b[2J\\x1b]0;T\\x07tag');
    expect(table).toContain('web\\x0droot\\x7f\\x9b');
    expect(table).toContain('img\\x1b]52;c;eA==\\x07');
  });

  it('prints one row per source, whatever newlines and tabs its tag holds', () => {
    const rows = psRows([stats({ tag: 'app\nfake-row   abc123   running' }), stats({ tag: 'tab\tbed' })], undefined);
    const table = formatPsTable(rows).trimEnd().split('\n');
    expect(table).toHaveLength(3);
    expect(table[1]).toContain('app\\x0afake-row');
    expect(table[2]).toContain('tab\\x09bed');
  });

  it('pads columns to the escaped width, and leaves the rows (ps -o json, the API) as stored', () => {
    const rows = psRows([stats({ tag: 'a\x1bb' }), stats({ tag: 'longer-tag' })], undefined);
    expect(rows.map((r) => r.name)).toEqual(['a\x1bb', 'longer-tag']);
    const [, first, second] = formatPsTable(rows).split('\n');
    expect(first!.indexOf(' -')).toBe(second!.indexOf(' -'));
    expect(first!.startsWith('a\\x1bb ')).toBe(true);
  });
});
