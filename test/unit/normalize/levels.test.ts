import { describe, expect, it } from 'vitest';
import { LEVEL_NAMES, levelName, levelRank, levelsAtLeast } from '../../../src/collector/levels.js';
import { parseLevel } from '../../../src/tail/filter.js';

describe('one level table for the normalizer and the readers', () => {
  it('names pino numbers, aliases and case the way the normalizer stores them', () => {
    expect([10, 20, 30, 40, 50, 60].map(levelName)).toEqual([...LEVEL_NAMES]);
    expect(['WARNING', 'Err', 'CRITICAL', 'notice', 'information', 'dpanic'].map(levelName)).toEqual(['warn', 'error', 'fatal', 'info', 'info', 'fatal']);
    expect(levelName('verbose')).toBe('verbose');
    expect(levelName(35)).toBeUndefined();
    expect(levelName('x'.repeat(17))).toBeUndefined();
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
