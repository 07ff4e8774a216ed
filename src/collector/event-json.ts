/**
 * LogEvent → one NDJSON line: the JSON of `JSON.stringify(event)` (same keys
 * and values, keys in LogEvent's declared order), then "\n".
 *
 * Measured (bench/file-sink.bench.ts: 1,000,000 Docker-shaped events of 655
 * bytes, Node 20, this 2-core 2.8 GHz VM): about 2.0 µs of CPU per event from
 * LogEvent to bytes in a Buffer, against 3.6 to 3.7 µs for JSON.stringify(event)
 * + "\n" concatenated and converted with Buffer.from; the same encoder building
 * a string first took 2.6 to 3.3 µs (see line-buffer.ts). Kept: this one.
 * Why it is faster: each container's metadata (id, name, image, labels: most
 * of a line) is rendered once per ContainerMeta object, which inputs share and
 * never mutate, and copied as bytes; strings with nothing to escape are quoted
 * by concatenation (the regular-expression test costs about half of
 * JSON.stringify on a 120-character string here); large integers (`seq`) are
 * printed in two halves, two to three times faster than one double-to-string.
 */
import type { ContainerMeta, LogEvent } from './event.js';
import { stringifyJson } from './json-values.js';
import { LineBuffer } from './line-buffer.js';
import { LineMarks } from './line-fields.js';

// What JSON.stringify escapes: control characters, `"`, `\`, and surrogates
// (it escapes lone ones; strings with pairs take the slow path, still right).
const NEEDS_ESCAPE = /[\u0000-\u001f"\\\ud800-\udfff]/;

/** JSON.stringify of a string. */
export function quote(s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : '"' + s + '"';
}

/** JSON.stringify's rendering of a number. */
export function num(n: number): string {
  if (n >= 1e8 && n <= Number.MAX_SAFE_INTEGER && Number.isInteger(n)) {
    const high = Math.floor(n / 1e8);
    const low = '' + (n - high * 1e8);
    return '' + high + '00000000'.slice(low.length) + low;
  }
  return Number.isFinite(n) ? '' + n : 'null';
}

export function streamJson(stream: string | undefined): string {
  if (stream === undefined) return '';
  return stream === 'stdout' ? ',"stream":"stdout"' : stream === 'stderr' ? ',"stream":"stderr"' : ',"stream":' + quote(stream);
}

const containerJsonCache = new WeakMap<ContainerMeta, Buffer>();
// Events of one batch mostly come from one container in a row: one comparison
// instead of a WeakMap lookup.
let lastContainer: ContainerMeta | undefined;
let lastContainerJson: Buffer = Buffer.alloc(0);

/** `,"container":{...}` */
export function containerJson(c: ContainerMeta): Buffer {
  if (c === lastContainer) return lastContainerJson;
  let json = containerJsonCache.get(c);
  if (json === undefined) {
    json = Buffer.from(',"container":' + JSON.stringify(c));
    containerJsonCache.set(c, json);
  }
  lastContainer = c;
  lastContainerJson = json;
  return json;
}

// Inputs may build a new `host` object per event, but its name is the same.
let lastHost = { name: undefined as string | undefined, json: '', bytes: 0 };

/** `,"host":{...}`, and its length in UTF-8. */
function hostPart(host: { name: string }): { json: string; bytes: number } {
  if (host.name !== lastHost.name) {
    const json = ',"host":' + JSON.stringify(host);
    lastHost = { name: host.name, json, bytes: Buffer.byteLength(json) };
  }
  return lastHost;
}

/** `,"host":{...}` */
export function hostJson(host: { name: string }): string {
  return hostPart(host).json;
}

/** `,"log":{"level":`, before the level's string in levelJson(). */
export const LOG_LEVEL_OPEN = ',"log":{"level":';
const EMPTY_LOG = ',"log":{}';

/** `,"log":{...}` */
export function levelJson(level: string | undefined): string {
  if (level === undefined) return EMPTY_LOG;
  switch (level) {
    case 'info': return ',"log":{"level":"info"}';
    case 'error': return ',"log":{"level":"error"}';
    case 'warn': return ',"log":{"level":"warn"}';
    case 'debug': return ',"log":{"level":"debug"}';
    default: return ',"log":{"level":' + quote(level) + '}';
  }
}

/** `,"tag":…`, inside `clogs`, right before `,"seq":` (line-fields.ts, `/tail`'s search for a tag). */
export function tagJson(tag: string): string {
  return ',"tag":' + quote(tag);
}

/**
 * `,"clogs":{"input":…[,"tag":…],"seq":`, its UTF-8 length, and where the
 * input's and the tag's strings end in it (tagEnd -1: no tag): what a line's
 * marks need of it, for this encoder and the line renderer alike. A batch's
 * events mostly share their input and tag: the last one is kept.
 */
export interface ClogsHead {
  input: string;
  tag: string | undefined;
  json: string;
  bytes: number;
  inputEnd: number;
  tagEnd: number;
}

let lastClogs: ClogsHead | undefined;

export function clogsHead(input: string, tag: string | undefined): ClogsHead {
  if (lastClogs !== undefined && lastClogs.input === input && lastClogs.tag === tag) return lastClogs;
  const inputJson = ',"clogs":{"input":' + quote(input);
  const tagPart = tag === undefined ? '' : tagJson(tag);
  const inputEnd = utf8Bytes(inputJson);
  const json = inputJson + tagPart + ',"seq":';
  return (lastClogs = { input, tag, json, bytes: utf8Bytes(json), inputEnd, tagEnd: tag === undefined ? -1 : inputEnd + utf8Bytes(tagPart) });
}

/**
 * Attributes are plain JSON values (decoded records, parsed lines, whose long
 * integers are IntegerText: json-values.ts). A parsed
 * JSON line can still nest deeper than JSON.stringify's recursion goes
 * (JSON.parse has no such limit): the event is then kept with the reason in
 * place of the member that nests so, its other members as they are, rather
 * than refused, since a refused batch comes back forever.
 */
export function attrsJson(attrs: Record<string, unknown>): string {
  try {
    return stringifyJson(attrs);
  } catch {
    // No prototype: a `__proto__` member is a member like any other.
    const kept = Object.create(null) as Record<string, unknown>;
    for (const [key, value] of Object.entries(attrs)) {
      try {
        stringifyJson(value);
        kept[key] = value;
      } catch (err) {
        kept[key] = { clogs_unserializable: (err as Error).message };
      }
    }
    return stringifyJson(kept);
  }
}

/**
 * Appends `event` as one line to `out`, and where its fields are to `marks`.
 * Written in three or four pieces, each `out.text` being a call into C++:
 * one piece per field cost 0.5 µs more per event (in process, 200,000
 * events of the bench's mix: 2.4-2.6 µs against 1.9-2.0). The offsets come
 * from the buffer where a written piece ends (the message, the attrs) and
 * from the UTF-8 lengths of the others (the host's and the clogs head's
 * kept with them, as their text is).
 */
export function encodeEvent(event: LogEvent, out: LineBuffer, marks: LineMarks): void {
  const stream = streamJson(event.stream);
  out.text('{"@timestamp":' + quote(event['@timestamp']) + ',"message":' + quote(event.message) + stream);
  const messageEnd = out.lineBytes - stream.length;
  if (event.container !== undefined) out.raw(containerJson(event.container));
  // `s` is written last; `at` is where it ends in the line once written.
  const host = hostPart(event.host);
  let s = host.json;
  let at = out.lineBytes + host.bytes;
  let levelAt = -1;
  let levelEnd = -1;
  const log = event.log;
  if (log !== undefined) {
    if (log.level === undefined) {
      s += EMPTY_LOG;
      at += EMPTY_LOG.length;
    } else {
      const level = levelJson(log.level);
      levelAt = at + LOG_LEVEL_OPEN.length;
      at += utf8Bytes(level);
      levelEnd = at - 1;
      s += level;
    }
  }
  let attrsAt = -1;
  if (event.attrs !== undefined) {
    out.text(s + ',"attrs":');
    attrsAt = out.lineBytes;
    out.text(attrsJson(event.attrs));
    at = out.lineBytes;
    s = '';
  }
  const clogsAt = at;
  const c = event.clogs;
  const head = clogsHead(c.input, c.tag);
  const seq = num(c.seq);
  const seqEnd = clogsAt + head.bytes + seq.length;
  s += head.json + seq + ',"ordinal":' + num(c.ordinal);
  if (c.piece !== undefined) s += ',"piece":' + num(c.piece);
  out.text(c.truncated === true ? s + ',"truncated":true}}\n' : s + '}}\n');
  const length = out.lineBytes;
  out.endLine();
  marks.add(messageEnd, event.stream, levelAt, levelEnd, attrsAt, clogsAt, clogsAt + head.inputEnd, head.tagEnd < 0 ? -1 : clogsAt + head.tagEnd, seqEnd, c.ordinal, c.piece ?? -1, length);
}

/** Bytes of `s` in UTF-8: its length when it is ASCII, as the short pieces measured here mostly are. */
function utf8Bytes(s: string): number {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) return Buffer.byteLength(s, 'utf8');
  return s.length;
}

/** `event` as one line, "\n" included. */
export function encodeLine(event: LogEvent): string {
  const out = new LineBuffer(256);
  encodeEvent(event, out, new LineMarks());
  return Buffer.concat(out.take()).toString('utf8');
}
