/**
 * The `container` values of a request to `/api/lines`, `/api/export` or
 * `/tail`: names, ids, services or tags, each resolved on its own and then
 * checked against every line, so their number and length are bounded.
 */
import { ClogsError } from '../errors.js';

const MAX_CONTAINER_PARAMS = 100;
const MAX_CONTAINER_PARAM_LENGTH = 512;

/** The non-blank `container` values of `params`; throws (CLOGS_TAIL) past the bounds. */
export function containerParams(params: URLSearchParams): string[] {
  const containers = params.getAll('container').filter((c) => c.trim() !== '');
  if (containers.length > MAX_CONTAINER_PARAMS) throw new ClogsError('CLOGS_TAIL', `container: expected at most ${MAX_CONTAINER_PARAMS} values, got ${containers.length}`);
  const long = containers.find((c) => c.length > MAX_CONTAINER_PARAM_LENGTH);
  if (long !== undefined) throw new ClogsError('CLOGS_TAIL', `container: expected a name, id, service or tag of at most ${MAX_CONTAINER_PARAM_LENGTH} characters, got one of ${long.length}`);
  return containers;
}
