/**
 * The collector's Prometheus metrics, in one registry served on /metrics.
 * Components import the metric they update; names follow Prometheus
 * conventions (`_total` counters, base units).
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export const registry = new Registry();

export const eventsIn = new Counter({
  name: 'clogs_input_events_total',
  help: 'Events produced by an input.',
  labelNames: ['input'] as const,
  registers: [registry],
});
/**
 * Bytes read by each input, added to clogs_input_bytes_total when it is
 * collected: counted per socket read, where prom-client's inc() (which
 * hashes its labels on every call, a bound child too) was 3 % of the Docker
 * input's busy time on bench/docker.bench.ts rate.
 */
const bytesRead = { docker: 0, forward: 0 };

export function countBytesIn(input: keyof typeof bytesRead, bytes: number): void {
  bytesRead[input] += bytes;
}

new Counter({
  name: 'clogs_input_bytes_total',
  help: 'Bytes received by an input.',
  labelNames: ['input'] as const,
  registers: [registry],
  collect() {
    for (const input of Object.keys(bytesRead) as (keyof typeof bytesRead)[]) {
      if (bytesRead[input] === 0) continue;
      this.inc({ input }, bytesRead[input]);
      bytesRead[input] = 0;
    }
  },
});
export const inputErrors = new Counter({
  name: 'clogs_input_errors_total',
  help: 'Connections or streams an input closed for bad input, by reason.',
  labelNames: ['input', 'reason'] as const,
  registers: [registry],
});
export const connections = new Gauge({
  name: 'clogs_input_connections',
  help: 'Open connections of the forward input.',
  labelNames: ['input'] as const,
  registers: [registry],
});
export const containersFollowed = new Gauge({
  name: 'clogs_docker_containers_followed',
  help: 'Containers whose log stream the Docker input follows now.',
  registers: [registry],
});
export const ackLatency = new Histogram({
  name: 'clogs_forward_ack_latency_seconds',
  help: 'From a forward request fully read to its ack written.',
  buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  registers: [registry],
});
export const eventsOut = new Counter({
  name: 'clogs_sink_events_total',
  help: 'Events a sink delivered (written to disk, or accepted by Elasticsearch).',
  labelNames: ['sink'] as const,
  registers: [registry],
});
export const bytesOut = new Counter({
  name: 'clogs_sink_bytes_total',
  help: 'Bytes a sink wrote or sent.',
  labelNames: ['sink'] as const,
  registers: [registry],
});
export const sinkErrors = new Counter({
  name: 'clogs_sink_errors_total',
  help: 'Failed writes or requests of a sink.',
  labelNames: ['sink'] as const,
  registers: [registry],
});
export const sinkRetries = new Counter({
  name: 'clogs_sink_retries_total',
  help: 'Requests or documents a sink sent again.',
  labelNames: ['sink'] as const,
  registers: [registry],
});
export const sinkWriteRetries = new Counter({
  name: 'clogs_sink_write_retries_total',
  help: 'Disk writes of a sink tried again after a full or failing disk, by error code (ENOSPC, EDQUOT, EIO).',
  labelNames: ['sink', 'reason'] as const,
  registers: [registry],
});
export const sinkBlocked = new Gauge({
  name: 'clogs_sink_blocked',
  help: '1 while a sink\'s disk writes wait for a full or failing disk (its inputs stop reading), by error code.',
  labelNames: ['sink', 'reason'] as const,
  registers: [registry],
});
export const deadLettered = new Counter({
  name: 'clogs_sink_dead_lettered_total',
  help: 'Documents rejected for good and written to the dead-letter file.',
  labelNames: ['sink'] as const,
  registers: [registry],
});
export const queueDepth = new Gauge({
  name: 'clogs_queue_events',
  help: 'Events in a sink\'s disk queue not yet delivered.',
  labelNames: ['sink'] as const,
  registers: [registry],
});
export const queueBytes = new Gauge({
  name: 'clogs_queue_bytes',
  help: 'Bytes of a sink\'s disk queue not yet delivered.',
  labelNames: ['sink'] as const,
  registers: [registry],
});
export const storeBytes = new Gauge({
  name: 'clogs_file_store_bytes',
  help: 'Bytes of the file sink\'s files on disk (compressed ones at their compressed size), at the last check.',
  registers: [registry],
});
export const filesCompressed = new Counter({
  name: 'clogs_file_compressed_files_total',
  help: 'Rotated files the file sink gzipped.',
  registers: [registry],
});
export const filesDeleted = new Counter({
  name: 'clogs_file_retention_deleted_files_total',
  help: 'Files the file sink\'s retention deleted.',
  registers: [registry],
});
export const bytesDeleted = new Counter({
  name: 'clogs_file_retention_deleted_bytes_total',
  help: 'Bytes of the files the file sink\'s retention deleted.',
  registers: [registry],
});
export const forwardRenderedBytes = new Gauge({
  name: 'clogs_forward_rendered_bytes_in_flight',
  help: 'Bytes of events the forward input has rendered and not yet seen durable, all connections together.',
  registers: [registry],
});

let processMetrics = false;
const EVENT_LOOP_SAMPLE_MS = 100;

/**
 * The process's own series under prom-client's standard names (CPU seconds,
 * resident memory, open descriptors, heap, event-loop lag, GC pauses), so a
 * collector that leaks or stalls shows on the dashboards every Node service
 * has. Only a running collector adds them: the CLI's readers load this module
 * too, and need no event-loop monitor.
 */
export function collectProcessMetrics(): void {
  if (processMetrics) return;
  processMetrics = true;
  // prom-client samples the event loop's delay every 10 ms by default: a
  // timer that wakes the loop 100 times a second, 7 ms of CPU a second on
  // an idle collector here. Every 100 ms costs a tenth of that, and a stall
  // still delays the pending sample by all but the time before it was due.
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
}
