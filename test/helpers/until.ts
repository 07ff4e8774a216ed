/**
 * Waiting for a condition in a test, instead of sleeping: the machine is
 * noisy, so a test waits for what it needs and fails only when it never comes.
 */

/** Checks between polls: short, so a met condition is seen at once. */
const POLL_MS = 20;

/**
 * Polls `cond` (sync, or async such as a query) until it holds; throws after
 * `timeoutMs`, naming `what`, how long it waited and, when given, what
 * `seen` shows of the state it waited on. The arguments follow vitest's own
 * `it(name, fn, timeout)`.
 */
export async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 30_000, seen?: () => unknown): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${seen ? `; seen: ${JSON.stringify(seen())}` : ''}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}
