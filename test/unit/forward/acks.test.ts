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

  it('keys chunks by their exact bytes', () => {
    expect(chunkKey(mp.str('a'))).not.toBe(chunkKey(mp.bin(Buffer.from('a'))));
    expect(chunkKey(Buffer.from([0xff, 0x00]))).toBe('\u00ff\u0000');
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

  it('forgets the oldest acked chunks beyond its bound, never a pending one', () => {
    const ledger = new ChunkLedger(100);
    const pending = Array.from({ length: 500 }, (_, i) => ledger.begin(`p${i}`));
    for (let i = 0; i < 1000; i++) ledger.settle(`a${i}`, ledger.begin(`a${i}`), true);
    for (let i = 0; i < 500; i++) expect(ledger.lookup(`p${i}`)).toBe(pending[i]);
    expect(ledger.lookup('a999')).toBe(true);
    expect(ledger.lookup('a0')).toBeUndefined();
    const kept = Array.from({ length: 1000 }, (_, i) => ledger.lookup(`a${i}`)).filter((v) => v === true).length;
    expect(kept).toBeGreaterThanOrEqual(100);
    expect(kept).toBeLessThanOrEqual(125);
  });
});
