import { describe, expect, it } from 'vitest';
import { LEVEL_NAMES, levelName, levelRank, levelsAtLeast } from '../../../src/collector/levels.js';
import { parseLevel } from '../../../src/tail/filter.js';
import { makeNormalizer, raw } from '../multiline/helpers.js';

describe('one level table for the normalizer and the readers', () => {
  it('names pino numbers, aliases and case the way the normalizer stores them', () => {
    expect([10, 20, 30, 40, 50, 60].map(levelName)).toEqual([...LEVEL_NAMES]);
    expect(['WARNING', 'Err', 'CRITICAL', 'notice', 'information', 'dpanic'].map(levelName)).toEqual(['warn', 'error', 'fatal', 'info', 'info', 'fatal']);
    expect(levelName('verbose')).toBe('verbose');
    expect(levelName(35)).toBeUndefined();
    expect(levelName('x'.repeat(17))).toBeUndefined();
  });

  it('trims a level, and takes text with inner whitespace for no level at all', () => {
    expect(['INFO ', ' Warning\t', '\nverbose '].map(levelName)).toEqual(['info', 'warn', 'verbose']);
    // As stored by an older clogs, read back by --level.
    expect(['info ', ' WARNING'].map(levelRank)).toEqual([levelRank('info'), levelRank('warn')]);
    expect(levelName(` ${'x'.repeat(16)} `)).toBe('x'.repeat(16));
    for (const text of ['a b', 'warn\terror', ' ', '', 'x\u00a0y']) expect(levelName(text)).toBeUndefined();
  });

  it('keeps a level field that is no level under attrs, in JSON and logfmt lines', () => {
    const { n } = makeNormalizer(undefined);
    const json = n.push(raw('{"level":"a b","msg":"x"}'))[0]!;
    const logfmt = n.push(raw('level="not a level" msg=y'))[0]!;
    const padded = n.push(raw('{"level":"INFO ","msg":"z"}'))[0]!;
    expect(json).toMatchObject({ message: 'x', attrs: { level: 'a b' } });
    expect(logfmt).toMatchObject({ message: 'y', attrs: { level: 'not a level' } });
    expect([json.log, logfmt.log]).toEqual([undefined, undefined]);
    expect(padded).toMatchObject({ message: 'z', log: { level: 'info' } });
  });

  it('ranks names and aliases alike, and no property of Object', () => {
    expect(levelRank('warning')).toBe(levelRank('warn'));
    expect(levelRank('ERROR')).toBe(50);
    for (const word of ['constructor', 'toString', '__proto__', 'hasOwnProperty', 'verbose']) expect(levelRank(word)).toBeUndefined();
  });

  it('clogs tail --level refuses a word that is no level', () => {
    expect(parseLevel('Warn')).toBe(40);
    expect(() => parseLevel('constructor')).toThrow('--level: expected one of trace, debug, info, warn, error, fatal; got "constructor"');
  });

  it('lists every stored spelling at or above a rank, for term queries', () => {
    expect(levelsAtLeast(50).sort()).toEqual(['alert', 'crit', 'critical', 'dpanic', 'e', 'emerg', 'eror', 'err', 'error', 'f', 'fatal', 'ftl', 'panic', 'severe']);
  });
});
