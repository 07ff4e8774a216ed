import type { EncodedBatch } from '../../src/collector/encoded.js';
import type { LogEvent } from '../../src/collector/event.js';

/**
 * The events of a batch, parsed from its lines, for tests to look at: the
 * collector itself never parses its lines back. Each source's events share its
 * container object, as the input's did.
 */
export function eventsOf(batch: EncodedBatch): LogEvent[] {
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
