// Prefetch on admission: once a Pod is admitted with rewritten images, the registry starts pulling
// their blobs, so kubelet's pull finds them on disk or already on their way. The webhook asks for
// each blob through the mirror, with the namespace's credentials, and hangs up as soon as the
// answer's headers arrive: the registry's download of a missed blob is paced by its own disk,
// never by a client, so it runs to the end without a byte crossing to the webhook, and kubelet's
// later GET joins it or reads the stored blob. Indexes are narrowed to the nodes' platforms.
// Fire-and-forget: bounded in requests at once, each image and blob asked for once per window.
import { LRUCache } from 'lru-cache';
import { BoundedQueue } from '../bounded-queue.js';
import type { Platform } from '../k8s/cluster-facts.js';
import type { Logger } from '../log.js';
import { MANIFEST_MEDIA_TYPES } from '../registry/manifest.js';
import { lazyAgent } from './lazy-agent.js';
import { authorization, manifestPath, type Credentials, type NamespaceCredentials } from './registry-access.js';

export interface Prefetcher {
  /** Starts prefetching these rewritten images for a namespace; returns at once. */
  prefetch(namespace: string, images: readonly string[]): void;
  /** Resolves when nothing is running (tests, shutdown). */
  idle(): Promise<void>;
  close(): Promise<void>;
}

export interface PrefetchOptions {
  registryUrl: string;
  credentials: NamespaceCredentials;
  /** The nodes' platforms; an empty answer or an error means linux/amd64. */
  platforms(): Promise<Platform[]>;
  logger: Logger;
  /** Requests to the registry at once. */
  concurrency?: number;
  /** An image (per namespace) or blob prefetched is not asked for again within this window. */
  dedupeMs?: number;
}

export const DEFAULT_PLATFORM: Platform = { os: 'linux', architecture: 'amd64' };
const ACCEPT = MANIFEST_MEDIA_TYPES.join(', ');
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const REQUEST_TIMEOUT_MS = 60_000;

interface Descriptor { digest?: unknown; platform?: { os?: unknown; architecture?: unknown } }
interface ManifestDoc { manifests?: Descriptor[]; config?: Descriptor; layers?: Array<Descriptor & { urls?: unknown }> }

/** The child manifests of an index for these platforms, or the blobs of an image manifest. */
export function referencedBy(doc: ManifestDoc, platforms: readonly Platform[]): { manifests: string[]; blobs: string[] } {
  const digest = (d: Descriptor | undefined) => (typeof d?.digest === 'string' ? [d.digest] : []);
  if (Array.isArray(doc.manifests)) {
    const wanted = doc.manifests.filter((m) => platforms.some((p) => m.platform?.os === p.os && m.platform?.architecture === p.architecture));
    return { manifests: wanted.flatMap(digest), blobs: [] };
  }
  // Foreign layers (with urls) live elsewhere; nodes fetch them from there.
  const layers = (Array.isArray(doc.layers) ? doc.layers : []).filter((l) => l.urls === undefined);
  return { manifests: [], blobs: [...digest(doc.config), ...layers.flatMap(digest)] };
}

export function createPrefetcher(options: PrefetchOptions): Prefetcher {
  const agent = lazyAgent({ connect: { timeout: 10_000 }, headersTimeout: REQUEST_TIMEOUT_MS, bodyTimeout: REQUEST_TIMEOUT_MS });
  const queue = new BoundedQueue({ concurrency: options.concurrency ?? 4, maxWaiting: Infinity });
  const window = options.dedupeMs ?? 10 * 60_000;
  // ttlResolution 0: no 1 ms timer per lookup (see resolve-check.ts).
  const started = new LRUCache<string, true>({ max: 10_000, ttl: window, ttlResolution: 0 });
  const running = new Set<Promise<void>>();
  let closed = false;

  async function platforms(): Promise<Platform[]> {
    const found = await options.platforms().catch(() => []);
    return found.length ? found : [DEFAULT_PLATFORM];
  }

  async function manifest(url: string, headers: Record<string, string>): Promise<ManifestDoc | undefined> {
    return queue.run(async () => {
      const { request, dispatcher } = await agent.get();
      const res = await request(url, { method: 'GET', headers: { ...headers, accept: ACCEPT }, dispatcher, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
      const length = Number(res.headers['content-length'] ?? 0);
      if (res.statusCode !== 200 || length > MAX_MANIFEST_BYTES) {
        await res.body.dump();
        return undefined;
      }
      return (await res.body.json()) as ManifestDoc;
    });
  }

  /** Asks for a blob and hangs up at the headers: the registry's download carries on alone. */
  async function blob(url: string, headers: Record<string, string>): Promise<void> {
    await queue.run(async () => {
      const { request, dispatcher } = await agent.get();
      const res = await request(url, { method: 'GET', headers, dispatcher, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
      // Destroying the body aborts the request, which the body then reports as an error: expected here.
      res.body.on('error', () => undefined);
      res.body.destroy();
    });
  }

  async function prefetchImage(namespace: string, image: string, credentials: Credentials | undefined): Promise<void> {
    const path = manifestPath(image);
    if (!path) return;
    const repo = path.slice(0, path.lastIndexOf('/manifests/'));
    const headers = authorization(credentials);
    const base = `${options.registryUrl}${repo}`;
    const top = await manifest(`${options.registryUrl}${path}`, headers);
    if (!top) return;
    let { manifests, blobs } = referencedBy(top, await platforms());
    for (const digest of manifests) {
      const child = await manifest(`${base}/manifests/${digest}`, headers);
      if (child) blobs = blobs.concat(referencedBy(child, []).blobs);
    }
    const fresh = [...new Set(blobs)].filter((digest) => !started.has(`${repo}@${digest}`));
    for (const digest of fresh) started.set(`${repo}@${digest}`, true);
    await Promise.all(fresh.map((digest) => blob(`${base}/blobs/${digest}`, headers).catch((err: unknown) => {
      started.delete(`${repo}@${digest}`);
      options.logger.debug({ namespace, image, digest, err: (err as Error).message }, 'prefetch of a blob failed');
    })));
    options.logger.debug({ namespace, image, blobs: fresh.length }, 'prefetch started');
  }

  return {
    prefetch(namespace, images) {
      if (closed) return;
      for (const image of images) {
        const key = `${namespace}\n${image}`;
        if (started.has(key)) continue;
        started.set(key, true);
        const task = options.credentials(namespace)
          .then((credentials) => prefetchImage(namespace, image, credentials))
          .catch((err: unknown) => {
            // Kubelet's own pull still works; a failed prefetch only means a colder one.
            started.delete(key);
            options.logger.debug({ namespace, image, err: (err as Error).message }, 'prefetch failed');
          })
          .finally(() => running.delete(task));
        running.add(task);
      }
    },
    async idle() {
      while (running.size) await Promise.allSettled([...running]);
    },
    async close() {
      closed = true;
      await Promise.allSettled([...running]);
      await agent.close();
    },
  };
}
