// The webhook's HTTPS listener: POST /mutate answers AdmissionReviews, /healthz and /readyz
// for the kubelet, /metrics for Prometheus. The certificate is swapped in place when it changes.
import type { Server as TlsServer } from 'node:tls';
import Fastify, { LogController, type FastifyError } from 'fastify';
import type { Registry } from 'prom-client';
import type { Config } from '../config/config.js';
import type { ClusterFacts, Platform } from '../k8s/cluster-facts.js';
import type { Kube } from '../k8s/kube.js';
import { resolvePublicHost } from '../k8s/public-host.js';
import type { Logger } from '../log.js';
import type { RequestEmitter } from '../idle-gc.js';
import { lazySchemaCompilers } from '../lazy-schema-compilers.js';
import { certificateSource } from './certificate-source.js';
import { defaultHealthURL, startHealthCheck, type RegistryHealth } from './health.js';
import { createWebhookMetrics } from './metrics.js';
import { mutatePod, plannedImages, type MutationInput, type MutationSettings } from './mutate.js';
import { watchNodePath, type NodePath } from './node-path.js';
import { createPrefetcher, type Prefetcher } from './prefetch.js';
import { defaultCredentials, registryBaseURL, type NamespaceCredentials } from './registry-access.js';
import { checkImages, createResolveChecker, type ResolveChecker } from './resolve-check.js';
import { podOf, readReview, reviewResponse, ReviewError } from './review.js';
import { mirrorTargetFromConfig } from './rewrite.js';

export interface WebhookDeps {
  logger: Logger;
  /** Needed for selfSigned mode (Secret, caBundle) and to read the registry Service's NodePort. */
  kube?: Kube;
  /** Where the webhook's metrics go; a private registry (served on /metrics) when absent. */
  metrics?: Registry;
  /** Replaces the HTTP health check of the registry (tests, or a registry in the same process). */
  health?: RegistryHealth;
  /** The node role's DaemonSet and the nodes' platforms; without it the node path counts as ready. */
  cluster?: ClusterFacts;
  /** How the webhook authenticates as a namespace (default: its pull secret, read with `kube`). */
  credentials?: NamespaceCredentials;
  /** Replaces the check that images resolve through the registry (tests of other parts). */
  resolver?: ResolveChecker;
}

export interface WebhookServer {
  close(): Promise<void>;
  url: string;
  /** The HTTPS server, for what watches its requests (idle-gc.ts). */
  server: RequestEmitter;
}

/** Bodies kube-apiserver sends are bounded by its own 3 MiB request limit. */
const BODY_LIMIT = 4 * 1024 * 1024;

export function mutationSettings(config: Config, publicHost: string): MutationSettings {
  return {
    target: mirrorTargetFromConfig(config, publicHost),
    pullSecretName: config.webhook.pullSecretName,
    originalImagesAnnotation: config.webhook.originalImagesAnnotation,
    optOutLabel: config.webhook.optOutLabel,
    skipNamespaces: new Set([config.webhook.ownNamespace, 'kube-system']),
    pullSecretRequired: config.auth.enabled && !config.auth.anonymous,
    nodeDaemonSet: `${config.node.namespace}/${config.node.daemonSet}`,
  };
}

/** The nodes' platforms, read at most every 5 minutes (nodes join and leave slowly). */
function nodePlatforms(cluster: ClusterFacts | undefined): () => Promise<Platform[]> {
  let cached: { at: number; platforms: Promise<Platform[]> } | undefined;
  return () => {
    if (!cluster) return Promise.resolve([]);
    if (!cached || Date.now() - cached.at > 5 * 60_000) cached = { at: Date.now(), platforms: cluster.nodePlatforms().catch(() => []) };
    return cached.platforms;
  };
}

export async function startWebhook(config: Config, deps: WebhookDeps): Promise<WebhookServer> {
  const logger = deps.logger.child({ module: 'webhook' });
  // Until the public host is known nothing is rewritten: a guess would send Pods to a wrong port.
  let settings: MutationSettings | undefined;
  const learnPublicHost = async () => {
    try {
      const { host, from } = await resolvePublicHost(config, deps.kube);
      if (host !== settings?.target.publicHost) logger.info({ publicHost: host, from }, 'webhook rewrites images to this host');
      settings = mutationSettings(config, host);
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'cannot read the registry Service NodePort; Pods are not rewritten until it can be read');
    }
  };
  await learnPublicHost();
  // The NodePort can change (Service recreated); look again now and then, or soon while unknown.
  const publicHostTimer = setInterval(() => void learnPublicHost(), settings ? 60_000 : 10_000);
  publicHostTimer.unref();

  const health = deps.health ?? startHealthCheck({ url: defaultHealthURL(config), logger });
  if (!deps.health) await health.refresh();
  const metrics = createWebhookMetrics(() => health.healthy(), deps.metrics);

  const { cluster } = deps;
  // Only in node mode does the node role carry the pulls; without a cluster API there is no DaemonSet to ask.
  let nodePath: NodePath | undefined;
  if (config.webhook.rewriteTarget === 'node' && cluster) {
    nodePath = watchNodePath({
      readyPods: () => cluster.daemonSetReadyPods(config.node.namespace, config.node.daemonSet),
      daemonSet: `${config.node.namespace}/${config.node.daemonSet}`,
      logger,
    });
    await nodePath.refresh();
  }
  const registryUrl = registryBaseURL(config);
  const credentials = deps.credentials ?? defaultCredentials(config, deps.kube);
  const resolver = deps.resolver ?? createResolveChecker({ registryUrl, credentials, logger });
  const prefetcher: Prefetcher | undefined = config.webhook.prefetch ? createPrefetcher({ registryUrl, credentials, platforms: nodePlatforms(cluster), logger }) : undefined;

  let server: TlsServer | undefined;
  // A renewed certificate is swapped into the listener in place: connections keep running.
  const certificate = await certificateSource(config, { logger, kube: deps.kube }, (pair) => server?.setSecureContext(pair));
  const app = Fastify({
    loggerInstance: logger,
    https: { ...certificate.pair, minVersion: 'TLSv1.2' },
    bodyLimit: BODY_LIMIT,
    logController: new LogController({ disableRequestLogging: true }),
    // kube-apiserver keeps connections open between reviews.
    keepAliveTimeout: 90_000,
    return503OnClosing: true,
    schemaController: { compilersFactory: lazySchemaCompilers() },
  });
  server = app.server as unknown as TlsServer;

  app.setErrorHandler((err: FastifyError, _req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status === 500) logger.error({ err }, 'webhook request failed');
    metrics.decisions.inc({ outcome: 'rejected', reason: status === 500 ? 'error' : 'malformed' });
    void reply.code(status).send({ error: status === 500 ? 'internal error' : `malformed AdmissionReview: ${err.message}` });
  });

  const unknownHost = { patch: [], warnings: ['layover: the registry public host is not known yet; images left unchanged'], outcome: 'skipped' as const, reason: 'public-host-unknown' as const };
  app.post('/mutate', async (req, reply) => {
    const started = process.hrtime.bigint();
    let request;
    try {
      request = readReview(req.body);
    } catch (err) {
      if (!(err instanceof ReviewError)) throw err;
      metrics.decisions.inc({ outcome: 'rejected', reason: 'malformed' });
      return reply.code(400).send({ error: `malformed AdmissionReview: ${err.message}` });
    }
    const found = podOf(request.object);
    let result;
    if ('problem' in found) {
      result = { patch: [], warnings: [`layover: ${found.problem}; not changed`], outcome: 'skipped' as const, reason: 'not-a-pod' as const };
    } else {
      const old = podOf(request.oldObject);
      const input: MutationInput = {
        operation: request.operation,
        subResource: request.subResource,
        namespace: request.namespace ?? found.pod.metadata?.namespace ?? '',
        pod: found.pod,
        oldPod: 'pod' in old ? old.pod : undefined,
        registryHealthy: health.healthy(),
        nodePathReady: nodePath?.ready() ?? true,
      };
      if (!settings) result = unknownHost;
      else {
        // Checked only when a rewrite could happen at all: otherwise the mutation drops them anyway.
        const images = input.registryHealthy && input.nodePathReady ? plannedImages(input, settings) : [];
        if (images.length) input.checks = await checkImages(resolver, input.namespace, images, config.webhook.resolveTimeoutMs);
        result = mutatePod(input, settings);
        // A dry run promises no side effects; a prefetch only warms the cache, but is not asked for.
        if (prefetcher && result.reason === 'rewritten' && request.dryRun !== true) {
          prefetcher.prefetch(input.namespace, images.filter((image) => input.checks?.get(image)?.ok));
        }
      }
    }
    metrics.decisions.inc({ outcome: result.outcome, reason: result.reason });
    metrics.latency.observe({ outcome: result.outcome }, Number(process.hrtime.bigint() - started) / 1e9);
    if (logger.isLevelEnabled('debug')) {
      logger.debug({ uid: request.uid, namespace: request.namespace, name: request.name, operation: request.operation, dryRun: request.dryRun === true, outcome: result.outcome, reason: result.reason }, 'admission review');
    }
    return reviewResponse(request.uid, result.patch, result.warnings);
  });

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async () => ({
    status: 'ok',
    registry: health.healthy() ? 'up' : 'down',
    ...(nodePath && { nodeRole: nodePath.ready() ? 'ready' : 'not ready' }),
  }));
  if (!deps.metrics) {
    app.get('/metrics', async (_req, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()));
  }

  const address = await app.listen({ host: config.webhook.host, port: config.webhook.port });
  logger.info({ address, publicHost: settings?.target.publicHost }, 'layover webhook listening');
  const url = address.replace(/^http:/, 'https:');

  return {
    url,
    server: app.server,
    async close() {
      clearInterval(publicHostTimer);
      certificate.stop();
      await app.close();
      if (!deps.health) await health.close();
      await nodePath?.close();
      await prefetcher?.close();
      if (!deps.resolver) await resolver.close();
    },
  };
}
