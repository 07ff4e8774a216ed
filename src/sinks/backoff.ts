/**
 * Capped exponential backoff, shared by every retry loop of the sinks: the
 * Elasticsearch sender and the disk writes that wait out a full disk.
 */
export interface BackoffPolicy {
  /** First delay, ms. */
  initialMs: number;
  /** Largest delay, ms. */
  maxMs: number;
}

/**
 * Exponential backoff with "equal jitter": half the capped delay is fixed,
 * half random, so retries of many requests spread out but never collapse to
 * zero (AWS Architecture Blog, "Exponential Backoff And Jitter").
 * `attempt` counts from 1; `random` is in [0, 1).
 */
export function backoffDelay(attempt: number, random: number, policy: BackoffPolicy): number {
  const exp = Math.min(policy.maxMs, policy.initialMs * 2 ** Math.min(Math.max(attempt - 1, 0), 30));
  return Math.round(exp / 2 + (exp / 2) * random);
}
