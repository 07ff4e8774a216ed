/**
 * Vitest's global setup: one temporary directory per run, holding every
 * directory the tests and the collectors they start create with tmpdir(), and
 * removed when the run ends. Each test cleaning up after itself left
 * thousands of directories in /tmp over a few runs (a collector killed with
 * SIGKILL, a test that fails before its cleanup, helpers with no owner).
 * TMPDIR is set before the test workers start, so they and their child
 * processes inherit it.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export default function setup(): () => void {
  const root = mkdtempSync(join(tmpdir(), 'clogs-test-'));
  // Elasticsearch's and Docker's users may be handed paths below it.
  chmodSync(root, 0o755);
  process.env.TMPDIR = root;
  return () => rmSync(root, { recursive: true, force: true });
}
