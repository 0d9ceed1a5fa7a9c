// Storage gauges for /metrics: blob records and their bytes, pushed vs mirrored (by provenance:
// a blob an upstream delivered is mirrored), computed by one aggregate query when Prometheus
// scrapes, not kept up to date on every write. The figure is reused for a while so that several
// scrapers (or a dashboard's refreshes) cost one query.
import { Gauge } from 'prom-client';
import type { Logger } from '../log.js';
import { cacheMaxBytes, metricsRegistry } from './metrics.js';
import type { MetadataStore, StorageTotals } from './storage/metadata/types.js';

const REUSE_MS = 15_000;

type Source = { metadata: Pick<MetadataStore, 'storageTotals'>; log: Pick<Logger, 'warn'> };
/** The store the gauges report on: the last app built in this process (one, outside tests). */
let source: Source | undefined;
let cached: { at: number; totals: Promise<StorageTotals | undefined> } | undefined;

function totals(): Promise<StorageTotals | undefined> {
  const now = Date.now();
  if (!source) return Promise.resolve(undefined);
  if (cached && now - cached.at < REUSE_MS) return cached.totals;
  const { metadata, log } = source;
  const pending = metadata.storageTotals().catch((err: unknown) => {
    log.warn({ err }, 'storage metrics: query failed');
    return undefined;
  });
  cached = { at: now, totals: pending };
  return pending;
}

new Gauge({
  name: 'layover_storage_bytes',
  help: 'Bytes of stored blobs (layers, configs, manifests), by origin (pushed, mirrored)',
  labelNames: ['origin'],
  registers: [metricsRegistry],
  async collect() {
    const t = await totals();
    if (!t) return;
    this.set({ origin: 'pushed' }, t.pushed.bytes);
    this.set({ origin: 'mirrored' }, t.mirrored.bytes);
  },
});

new Gauge({
  name: 'layover_storage_blobs',
  help: 'Stored blobs, by origin (pushed, mirrored)',
  labelNames: ['origin'],
  registers: [metricsRegistry],
  async collect() {
    const t = await totals();
    if (!t) return;
    this.set({ origin: 'pushed' }, t.pushed.blobs);
    this.set({ origin: 'mirrored' }, t.mirrored.blobs);
  },
});

/** Reports on `metadata` until the returned function is called (the app's close). */
export function reportStorage(metadata: Pick<MetadataStore, 'storageTotals'>, maxBytes: number | undefined, log: Pick<Logger, 'warn'>): () => void {
  const mine: Source = { metadata, log };
  source = mine;
  cached = undefined;
  cacheMaxBytes.set(maxBytes ?? 0);
  return () => {
    if (source !== mine) return;
    source = undefined;
    cached = undefined;
  };
}
