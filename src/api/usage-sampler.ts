// Samples what the registry holds and moves every `usage.sampleInterval`, into the metadata store,
// so the web page can draw storage by namespace and "traffic saved" over time. Each replica
// writes its own rows (replica, at): storage is measured the same by any of them, traffic is
// what this process served since its previous sample, so nothing is counted twice when they are
// added up by moment (usageHistory). Samples older than `usage.keep` are dropped as new ones come.
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from '../log.js';
import type { MetadataStore, UsageSample } from '../registry/storage/metadata/types.js';
import type { Store } from '../registry/storage/store.js';
import { Inventory } from './inventory.js';

export interface Traffic {
  servedFromCacheBytes: number;
  fetchedUpstreamBytes: number;
}

export interface UsageSamplerOptions {
  store: Store;
  mirrorNamespaces: ReadonlySet<string>;
  intervalMs: number;
  keepMs: number;
  /** Bytes served from the cache and fetched upstream since the process started (absent: no mirrors). */
  traffic?: () => Traffic;
  log?: Pick<Logger, 'warn'>;
  now?: () => number;
}

/** At most this many rows (the newest) are read for one history: 14 days of 5-minute samples of 7 replicas. */
const MAX_ROWS = 30_000;

export class UsageSampler {
  /** Names this process's rows: unique per process, readable in the database. */
  readonly replica = `${hostname()}-${randomUUID().slice(0, 8)}`;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private last: Traffic = { servedFromCacheBytes: 0, fetchedUpstreamBytes: 0 };
  private readonly now: () => number;

  constructor(private readonly opts: UsageSamplerOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** Samples every interval (the first one interval after start: start-up stays cheap). */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      if (this.running) return;
      this.running = this.sample()
        .catch((err: unknown) => this.opts.log?.warn({ err }, 'usage sample failed'))
        .finally(() => (this.running = undefined));
    }, this.opts.intervalMs);
    this.timer.unref();
  }

  /** Stops sampling and waits for a sample under way (the store closes after this). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** Measures and stores one sample now. */
  async sample(): Promise<UsageSample> {
    const { store, mirrorNamespaces } = this.opts;
    const usage = await new Inventory(store, mirrorNamespaces).storage();
    const traffic = this.opts.traffic?.() ?? this.last;
    const at = this.now();
    const sample: UsageSample = {
      replica: this.replica,
      at,
      mirrorBytes: usage.mirrorBytes,
      pushedBytes: usage.pushedBytes,
      storedBytes: usage.storedBytes,
      servedFromCacheBytes: Math.max(0, traffic.servedFromCacheBytes - this.last.servedFromCacheBytes),
      fetchedUpstreamBytes: Math.max(0, traffic.fetchedUpstreamBytes - this.last.fetchedUpstreamBytes),
      namespaces: Object.fromEntries(usage.namespaces.map((n) => [n.namespace, n.bytes])),
    };
    await store.metadata.addUsageSample(sample, at - this.opts.keepMs);
    this.last = traffic;
    return sample;
  }
}

export type UsagePoint = Omit<UsageSample, 'replica'>;

/**
 * The samples since `since`, one point per interval: storage as the latest replica measured it,
 * traffic added up over the replicas (each row holds only what its replica moved).
 */
export async function usageHistory(metadata: MetadataStore, since: number, intervalMs: number): Promise<UsagePoint[]> {
  const rows = await metadata.listUsageSamples(since, MAX_ROWS);
  const points = new Map<number, UsagePoint>();
  for (const row of rows) {
    const bucket = Math.floor(row.at / intervalMs) * intervalMs;
    const point = points.get(bucket);
    const { replica: _replica, ...figures } = row;
    if (!point) {
      points.set(bucket, { ...figures });
      continue;
    }
    // Rows come oldest first: the later measurement of storage wins, traffic adds up.
    point.servedFromCacheBytes += row.servedFromCacheBytes;
    point.fetchedUpstreamBytes += row.fetchedUpstreamBytes;
    Object.assign(point, { at: row.at, mirrorBytes: row.mirrorBytes, pushedBytes: row.pushedBytes, storedBytes: row.storedBytes, namespaces: row.namespaces });
  }
  return [...points.values()];
}
