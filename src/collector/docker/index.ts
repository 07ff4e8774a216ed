/**
 * The Docker input: follows every container's stdout and stderr through the
 * Engine API, resuming from per-container checkpoints so that no line is lost
 * or repeated across restarts of clogs, of the containers or of the engine.
 *
 *   engine.ts      which engine, dockerode client
 *   discovery.ts   list + /events → which containers to follow
 *   follower.ts    one container's log stream
 *   log-stream.ts  opening it: our own HTTP request (chunked.ts), dockerode over TLS
 *   frames.ts      the stream's bytes → lines
 *   metadata.ts    inspect → ContainerMeta
 *   filters.ts     include / exclude / opt-out / self
 *   shipper.ts     batches → pipeline → checkpoint
 *   checkpoints.ts positions, persisted atomically
 *   backfill.ts    fluentd-driver containers: only what the forward input missed
 */
import { join } from 'node:path';
import type { DockerConfig } from '../../config/schema.js';
import { removeIfPresent } from '../../state-files.js';
import { sharedNormalizerOptions, type InputDeps, type RunningInput } from '../input.js';
import { Normalizer } from '../normalize.js';
import { BackfillGate } from './backfill.js';
import { CheckpointStore } from './checkpoints.js';
import { Discovery } from './discovery.js';
import { connectEngine, pingEngine } from './engine.js';
import { compileFilter, detectOwnContainerIds } from './filters.js';
import { MetadataCache } from './metadata.js';
import { Shipper } from './shipper.js';

/** Log drivers the engine can read back (`daemon/logger` LogReader implementations). */
const READABLE_DRIVERS = new Set(['json-file', 'local', 'journald']);
const PING_TIMEOUT_MS = 3000;
/** The filling batch; one more is in flight. */
const BATCH_MAX_EVENTS = 10_000;
const BATCH_MAX_BYTES = 8 * 1024 * 1024;
const HEARTBEAT_MS = 30_000;
/**
 * measured (bench/docker.bench.ts rate, ~4,000 lines/s from 10 and from 100
 * containers, followers parked between cycles): 100 ms cost 3.2 and 7.6 CPU s
 * per 100k lines, lag p99 135 and 401 ms; 150 ms gained nothing (3.5 and 7.7
 * s) and doubled the lag; 20 ms before parking: 9.8 s both. Over 100
 * containers ~2.7 s of it was the file sink's O_DSYNC write per container
 * file per cycle (~115 µs of CPU each), before writes were deferred and
 * synced once per DURABLE_MS. Again with followers read at the cycles only
 * (follower.ts) and the CPU after the first 5 s: 150 ms 2.91 and 2.92 CPU s
 * per 100k lines against 2.76-3.03 at 100 ms, steady lag p99 194-196
 * against 137-143 ms.
 */
const MIN_CYCLE_MS = 100;
/**
 * Sinks synced and checkpoints moved at most this long after a write
 * (shipper.ts): one fdatasync per written container file and one checkpoint
 * file per second, instead of per cycle. A power loss costs this much
 * re-reading, never a line. Measured (bench/docker.bench.ts rate, 100
 * containers, runs interleaved): 5.6 CPU s per 100k lines against 7.0 with a
 * durable point per cycle, system time 1.0 against 2.3.
 */
const DURABLE_MS = 1000;
/**
 * How long a line of a fluentd-driver container waits for the forward input
 * to deliver it. Covers the driver's reconnect after clogs comes back (it
 * took 2.8 s in fixtures/docker fluentd/f2) with room to spare.
 */
const BACKFILL_HOLD_MS = 15_000;
const BACKFILL_WINDOW_MS = 5 * 60_000;
const BACKFILL_MAX_HELD = 20_000;
const BACKFILL_MAX_REMEMBERED = 200_000;
const BACKFILL_MEMORY_FILE = 'backfill-delivered.json';

export async function startDockerInput(cfg: DockerConfig, deps: InputDeps): Promise<RunningInput | undefined> {
  const log = deps.log;
  if (!cfg.enabled) {
    log.info('docker input disabled');
    return undefined;
  }
  const engine = connectEngine(cfg);
  if (!engine.explicit && !(await pingEngine(engine.docker, PING_TIMEOUT_MS))) {
    log.info({ address: engine.address }, 'no docker engine answers; docker input off');
    return undefined;
  }

  const store = await CheckpointStore.open(join(deps.stateDir, 'docker'), cfg.removed_grace, log);
  let discovery: Discovery | undefined;
  const shipper = new Shipper({
    pipeline: deps.pipeline,
    store,
    log,
    maxEvents: BATCH_MAX_EVENTS,
    maxBytes: BATCH_MAX_BYTES,
    heartbeatMs: HEARTBEAT_MS,
    minCycleMs: MIN_CYCLE_MS,
    durableMs: DURABLE_MS,
    onLost: (ids) => discovery?.rewind(ids),
  });
  const normalizer = new Normalizer({
    ...sharedNormalizerOptions(deps),
    // The Docker input joins split lines itself (frames.ts) and never hands
    // the Normalizer a partial piece, so this timeout never fires.
    partialTimeoutMs: 5000,
    onTimeoutFlush: (events) => (discovery ? discovery.released(events) : shipper.addLoose(events)),
  });
  const memoryFile = join(deps.stateDir, 'docker', BACKFILL_MEMORY_FILE);
  const backfill = cfg.fluentd_backfill
    ? new BackfillGate({
        shipper,
        pipeline: deps.pipeline,
        holdMs: BACKFILL_HOLD_MS,
        windowMs: BACKFILL_WINDOW_MS,
        maxHeldEvents: BACKFILL_MAX_HELD,
        maxRemembered: BACKFILL_MAX_REMEMBERED,
        memoryFile,
        log,
      })
    : undefined;
  // A memory a run with backfill left is no use to one without: its deliveries expire long before a later run could match them.
  if (backfill === undefined) await removeIfPresent(memoryFile).catch((err: unknown) => log.warn({ err, file: memoryFile }, 'could not remove a backfill memory left by an earlier run'));
  else await backfill.load();
  const ownIds = await detectOwnContainerIds();
  if (ownIds.length > 0) log.info({ ownContainer: ownIds }, 'running in a container; its own output is not followed');

  discovery = new Discovery({
    docker: engine.docker,
    openLogs: engine.openLogs,
    cache: new MetadataCache(engine.docker, deps.containers),
    store,
    shipper,
    normalizer,
    filter: compileFilter(cfg, ownIds),
    log,
    maxLineBytes: deps.maxLineBytes,
    followsDriver: (driver) => READABLE_DRIVERS.has(driver) || (driver === 'fluentd' && cfg.fluentd_backfill),
    horizonMs: store.firstRunAt,
    ...(backfill ? { backfill } : {}),
  });
  await discovery.start();
  if (!discovery.connected) log.warn({ address: engine.address }, 'docker engine not reachable yet; retrying in the background');

  const running = discovery;
  let stopped: Promise<void> | undefined;
  return {
    name: 'docker',
    address: engine.address,
    ready: () => running.connected,
    stop: () =>
      (stopped ??= (async () => {
        await running.stop();
        backfill?.settle();
        backfill?.close();
        await backfill?.save().catch((err: unknown) => log.warn({ err }, 'could not keep the backfill memory; lines delivered just before this stop may be written twice'));
        await shipper.drained();
        shipper.close();
        normalizer.close();
      })()),
  };
}
