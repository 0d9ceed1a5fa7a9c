// Whether a rewritten image resolves through layover now: a HEAD of its manifest through the
// registry with the namespace's own credentials (what kubelet will present). Answers are cached
// per namespace and image (30 s when it resolves, 5 s when not), so a Deployment's 100 Pods cost
// one check, and identical checks in flight share one request. A review waits for its checks
// only up to its budget (checkImages); a check still running then carries on and fills the cache.
// A success past its 30 s is still answered, for at most another 30 s, while one check renews it
// in the background: otherwise every 30 s each review of a busy image waited for that HEAD's round
// trip (on a loaded machine, up to the 2 s budget: the bench's p99 at 1,000 reviews/s).
import { LRUCache } from 'lru-cache';
import type { Logger } from '../log.js';
import { MANIFEST_MEDIA_TYPES } from '../registry/manifest.js';
import { lazyAgent } from './lazy-agent.js';
import type { ImageCheck } from './mutate.js';
import { authorization, CredentialsUnavailable, manifestPath, type NamespaceCredentials } from './registry-access.js';

export interface ResolveChecker {
  check(namespace: string, image: string): Promise<ImageCheck>;
  /** The cached answer, if there is one: what nearly every review finds (no promise, no timer). */
  cached?(namespace: string, image: string): ImageCheck | undefined;
  close(): Promise<void>;
}

export interface ResolveCheckOptions {
  /** The registry's base URL, e.g. http://layover-registry.layover.svc:5000. */
  registryUrl: string;
  credentials: NamespaceCredentials;
  logger: Logger;
  positiveTtlMs?: number;
  negativeTtlMs?: number;
  maxEntries?: number;
  /** One HEAD's limit; longer than a review's budget, so a slow first pull still warms the cache. */
  requestTimeoutMs?: number;
}

const ACCEPT = MANIFEST_MEDIA_TYPES.join(', ');

function describeStatus(status: number, namespace: string): string {
  if (status === 401 || status === 403) return `namespace ${namespace} may not pull it through layover (HTTP ${status})`;
  if (status === 404) return 'not found through layover (HTTP 404)';
  if (status === 429) return 'the registry or its upstream is rate limiting (HTTP 429)';
  return `the registry answered HTTP ${status}`;
}

export function createResolveChecker(options: ResolveCheckOptions): ResolveChecker {
  const timeoutMs = options.requestTimeoutMs ?? 10_000;
  const agent = lazyAgent({ connect: { timeout: timeoutMs }, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  // ttlResolution 0: lru-cache otherwise keeps "now" for 1 ms with a new setTimeout on each get
  // that finds it stale, which at 1,000 reviews/s is a timer and an extra event-loop wake-up per review.
  const positiveTtl = options.positiveTtlMs ?? 30_000;
  // Entries live twice a success's life; the second half is the stale window (see the top).
  const cache = new LRUCache<string, { check: ImageCheck; freshUntil: number }>({ max: options.maxEntries ?? 10_000, ttl: 2 * positiveTtl, ttlResolution: 0 });
  const negativeTtl = options.negativeTtlMs ?? 5_000;
  const inFlight = new Map<string, Promise<ImageCheck>>();

  async function head(namespace: string, image: string): Promise<ImageCheck> {
    const path = manifestPath(image);
    if (!path) return { ok: false, reason: `cannot name ${image} in the registry` };
    let headers: Record<string, string>;
    try {
      headers = { accept: ACCEPT, ...authorization(await options.credentials(namespace)) };
    } catch (err) {
      if (err instanceof CredentialsUnavailable) return { ok: false, reason: err.message };
      throw err;
    }
    try {
      const { request, dispatcher } = await agent.get();
      const res = await request(`${options.registryUrl}${path}`, { method: 'HEAD', headers, dispatcher, signal: AbortSignal.timeout(timeoutMs) });
      await res.body.dump();
      return res.statusCode === 200 ? { ok: true } : { ok: false, reason: describeStatus(res.statusCode, namespace) };
    } catch (err) {
      return { ok: false, reason: `the registry did not answer (${(err as NodeJS.ErrnoException).code ?? (err as Error).name})` };
    }
  }

  function start(key: string, namespace: string, image: string): Promise<ImageCheck> {
    let pending = inFlight.get(key);
    if (!pending) {
      pending = head(namespace, image)
        .catch((err: unknown): ImageCheck => ({ ok: false, reason: `check failed (${(err as Error).message})` }))
        .then((result) => {
          const ttl = result.ok ? 2 * positiveTtl : negativeTtl;
          cache.set(key, { check: result, freshUntil: performance.now() + (result.ok ? positiveTtl : negativeTtl) }, { ttl });
          if (!result.ok) options.logger.debug({ namespace, image, reason: result.reason }, 'image does not resolve through layover');
          return result;
        })
        .finally(() => inFlight.delete(key));
      inFlight.set(key, pending);
    }
    return pending;
  }

  /** The answer to give now without waiting, if any: fresh, or a stale success while it is renewed. */
  function known(key: string, namespace: string, image: string): ImageCheck | undefined {
    const entry = cache.get(key);
    if (!entry) return undefined;
    if (performance.now() < entry.freshUntil) return entry.check;
    if (!entry.check.ok) return undefined;
    void start(key, namespace, image);
    return entry.check;
  }

  return {
    cached(namespace, image) {
      return known(`${namespace}\n${image}`, namespace, image);
    },
    check(namespace, image) {
      const key = `${namespace}\n${image}`;
      const answer = known(key, namespace, image);
      return answer ? Promise.resolve(answer) : start(key, namespace, image);
    },
    async close() {
      await Promise.allSettled(inFlight.values());
      await agent.close();
    },
  };
}

/**
 * The checks of a review's images that settle within `budgetMs` (one budget for them all). An
 * image missing from the answer was not confirmed in time and keeps its original reference.
 */
export async function checkImages(checker: ResolveChecker, namespace: string, images: readonly string[], budgetMs: number): Promise<Map<string, ImageCheck>> {
  const results = new Map<string, ImageCheck>();
  for (const image of images) {
    const cached = checker.cached?.(namespace, image);
    if (!cached) break;
    results.set(image, cached);
  }
  if (results.size === images.length) return results;
  let timer: NodeJS.Timeout | undefined;
  const budget = new Promise<void>((resolve) => (timer = setTimeout(resolve, budgetMs)));
  const all = Promise.all(images.map(async (image) => results.set(image, await checker.check(namespace, image))));
  await Promise.race([all, budget]);
  clearTimeout(timer);
  // A copy: checks settling after the budget must not change the answer being built.
  return new Map(results);
}
