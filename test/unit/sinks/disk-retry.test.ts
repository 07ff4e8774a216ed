import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { sinkBlocked, sinkWriteRetries } from '../../../src/metrics.js';
import { DiskRetry, diskErrorCode } from '../../../src/sinks/disk-retry.js';

const BACKOFF = { initialMs: 1, maxMs: 4 };
const diskError = (code: string): Error => Object.assign(new Error(`${code}: injected`), { code });

function captureLog() {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, lines };
}

async function series(metric: typeof sinkBlocked | typeof sinkWriteRetries, sink: string, reason: string): Promise<number> {
  return (await metric.get()).values.find((v) => v.labels.sink === sink && v.labels.reason === reason)?.value ?? 0;
}

/** An operation that fails with the given codes, one per attempt, then returns 'done'. */
function failing(codes: string[]): { op: () => Promise<string>; attempts: () => number } {
  let n = 0;
  return {
    op: async () => {
      const code = codes[n++];
      if (code !== undefined) throw diskError(code);
      return 'done';
    },
    attempts: () => n,
  };
}

describe('diskErrorCode', () => {
  it('knows the errors of a full or failing disk, and only those', () => {
    expect(diskErrorCode(diskError('ENOSPC'))).toBe('ENOSPC');
    expect(diskErrorCode(diskError('EDQUOT'))).toBe('EDQUOT');
    expect(diskErrorCode(diskError('EIO'))).toBe('EIO');
    expect(diskErrorCode(diskError('EACCES'))).toBeUndefined();
    expect(diskErrorCode(diskError('toString'))).toBeUndefined();
    expect(diskErrorCode(new Error('no code'))).toBeUndefined();
    expect(diskErrorCode(undefined)).toBeUndefined();
  });
});

describe('DiskRetry', () => {
  it('retries until the operation succeeds, logging once when blocked and once when clear', async () => {
    const { log, lines } = captureLog();
    const retry = new DiskRetry({ sink: 'unit-a', log, backoff: BACKOFF });
    const f = failing(['ENOSPC', 'ENOSPC', 'ENOSPC']);
    let reasonWhileBlocked: string | undefined;
    const result = retry.run('/data/x.ndjson', async () => {
      if (f.attempts() === 2) reasonWhileBlocked = retry.reason();
      return f.op();
    });
    await expect(result).resolves.toBe('done');
    expect(f.attempts()).toBe(4);
    expect(reasonWhileBlocked).toBe('disk full: ENOSPC on /data/x.ndjson');
    expect(retry.reason()).toBeUndefined();
    expect(await series(sinkWriteRetries, 'unit-a', 'ENOSPC')).toBe(3);
    expect(await series(sinkBlocked, 'unit-a', 'ENOSPC')).toBe(0);
    expect(lines.map((l) => [l.level, l.code, l.retries])).toEqual([
      [40, 'ENOSPC', undefined],
      [30, 'ENOSPC', 3],
    ]);
  });

  it('stays blocked until every waiting operation went through', async () => {
    const { log, lines } = captureLog();
    const retry = new DiskRetry({ sink: 'unit-b', log, backoff: BACKOFF });
    let full = true;
    const op = async () => {
      if (full) throw diskError('EDQUOT');
    };
    const quick = failing(['EDQUOT']);
    const slow = retry.run('/q', op);
    await expect(retry.run('/q', quick.op)).resolves.toBe('done');
    // One of the two went through; the other still waits.
    expect(retry.reason()).toBe('disk quota exceeded: EDQUOT on /q');
    expect(await series(sinkBlocked, 'unit-b', 'EDQUOT')).toBe(1);
    full = false;
    await slow;
    expect(retry.reason()).toBeUndefined();
    expect(lines.filter((l) => l.level === 40)).toHaveLength(1);
    expect(lines.filter((l) => l.level === 30)).toHaveLength(1);
  });

  it('follows the error code in the gauge when it changes while blocked', async () => {
    const { log } = captureLog();
    const retry = new DiskRetry({ sink: 'unit-c', log, backoff: BACKOFF });
    let seen: number[] = [];
    const f = failing(['ENOSPC', 'EIO']);
    await retry.run('/d', async () => {
      seen = [await series(sinkBlocked, 'unit-c', 'ENOSPC'), await series(sinkBlocked, 'unit-c', 'EIO')];
      return f.op();
    });
    // Seen at the third attempt: blocked on EIO, no longer on ENOSPC.
    expect(seen).toEqual([0, 1]);
    expect(await series(sinkBlocked, 'unit-c', 'EIO')).toBe(0);
  });

  it('throws any other error at once, and clears the block it ends', async () => {
    const { log, lines } = captureLog();
    const retry = new DiskRetry({ sink: 'unit-d', log, backoff: BACKOFF });
    await expect(retry.run('/d', failing(['EACCES']).op)).rejects.toMatchObject({ code: 'EACCES' });
    expect(lines).toEqual([]);
    await expect(retry.run('/d', failing(['EIO', 'EBADF']).op)).rejects.toMatchObject({ code: 'EBADF' });
    expect(retry.reason()).toBeUndefined();
    expect(await series(sinkBlocked, 'unit-d', 'EIO')).toBe(0);
  });
});
