/**
 * `npm run bench [name...]`: runs the benchmarks one after another (they
 * share two cores, so never at once) and prints each one's figures.
 * Names: forward, file-sink, docker, elasticsearch. The Docker and
 * Elasticsearch benches need those services (scripts/docker.sh ensure,
 * scripts/elasticsearch.sh ensure).
 */
import { run as forward } from './forward.bench.js';
import { run as fileSink } from './file-sink.bench.js';
import { run as docker } from './docker.bench.js';
import { run as elasticsearch } from './elasticsearch.bench.js';

const benches: Record<string, () => Promise<void>> = {
  forward: () => forward(),
  'file-sink': () => fileSink(),
  docker: () => docker(),
  elasticsearch: () => elasticsearch(),
};

const wanted = process.argv.slice(2);
for (const name of wanted) {
  if (!(name in benches)) {
    process.stderr.write(`unknown bench ${JSON.stringify(name)}; choose from ${Object.keys(benches).join(', ')}\n`);
    process.exit(2);
  }
}
for (const name of wanted.length > 0 ? wanted : Object.keys(benches)) {
  process.stdout.write(`\n== ${name}\n`);
  await benches[name]!();
}
