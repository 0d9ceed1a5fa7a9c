// Garbage collection's Prometheus series, on the registry's /metrics.
import { Counter, Gauge } from 'prom-client';
import { metricsRegistry } from '../metrics.js';

export const gcRuns = new Counter({
  name: 'layover_gc_runs_total',
  help: 'Garbage collection runs, by outcome (ok, failed) and whether they were dry runs',
  labelNames: ['outcome', 'dry_run'],
  registers: [metricsRegistry],
});

export const gcFreedBytes = new Counter({
  name: 'layover_gc_freed_bytes_total',
  help: 'Bytes of blobs deleted by garbage collection',
  registers: [metricsRegistry],
});

export const gcLastRun = new Gauge({
  name: 'layover_gc_last_run_timestamp_seconds',
  help: 'When the last (non-dry) garbage collection run finished, as a Unix time',
  registers: [metricsRegistry],
});
