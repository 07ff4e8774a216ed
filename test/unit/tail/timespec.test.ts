import { describe, expect, it } from 'vitest';
import { ClogsError } from '../../../src/errors.js';
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

  it('refuses dates and times the calendar does not have, instead of rolling them over', () => {
    for (const bad of [
      '2026-02-30',
      '2026-02-29T00:00:00Z',
      '2100-02-29',
      '2026-04-31',
      '2026-13-01',
      '2026-00-10',
      '2026-11-00',
      '2026-11-22T24:00:00Z',
      '2026-11-22T12:60:00Z',
      '2026-11-22T23:59:60Z',
      '2026-11-22T12:00:00+24:00',
      '2026-11-22T12:00:00+01:60',
    ]) {
      expect(() => parseTimeSpec('--since', bad), bad).toThrow(`--since: expected a real date and time (month 01-12, a day the month has, hour 00-23, minutes and seconds 00-59, offset up to 23:59), got "${bad}"`);
    }
    expect(parseTimeSpec('--since', '2024-02-29')).toBe('2024-02-29T00:00:00.000000000Z');
    expect(parseTimeSpec('--since', '2000-02-29T23:59:59Z')).toBe('2000-02-29T23:59:59.000000000Z');
    expect(parseTimeSpec('--since', '2026-11-22t09:53:10z')).toBe('2026-11-22T09:53:10.000000000Z');
  });

  it('refuses a time outside the years 0000 to 9999, which would not compare as a string', () => {
    for (const bad of ['999999999999', '253402300800', '99999999999w', '9999-12-31T23:59:59-00:01', '0000-01-01T00:30:00+01:00']) {
      let thrown: unknown;
      try {
        parseTimeSpec('until', bad, NOW);
      } catch (err) {
        thrown = err;
      }
      expect(thrown, bad).toBeInstanceOf(ClogsError);
      expect(thrown).toMatchObject({ code: 'CLOGS_TAIL', message: `until: expected a time in the years 0000 to 9999, got "${bad}"` });
    }
  });

  it('accepts the first and last instants of that range', () => {
    expect(parseTimeSpec('--since', '0000-01-01')).toBe('0000-01-01T00:00:00.000000000Z');
    expect(parseTimeSpec('--since', '0000-01-01T01:00:00+01:00')).toBe('0000-01-01T00:00:00.000000000Z');
    expect(parseTimeSpec('--until', '9999-12-31T23:59:59.999999999Z')).toBe('9999-12-31T23:59:59.999999999Z');
    expect(parseTimeSpec('--until', '253402300799.999999999')).toBe('9999-12-31T23:59:59.999999999Z');
    expect(parseTimeSpec('--since', '0.5')).toBe('1970-01-01T00:00:00.500000000Z');
    expect(parseTimeSpec('--since', `${Math.floor(NOW / 1000) + 62167219200}s`, NOW)).toBe('0000-01-01T00:00:00.000000000Z');
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

  it('stays within the years 0000 to 9999, so a ceiling near the end still compares as one', () => {
    const last = '9999-12-31T23:59:59.999999999Z';
    expect(shiftTimestamp('9999-12-31T23:59:55.000000000Z', 10_000_000_000n)).toBe(last);
    expect('2026-11-22T10:00:00.000000000Z' < shiftTimestamp(last, 1n)).toBe(true);
    expect(shiftTimestamp('0000-01-01T00:00:05.000000000Z', -10_000_000_000n)).toBe('0000-01-01T00:00:00.000000000Z');
  });
});
