// Whether everything a manifest references is in the repository, checked a few at a time and
// stopping at the first gap. An index of the largest allowed size lists ~30,000 children: checking
// them all at once queued 60,000 filesystem calls and their promises, held the event loop for
// about a second per push and answered with the same error a single missing child gives.
import type { Digest } from './digest.js';
import type { ManifestInfo } from './manifest.js';
import type { Store } from './storage/store.js';

/** Checks in flight at once: enough to overlap filesystem latency, few enough to stop early. */
const CONCURRENCY = 8;

/**
 * The items `present` says are absent, stopping once one is found: no new check starts after
 * the first absent item, so the result names at most CONCURRENCY of them (those already in flight).
 */
export async function firstAbsent<T>(items: readonly T[], present: (item: T) => Promise<boolean>, concurrency = CONCURRENCY): Promise<T[]> {
  const absent: T[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (absent.length === 0 && next < items.length) {
      const item = items[next++] as T;
      if (!(await present(item))) absent.push(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return absent;
}

/** Blobs (linked here and stored) and child manifests (a revision here) the manifest needs but the repository lacks: some of them, or none. */
export async function missingReferences(store: Store, repository: string, info: ManifestInfo): Promise<Digest[]> {
  const blobs = await firstAbsent(info.blobs, async (blob) => (await store.blobLinked(repository, blob)) && (await store.statBlob(blob)) !== undefined);
  if (blobs.length) return blobs;
  return firstAbsent(info.manifests, async (child) => (await store.statManifest(repository, child)) !== undefined);
}
