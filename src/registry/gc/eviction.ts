// The mirror cache's budget: mirrored images unused for `expireAfter` are removed, then, while
// the mirrored content is larger than `maxSize`, the least recently pulled images go first.
// Only mirror repositories are ever touched, and a blob that any other repository links or holds
// as a manifest (pushed content) is never deleted nor counted against the budget.
import type { Logger } from '../../log.js';
import type { Digest } from '../digest.js';
import { cacheEvictions, cacheUsedBytes } from '../metrics.js';
import type { Store } from '../storage/store.js';

export interface EvictionPolicy {
  maxBytes?: number;
  expireAfterMs?: number;
}

export interface EvictedImage {
  repository: string;
  digest: Digest;
  reason: 'expired' | 'budget';
  lastPulled: string;
}

export interface EvictionReport {
  /** Mirrored bytes (blobs only mirrors hold) before and after. */
  bytesBefore: number;
  bytesAfter: number;
  evicted: EvictedImage[];
  /** Blobs that could not be deleted because a client used them meanwhile (kept; next run). */
  skippedInUse: number;
}

interface Image {
  key: string;
  repository: string;
  digest: Digest;
  blobs: Digest[];
  lastPulled: number;
}

export interface EvictionOptions {
  now?: number;
  log?: Pick<Logger, 'info' | 'warn'>;
}

export async function evictMirrorCache(store: Store, evictable: (repository: string) => boolean, policy: EvictionPolicy, opts: EvictionOptions = {}): Promise<EvictionReport> {
  const startedAt = Date.now();
  const now = opts.now ?? startedAt;
  const sizes = new Map<string, number>();
  for await (const blob of store.listBlobs()) sizes.set(blob.digest, blob.size);

  // Bulk scans of the metadata (indexed, O(rows)), not a walk of every repository.
  const blobsOf = new Map<Digest, Digest[]>();
  for await (const r of store.metadata.scanManifestRefs()) {
    if (r.kind !== 'blob') continue;
    const list = blobsOf.get(r.manifest);
    if (list) list.push(r.ref);
    else blobsOf.set(r.manifest, [r.ref]);
  }
  const kept = new Set<string>(); // referenced by content that is not evictable
  const images: Image[] = [];
  for await (const l of store.metadata.scanLinks()) if (!evictable(l.repository)) kept.add(l.digest);
  for await (const manifest of store.metadata.scanManifests()) {
    if (!evictable(manifest.repository)) {
      kept.add(manifest.digest);
      continue;
    }
    const blobs = blobsOf.get(manifest.digest) ?? [];
    const pulled = manifest.pulledAt ?? manifest.createdAt;
    images.push({ key: `${manifest.repository}@${manifest.digest}`, repository: manifest.repository, digest: manifest.digest, blobs: [manifest.digest, ...blobs], lastPulled: pulled });
  }

  const holders = new Map<string, Set<string>>();
  for (const image of images) for (const blob of image.blobs) {
    let set = holders.get(blob);
    if (!set) holders.set(blob, (set = new Set()));
    set.add(image.key);
  }
  let bytes = 0;
  for (const blob of holders.keys()) if (!kept.has(blob)) bytes += sizes.get(blob) ?? 0;
  const bytesBefore = bytes;

  images.sort((a, b) => a.lastPulled - b.lastPulled);
  const evicted: { image: Image; reason: EvictedImage['reason'] }[] = [];
  const orphaned = new Set<Digest>();
  const evict = (image: Image, reason: EvictedImage['reason']) => {
    evicted.push({ image, reason });
    for (const blob of image.blobs) {
      const set = holders.get(blob);
      set?.delete(image.key);
      if (set && set.size === 0 && !kept.has(blob) && !orphaned.has(blob)) {
        orphaned.add(blob);
        bytes -= sizes.get(blob) ?? 0;
      }
    }
  };
  const expireBefore = policy.expireAfterMs === undefined ? undefined : now - policy.expireAfterMs;
  const remaining: Image[] = [];
  for (const image of images) {
    if (expireBefore !== undefined && image.lastPulled < expireBefore) evict(image, 'expired');
    else remaining.push(image);
  }
  if (policy.maxBytes !== undefined) {
    for (const image of remaining) {
      if (bytes <= policy.maxBytes) break;
      evict(image, 'budget');
    }
  }

  // Apply: revisions and tags first (the image disappears), then the repository's links that no
  // remaining image of it needs, then blobs nobody holds.
  const evictedKeys = new Set(evicted.map((e) => e.image.key));
  for (const { image } of evicted) {
    await store.deleteManifest(image.repository, image.digest);
    await store.forgetPull(image.repository, image.digest);
  }
  const stillNeeded = new Map<string, Set<string>>();
  for (const image of images) {
    if (evictedKeys.has(image.key)) continue;
    let set = stillNeeded.get(image.repository);
    if (!set) stillNeeded.set(image.repository, (set = new Set()));
    for (const blob of image.blobs) set.add(blob);
  }
  for (const { image } of evicted) {
    const needed = stillNeeded.get(image.repository);
    for (const blob of image.blobs) if (!needed?.has(blob)) await store.unlinkBlob(image.repository, blob);
  }
  let skippedInUse = 0;
  let freed = 0;
  for (const blob of orphaned) {
    // A pull that used the blob since this run started keeps it (see gc/guard.ts).
    const ran = await store.guard.deleteIfIdle(blob, startedAt, () => store.deleteBlob(blob));
    if (ran) freed += sizes.get(blob) ?? 0;
    else skippedInUse += 1;
  }
  cacheEvictions.inc(freed);
  cacheUsedBytes.set(bytes);
  const report: EvictionReport = {
    bytesBefore,
    bytesAfter: bytes,
    evicted: evicted.map(({ image, reason }) => ({ repository: image.repository, digest: image.digest, reason, lastPulled: new Date(image.lastPulled).toISOString() })),
    skippedInUse,
  };
  if (evicted.length) opts.log?.info({ evicted: evicted.length, bytesBefore, bytesAfter: bytes, skippedInUse }, 'mirror cache eviction');
  return report;
}

/** Runs eviction every `everyMs` while the budget or expiry is configured; returns a stop function. */
/**
 * `clusterLock`: with replicas on one database, a round runs only on the replica that takes the
 * lock (the others skip it), so the shared cache is measured and trimmed once, not once per replica.
 */
export function scheduleEviction(
  store: Store,
  evictable: (repository: string) => boolean,
  policy: EvictionPolicy,
  everyMs: number,
  log?: Pick<Logger, 'info' | 'warn'>,
  clusterLock?: <T>(fn: () => Promise<T>) => Promise<unknown>,
  onReport?: (report: EvictionReport) => void,
): () => void {
  if (policy.maxBytes === undefined && policy.expireAfterMs === undefined) return () => undefined;
  let running = false;
  const evict = async () => {
    const report = await evictMirrorCache(store, evictable, policy, { log });
    onReport?.(report);
    return report;
  };
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    (clusterLock ? clusterLock(evict) : evict())
      .catch((err: unknown) => log?.warn({ err }, 'mirror cache eviction failed'))
      .finally(() => (running = false));
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
