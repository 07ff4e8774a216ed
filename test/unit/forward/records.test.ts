import { describe, expect, it } from 'vitest';
import { RecordMapper } from '../../../src/collector/forward/records.js';
import { CONTAINER_ID, decodeStream, dockerRecord, mp } from '../../helpers/forward.js';

const T = 1795341190;
const mapOne = (record: Buffer, mapper = new RecordMapper(), time = mp.int32(T)) => {
  const [d] = decodeStream(mp.arr(mp.str('tag.x'), time, record));
  return mapper.toRawLine(d!.entries[0]!, 'tag.x');
};

describe('records → RawLine', () => {
  it('maps a Docker record: name without "/", source as stream, labels and env as extra', () => {
    const raw = mapOne(dockerRecord('hello', { 'com.example.team': 'clogs', APP_ENV: 'prod' }, 'stderr'));
    expect(raw).toEqual({
      input: 'forward',
      time: { sec: T, nsec: 0 },
      stream: 'stderr',
      line: 'hello',
      container: { id: CONTAINER_ID, name: 'web-1' },
      tag: 'tag.x',
      partial: undefined,
      extra: { 'com.example.team': 'clogs', APP_ENV: 'prod' },
    });
    expect(Object.isFrozen(raw.container)).toBe(true);
  });

  it('shares one container object per container, a new one after a rename', () => {
    const mapper = new RecordMapper();
    const a = mapOne(dockerRecord('1'), mapper).container;
    expect(mapOne(dockerRecord('2'), mapper).container).toBe(a);
    const renamed = mapOne(mp.strMap({ container_id: CONTAINER_ID, container_name: '/web-2', source: 'stdout', log: 'x' }), mapper).container;
    expect(renamed).toEqual({ id: CONTAINER_ID, name: 'web-2' });
    expect(renamed).not.toBe(a);
  });

  it('turns the partial_* strings into a partial with raw bytes', () => {
    const raw = mapOne(
      mp.map([
        ['container_id', mp.str(CONTAINER_ID)],
        ['log', mp.str(Buffer.from([0x61, 0xe2, 0x9c]))],
        ['partial_message', mp.str('true')],
        ['partial_id', mp.str('abc')],
        ['partial_ordinal', mp.str('3')],
        ['partial_last', mp.str('false')],
      ]),
    );
    expect(raw.partial).toEqual({ id: 'abc', ordinal: 3, last: false });
    expect(raw.line).toEqual(Buffer.from([0x61, 0xe2, 0x9c]));
    expect(raw.extra).toBeUndefined();
    expect(raw.container).toEqual({ id: CONTAINER_ID });
  });

  it('keeps an unusual source under extra', () => {
    const raw = mapOne(mp.strMap({ container_id: CONTAINER_ID, source: 'journal', log: 'x' }));
    expect(raw.stream).toBeUndefined();
    expect(raw.extra).toEqual({ source: 'journal' });
  });

  it.each([
    ['msg', mp.map([['level', mp.str('info')], ['msg', mp.str('hi')]]), 'hi', { level: 'info', msg: 'hi' }],
    ['message over log and msg', mp.strMap({ msg: 'm', log: 'l', message: 'the message' }), 'the message', { msg: 'm', log: 'l', message: 'the message' }],
    ['a number', mp.map([['message', mp.fixint(7)]]), '7', { message: 7 }],
    ['no line key: the JSON', mp.map([['a', mp.fixint(1)], ['b', mp.arr(mp.str('x'))]]), '{"a":1,"b":["x"]}', { a: 1, b: ['x'] }],
    ['source and log of a non-Docker record', mp.strMap({ source: 'app', log: 'from log' }), 'from log', { source: 'app', log: 'from log' }],
  ])('keeps every key of a non-Docker record (%s)', (_what, record, line, extra) => {
    const raw = mapOne(record);
    expect(raw.container).toBeUndefined();
    expect(raw.stream).toBeUndefined();
    expect(raw.line).toBe(line);
    expect(raw.extra).toEqual(extra);
    expect(raw.tag).toBe('tag.x');
  });

  it('replaces a time of 0 with the time of receipt, as Fluentd does', () => {
    const before = Math.floor(Date.now() / 1000);
    const raw = mapOne(dockerRecord('x'), new RecordMapper(), mp.fixint(0));
    expect(raw.time.sec).toBeGreaterThanOrEqual(before);
  });
});
