// The registry's Prometheus metrics and the GET /metrics route. The counters are module-level so
// that any module (routes, the pull-through cache, GC) increments them without wiring; every
// series of the pull-through cache carries the upstream prefix, so two caches in one process
// (tests) stay apart.
import type { FastifyInstance } from 'fastify';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export const metricsRegistry = new Registry();

export const requestsTotal = new Counter({
  name: 'layover_registry_requests_total',
  help: 'HTTP requests answered, by route (base, manifest, blob, upload, tags, catalog, referrers, token, other), method and status',
  labelNames: ['route', 'method', 'status'],
  registers: [metricsRegistry],
});

export const cacheHits = new Counter({
  name: 'layover_cache_hits_total',
  help: 'Mirror reads served from local storage without an upstream fetch, by upstream and kind (manifest, blob)',
  labelNames: ['upstream', 'kind'],
  registers: [metricsRegistry],
});

export const cacheMisses = new Counter({
  name: 'layover_cache_misses_total',
  help: 'Mirror reads that needed the upstream (fetches and tag revalidations), by upstream and kind',
  labelNames: ['upstream', 'kind'],
  registers: [metricsRegistry],
});

export const coalescedRequests = new Counter({
  name: 'layover_cache_coalesced_total',
  help: 'Mirror reads that joined a fetch already in flight instead of starting one, by upstream and kind',
  labelNames: ['upstream', 'kind'],
  registers: [metricsRegistry],
});

export const upstreamBytes = new Counter({
  name: 'layover_upstream_bytes_total',
  help: 'Body bytes received from upstream registries',
  labelNames: ['upstream'],
  registers: [metricsRegistry],
});

export const clientBytes = new Counter({
  name: 'layover_client_bytes_total',
  help: 'Body bytes sent to clients by blob and manifest reads',
  labelNames: ['route'],
  registers: [metricsRegistry],
});

export const upstreamErrors = new Counter({
  name: 'layover_upstream_errors_total',
  help: 'Failed upstream requests, by upstream and reason (network, timeout, bad_answer, status_5xx, rate_limited, digest, down)',
  labelNames: ['upstream', 'reason'],
  registers: [metricsRegistry],
});

export const upstreamRefused = new Counter({
  name: 'layover_upstream_refused_total',
  help: 'Mirror reads refused without asking the upstream, by upstream and reason (rate_limited: it asked to be left alone, Retry-After)',
  labelNames: ['upstream', 'reason'],
  registers: [metricsRegistry],
});

export const cacheEvictions = new Counter({
  name: 'layover_cache_evicted_bytes_total',
  help: 'Bytes of mirrored content removed by the cache budget or expiry',
  registers: [metricsRegistry],
});

/** Seconds: from a manifest HEAD in milliseconds to a large blob over a slow link. */
const LATENCY_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

export const requestDuration = new Histogram({
  name: 'layover_http_request_duration_seconds',
  help: 'Time to answer a request (until the last byte was handed to the socket), by templated route and method',
  labelNames: ['route', 'method'],
  buckets: LATENCY_BUCKETS,
  registers: [metricsRegistry],
});

export const upstreamLatency = new Histogram({
  name: 'layover_upstream_request_duration_seconds',
  help: 'Time until an upstream registry answered a request (headers), by upstream and kind (manifest, blob)',
  labelNames: ['upstream', 'kind'],
  buckets: LATENCY_BUCKETS,
  registers: [metricsRegistry],
});

export const cacheUsedBytes = new Gauge({
  name: 'layover_cache_used_bytes',
  help: 'Mirrored bytes counted against cache.maxSize (blobs only mirrors hold), as of the last eviction pass',
  registers: [metricsRegistry],
});

export const cacheMaxBytes = new Gauge({
  name: 'layover_cache_max_bytes',
  help: 'The cache budget, cache.maxSize (0: no budget)',
  registers: [metricsRegistry],
});

const ROUTES: [RegExp, string][] = [
  [/\/blobs\/uploads(?:\/|$)/, 'upload'],
  [/\/blobs\//, 'blob'],
  [/\/manifests\//, 'manifest'],
  [/\/tags\/list$/, 'tags'],
  [/\/referrers\//, 'referrers'],
];

/** The route label of a request path: a handful of fixed values, never the path itself. */
export function routeOf(path: string): string {
  if (path === '/v2/' || path === '/v2') return 'base';
  if (path === '/v2/_catalog') return 'catalog';
  if (path === '/token') return 'token';
  if (path === '/metrics') return 'metrics';
  if (!path.startsWith('/v2/')) return 'other';
  for (const [re, name] of ROUTES) if (re.test(path)) return name;
  return 'other';
}

let defaultsCollected = false;

/**
 * Counts every answered request and registers GET /metrics. Called on the root instance (not
 * `register`ed), so the hook sees the routes of every plugin.
 */
export function registerMetrics(app: FastifyInstance): void {
  // Process metrics (CPU, memory, event loop lag, GC), once per process whatever the number of apps.
  if (!defaultsCollected) {
    collectDefaultMetrics({ register: metricsRegistry });
    defaultsCollected = true;
  }
  app.addHook('onResponse', async (req, reply) => {
    const url = req.url;
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const route = routeOf(path);
    const status = reply.statusCode;
    requestsTotal.inc({ route, method: req.method, status: String(status) });
    // Outside /v2/ the route's template (e.g. /api/v1/repository), never the raw path: bounded labels.
    const template = path.startsWith('/v2') ? route : (req.routeOptions.url ?? 'unmatched');
    requestDuration.observe({ route: template, method: req.method }, reply.elapsedTime / 1000);
    if (req.method === 'GET' && (route === 'blob' || route === 'manifest') && (status === 200 || status === 206) && reply.raw.writableFinished) {
      const length = Number(reply.getHeader('content-length'));
      if (Number.isFinite(length)) clientBytes.inc({ route }, length);
    }
  });
  app.get('/metrics', async (_req, reply) => {
    reply.type(metricsRegistry.contentType);
    return metricsRegistry.metrics();
  });
}
