import { describe, expect, it } from 'vitest';
import { parseDurationNs, parseTimeSpec, shiftTimestamp } from '../../../src/tail/timespec.js';

const NOW = Date.parse('2026-11-22T10:00:00.000Z');

describe('parseDurationNs', () => {
  it('reads single and compound Go-style durations', () => {
    expect(parseDurationNs('10m')).toBe(600_000_000_000n);
    expect(parseDurationNs('1h30m')).toBe(5_400_000_000_000n);
    expect(parseDurationNs('2d')).toBe(172_800_000_000_000n);
    expect(parseDurationNs('1.5s')).toBe(1_500_000_000n);
    expect(parseDurationNs('250ms')).toBe(250_000_000n);
    expect(parseDurationNs('7ns')).toBe(7n);
  });

  it('rejects anything else', () => {
    for (const bad of ['', '10', 'm', '10 m', '-5m', '1y', 'abc']) expect(parseDurationNs(bad)).toBeUndefined();
  });
});

describe('parseTimeSpec', () => {
  it('turns a duration into the time that long before now, as a 9-digit timestamp', () => {
    expect(parseTimeSpec('--since', '10m', NOW)).toBe('2026-11-22T09:50:00.000000000Z');
    expect(parseTimeSpec('--since', '1h30m', NOW)).toBe('2026-11-22T08:30:00.000000000Z');
    expect(parseTimeSpec('--since', '1ns', NOW)).toBe('2026-11-22T09:59:59.999999999Z');
  });

  it('keeps every fractional digit of an RFC 3339 time and converts offsets to UTC', () => {
    expect(parseTimeSpec('--since', '2026-11-22T09:53:10.526990943Z')).toBe('2026-11-22T09:53:10.526990943Z');
    expect(parseTimeSpec('--since', '2026-11-22T11:53:10.5+02:00')).toBe('2026-11-22T09:53:10.500000000Z');
    expect(parseTimeSpec('--since', '2026-11-22 09:53:10Z')).toBe('2026-11-22T09:53:10.000000000Z');
  });

  it('reads a date as midnight UTC, and Unix seconds', () => {
    expect(parseTimeSpec('--until', '2026-11-22')).toBe('2026-11-22T00:00:00.000000000Z');
    expect(parseTimeSpec('--until', '1795341190.25')).toBe('2026-11-22T09:53:10.250000000Z');
  });

  it('names the flag and the accepted forms when it cannot read the value', () => {
    expect(() => parseTimeSpec('--since', 'yesterday')).toThrow(/--since: expected a duration like "10m".*got "yesterday"/);
  });

  it('gives bounds that compare as strings with stored timestamps', () => {
    const since = parseTimeSpec('--since', '5m', NOW);
    expect('2026-11-22T09:55:00.000000001Z' >= since).toBe(true);
    expect('2026-11-22T09:54:59.999999999Z' >= since).toBe(false);
  });
});

describe('shiftTimestamp', () => {
  it('moves a timestamp by nanoseconds across second boundaries', () => {
    expect(shiftTimestamp('2026-11-22T10:00:00.000000000Z', -1n)).toBe('2026-11-22T09:59:59.999999999Z');
    expect(shiftTimestamp('2026-11-22T10:00:00.999999999Z', 1n)).toBe('2026-11-22T10:00:01.000000000Z');
  });
});
