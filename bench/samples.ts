/**
 * What every benchmark sends, and how: the same containers and the same lines,
 * so figures of different paths compare.
 *
 * The lines are what container hosts write, not what suits a fast path (per
 * 200 lines, on average):
 *   ~86 pino/bunyan JSON lines: floats, nested objects, escaped quotes, some
 *       `\u` escapes and an `err` with its stack as one escaped string
 *   ~56 nginx access lines (quotes, brackets, user agents)
 *   ~20 plain application lines (Spring/log4j layout)
 *   ~16 logfmt lines
 *   ~6 lines with non-ASCII UTF-8 (accents, CJK, emoji)
 *   14 lines of two stack traces, one line per record as Docker sends them:
 *       a Java exception with its cause, and a Python traceback
 */
import type { Socket } from 'node:net';
import type { ContainerMeta } from '../src/collector/event.js';

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

/** A deterministic 32-bit hash of n (a splitmix step): the same line for the same n in every run. */
function hash(n: number): number {
  let z = (n + 0x9e3779b9) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

const pick = <T>(list: readonly T[], h: number): T => list[h % list.length]!;

const PATHS = ['/api/v1/orders', '/api/v1/cart/items', '/healthz', '/static/app.3f9c2a.js', '/api/v1/search?q=red+shoes&page=2', '/login'];
const AGENTS = [
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1',
  'kube-probe/1.31',
  'curl/8.5.0',
];
const USERS = ['alice', 'bob', 'carol', 'dimitri', 'eve'];
const NON_ASCII = [
  'Bestellung für Müller bestätigt: 12,50 € (Lieferung ab Köln)',
  '用户 alice 登录成功，会话 7f3a 已创建',
  'deploy finished 🚀 in 3.2s, 0 errors ✅',
  'Пользователь bob вышел из системы',
  'réservation confirmée pour Zoë à 18h30 — table 4',
];
const JAVA_TRACE = [
  'java.lang.IllegalStateException: Order 4711 is already shipped',
  '\tat com.example.shop.orders.OrderService.cancel(OrderService.java:142)',
  '\tat com.example.shop.orders.OrderController.cancel(OrderController.java:58)',
  '\tat java.base/jdk.internal.reflect.DirectMethodHandleAccessor.invoke(DirectMethodHandleAccessor.java:103)',
  'Caused by: org.postgresql.util.PSQLException: ERROR: could not serialize access due to concurrent update',
  '\tat org.postgresql.core.v3.QueryExecutorImpl.receiveErrorResponse(QueryExecutorImpl.java:2725)',
  '\t... 87 more',
];
const PYTHON_TRACE = [
  'Traceback (most recent call last):',
  '  File "/app/worker/tasks.py", line 88, in handle',
  '    result = charge(order["total"], currency=order.get("currency", "EUR"))',
  '  File "/app/worker/payments.py", line 31, in charge',
  '    raise PaymentDeclined(f"card declined: {code}")',
  'payments.PaymentDeclined: card declined: insufficient_funds',
  'worker: task 4711 failed, retrying in 30s',
];
/** Where the traces stand in each block of 200 lines. */
const TRACE_AT = [[40, JAVA_TRACE], [140, PYTHON_TRACE]] as const;

function isoTime(n: number): string {
  return new Date(1_795_000_000_000 + n * 7).toISOString();
}

function pinoLine(n: number, h: number): string {
  const user = pick(USERS, h >>> 3);
  const base = { level: h % 10 === 0 ? 50 : 30, time: 1_795_000_000_000 + n, pid: 4242, hostname: 'shop-api-7f9c6d' };
  switch (h % 5) {
    case 0:
      return JSON.stringify({ ...base, req: { id: n, method: 'GET', url: `${pick(PATHS, h >>> 5)}/${n}`, headers: { 'user-agent': pick(AGENTS, h >>> 7) } }, res: { statusCode: 200 }, responseTime: (h % 100000) / 1000, msg: 'request completed' });
    case 1:
      return JSON.stringify({ ...base, user, cart: { items: h % 7, total: (h % 10000) / 100, currency: 'EUR' }, msg: `user "${user}" updated the cart` });
    case 2:
      return JSON.stringify({ ...base, level: 50, err: { type: 'TypeError', message: "Cannot read properties of undefined (reading 'id')", stack: "TypeError: Cannot read properties of undefined (reading 'id')\n    at handler (/app/src/routes/orders.js:42:17)\n    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)" }, msg: 'request failed' });
    case 3:
      return `{"level":30,"time":${base.time},"pid":4242,"hostname":"shop-api-7f9c6d","name":"mailer","to":"${user}@example.com","subject":"Votre commande \\u00e0 emporter","msg":"mail queued","queue_ms":${((h % 5000) / 7).toFixed(3)}}`;
    default:
      return JSON.stringify({ ...base, v: 0, name: 'search', query: { q: 'red shoes', filters: { size: [38, 39], price: { lt: 99.9 } } }, hits: h % 500, took_ms: (h % 3000) / 10, msg: 'search done' });
  }
}

function nginxLine(n: number, h: number): string {
  const status = pick([200, 200, 200, 304, 404, 500], h >>> 4);
  return `172.18.0.${h % 250} - - [29/Nov/2026:14:${String((n >>> 6) % 60).padStart(2, '0')}:${String(n % 60).padStart(2, '0')} +0000] "${pick(['GET', 'GET', 'POST'], h >>> 2)} ${pick(PATHS, h >>> 5)} HTTP/1.1" ${status} ${h % 20000} "https://shop.example.com/cart" "${pick(AGENTS, h >>> 7)}"`;
}

/**
 * The `n`th line of a container's output: see the mix above. Lines that are
 * part of a trace follow each other, as a program prints them.
 */
export function sampleLine(n: number): string {
  const inBlock = n % 200;
  for (const [at, trace] of TRACE_AT) if (inBlock >= at && inBlock < at + trace.length) return trace[inBlock - at]!;
  const h = hash(n);
  const kind = h % 100;
  if (kind < 47) return pinoLine(n, h >>> 8);
  if (kind < 77) return nginxLine(n, h >>> 8);
  if (kind < 88) return `${isoTime(n).replace('T', ' ').slice(0, 23)} ${pick(['INFO ', 'INFO ', 'WARN ', 'DEBUG'], h >>> 9)} [http-nio-8080-exec-${h % 16}] c.e.shop.orders.OrderService - order ${n} placed for customer ${h % 100000} total=${(h % 10000) / 100} EUR`;
  if (kind < 97) return `time=${isoTime(n)} level=${pick(['info', 'info', 'warn', 'debug'], h >>> 9)} msg="cache refreshed" component=cache keys=${h % 5000} duration=${(h % 900) / 100}ms path="/var/cache/shop"`;
  return pick(NON_ASCII, h >>> 9);
}

/** A msgpack str. */
export function mpStr(text: string): Buffer {
  const b = Buffer.from(text);
  if (b.length < 32) return Buffer.concat([Buffer.of(0xa0 | b.length), b]);
  if (b.length < 256) return Buffer.concat([Buffer.of(0xd9, b.length), b]);
  if (b.length < 65536) return Buffer.concat([Buffer.of(0xda, b.length >> 8, b.length & 0xff), b]);
  const header = Buffer.alloc(5);
  header[0] = 0xdb;
  header.writeUInt32BE(b.length, 1);
  return Buffer.concat([header, b]);
}

/**
 * The `n`th record of a container as Docker's fluentd driver fills it:
 * `[EventTime, {container_id, container_name, source, log}]`, 1000 a second,
 * 1 in 9 on stderr.
 */
export function dockerEntry(n: number, container: ContainerMeta, line: string): Buffer {
  return Buffer.concat([
    Buffer.of(0x92),
    eventTime(n),
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

/**
 * A record without a container, as Fluent Bit's forward output sends a line
 * its tail input read: `[EventTime, {log}]`, at the times dockerEntry() gives.
 */
export function tailEntry(n: number, line: string): Buffer {
  return Buffer.concat([Buffer.of(0x92), eventTime(n), Buffer.of(0x81), mpStr('log'), mpStr(line)]);
}

/** The EventTime of the `n`th record: 1000 a second. */
function eventTime(n: number): Buffer {
  const t = Buffer.alloc(10);
  t[0] = 0xd7;
  t[1] = 0;
  t.writeUInt32BE(1_795_000_000 + Math.floor(n / 1000), 2);
  t.writeUInt32BE((n * 7919) % 1_000_000_000, 6);
  return t;
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
