import { describe, expect, it } from 'vitest';
import { bulkItems, bulkResponseItems, itemRetryReason, itemVerdict, requestVerdict, responseBody } from '../../../src/sinks/elasticsearch/retry.js';

describe('requestVerdict', () => {
  it.each([
    [200, { action: 'items' }],
    [201, { action: 'items' }],
    [429, { action: 'retry', reason: 'throttled' }],
    [500, { action: 'retry', reason: 'server' }],
    [502, { action: 'retry', reason: 'server' }],
    [503, { action: 'retry', reason: 'server' }],
    [504, { action: 'retry', reason: 'server' }],
    [401, { action: 'retry', reason: 'unauthorized' }],
    [403, { action: 'retry', reason: 'forbidden' }],
    [404, { action: 'retry', reason: 'not_found' }],
    [400, { action: 'retry', reason: 'refused' }],
    [413, { action: 'split' }],
    [418, { action: 'retry', reason: 'unexpected' }],
  ])('HTTP %i → %o', (status, verdict) => {
    expect(requestVerdict({ kind: 'response', status })).toEqual(verdict);
  });

  it('splits a request refused for a document\'s bytes, and retries one refused as a whole', () => {
    const answer = (type: string) => ({ kind: 'response' as const, status: 400, body: { error: { root_cause: [{ type }], type, reason: 'x' }, status: 400 } });
    expect(requestVerdict(answer('x_content_parse_exception'))).toEqual({ action: 'split' });
    expect(requestVerdict(answer('document_parsing_exception'))).toEqual({ action: 'split' });
    const malformed = { error: { type: 'illegal_argument_exception', reason: 'Malformed action/metadata line [1], expected END_OBJECT but found [FIELD_NAME]' } };
    expect(requestVerdict({ kind: 'response', status: 400, body: malformed })).toEqual({ action: 'split' });
    expect(requestVerdict({ kind: 'response', status: 400, body: { error: { type: 'illegal_argument_exception', reason: 'request [/_bulk] contains unrecognized parameter' } } })).toEqual({ action: 'retry', reason: 'refused' });
    // An 8.x node asked for compatible-with=9; a proxy's HTML page.
    expect(requestVerdict(answer('media_type_header_exception'))).toEqual({ action: 'retry', reason: 'refused' });
    expect(requestVerdict({ kind: 'response', status: 400, body: '<html>Bad Request</html>' })).toEqual({ action: 'retry', reason: 'refused' });
  });

  it('retries connection errors, timeouts and servers that are not Elasticsearch', () => {
    expect(requestVerdict({ kind: 'connection', message: 'ECONNREFUSED' })).toEqual({ action: 'retry', reason: 'connection' });
    expect(requestVerdict({ kind: 'timeout', message: 'Request timed out' })).toEqual({ action: 'retry', reason: 'timeout' });
    expect(requestVerdict({ kind: 'not_elasticsearch', message: 'x' })).toEqual({ action: 'retry', reason: 'not_elasticsearch' });
  });
});

describe('itemVerdict', () => {
  it.each([
    [200, 'accepted'],
    [201, 'accepted'],
    [409, 'duplicate'],
    [429, 'retry'],
    [500, 'retry'],
    [503, 'retry'],
    [401, 'retry'],
    [403, 'retry'],
    [404, 'retry'],
    [408, 'retry'],
    [400, 'dead_letter'],
    [413, 'dead_letter'],
    [422, 'dead_letter'],
  ])('item status %i → %s', (status, verdict) => {
    expect(itemVerdict(status)).toBe(verdict);
  });

  it('dead-letters an item whose own index is closed to writes, and retries other refusals', () => {
    expect(itemVerdict(403, { type: 'cluster_block_exception', reason: 'index [clogs-2026.11.20] blocked by: [FORBIDDEN/8/index write (api)];' })).toBe('dead_letter');
    expect(itemVerdict(403, { type: 'security_exception', reason: 'action [indices:data/write/bulk[s]] is unauthorized' })).toBe('retry');
    expect(itemVerdict(404, { type: 'index_not_found_exception', reason: 'no such index' })).toBe('retry');
    expect(itemVerdict(429, { type: 'cluster_block_exception', reason: 'disk usage exceeded flood-stage watermark' })).toBe('retry');
  });
});

describe('itemRetryReason', () => {
  it.each([
    [429, 'throttled'],
    [503, 'server'],
    [401, 'unauthorized'],
    [403, 'forbidden'],
    [404, 'index_missing'],
    [408, 'timeout'],
  ])('item status %i is logged as %s', (status, reason) => {
    expect(itemRetryReason(status)).toBe(reason);
  });
});

describe('bulkItems', () => {
  it('reads item statuses in request order', () => {
    const body = {
      errors: true,
      items: [{ create: { status: 201 } }, { create: { status: 409, error: { type: 'version_conflict_engine_exception' } } }, { create: { status: 429 } }],
    };
    expect(bulkItems(body, 3)).toEqual([{ status: 201 }, { status: 409, error: { type: 'version_conflict_engine_exception' } }, { status: 429 }]);
  });

  it('treats a filtered all-success body as every item accepted', () => {
    expect(bulkItems({ errors: false }, 2)).toEqual([{ status: 201 }, { status: 201 }]);
  });

  it('refuses a body whose items do not match what was sent', () => {
    expect(bulkItems({ errors: true, items: [{ create: { status: 201 } }] }, 2)).toBeUndefined();
    expect(bulkItems('<html>proxy error</html>', 1)).toBeUndefined();
    expect(bulkItems({ errors: true, items: [{ create: {} }] }, 1)).toBeUndefined();
    expect(bulkItems(null, 1)).toBeUndefined();
  });
});

describe('bulkResponseItems', () => {
  const raw = (body: unknown): Buffer => Buffer.from(JSON.stringify(body));
  // As Elasticsearch 9 answers with filter_path=errors,items.*.status,items.*.error.
  const accepted = (n: number): Buffer => raw({ errors: false, items: Array.from({ length: n }, () => ({ create: { status: 201 } })) });

  it('takes an answer without errors as every document accepted, one status per document', () => {
    expect(bulkResponseItems(accepted(3), 3)).toEqual([{ status: 201 }, { status: 201 }, { status: 201 }]);
  });

  it('refuses an answer without errors that does not hold one status per document sent, or is cut short', () => {
    expect(bulkResponseItems(accepted(2), 3)).toBeUndefined();
    expect(bulkResponseItems(accepted(4), 3)).toBeUndefined();
    const whole = accepted(3);
    expect(bulkResponseItems(whole.subarray(0, whole.length - 2), 3)).toBeUndefined();
    expect(bulkResponseItems(Buffer.from('<html>proxy error</html>'), 1)).toBeUndefined();
  });

  it('reads each item of an answer without errors whose items are shaped otherwise', () => {
    const body = { errors: false, items: [{ create: { status: 201, _id: 'a' } }, { create: { status: 201 } }] };
    expect(bulkResponseItems(raw(body), 2)).toEqual([{ status: 201 }, { status: 201 }]);
    expect(bulkResponseItems(raw(body), 3)).toBeUndefined();
  });

  it('reads each item of an answer with errors', () => {
    const body = {
      errors: true,
      items: [{ create: { status: 201 } }, { create: { status: 409, error: { type: 'version_conflict_engine_exception' } } }, { create: { status: 429 } }],
    };
    expect(bulkResponseItems(raw(body), 3)).toEqual([{ status: 201 }, { status: 409, error: { type: 'version_conflict_engine_exception' } }, { status: 429 }]);
  });
});

describe('responseBody', () => {
  it('is the JSON of the answer, else its text', () => {
    expect(responseBody(Buffer.from('{"error":{"type":"x"}}'))).toEqual({ error: { type: 'x' } });
    expect(responseBody(Buffer.from('<html>bad gateway</html>'))).toBe('<html>bad gateway</html>');
  });
});
