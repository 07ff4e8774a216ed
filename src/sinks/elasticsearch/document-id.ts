/**
 * The `_id` of a rendered event line (docs/elasticsearch.md, "Exactly once"):
 * a hash of what identifies the line itself, never of when or how often
 * clogs saw it:
 *   source (container id, else forward tag, else input) · `@timestamp` with
 *   nanoseconds · stream · `clogs.ordinal` · `clogs.piece` · `log.level` ·
 *   message · attrs (the rest of the record or parsed JSON line).
 * `clogs.seq` and `host.name` are left out on purpose: they differ between a
 * first delivery and a redelivery of the same line.
 *
 * The hashed key is, as text (variable-length parts are length-prefixed, in
 * UTF-16 code units, so no choice of message or tag can make two different
 * lines hash the same input):
 *
 *   <len>:<source>|<timestamp>|<stream>|<ordinal>|<piece>|<len>:<level>|<len>:<message>|<attrs JSON>
 *
 * Ids in Elasticsearch were computed from that text, so it must never change;
 * the key is built here from the line's bytes instead: a JSON string without
 * a backslash is, between its quotes, the UTF-8 of its value, and the rest
 * (timestamp, attrs) is copied as rendered. Only strings holding escapes are
 * decoded. Measured on `bench/forward.bench.ts es`: building the key as a
 * string cost more than the rest of the sink.
 */
import { hash } from 'node:crypto';
import { put, putRange } from '../../collector/byte-copy.js';
import type { ContainerMeta } from '../../collector/event.js';
import { hex4, plainWord, SHORT_ESCAPES } from '../../collector/json-bytes.js';
import { TIMESTAMP_LENGTH, type LineFields } from '../../collector/line-fields.js';

/** 22 base64url characters = 132 bits of SHA-256: collisions are out of reach for any log volume. */
export const ID_LENGTH = 22;

const BACKSLASH = 0x5c;
const BAR = 0x7c;
const COLON = 0x3a;
const STDOUT = Buffer.from('stdout');
const STDERR = Buffer.from('stderr');
/** An absent level: length 0. */
const EMPTY = Buffer.from('0:');
const SHORT_COPY = 48;
/** Room for the separators, length prefixes and numbers around a line's own bytes. */
const KEY_OVERHEAD = 256;

export class DocumentIds {
  private key = Buffer.allocUnsafe(4096);
  private keyMemory: ArrayBufferLike = this.key.buffer;
  private keyOffset = this.key.byteOffset;
  private pos = 0;
  private container: ContainerMeta | undefined;
  private containerId = '';
  /** `<len>:<container id>|` of `container`. */
  private containerPart = Buffer.alloc(0);
  private scratch = Buffer.allocUnsafe(1024);
  private scratchView = new DataView(this.scratch.buffer, this.scratch.byteOffset, this.scratch.byteLength);
  /** The Buffer lines are read from, as a DataView, its memory and offset there (see byte-copy.ts). */
  private viewBuf: Buffer | undefined;
  private view: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(0));
  private viewMemory: ArrayBufferLike = new ArrayBuffer(0);
  private viewOffset = 0;

  /** The `_id` of the line `fields` was read from, whose container (if any) is `container`. */
  of(fields: LineFields, container: ContainerMeta | undefined): string {
    this.build(fields, container);
    return hash('sha256', this.keyBytes(), 'base64url').slice(0, ID_LENGTH);
  }

  /** Writes the `_id` into `out` at `at`, ID_LENGTH bytes. */
  write(fields: LineFields, container: ContainerMeta | undefined, out: Buffer, at: number): void {
    this.build(fields, container);
    const id = hash('sha256', this.keyBytes(), 'base64url');
    for (let i = 0; i < ID_LENGTH; i++) out[at + i] = id.charCodeAt(i);
  }

  private build(f: LineFields, container: ContainerMeta | undefined): void {
    const buf = f.buf;
    const id = container?.id;
    const room = f.end - f.start + KEY_OVERHEAD + (id?.length ?? 0) * 3;
    if (this.key.length < room) this.growKey(room);
    this.pos = 0;

    if (id) this.bytes(this.sourcePart(container!, id));
    else {
      // An empty tag counts as absent (source.ts).
      if (f.tagAt >= 0 && f.tagEnd - f.tagAt > 2) this.jsonString(buf, f.tagAt, f.tagEnd);
      else this.jsonString(buf, f.inputAt, f.inputEnd);
      this.byte(BAR);
    }
    this.copy(buf, f.timestampAt, f.timestampAt + TIMESTAMP_LENGTH);
    this.byte(BAR);
    if (f.stream === 'stdout') this.bytes(STDOUT);
    else if (f.stream === 'stderr') this.bytes(STDERR);
    else if (f.stream !== undefined) this.text(f.stream);
    this.byte(BAR);
    this.decimal(f.ordinal);
    this.byte(BAR);
    if (f.piece >= 0) this.decimal(f.piece);
    this.byte(BAR);
    if (f.levelAt >= 0) this.jsonString(buf, f.levelAt, f.levelEnd);
    else this.bytes(EMPTY);
    this.byte(BAR);
    this.jsonString(buf, f.messageAt, f.messageEnd);
    this.byte(BAR);
    if (f.attrsAt >= 0) this.copy(buf, f.attrsAt, f.attrsEnd);
  }

  private growKey(room: number): void {
    this.key = Buffer.allocUnsafe(Math.max(room, this.key.length * 2));
    this.keyMemory = this.key.buffer;
    this.keyOffset = this.key.byteOffset;
  }

  /** The key built, as a view of `key`. */
  private keyBytes(): Uint8Array {
    return new Uint8Array(this.keyMemory, this.keyOffset, this.pos);
  }

  private sourcePart(container: ContainerMeta, id: string): Buffer {
    if (this.container !== container || this.containerId !== id) {
      this.container = container;
      this.containerId = id;
      this.containerPart = Buffer.from(`${id.length}:${id}|`, 'utf8');
    }
    return this.containerPart;
  }

  /** `<len>:<value>` of the JSON string at [at, end), quotes included. */
  private jsonString(buf: Buffer, at: number, end: number): void {
    const view = this.viewOf(buf);
    const to = end - 1;
    let units = 0;
    let i = at + 1;
    while (i < to) {
      // Runs of ASCII without a backslash, four bytes at a time: most of a message.
      for (; i + 4 <= to && plainWord(view.getUint32(i)); i += 4) units += 4;
      if (i >= to) break;
      const b = buf[i]!;
      if (b === BACKSLASH) return this.escapedString(buf, at, end, i, units);
      // One UTF-16 unit per UTF-8 lead byte, two past U+FFFF (4-byte sequences).
      if ((b & 0xc0) !== 0x80) units += b >= 0xf0 ? 2 : 1;
      i++;
    }
    this.decimal(units);
    this.byte(COLON);
    this.copy(buf, at + 1, to);
  }

  /**
   * A JSON string with escapes, decoded to the UTF-8 that writing its
   * JSON.parse value would give: a lone surrogate becomes U+FFFD, as it did
   * when the key was a string. Decoded into `scratch` first, since the length
   * prefix comes before it; decoding never makes a string longer. The bytes
   * before `from` were counted (`units`) and have no escape.
   */
  private escapedString(buf: Buffer, at: number, end: number, from: number, units: number): void {
    const to = end - 1;
    if (this.scratch.length < to - at) {
      this.scratch = Buffer.allocUnsafe(Math.max(to - at, this.scratch.length * 2));
      this.scratchView = new DataView(this.scratch.buffer, this.scratch.byteOffset, this.scratch.byteLength);
    }
    const out = this.scratch;
    const outView = this.scratchView;
    const view = this.viewOf(buf);
    let o = putRange(this.viewMemory, this.viewOffset + at + 1, this.viewOffset + from, out, 0);
    for (let i = from; i < to; ) {
      for (; i + 4 <= to; i += 4, o += 4, units += 4) {
        const x = view.getUint32(i);
        if (!plainWord(x)) break;
        outView.setUint32(o, x);
      }
      if (i >= to) break;
      const b = buf[i]!;
      if (b !== BACKSLASH) {
        if ((b & 0xc0) !== 0x80) units += b >= 0xf0 ? 2 : 1;
        out[o++] = b;
        i++;
        continue;
      }
      const e = buf[i + 1];
      const short = e === undefined ? -1 : SHORT_ESCAPES[e]!;
      if (short >= 0) {
        out[o++] = short;
        units++;
        i += 2;
        continue;
      }
      let cp = e === 0x75 /* u */ ? hex4(buf, i + 2, to) : -1;
      if (cp < 0) throw new Error(`malformed escape in a rendered line's string at byte ${i}: ${buf.toString('utf8', at, end)}`);
      i += 6;
      units++;
      if (cp >= 0xd800 && cp <= 0xdbff && buf[i] === BACKSLASH && buf[i + 1] === 0x75) {
        const low = hex4(buf, i + 2, to);
        if (low >= 0xdc00 && low <= 0xdfff) {
          cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
          units++;
          i += 6;
        }
      }
      if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd;
      o = writeUtf8(out, o, cp);
    }
    this.decimal(units);
    this.byte(COLON);
    this.pos = putRange(this.scratchView.buffer, this.scratchView.byteOffset, this.scratchView.byteOffset + o, this.key, this.pos);
  }

  /** A DataView of `buf`, kept while lines come from the same chunk. */
  private viewOf(buf: Buffer): DataView<ArrayBufferLike> {
    if (buf !== this.viewBuf) {
      this.viewBuf = buf;
      this.viewMemory = buf.buffer;
      this.viewOffset = buf.byteOffset;
      this.view = new DataView(this.viewMemory, this.viewOffset, buf.byteLength);
    }
    return this.view;
  }

  /** Bytes [from, to) of `buf`, a line's Buffer. */
  private copy(buf: Buffer, from: number, to: number): void {
    // A native copy costs a view of the source per call: short runs are cheaper byte by byte.
    if (to - from < SHORT_COPY) {
      const key = this.key;
      let p = this.pos;
      for (let i = from; i < to; i++) key[p++] = buf[i]!;
      this.pos = p;
      return;
    }
    this.viewOf(buf);
    this.pos = putRange(this.viewMemory, this.viewOffset + from, this.viewOffset + to, this.key, this.pos);
  }

  private bytes(b: Buffer): void {
    this.pos = put(b, this.key, this.pos);
  }

  /** A string's UTF-8: lone surrogates become U+FFFD, as they did when the key was a string. */
  private text(s: string): void {
    this.pos += this.key.write(s, this.pos, 'utf8');
  }

  private byte(b: number): void {
    this.key[this.pos++] = b;
  }

  private decimal(n: number): void {
    let digits = 1;
    for (let rest = n; rest >= 10; rest = Math.floor(rest / 10)) digits++;
    let p = (this.pos += digits);
    for (let rest = n; digits-- > 0; rest = Math.floor(rest / 10)) this.key[--p] = 0x30 + (rest % 10);
  }
}

/** Code point `cp` (not a surrogate) as UTF-8 at `o`; where it ends. */
function writeUtf8(out: Buffer, o: number, cp: number): number {
  if (cp < 0x80) {
    out[o++] = cp;
  } else if (cp < 0x800) {
    out[o++] = 0xc0 | (cp >> 6);
    out[o++] = 0x80 | (cp & 0x3f);
  } else if (cp < 0x10000) {
    out[o++] = 0xe0 | (cp >> 12);
    out[o++] = 0x80 | ((cp >> 6) & 0x3f);
    out[o++] = 0x80 | (cp & 0x3f);
  } else {
    out[o++] = 0xf0 | (cp >> 18);
    out[o++] = 0x80 | ((cp >> 12) & 0x3f);
    out[o++] = 0x80 | ((cp >> 6) & 0x3f);
    out[o++] = 0x80 | (cp & 0x3f);
  }
  return o;
}

const shared = new DocumentIds();

/** The `_id` of the line `fields` was read from, whose container (if any) is `container`. */
export function documentIdOfLine(fields: LineFields, container: ContainerMeta | undefined): string {
  return shared.of(fields, container);
}
