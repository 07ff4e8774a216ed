import { describe, expect, it } from 'vitest';
import { decodeValue } from '../../../src/collector/forward/decoder.js';
import { MsgpackReader } from '../../../src/collector/forward/msgpack.js';
import { LIMITS, mp } from '../../helpers/forward.js';

const ext = (type: number, data: Buffer): Buffer => Buffer.concat([Buffer.from([0xc7, data.length, type]), data]);

describe('msgpack reader: ext values', () => {
  const sixteen = Buffer.alloc(16, 7);
  const value = mp.arr(mp.eventTime(1_700_000_000, 5), ext(5, Buffer.from([1, 2, 3])), Buffer.concat([Buffer.from([0xd8, 0x01]), sixteen]));

  it('reads every ext as its type and bytes, EventTime included: Fluentd is not its business', () => {
    const r = new MsgpackReader(value, 0, value.length, LIMITS);
    expect(r.value(0)).toEqual([
      { ext: 0, data: Buffer.concat([Buffer.from([0x65, 0x53, 0xf1, 0x00]), Buffer.from([0, 0, 0, 5])]).toString('base64') },
      { ext: 5, data: 'AQID' },
      { ext: 1, data: sixteen.toString('base64') },
    ]);
    expect(r.pos).toBe(value.length);
  });

  it('the forward decoder renders EventTime as RFC 3339 and leaves other ext as they are', () => {
    expect(decodeValue(value, LIMITS)).toEqual(['2023-11-14T22:13:20.000000005Z', { ext: 5, data: 'AQID' }, { ext: 1, data: sixteen.toString('base64') }]);
  });
});
