// The MirrorRouter: which repositories are mirrors of which upstream (by their first path
// component), and the containerd mirror mode, where `?ns=<host>` names the upstream and the path
// is the upstream's own repository name.
import type { Config, UpstreamConfig } from '../../config/config.js';
import type { Logger } from '../../log.js';
import { namespaceOf } from '../names.js';
import type { MirrorRouter } from '../plugin.js';
import type { ContentSource } from '../service.js';
import type { Store } from '../storage/store.js';
import { UpstreamHealth } from './health.js';
import { PullThroughSource, type PullThroughOptions } from './pull-through.js';
import { UpstreamClient } from './upstream-client.js';
import { namesOf, namespacesOf } from './upstream-names.js';

export interface UpstreamStatus {
  prefix: string;
  url: string;
  up: boolean;
  hits: number;
  misses: number;
  hitRate?: number;
  servedFromCacheBytes: number;
  fetchedUpstreamBytes: number;
  /** Moving average of the time to an answer's headers, and the last one. */
  latencyMs?: number;
  lastLatencyMs?: number;
  lastError?: { message: string; at: string };
}

interface Mirror {
  upstream: UpstreamConfig;
  client: UpstreamClient;
  source: PullThroughSource;
}

export class Mirrors implements MirrorRouter {
  private readonly byName = new Map<string, Mirror>();
  private readonly byNamespace = new Map<string, Mirror>();

  constructor(private readonly mirrors: Mirror[]) {
    for (const mirror of mirrors) {
      for (const name of namesOf(mirror.upstream)) this.byName.set(name, mirror);
      // Prefixes and aliases win over hosts when both could match.
      for (const ns of namespacesOf(mirror.upstream)) if (!this.byNamespace.has(ns)) this.byNamespace.set(ns, mirror);
    }
    for (const mirror of mirrors) for (const name of namesOf(mirror.upstream)) this.byNamespace.set(name, mirror);
  }

  private mirrorOf(repository: string): Mirror | undefined {
    if (!repository.includes('/')) return undefined;
    return this.byName.get(namespaceOf(repository));
  }

  /** The mirror of the upstream with this source id (source-id.ts), for replicas following a download. */
  sourceById(id: string): PullThroughSource | undefined {
    return this.mirrors.find((m) => m.source.sourceId === id)?.source;
  }

  sourceFor(repository: string): ContentSource | undefined {
    return this.mirrorOf(repository)?.source;
  }

  pushable(repository: string): boolean {
    return this.mirrorOf(repository)?.upstream.pushable ?? true;
  }

  /** `library/nginx` with `?ns=docker.io` → `docker.io/library/nginx`; undefined when no upstream matches `ns`. */
  localName(repository: string, ns: string): string | undefined {
    const mirror = this.byNamespace.get(ns.toLowerCase());
    return mirror && `${mirror.upstream.prefix}/${repository}`;
  }

  /** Mirror content that the cache budget may evict: never a namespace that accepts pushes. */
  evictable(repository: string): boolean {
    const mirror = this.mirrorOf(repository);
    return mirror !== undefined && !mirror.upstream.pushable;
  }

  /** Per upstream: whether it is up, its latency and last error, and how many mirror reads were served locally or needed it. */
  status(): UpstreamStatus[] {
    return this.mirrors.map(({ upstream, source }) => {
      const { hits, misses, servedFromCacheBytes, fetchedUpstreamBytes } = source.counts;
      const { latency, lastError } = source.health;
      return {
        prefix: upstream.prefix,
        url: upstream.url,
        up: !source.health.down,
        hits,
        misses,
        ...(hits + misses ? { hitRate: hits / (hits + misses) } : {}),
        servedFromCacheBytes,
        fetchedUpstreamBytes,
        ...(latency ? { latencyMs: Math.round(latency.averageMs), lastLatencyMs: latency.lastMs } : {}),
        ...(lastError ? { lastError: { message: lastError.message, at: new Date(lastError.at).toISOString() } } : {}),
      };
    });
  }

  /** Bytes served from the cache and fetched from upstreams since this process started (all upstreams). */
  traffic(): { servedFromCacheBytes: number; fetchedUpstreamBytes: number } {
    let servedFromCacheBytes = 0;
    let fetchedUpstreamBytes = 0;
    for (const { source } of this.mirrors) {
      servedFromCacheBytes += source.counts.servedFromCacheBytes;
      fetchedUpstreamBytes += source.counts.fetchedUpstreamBytes;
    }
    return { servedFromCacheBytes, fetchedUpstreamBytes };
  }

  async close(): Promise<void> {
    await Promise.all(this.mirrors.map((m) => m.client.close()));
  }
}

export function buildMirrors(config: Config, store: Store, logger?: Logger, cluster?: PullThroughOptions['cluster']): Mirrors {
  return new Mirrors(
    config.upstreams.map((upstream) => {
      const client = new UpstreamClient(upstream);
      const health = new UpstreamHealth({ downAfterFailures: config.cache.downAfterFailures, downForMs: config.cache.downForMs });
      const source = new PullThroughSource({ store, client, health, maxManifestBytes: config.registry.maxManifestBytes, logger, cluster });
      return { upstream, client, source };
    }),
  );
}
