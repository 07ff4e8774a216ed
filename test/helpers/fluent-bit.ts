/**
 * Fluent Bit as a real forward client. Its binary is an optional tool, not part
 * of the repository: env FLUENT_BIT, else `../shared/tools/fluent-bit/fluent-bit`
 * next to the repository root. When it is not there the Fluent Bit tests are
 * skipped with the reason, so a plain clone passes `npm test`; with env CI set
 * (or FLUENT_BIT naming a file that does not exist) they fail, naming where
 * they looked.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './elasticsearch.js';
import { tempDir } from './services.js';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SHARED_BINARY = resolve(REPO_ROOT, '../shared/tools/fluent-bit/fluent-bit');

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The binary to run, or why the Fluent Bit tests are skipped; throws when they must not be. */
export function locateFluentBit(): { path: string } | { skip: string } {
  const named = process.env.FLUENT_BIT;
  if (named !== undefined && named !== '') {
    if (executable(named)) return { path: named };
    throw new Error(`FLUENT_BIT=${named} is not an executable file`);
  }
  if (executable(SHARED_BINARY)) return { path: SHARED_BINARY };
  const where = `no Fluent Bit binary: FLUENT_BIT is not set and ${SHARED_BINARY} does not exist`;
  if (process.env.CI) throw new Error(`${where} (CI is set, so the Fluent Bit tests must run)`);
  return { skip: `${where}; set FLUENT_BIT to run them` };
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
