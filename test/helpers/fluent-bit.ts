/**
 * Fluent Bit as a real forward client: the binary in test/tools/fluent-bit
 * (its README says what it is), or the one env FLUENT_BIT names.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './elasticsearch.js';
import { tempDir } from './services.js';

const BUNDLED = fileURLToPath(new URL('../tools/fluent-bit/fluent-bit', import.meta.url));

/** The binary to run; throws, naming it, when it is not an executable file. */
export function fluentBitBinary(): string {
  const path = process.env.FLUENT_BIT || BUNDLED;
  try {
    accessSync(path, constants.X_OK);
  } catch {
    throw new Error(`Fluent Bit binary ${path} is not an executable file (FLUENT_BIT, else test/tools/fluent-bit/fluent-bit)`);
  }
  return path;
}

export interface RunningFluentBit {
  /** Its in_forward port on 127.0.0.1. */
  port: number;
  /** What it printed so far (stdout and stderr). */
  output(): string;
  /** SIGTERM, then waits for it to exit (SIGKILL if it has not after 10 s). */
  stop(): Promise<void>;
}

/**
 * Runs `binary` with in_forward on a free 127.0.0.1 port and one [OUTPUT]
 * section of `output` keys; resolves once in_forward accepts connections.
 */
export async function startFluentBit(binary: string, output: Record<string, string | number | boolean>): Promise<RunningFluentBit> {
  const port = await freePort();
  const dir = tempDir('fluent-bit');
  const conf = join(dir, 'fluent-bit.conf');
  const section = (name: string, keys: Record<string, string | number | boolean>): string =>
    `[${name}]\n${Object.entries(keys).map(([k, v]) => `    ${k} ${String(v)}\n`).join('')}`;
  writeFileSync(
    conf,
    section('SERVICE', { flush: 0.2, grace: 1, log_level: 'debug', http_server: 'off' }) +
      section('INPUT', { name: 'forward', listen: '127.0.0.1', port }) +
      section('OUTPUT', { match: '*', ...output }),
  );
  const child = spawn(binary, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  const running: RunningFluentBit = { port, output: () => out, stop: () => stop(child, exited) };
  const deadline = Date.now() + 30_000;
  while (!(await accepts(port))) {
    if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
      await running.stop();
      throw new Error(`Fluent Bit (${binary}) did not listen on 127.0.0.1:${port}; it printed:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return running;
}

async function stop(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

function accepts(port: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      done(true);
    });
    socket.once('error', () => done(false));
  });
}
