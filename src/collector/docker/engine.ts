/**
 * Which Docker engine to talk to, the dockerode client for it, and how its
 * log streams are read: `docker.host` from the config, else DOCKER_HOST,
 * else the local socket.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Docker from 'dockerode';
import type { DockerConfig } from '../../config/schema.js';
import { ClogsError } from '../../errors.js';
import { dockerodeLogOpener, rawLogOpener, type OpenLogs } from './log-stream.js';

export const DEFAULT_ENGINE = 'unix:///var/run/docker.sock';

export interface Engine {
  /** For logs and the ready line: `unix:///var/run/docker.sock`, `tcp://10.0.0.5:2376`. */
  address: string;
  /** Set by config or DOCKER_HOST: keep trying when it does not answer, instead of switching the input off. */
  explicit: boolean;
  docker: Docker;
  /** Log streams: our own requests on a plain socket, dockerode's over TLS (log-stream.ts). */
  openLogs: OpenLogs;
}

export function connectEngine(cfg: Pick<DockerConfig, 'host' | 'tls'>, env: NodeJS.ProcessEnv = process.env): Engine {
  const configured = cfg.host ?? env.DOCKER_HOST;
  const address = configured ?? DEFAULT_ENGINE;
  // Every connection key is given, even when undefined: dockerode merges our
  // options over what it derives from DOCKER_HOST itself.
  const base = { host: undefined, port: undefined, socketPath: undefined, ca: undefined, cert: undefined, key: undefined, version: undefined };
  if (address.startsWith('unix://')) {
    const socketPath = address.slice('unix://'.length);
    return { address, explicit: configured !== undefined, docker: new Docker({ ...base, socketPath, protocol: 'http' }), openLogs: rawLogOpener({ path: socketPath }) };
  }
  let url: URL;
  try {
    url = new URL(/^[a-z]+:\/\//.test(address) ? address : `tcp://${address}`);
  } catch (err) {
    throw new ClogsError('CLOGS_CONFIG', `docker.host: expected unix:///path or tcp://host:port, got ${JSON.stringify(address)}`, { cause: err });
  }
  if (!['tcp:', 'http:', 'https:'].includes(url.protocol)) {
    throw new ClogsError('CLOGS_CONFIG', `docker.host: unsupported scheme ${url.protocol} in ${JSON.stringify(address)} (use unix:// or tcp://)`);
  }
  const tls = tlsFiles(cfg, env);
  const https = url.protocol === 'https:' || tls !== undefined;
  const port = url.port || (https ? '2376' : '2375');
  const docker = new Docker({ ...base, host: url.hostname, port, protocol: https ? 'https' : 'http', ...tls });
  return {
    address,
    explicit: true,
    docker,
    openLogs: https ? dockerodeLogOpener(docker) : rawLogOpener({ host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(port) }),
  };
}

function tlsFiles(cfg: Pick<DockerConfig, 'tls'>, env: NodeJS.ProcessEnv): { ca?: Buffer; cert?: Buffer; key?: Buffer } | undefined {
  const read = (file: string | undefined, what: string): Buffer | undefined => {
    if (file === undefined) return undefined;
    try {
      return readFileSync(file);
    } catch (err) {
      throw new ClogsError('CLOGS_CONFIG', `docker.tls.${what}: cannot read ${file}: ${(err as Error).message}`, { cause: err });
    }
  };
  if (cfg.tls) {
    const out: { ca?: Buffer; cert?: Buffer; key?: Buffer } = {};
    const ca = read(cfg.tls.ca, 'ca');
    const cert = read(cfg.tls.cert, 'cert');
    const key = read(cfg.tls.key, 'key');
    if (ca) out.ca = ca;
    if (cert) out.cert = cert;
    if (key) out.key = key;
    return out;
  }
  // The docker CLI's own convention, so a shell set up for `docker` works as is.
  if (env.DOCKER_TLS_VERIFY === '1' && env.DOCKER_CERT_PATH) {
    const dir = env.DOCKER_CERT_PATH;
    return { ca: read(join(dir, 'ca.pem'), 'ca'), cert: read(join(dir, 'cert.pem'), 'cert'), key: read(join(dir, 'key.pem'), 'key') } as { ca: Buffer; cert: Buffer; key: Buffer };
  }
  return undefined;
}

const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 30_000;

/** How long to wait before connecting to the engine again after `previous`: doubling from 0.5 s to 30 s. */
export function reconnectDelay(previous: number): number {
  return Math.min(RECONNECT_MAX_MS, Math.max(RECONNECT_MIN_MS, previous * 2));
}

/** The engine's stream of container events with these actions (dockerode takes filters and an abort signal; its typings do not say so). */
export function containerEvents(docker: Docker, actions: readonly string[], signal: AbortSignal): Promise<NodeJS.ReadableStream> {
  return docker.getEvents({ filters: { type: ['container'], event: [...actions] }, abortSignal: signal } as Parameters<Docker['getEvents']>[0]);
}

/** Whether the engine answers `GET /_ping` within the time. */
export async function pingEngine(docker: Docker, timeoutMs: number): Promise<boolean> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  try {
    // dockerode takes an abortSignal here; its typings do not say so.
    await (docker.ping as (opts: { abortSignal: AbortSignal }) => Promise<unknown>).call(docker, { abortSignal: ac.signal });
    return true;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}
