import type { EncodedBatch } from '../../src/collector/encoded.js';
import type { LogEvent } from '../../src/collector/event.js';
import { LineFields } from '../../src/collector/line-fields.js';

const FIELDS = ['start', 'end', 'messageAt', 'messageEnd', 'stream', 'levelAt', 'levelEnd', 'attrsAt', 'attrsEnd', 'inputAt', 'inputEnd', 'tagAt', 'tagEnd', 'seqAt', 'seqEnd', 'ordinal', 'piece'] as const;

/**
 * Throws unless the fields the renderer marked beside each line of the batch
 * are where reading the line's bytes finds them, and every line is marked.
 */
export function checkMarks(batch: EncodedBatch): void {
  for (const s of batch.sources()) {
    const read = new LineFields();
    let lines = 0;
    s.forEachLine(new LineFields(), (marked) => {
      lines++;
      read.read(marked.buf, marked.start);
      for (const k of FIELDS) {
        if (marked[k] !== read[k]) throw new Error(`line ${JSON.stringify(marked.line().toString())}: marked ${k} ${marked[k]}, read ${read[k]}`);
      }
    });
    const text = Buffer.concat(s.chunks()).toString('latin1');
    const newlines = text.split('\n').length - 1;
    if (lines !== newlines) throw new Error(`${newlines} lines, ${lines} marked`);
  }
}

/**
 * The events of a batch, parsed from its lines, for tests to look at: the
 * collector itself never parses its lines back. Each source's events share its
 * container object, as the input's did.
 */
export function eventsOf(batch: EncodedBatch): LogEvent[] {
  checkMarks(batch);
  const out: LogEvent[] = [];
  for (const s of batch.sources()) {
    for (const line of Buffer.concat(s.chunks()).toString('utf8').split('\n')) {
      if (line === '') continue;
      const event = JSON.parse(line) as LogEvent;
      if (s.container !== undefined) event.container = s.container;
      out.push(event);
    }
  }
  return out;
}
