/**
 * Test helpers for the Docker input: the real engine, the busybox image the
 * tests run, and containers with a unique name prefix that are removed after.
 */
import { eventsOf } from './batch.js';
import type { EncodedBatch } from '../../src/collector/encoded.js';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, mkdirSync, copyFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { LogEvent } from '../../src/collector/event.js';
import type { Sink } from '../../src/sinks/sink.js';

const execFileP = promisify(execFile);

export const BUSYBOX_IMAGE = 'clogs-busybox:latest';

/** Throws (so the test fails, never skips) when no engine answers. */
export async function requireDockerEngine(): Promise<void> {
  try {
    await execFileP('docker', ['version', '--format', '{{.Server.Version}}'], { timeout: 10_000 });
  } catch (err) {
    throw new Error(`these tests need a running Docker engine (docker version failed: ${(err as Error).message})`);
  }
}

/**
 * Builds `clogs-busybox:latest` when it is missing: Debian's static busybox
 * plus one symlink per applet, imported as a one-layer image (no registry,
 * no network).
 */
export function ensureBusyboxImage(image = BUSYBOX_IMAGE): void {
  const probe = spawnSync('docker', ['image', 'inspect', image], { stdio: 'ignore' });
  if (probe.status === 0) return;
  const root = mkdtempSync(join(tmpdir(), 'clogs-busybox-'));
  try {
    mkdirSync(join(root, 'bin'));
    copyFileSync('/bin/busybox', join(root, 'bin', 'busybox'));
    const applets = execFileSync('/bin/busybox', ['--list'], { encoding: 'utf8' }).split('\n').filter((a) => a && a !== 'busybox');
    for (const applet of applets) symlinkSync('busybox', join(root, 'bin', applet));
    execFileSync('sh', ['-c', `tar -C '${root}' -c . | docker import - ${image}`], { stdio: 'ignore' });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

/** A name prefix no other test run shares. */
export function uniquePrefix(part: string): string {
  return `clogs-t-${part}-${process.pid}-${Math.random().toString(36).slice(2, 7)}`;
}

export async function docker(...args: string[]): Promise<string> {
  const { stdout } = await execFileP('docker', args, { timeout: 120_000, maxBuffer: 64 * 1024 * 1024 });
  return stdout.trim();
}

/** `docker run -d` with the busybox image; returns the full container id. */
export async function runContainer(name: string, script: string, opts: { tty?: boolean; args?: string[] } = {}): Promise<string> {
  const args = ['run', '-d', '--name', name, ...(opts.tty ? ['-t'] : []), ...(opts.args ?? []), BUSYBOX_IMAGE, 'sh', '-c', script];
  return docker(...args);
}

/** Removes every container whose name starts with the prefix. */
export async function removeContainers(prefix: string): Promise<void> {
  const ids = (await docker('ps', '-aq', '--filter', `name=^/${prefix}`)).split('\n').filter(Boolean);
  if (ids.length > 0) await docker('rm', '-f', ...ids).catch(() => undefined);
}

export async function waitExited(name: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const state = await docker('inspect', '--format', '{{.State.Status}}', name);
    if (state === 'exited' || state === 'dead') return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`container ${name} did not exit within ${timeoutMs} ms`);
}

/** A sink that keeps every event in memory, for in-process input tests. */
export class CaptureSink implements Sink {
  readonly name = 'capture';
  readonly events: LogEvent[] = [];
  async start(): Promise<void> {}
  async write(batch: EncodedBatch): Promise<void> {
    this.events.push(...eventsOf(batch));
  }
  async close(): Promise<void> {}
}
