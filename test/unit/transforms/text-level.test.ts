/** Leading levels of text lines, on lines copied from real programs' output. */
import { describe, expect, it } from 'vitest';
import { LEVEL_HEAD, leadingLevel, leadingLevelOfBytes } from '../../../src/collector/transforms/text-level.js';

const cases: Array<[string, string, string | undefined]> = [
  // Spring Boot 2 and 3 (logback default pattern), as in `docker logs`.
  ['Spring Boot 2', '2026-09-07 22:30:54.578  INFO 1 --- [           main] d.o.b.nbi.BiometricNbiApplication        : Starting BiometricNbiApplication v0.0.1-SNAPSHOT using Java 17.0.2', 'info'],
  ['Spring Boot 3', '2023-08-08T17:55:58.544Z  WARN 1 --- [           main] w.s.c.ServletWebServerApplicationContext : Exception encountered during context initialization', 'warn'],
  ['Spring Boot ERROR', '2024-01-18T13:04:34.805+01:00 ERROR 1 --- [           main] o.s.boot.SpringApplication               : Application run failed', 'error'],
  // Python logging (3.11): basicConfig's default format and the cookbook's.
  ['Python default', 'WARNING:root:disk almost full', 'warn'],
  ['Python default, named logger', 'ERROR:app.db:connection lost', 'error'],
  ['Python cookbook', '2026-11-29 17:41:07,668 - simple_example - WARNING - warn message', 'warn'],
  ['Python cookbook CRITICAL', '2026-11-29 17:41:07,668 - simple_example - CRITICAL - critical message', 'fatal'],
  ['Python cookbook DEBUG', '2026-11-29 17:41:07,668 - simple_example - DEBUG - debug message', 'debug'],
  // log4j/logback `%d{HH:mm:ss.SSS} [%thread] %-5level %logger{36} - %msg`.
  ['logback', '12:00:00.123 [main] ERROR c.e.App - payment failed', 'error'],
  ['logback padded', '17:41:10.112 [http-nio-8080-exec-3] INFO  c.e.shop.orders.OrderService - order 7 placed', 'info'],
  // Kafka (log4j `[%d] %p %m`).
  ['Kafka', '[2026-11-29 12:00:00,123] INFO [KafkaServer id=1] started (kafka.server.KafkaServer)', 'info'],
  // java.util.logging SimpleFormatter, second line (OpenJDK 17).
  ['JUL', 'SEVERE: payment failed', 'error'],
  ['JUL warning', 'WARNING: slow query', 'warn'],
  // klog (kubelet), as journald keeps it without its prefix.
  ['klog info', 'I0615 18:07:04.688417     906 server.go:163] "Starting to listen" address="0.0.0.0" port=10250', 'info'],
  ['klog error', 'E0911 10:57:09.528065    9919 kubelet.go:1431] "Image garbage collection failed once. Stats initialization may not have completed yet" err="invalid capacity 0 on image filesystem"', 'error'],
  ['klog warning', 'W1129 12:00:00.000000       1 reflector.go:324] failed to list *v1.Pod', 'warn'],
  // logrus TextFormatter on a terminal (after escapes are stripped), as dockerd printed it.
  ['logrus tty', 'WARN[0000] containerd: low RLIMIT_NOFILE changing to max  current=1024 max=4096', 'warn'],
  ['logrus tty info', 'INFO[0000] Listening on port 2222', 'info'],
  // nginx error log.
  ['nginx error log', '2026/11/29 12:00:00 [error] 29#29: *1 open() "/usr/share/nginx/html/x" failed (2: No such file or directory)', 'error'],
  ['nginx notice', '2026/11/29 12:00:00 [notice] 1#1: start worker processes', 'info'],
  // Maven, bracketed.
  ['Maven', '[INFO] Building jar: /app/target/app-1.0.jar', 'info'],
  ['Maven warning', '[WARNING] Using platform encoding (UTF-8 actually) to copy filtered resources', 'warn'],
  ['angle brackets', '<error> bad request', 'error'],
  // zerolog ConsoleWriter.
  ['zerolog console', '2020-10-12T21:46:13+02:00 INF msg="hello" foo="bar"', 'info'],
  // A first logfmt pair on a line that is not all logfmt.
  ['level= then text', 'level=warn disk usage above 90%', 'warn'],
  ['lvl= quoted', 'lvl="eror" t=2026-11-29T12:00:00+0000', 'error'],
  ['upper case bare', 'ERROR something broke', 'error'],
  ['bare, end of line', 'FATAL', 'fatal'],
];

const nearMisses: Array<[string, string]> = [
  ['a level word in free text', 'user said error occurred'],
  ['a level word after other words', 'Server INFO page requested'],
  ['capitalised, not a level token', 'Error: ENOENT: no such file or directory, open \'/app/config.json\''],
  ['Warning as a word', 'Warning signs were ignored'],
  ['a plural', 'ERRORS: 0, WARNINGS: 2'],
  ['upper-case word that is no level', 'GET /healthz 200'],
  ['glog letter without a date', 'I think so'],
  ['glog shape without a time', 'E1129 is an error code'],
  ['a time, then text', '2026-11-29 12:00:00.123 user logged in'],
  ['a time, a level later in the text', '2026-11-29 12:00:00 request from 10.0.0.1 ERROR ignored'],
  ['Go log, no level', '2026/11/29 12:00:00 listening on :8080'],
  ['nginx access log', '172.18.0.1 - - [29/Nov/2026:14:00:00 +0000] "GET / HTTP/1.1" 200 615 "-" "curl/8.5.0"'],
  ['GIN debug prefix', '[GIN-debug] Listening and serving HTTP on :8080'],
  ['a bracketed word that is no level', '[main] started'],
  ['a level key later in logfmt-like text', 'msg=hello level=warn'],
  ['a JSON line', '{"level":"error","msg":"x"}'],
  ['a single letter in brackets', '[E] something'],
  ['lower-case bare level word', 'error: something'],
  ['an indented level', '  ERROR nested'],
  ['Python logger name without a timestamp', 'myapp - ERROR - x'],
];

describe('leadingLevel', () => {
  it.each(cases)('%s', (_name, line, level) => {
    expect(leadingLevel(line)).toBe(level);
  });

  it.each(nearMisses)('no level: %s', (_name, line) => {
    expect(leadingLevel(line)).toBeUndefined();
  });

  it('decides on bytes as on text, for the forward fast path', () => {
    for (const [, line, level] of cases) {
      const buf = Buffer.from(`xx${line}yy`.slice(0, line.length + 2), 'latin1');
      expect(leadingLevelOfBytes(buf, 2, buf.length)).toBe(level);
    }
    for (const [, line] of nearMisses) expect(leadingLevelOfBytes(Buffer.from(line, 'latin1'), 0, line.length)).toBeUndefined();
    expect(leadingLevelOfBytes(Buffer.alloc(0), 0, 0)).toBeUndefined();
  });

  it('reads a head with non-ASCII bytes as the decoded line, and leaves a long one to it', () => {
    const long = Buffer.from(`12:00:00 [${'名'.repeat(60)}] INFO started`);
    expect(long.length).toBeGreaterThan(LEVEL_HEAD);
    expect(leadingLevelOfBytes(long, 0, long.length)).toBeNull();
    expect(leadingLevel(long.toString())).toBe('info');
    const short = Buffer.from(`12:00:00 [${'名'.repeat(30)}] INFO started`);
    expect(leadingLevelOfBytes(short, 0, short.length)).toBe('info');
    expect(leadingLevelOfBytes(Buffer.from('ERROR ü'), 0, 8)).toBe('error');
    expect(leadingLevelOfBytes(Buffer.from('Bestellung für Müller'), 0, 23)).toBeUndefined();
    expect(leadingLevelOfBytes(Buffer.from('plain ü'), 0, 8)).toBeUndefined();
    // U+00A0 is a space to the expressions; its UTF-8 bytes read as Latin-1 would be too, in the wrong place.
    for (const line of ['ERROR\u00a0x', 'WARN\u00c2\u00a0x', '[info]\u2028x', 'ERRORé']) {
      const bytes = Buffer.from(line);
      expect(leadingLevelOfBytes(bytes, 0, bytes.length), line).toBe(leadingLevel(line) ?? undefined);
    }
  });

  it('reads only the head of a long line', () => {
    expect(leadingLevel(`ERROR ${'x'.repeat(100_000)}`)).toBe('error');
    expect(leadingLevelOfBytes(Buffer.from(`2026-11-29 12:00:00,123 - ${'n'.repeat(64)} - WARNING - ${'x'.repeat(500)}`), 0, 600)).toBe('warn');
  });
});
