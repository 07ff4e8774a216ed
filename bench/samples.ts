/**
 * What every benchmark sends, and how: the same containers and the same
 * ~120-byte lines, so figures of different paths compare.
 */
import type { Socket } from 'node:net';
import type { ContainerMeta } from '../src/collector/event.js';

const WORDS = 'GET POST /api/v1/orders /healthz user=alice latency_ms=12 status=200 cache=miss upstream=10.0.3.7:8080 bytes=5321 trace=4bf92f3577b34da6 retry=0 region=eu-west-1'.split(' ');

/** A 64-hex-character id, like Docker's, different for each `i`. */
export function containerId(i: number): string {
  return (i.toString(16).padStart(4, '0') + 'a1b2c3d4e5f6').repeat(4).slice(0, 64);
}

/** `count` compose containers with an image and labels, as the Docker input describes them. */
export function sampleContainers(count: number): ContainerMeta[] {
  return Array.from({ length: count }, (_, i) => {
    const service = `svc${i % 7}`;
    return {
      id: containerId(i),
      name: `shop-${service}-${i}`,
      image: { name: `registry.example.com/shop/${service}:1.${i}` },
      labels: { 'com.docker.compose.project': 'shop', 'com.docker.compose.service': service, team: 'payments' },
      compose: { project: 'shop', service },
    };
  });
}

/** The `n`th plain line, 120 bytes of access-log words. */
export function sampleLine(n: number): string {
  let s = `${n} `;
  for (let k = n; s.length < 120; k = (k * 7 + 3) % WORDS.length) s += WORDS[k]! + ' ';
  return s.slice(0, 120);
}

/** A msgpack str. */
export function mpStr(text: string): Buffer {
  const b = Buffer.from(text);
  if (b.length < 32) return Buffer.concat([Buffer.of(0xa0 | b.length), b]);
  if (b.length < 256) return Buffer.concat([Buffer.of(0xd9, b.length), b]);
  return Buffer.concat([Buffer.of(0xda, b.length >> 8, b.length & 0xff), b]);
}

/**
 * The `n`th record of a container as Docker's fluentd driver fills it:
 * `[EventTime, {container_id, container_name, source, log}]`, 1000 a second,
 * 1 in 9 on stderr.
 */
export function dockerEntry(n: number, container: ContainerMeta, line: string): Buffer {
  const t = Buffer.alloc(10);
  t[0] = 0xd7;
  t[1] = 0;
  t.writeUInt32BE(1_795_000_000 + Math.floor(n / 1000), 2);
  t.writeUInt32BE((n * 7919) % 1_000_000_000, 6);
  return Buffer.concat([
    Buffer.of(0x92),
    t,
    Buffer.of(0x84),
    mpStr('container_id'),
    mpStr(container.id!),
    mpStr('container_name'),
    mpStr(`/${container.name!}`),
    mpStr('source'),
    mpStr(n % 9 === 0 ? 'stderr' : 'stdout'),
    mpStr('log'),
    mpStr(line),
  ]);
}

/** A PackedForward request `[tag, entries as bin32, option]`. */
export function packedRequest(tag: string, entries: readonly Buffer[], option: Buffer): Buffer {
  const body = Buffer.concat(entries);
  const header = Buffer.alloc(5);
  header[0] = 0xc6;
  header.writeUInt32BE(body.length, 1);
  return Buffer.concat([Buffer.of(0x93), mpStr(tag), header, body, option]);
}

/** Writes every request as fast as the socket takes them. */
export function sendAll(socket: Socket, requests: readonly Buffer[]): void {
  let i = 0;
  const pump = (): void => {
    while (i < requests.length) if (!socket.write(requests[i++]!)) return void socket.once('drain', pump);
  };
  pump();
}
