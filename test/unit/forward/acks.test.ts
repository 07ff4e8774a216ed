import { describe, expect, it } from 'vitest';
import { ChunkLedger, chunkKey, encodeAcks } from '../../../src/collector/forward/acks.js';
import { decodeReplies, mp } from '../../helpers/forward.js';

describe('acks', () => {
  it('echo each chunk value byte for byte, whatever its msgpack format', () => {
    const chunks = [mp.str('p8n9gmxTQVC8/nh2wlKKeQ==\n'), mp.str('x', 'str32'), mp.bin(Buffer.from([0, 255, 1]))];
    const out = encodeAcks(chunks);
    expect(out).toEqual(Buffer.concat(chunks.map((c) => Buffer.concat([Buffer.from([0x81, 0xa3]), Buffer.from('ack'), c]))));
    expect(decodeReplies(out)).toEqual([{ ack: 'p8n9gmxTQVC8/nh2wlKKeQ==\n' }, { ack: 'x' }, { ack: Buffer.from([0, 255, 1]) }]);
  });

  it('keys chunks by their exact bytes and the CRC-32 of the whole request', () => {
    const request = Buffer.from('the request');
    expect(chunkKey(mp.str('a'), request)).not.toBe(chunkKey(mp.bin(Buffer.from('a')), request));
    // zlib's check value: CRC-32 of "123456789" is cbf43926.
    expect(chunkKey(Buffer.from([0xff, 0x00]), Buffer.from('123456789'))).toBe('cbf43926\u00ff\u0000');
    expect(chunkKey(Buffer.from([0x01]), Buffer.alloc(0))).toBe('00000000\u0001');
  });

  it('tells a true resend from a reused chunk id with other bytes', () => {
    const chunk = mp.str('1');
    const first = mp.arr(mp.str('app'), mp.int32(1), mp.strMap({ log: 'client A record 0' }), mp.map([['chunk', chunk]]));
    const other = mp.arr(mp.str('app'), mp.int32(1), mp.strMap({ log: 'client B record 0' }), mp.map([['chunk', chunk]]));
    expect(chunkKey(chunk, Buffer.from(first))).toBe(chunkKey(chunk, first));
    expect(chunkKey(chunk, other)).not.toBe(chunkKey(chunk, first));
  });
});

describe('ChunkLedger', () => {
  it('tells a pending chunk, an acked chunk and a failed one apart', async () => {
    const ledger = new ChunkLedger(10);
    expect(ledger.lookup('a')).toBeUndefined();
    const pending = ledger.begin('a');
    expect(ledger.lookup('a')).toBe(pending);
    const outcome = pending.outcome();
    ledger.settle('a', pending, true);
    expect(await outcome).toBe(true);
    expect(ledger.lookup('a')).toBe(true);

    const p2 = ledger.begin('b');
    const o2 = p2.outcome();
    ledger.settle('b', p2, false);
    expect(await o2).toBe(false);
    expect(ledger.lookup('b')).toBeUndefined();
  });

  it('skips only the byte-identical resend of an acked chunk, not its id reused for other data', () => {
    const ledger = new ChunkLedger(10);
    const chunk = mp.str('1');
    const request = (log: string): Buffer => mp.arr(mp.str('app'), mp.int32(1), mp.strMap({ log }), mp.map([['chunk', chunk]]));
    const first = chunkKey(chunk, request('first start'));
    ledger.settle(first, ledger.begin(first), true);
    expect(ledger.lookup(chunkKey(chunk, request('first start')))).toBe(true);
    const restarted = chunkKey(chunk, request('after a restart'));
    expect(ledger.lookup(restarted)).toBeUndefined();
    const pending = ledger.begin(restarted);
    expect(ledger.lookup(first)).toBe(true);
    expect(ledger.lookup(restarted)).toBe(pending);
  });

  it('forgets the oldest acked chunks beyond its bound, never a pending one', () => {
    const ledger = new ChunkLedger(100);
    const pending = Array.from({ length: 500 }, (_, i) => ledger.begin(`p${i}`));
    for (let i = 0; i < 1000; i++) ledger.settle(`a${i}`, ledger.begin(`a${i}`), true);
    for (let i = 0; i < 500; i++) expect(ledger.lookup(`p${i}`)).toBe(pending[i]);
    const kept = Array.from({ length: 1000 }, (_, i) => ledger.lookup(`a${i}`) === true);
    expect(kept.filter(Boolean)).toHaveLength(100);
    expect(kept.indexOf(true)).toBe(900);
  });

  it('remembers acked chunks for a while however many come, then forgets them by age', () => {
    let now = 0;
    const ledger = new ChunkLedger(100_000, 60_000, () => now);
    // 2,000 acks a second for 30 s: a bound of 8,192 would have forgotten the first after 4 s.
    for (let i = 0; i < 60_000; i++) {
      now = i / 2;
      ledger.settle(`a${i}`, ledger.begin(`a${i}`), true);
    }
    expect(ledger.lookup('a0')).toBe(true);
    now = 60_000 + 10_000;
    ledger.settle('late', ledger.begin('late'), true);
    // Acked more than 60 s before: those of the first 10 s.
    expect(ledger.lookup('a19999')).toBeUndefined();
    expect(ledger.lookup('a20000')).toBe(true);
  });
});
