import { describe, expect, it } from 'vitest';
import { backoffDelay } from '../../../src/sinks/backoff.js';

describe('backoffDelay', () => {
  const policy = { initialMs: 100, maxMs: 30_000 };

  it('doubles from the initial delay, with half of it jittered', () => {
    expect(backoffDelay(1, 0, policy)).toBe(50);
    expect(backoffDelay(1, 0.999999, policy)).toBe(100);
    expect(backoffDelay(2, 0, policy)).toBe(100);
    expect(backoffDelay(3, 0, policy)).toBe(200);
    expect(backoffDelay(4, 0.5, policy)).toBe(600);
  });

  it('stays within the cap however many attempts', () => {
    for (const attempt of [10, 20, 100, 10_000]) {
      expect(backoffDelay(attempt, 0, policy)).toBe(15_000);
      expect(backoffDelay(attempt, 0.999999, policy)).toBeLessThanOrEqual(30_000);
    }
  });

  it('never returns zero or a negative delay', () => {
    expect(backoffDelay(0, 0, policy)).toBe(50);
    expect(backoffDelay(-3, 0, policy)).toBe(50);
  });
});
