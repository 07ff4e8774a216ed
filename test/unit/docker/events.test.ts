import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EventStreamParser, MAX_EVENT_BYTES, parseEvent, type ContainerEvent } from '../../../src/collector/docker/events.js';

const bytes = readFileSync(join(process.cwd(), 'test/fixtures/docker/events/events-stream.bin'));
const ID = '0ec64f8cbc0382482a42b64e809c07265559bdf2b245b7f42ba9d72f91dc62be';

// The 15 events of the capture, minus the actions clogs does not act on
// (create, kill, stop, restart).
const EXPECTED: ContainerEvent[] = [
  { action: 'start', id: ID, name: 'clogs-cap-ev' },
  { action: 'die', id: ID, name: 'clogs-cap-ev' },
  { action: 'start', id: ID, name: 'clogs-cap-ev' },
  { action: 'die', id: ID, name: 'clogs-cap-ev' },
  { action: 'start', id: ID, name: 'clogs-cap-ev' },
  { action: 'rename', id: ID, name: 'clogs-cap-ev-renamed' },
  { action: 'die', id: ID, name: 'clogs-cap-ev-renamed' },
  { action: 'destroy', id: ID, name: 'clogs-cap-ev-renamed' },
];

function feed(sizes: (at: number) => number): ContainerEvent[] {
  const p = new EventStreamParser();
  const out: ContainerEvent[] = [];
  for (let at = 0; at < bytes.length; ) {
    const n = Math.max(1, Math.min(sizes(at), bytes.length - at));
    out.push(...p.push(bytes.subarray(at, at + n)));
    at += n;
  }
  return out;
}

describe('EventStreamParser on the captured /events body', () => {
  it('reads the container events clogs acts on, whole', () => {
    expect(feed(() => bytes.length)).toEqual(EXPECTED);
  });

  it('gives the same events split at every byte', () => {
    for (let cut = 1; cut < bytes.length; cut++) expect(feed((at) => (at === 0 ? cut : bytes.length))).toEqual(EXPECTED);
  });

  it('gives the same events one byte at a time', () => {
    expect(feed(() => 1)).toEqual(EXPECTED);
  });

  it('takes the new name from a rename and the container name, not a label called name', () => {
    const rename = parseEvent(bytes.toString('utf8').split('\n').find((l) => l.includes('"Action":"rename"'))!);
    expect(rename).toEqual({ action: 'rename', id: ID, name: 'clogs-cap-ev-renamed' });
  });

  it('ignores other event types and closes on garbage or an endless line', () => {
    expect(parseEvent('{"Type":"network","Action":"connect","Actor":{"ID":"x"}}')).toBeUndefined();
    expect(() => new EventStreamParser().push(Buffer.from('not json\n'))).toThrow(expect.objectContaining({ code: 'CLOGS_FRAME_MALFORMED' }));
    const p = new EventStreamParser();
    expect(() => {
      for (let i = 0; i <= MAX_EVENT_BYTES / 65536 + 1; i++) p.push(Buffer.alloc(65536, 0x61));
    }).toThrow(expect.objectContaining({ code: 'CLOGS_FRAME_TOO_LARGE' }));
  });
});
