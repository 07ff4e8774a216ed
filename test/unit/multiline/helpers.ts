import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { multilineSchema } from '../../../src/config/schema.js';
import type { LogEvent } from '../../../src/collector/event.js';
import { Normalizer, type NormalizerOptions, type RawLine } from '../../../src/collector/normalize.js';

const FIXTURES = join(import.meta.dirname, '../../fixtures/traces');

/** A real trace from test/fixtures/traces, as its lines. */
export const trace = (name: string): string[] => readFileSync(join(FIXTURES, name), 'utf8').replace(/\n$/, '').split('\n');

/** A Normalizer whose timeout flushes land in `flushed`; `multiline` undefined: no joining. */
export function makeNormalizer(multiline: Record<string, unknown> | undefined = {}, opts: Partial<NormalizerOptions> = {}) {
  let seq = 0;
  const flushed: LogEvent[] = [];
  const n = new Normalizer({
    hostName: 'h',
    nextSeq: () => seq++,
    parseJson: true,
    parseLogfmt: true,
    stripAnsi: true,
    maxLineBytes: 1024 * 1024,
    partialTimeoutMs: 5000,
    onTimeoutFlush: (events) => flushed.push(...events),
    ...(multiline === undefined ? {} : { multiline: multilineSchema.parse(multiline) }),
    ...opts,
  });
  return { n, flushed };
}

const container = Object.freeze({ id: 'a'.repeat(64), name: 'shop' });
let nsec = 0;
/** A Docker line of container `a…a` on stderr, each a microsecond after the one before. */
export const raw = (text: string, more: Partial<RawLine> = {}): RawLine => ({
  input: 'docker',
  time: { sec: 1795341190, nsec: (nsec += 1000) },
  stream: 'stderr',
  line: Buffer.from(text),
  container,
  ...more,
});
