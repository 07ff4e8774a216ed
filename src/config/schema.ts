/**
 * The whole configuration of clogs, in one place. Each key's `.describe()` text
 * is what the README's config reference says; defaults live here and nowhere
 * else, so the rest of the code receives a fully-defaulted `Config`.
 */
import { z } from 'zod';
import { LEVEL_NAMES } from '../collector/levels.js';
import { linearRegexError } from '../collector/multiline/linear-regex.js';
import { RULE_NAMES } from '../collector/multiline/rules.js';

/** Bounds of a duration or size; `max` defaults to the largest integer a number holds exactly. */
interface Range {
  min: number;
  max?: number;
}

/** How a kind of quantity is written in a config and named in its errors. */
interface Measure {
  form: string;
  unit: string;
  parse(text: string): number | undefined;
  show(n: number): string;
}

/**
 * The union has its own message because zod's, for a value of neither type,
 * is "Invalid input", which does not say what form is wanted.
 */
function quantity(measure: Measure, range: Range) {
  const max = range.max ?? Number.MAX_SAFE_INTEGER;
  return z
    .union([z.string(), z.number()], { error: (issue) => `${measure.form}, got ${JSON.stringify(issue.input)}` })
    .transform((v, ctx) => {
      const fail = (message: string): never => {
        ctx.addIssue({ code: 'custom', message: `${message}, got ${JSON.stringify(v)}` });
        return z.NEVER;
      };
      const n = typeof v === 'number' ? v : measure.parse(v.trim());
      if (n === undefined) return fail(measure.form);
      if (!Number.isInteger(n)) return fail(`must be a whole number of ${measure.unit}`);
      if (n < range.min) return fail(range.min === 0 ? 'must not be negative' : `must be at least ${measure.show(range.min)}`);
      if (n > max) return fail(`must be at most ${measure.show(max)}`);
      return n;
    });
}

const DURATION = /^(\d+)(ms|s|m|h|d)$/;
const UNITS = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000, ms: 1 } as const;
const DURATIONS: Measure = {
  form: 'expected a duration like 500ms, 5s, 2m or a number of milliseconds',
  unit: 'milliseconds',
  parse(text) {
    const m = DURATION.exec(text);
    return m ? Number(m[1]) * UNITS[m[2] as keyof typeof UNITS] : undefined;
  },
  // In the largest unit that states it exactly, as a config would write it.
  show(ms) {
    const [unit, size] = Object.entries(UNITS).find(([, n]) => ms >= n && ms % n === 0) ?? ['ms', 1];
    return `${ms / size}${unit}`;
  },
};

const SIZE = /^(\d+)\s*(B|KB|KiB|MB|MiB|GB|GiB)?$/;
const SIZE_UNITS: Record<string, number> = { B: 1, KB: 1e3, KiB: 1024, MB: 1e6, MiB: 1024 ** 2, GB: 1e9, GiB: 1024 ** 3 };
const SIZES: Measure = {
  form: 'expected a size like 512KiB, 16MiB or a number of bytes',
  unit: 'bytes',
  parse(text) {
    const m = SIZE.exec(text);
    return m ? Number(m[1]) * SIZE_UNITS[m[2] ?? 'B']! : undefined;
  },
  show: (n) => `${n} byte${n === 1 ? '' : 's'}`,
};

/** `"500ms"`, `"5s"`, `"10m"`, `"1h"`, `"7d"` or a number of milliseconds → milliseconds within `range`. */
const duration = (range: Range) => quantity(DURATIONS, range);
/** `"8MiB"`, `"100MB"` or a number of bytes → bytes within `range`. */
const byteSize = (range: Range) => quantity(SIZES, range);

/** Sizes that bound a line, a request, a batch or a store: 0 would hold nothing (max_line_size 0 cuts a line into empty pieces without end). */
const positiveSize = byteSize({ min: 1 });
/** Timeouts and ages: 0 would fire at once (retention.max_age 0 deletes every closed file). */
const positiveDuration = duration({ min: 1 });
/** The longest delay setTimeout and setInterval take: past it Node fires after 1 ms, turning the timer into a busy loop. */
const MAX_TIMER = 24 * UNITS.d;

const HOST_PORT = /^(\[[0-9a-fA-F:]+\]|[^:\s]+):(\d{1,5})$/;
/** `"127.0.0.1:24224"` → { host, port } */
export const listenAddress = z.string().transform((v, ctx) => {
  const m = HOST_PORT.exec(v);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) {
    ctx.addIssue({ code: 'custom', message: `expected HOST:PORT like "127.0.0.1:24224", got ${JSON.stringify(v)}` });
    return z.NEVER;
  }
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
});
export type ListenAddress = z.infer<typeof listenAddress>;

/** Characters Elasticsearch refuses in index names (MetadataCreateIndexService.validateIndexOrAliasName). */
const BAD_INDEX_CHARS = /[\\/*?"<>| ,#:A-Z]/;

/** A daily index pattern: a name Elasticsearch takes once %Y %m %d are filled in. */
const indexPattern = z.string().superRefine((pattern, ctx) => {
  const sample = pattern.replace(/%[Ymd]/g, '0');
  if (pattern.length === 0 || BAD_INDEX_CHARS.test(sample) || /^[-_+.]/.test(sample) || sample.includes('%')) {
    ctx.addIssue({
      code: 'custom',
      message: `expected an index pattern of lowercase letters, digits, "-", "_", "." and the placeholders %Y %m %d, like "clogs-%Y.%m.%d", got ${JSON.stringify(pattern)}`,
    });
  }
});

export const forwardSchema = z
  .object({
    enabled: z.boolean().default(true).describe('Run the forward-protocol input.'),
    listen: listenAddress
      .default({ host: '127.0.0.1', port: 24224 })
      .describe('TCP (and UDP heartbeat) listen address. Use "0.0.0.0:24224" to accept other hosts.'),
    max_frame_size: positiveSize.default(8 * 1024 * 1024).describe('Largest request (and decompressed chunk) accepted; larger ones close the connection.'),
    max_record_keys: z.number().int().positive().default(1024).describe('Most keys a record may have.'),
    max_connections: z.number().int().positive().default(1024).describe('Concurrent connections; further ones are refused.'),
    shared_key: z.string().min(1).optional().describe('Turns on the HELO/PING/PONG handshake with this shared key. Docker cannot do it.'),
    self_hostname: z.string().optional().describe('With shared_key: hostname sent in HELO/PONG; must differ from the clients\' own.'),
    users: z
      .array(z.object({ username: z.string().min(1), password: z.string().min(1) }).strict())
      .default([])
      .describe('With shared_key: username/password pairs clients must present.'),
    tls: z
      .object({
        cert: z.string().describe('PEM certificate file.'),
        key: z.string().describe('PEM private key file.'),
        ca: z.string().optional().describe('PEM CA file; when set, clients must present a certificate it signed.'),
      })
      .strict()
      .optional()
      .describe('Serve TLS on the listener.'),
    partial_timeout: positiveDuration.default(5000).describe('How long a split line waits for its last piece before it is written as it is.'),
    enrich: z
      .enum(['auto', 'off'])
      .default('auto')
      .describe('auto: give Docker records their container\'s image, labels and compose project/service from the engine at docker.host, when it answers; off: only the id and name the driver sends.'),
  })
  .strict()
  // Both are used only inside the handshake that shared_key turns on: set without it, they would be
  // ignored, and users set would let anyone send while the operator believes clients must log in.
  .superRefine((f, ctx) => {
    if (f.shared_key !== undefined) return;
    if (f.users.length > 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['users'],
        message: 'needs forward.shared_key (the forward protocol\'s user authentication runs inside the shared-key handshake)',
      });
    }
    if (f.self_hostname !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['self_hostname'],
        message: 'needs forward.shared_key (it is the hostname clogs sends in the shared-key handshake\'s HELO and PONG)',
      });
    }
  });

/** A JavaScript regular expression that runs in linear time (linear-regex.ts), checked here so a bad one names its key. */
const pattern = z.string().superRefine((v, ctx) => {
  const err = linearRegexError(v);
  if (err !== undefined) ctx.addIssue({ code: 'custom', message: `expected a JavaScript regular expression: ${err}` });
});

export const multilineSchema = z
  .object({
    mode: z
      .enum(['auto', 'off', ...RULE_NAMES, 'regex'])
      .default('auto')
      .describe('Which stack traces are joined into one event: auto (every built-in rule), off, one of java, python, go, node, ruby, dotnet, or regex (start / continue). A container\'s `clogs.multiline` label overrides it.'),
    start: pattern.optional().describe('mode regex: a line matching this opens an event.'),
    continue: pattern.optional().describe('mode regex: a line matching this joins the event before it. With start alone, every line up to the next start joins.'),
    timeout: positiveDuration.default(1000).describe('A held trace is written this long after its last line.'),
    max_lines: z.number().int().min(2).default(500).describe('Most lines in one joined event; past it the event is cut and marked clogs.truncated, and the rest follows as another event.'),
    max_bytes: positiveSize.default(1024 * 1024).describe('Most bytes in one joined event (cut and marked like max_lines).'),
  })
  .strict()
  .superRefine((m, ctx) => {
    if (m.mode === 'regex' && m.start === undefined && m.continue === undefined) {
      ctx.addIssue({ code: 'custom', path: ['start'], params: { causedBy: ['mode'] }, message: 'mode regex needs start, continue or both' });
    }
    if (m.mode !== 'regex' && (m.start !== undefined || m.continue !== undefined)) {
      ctx.addIssue({ code: 'custom', path: ['mode'], message: 'start and continue apply only with mode: regex' });
    }
  });

/** Containers to follow or to leave, by name, label or image; empty lists match none. */
const containerMatch = z
  .object({
    names: z.array(z.string()).default([]),
    labels: z.array(z.string()).default([]),
    images: z.array(z.string()).default([]),
  })
  .strict()
  .default({ names: [], labels: [], images: [] });

export const dockerSchema = z
  .object({
    enabled: z.boolean().default(true).describe('Follow containers through the Docker Engine API when the socket is reachable.'),
    host: z.string().min(1, 'expected an engine address, got an empty string').optional().describe('Engine address: unix:///var/run/docker.sock (default, or DOCKER_HOST), tcp://host:2376.'),
    tls: z
      .object({ ca: z.string().optional(), cert: z.string().optional(), key: z.string().optional() })
      .strict()
      .optional()
      .describe('Client certificates for a tcp:// engine.'),
    include: containerMatch.describe('Follow only containers matching any of these (globs for names and images; "key" or "key=value" for labels). Empty: all.'),
    exclude: containerMatch.describe('Never follow containers matching any of these.'),
    opt_out_label: z.string().default('clogs.enable=false').describe('A container with this label is never followed.'),
    fluentd_backfill: z
      .boolean()
      .default(false)
      .describe('Also read containers using the fluentd driver (Docker 20.10+ dual logging) to fill gaps while the forward input was down.'),
    removed_grace: duration({ min: 0 }).default(3_600_000).describe('How long a removed container\'s checkpoint is kept; 0: forgotten at the next checkpoint.'),
  })
  .strict();

export const retentionSchema = z
  .object({
    max_age: positiveDuration.optional().describe('Delete files last written longer ago than this ("7d"). Unset: no age limit.'),
    max_total_size: positiveSize.optional().describe('Delete the oldest files while the whole store (compressed sizes) is larger than this. Unset: no limit.'),
    max_container_size: positiveSize.optional().describe('The same limit for each source folder (one container, tag or input). Unset: no limit.'),
    check_interval: duration({ min: 1000, max: MAX_TIMER })
      .default(30_000)
      .describe('How often the store is checked, besides after each rotation.'),
  })
  .strict();

export const fileSinkSchema = z
  .object({
    enabled: z.boolean().default(true).describe('Write events as NDJSON files.'),
    dir: z.string().min(1, 'expected a directory, got an empty string').default('./data').describe('Directory of the files: one per container, rotated.'),
    rotate_size: byteSize({ min: 0 }).default(100 * 1024 * 1024).describe('Rotate a file once it reaches this size; 0: never by size.'),
    rotate_daily: z.boolean().default(true).describe('Start a new file each UTC day.'),
    fsync: z.enum(['batch', 'interval', 'never']).default('batch').describe('"batch": fsync before acking each batch (no acked loss); "interval": every second; "never": leave it to the OS.'),
    compress: z.boolean().default(true).describe('Gzip each file once it is rotated (<name>.ndjson.gz); clogs tail, ps and search read both.'),
    retention: retentionSchema
      .default(() => retentionSchema.parse({}))
      .describe('Deletes the oldest files, never the file a source writes today. No key set: nothing is deleted.'),
  })
  .strict();

/** What the Elasticsearch client connects to: `localhost:9200` would pass as a URL of scheme `localhost:`. */
const httpUrl = z.url({ protocol: /^https?$/, error: (issue) => `expected an http:// or https:// URL like http://127.0.0.1:9200, got ${JSON.stringify(issue.input)}` });

export const elasticsearchSchema = z
  .object({
    url: z
      .union([httpUrl, z.array(httpUrl).min(1)], {
        error: (issue) => `${issue.input === undefined ? 'missing: ' : ''}expected an http:// or https:// URL like http://127.0.0.1:9200, or a list of them${issue.input === undefined ? '' : `, got ${JSON.stringify(issue.input)}`}`,
      })
      .describe('One or more node URLs, e.g. http://127.0.0.1:9200.'),
    username: z.string().optional(),
    password: z.string().optional(),
    api_key: z.string().optional().describe('Base64 API key (id:key encoded), instead of username/password.'),
    ca: z.string().optional().describe('PEM CA file for https.'),
    fingerprint: z.string().optional().describe('SHA-256 fingerprint of the CA, instead of a CA file.'),
    data_stream: z
      .object({
        dataset: z.string().regex(/^[a-z0-9_.]+$/).max(100).default('clogs'),
        namespace: z.string().regex(/^[a-z0-9_.]+$/).max(100).default('default'),
      })
      .strict()
      .default({ dataset: 'clogs', namespace: 'default' })
      .describe('Writes to the data stream logs-<dataset>-<namespace>.'),
    index: indexPattern.optional().describe('A daily index pattern like "clogs-%Y.%m.%d" instead of a data stream.'),
    batch_size: positiveSize.default(5 * 1024 * 1024).describe('Bulk request size.'),
    batch_events: z.number().int().positive().default(5000).describe('Most events in one bulk request.'),
    flush_interval: duration({ min: 0, max: MAX_TIMER }).default(1000).describe('Send a partial batch after this long; 0: as soon as events come.'),
    in_flight: z.number().int().min(1).max(16).default(2).describe('Bulk requests in flight at once.'),
    queue_max_size: positiveSize.default(1024 * 1024 * 1024).describe('Disk queue bound; inputs block when it is full.'),
    dead_letter: z.string().optional().describe('NDJSON file for documents Elasticsearch rejects for good (default <state_dir>/elasticsearch/dead-letter.ndjson).'),
  })
  .strict()
  // Each would be ignored, or refused by the client without naming the key:
  // a password alone is never sent (endless 401s), a CA check has nothing
  // to check when no node is https://. (An api_key next to username and
  // password wins, as documented: a variable can replace the file's
  // credentials that way, since nothing unsets a key.)
  .superRefine((es, ctx) => {
    if (es.password !== undefined && es.username === undefined && es.api_key === undefined) {
      ctx.addIssue({ code: 'custom', path: ['password'], message: 'needs sinks.elasticsearch.username: a password alone is never sent' });
    }
    const urls = [es.url].flat();
    if (urls.some((u) => u.startsWith('https:'))) return;
    for (const key of ['ca', 'fingerprint'] as const) {
      if (es[key] !== undefined) ctx.addIssue({ code: 'custom', path: [key], message: `checks the certificate of an https:// node, but every sinks.elasticsearch.url is http://` });
    }
  });

/** 127.0.0.0/8, ::1 and localhost: addresses only this machine reaches. */
export function isLoopbackHost(host: string): boolean {
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host) || host === '::1' || host === 'localhost';
}

export const httpAuthSchema = z
  .object({
    token: z
      .string()
      .min(16, 'expected a token of at least 16 characters')
      .optional()
      .describe('A secret clients send as "Authorization: Bearer TOKEN" (or as the password of Basic auth, any user name).'),
    users: z
      .array(z.object({ username: z.string().min(1), password: z.string().min(1) }).strict())
      .default([])
      .describe('username/password pairs accepted as HTTP Basic auth.'),
  })
  .strict();

export const httpSchema = z
  .object({
    enabled: z.boolean().default(true),
    listen: listenAddress.default({ host: '127.0.0.1', port: 24280 }).describe('The web page, /api, /tail, /healthz, /readyz, /metrics.'),
    auth: httpAuthSchema
      .optional()
      .describe('When set, the page, /api and /tail require it. Required when listen is not a loopback address.'),
  })
  .strict()
  .superRefine((http, ctx) => {
    const open = http.auth === undefined || (http.auth.token === undefined && http.auth.users.length === 0);
    if (http.enabled && open && !isLoopbackHost(http.listen.host)) {
      ctx.addIssue({
        code: 'custom',
        path: ['auth'],
        params: { causedBy: ['listen'] },
        message: `required because http.listen ${http.listen.host}:${http.listen.port} is not a loopback address (the page and /tail show every log line): set http.auth.token (CLOGS_HTTP_AUTH_TOKEN) or http.auth.users, or listen on 127.0.0.1`,
      });
    }
  });

/** The collector's own log formats: the config key and the flag take the same. */
export const LOG_FORMATS = ['auto', 'pretty', 'json'] as const;

export const configSchema = z
  .object({
    state_dir: z.string().min(1, 'expected a directory, got an empty string').default('./state').describe('Where clogs keeps its queues, checkpoints and pending partial lines.'),
    host_name: z.string().min(1, 'expected a host name, got an empty string').optional().describe('host.name of every event (default: the machine\'s hostname).'),
    log_level: z.enum(LEVEL_NAMES).default('info').describe('The collector\'s own log level (pino\'s levels, the same names as log.level).'),
    log_format: z.enum(LOG_FORMATS).default('auto').describe('The collector\'s own log: pretty on a terminal, JSON lines otherwise (auto).'),
    parse_json: z.boolean().default(true).describe('Parse lines that are JSON objects (pino, bunyan, zap, logrus).'),
    parse_logfmt: z
      .boolean()
      .default(true)
      .describe('Parse logfmt lines (at least two key=value pairs and nothing else: Go slog, logrus, Heroku) like JSON lines; values stay strings.'),
    strip_ansi: z.boolean().default(true).describe('Remove terminal escape sequences (colours, cursor moves, titles) and \\r redraws from lines; false keeps them.'),
    // Pieces are cut between characters: below 4 bytes a character may not fit one.
    max_line_size: byteSize({ min: 4 }).default(1024 * 1024).describe('Longest reassembled line; longer ones are cut into pieces.'),
    multiline: multilineSchema.default(() => multilineSchema.parse({})),
    forward: forwardSchema.default(() => forwardSchema.parse({})),
    docker: dockerSchema.default(() => dockerSchema.parse({})),
    sinks: z
      .object({
        file: fileSinkSchema.default(() => fileSinkSchema.parse({})),
        elasticsearch: elasticsearchSchema.optional(),
      })
      .strict()
      .default(() => ({ file: fileSinkSchema.parse({}) })),
    http: httpSchema.default(() => httpSchema.parse({})),
  })
  .strict();

export type Config = z.infer<typeof configSchema>;
export type ForwardConfig = Config['forward'];
export type DockerConfig = Config['docker'];
export type MultilineSettings = Config['multiline'];
export type FileSinkConfig = Config['sinks']['file'];
export type RetentionConfig = FileSinkConfig['retention'];
export type ElasticsearchConfig = z.infer<typeof elasticsearchSchema>;
export type HttpConfig = Config['http'];
export type HttpAuthConfig = z.infer<typeof httpAuthSchema>;
