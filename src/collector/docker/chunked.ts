/**
 * HTTP/1.1 chunked transfer coding (RFC 9112 §7.1), bytes in, body pieces out.
 * The engine sends a followed log as one chunk per flushed message; a read
 * that took many of them hands back many pieces, each a view into the read.
 */
import { ClogsError } from '../../errors.js';

const CR = 0x0d;
const LF = 0x0a;
/** A chunk-size line is a few hex digits, maybe with extensions; a trailer line is a header. */
const MAX_LINE_BYTES = 8 * 1024;

type State = 'size' | 'data' | 'data-end' | 'trailer' | 'done';

export class ChunkedDecoder {
  private state: State = 'size';
  /** Bytes of the current chunk's data still to come. */
  private remaining = 0;
  /** The size or trailer line read so far (without its line end). */
  private line = '';
  /** After a chunk's data: how many bytes of its CRLF were seen. */
  private endSeen = 0;

  /** The last chunk and the trailers were read: the body is complete. */
  get done(): boolean {
    return this.state === 'done';
  }

  /** Appends the body pieces in `buf` to `out`. Bytes after the end of the body are ignored. */
  push(buf: Buffer, out: Buffer[]): void {
    let i = 0;
    const n = buf.length;
    while (i < n && this.state !== 'done') {
      switch (this.state) {
        case 'data': {
          const take = Math.min(this.remaining, n - i);
          out.push(buf.subarray(i, i + take));
          i += take;
          this.remaining -= take;
          if (this.remaining === 0) this.state = 'data-end';
          break;
        }
        case 'data-end': {
          const b = buf[i++]!;
          if (b === LF) {
            this.endSeen = 0;
            this.state = 'size';
          } else if (b === CR && this.endSeen === 0) this.endSeen = 1;
          else throw malformed('no CRLF after chunk data');
          break;
        }
        default: {
          const at = buf.indexOf(LF, i);
          const end = at < 0 ? n : at;
          if (this.line.length + (end - i) > MAX_LINE_BYTES) throw malformed('line too long');
          this.line += buf.toString('latin1', i, end);
          i = end;
          if (at < 0) break;
          i++;
          const line = this.line.endsWith('\r') ? this.line.slice(0, -1) : this.line;
          this.line = '';
          if (this.state === 'trailer') {
            if (line.length === 0) this.state = 'done';
            break;
          }
          const size = parseSize(line);
          if (size === 0) this.state = 'trailer';
          else {
            this.remaining = size;
            this.state = 'data';
          }
        }
      }
    }
  }
}

function parseSize(line: string): number {
  const semi = line.indexOf(';');
  const hex = (semi < 0 ? line : line.slice(0, semi)).trim();
  if (!/^[0-9a-fA-F]{1,8}$/.test(hex)) throw malformed(`bad chunk size ${JSON.stringify(line.slice(0, 40))}`);
  return parseInt(hex, 16);
}

function malformed(what: string): ClogsError {
  return new ClogsError('CLOGS_FRAME_MALFORMED', `docker log stream: chunked body: ${what}`);
}
