// `layover serve`: the registry, the webhook and the controller, each when its configuration
// enables it, in one process.
import { parseArgs } from './args.js';
import type { Config } from '../config/config.js';
import { ConfigError } from '../config/errors.js';
import { loadConfig } from '../config/load.js';
import { examineApart } from '../config/examine-apart.js';
import type { Kube, PodReader } from '../k8s/kube.js';
import { createLogger, type Logger } from '../log.js';

export const SERVE_HELP = `layover serve [--config FILE]

Runs the roles the configuration in FILE (or $LAYOVER_CONFIG) enables, or the embedded defaults:
  registry    (registry.enabled, default true)  HTTP on registry.listen, default 127.0.0.1:5000,
              storage in storage.root, default ./data
  webhook     (webhook.enabled)     the admission webhook over HTTPS on webhook.listen
  controller  (controller.enabled)  keeps the pull secret in every opted-in namespace; needs the
              registry role with auth in the same process (it signs with the registry's keys)
  node        (node.enabled)        the node-local entry point on node.listen, default
              127.0.0.1:5005, forwarding to the registry at node.registry`;

interface Role {
  name: string;
  close(): Promise<void>;
}

/**
 * The cluster's API when this process can reach one (in a Pod, or with $KUBECONFIG set).
 * The Kubernetes client, the webhook and the controller are imported only when enabled:
 * @kubernetes/client-node alone adds ~130 MiB of resident memory to a registry that needs none of it.
 */
async function clusterClient(logger: Logger): Promise<(Kube & PodReader) | undefined> {
  if (!process.env.KUBERNETES_SERVICE_HOST && !process.env.KUBECONFIG) return undefined;
  try {
    const { createKube } = await import('../k8s/kube.js');
    return createKube();
  } catch (err) {
    logger.warn({ err: (err as Error).message }, 'no Kubernetes client: running without cluster access');
    return undefined;
  }
}

function checkRoles(config: Config): void {
  const problems: string[] = [];
  if (!config.registry.enabled && !config.webhook.enabled && !config.controller.enabled && !config.node.enabled) problems.push('registry.enabled: no role is enabled');
  if (config.controller.enabled && !(config.registry.enabled && config.auth.enabled)) {
    problems.push('controller.enabled: the controller mints tokens with the registry\'s keys: enable registry and auth in the same process');
  }
  if (problems.length) throw new ConfigError(problems, config.source);
}

export async function serve(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string', short: 'c' } }, strict: true });
  const bootLog = createLogger('info');
  // The YAML and schema libraries are needed once, at start: a child process parses and checks.
  const config = await loadConfig(values.config ?? process.env.LAYOVER_CONFIG, (msg) => bootLog.warn(msg), examineApart);
  checkRoles(config);
  // Before anything is created (storage, the first admin, keys): a missing file stops the start.
  const { referencedFileProblems } = await import('../config/files.js');
  const missing = await referencedFileProblems(config);
  if (missing.length) throw new ConfigError(missing, config.source);
  const logger = createLogger(config.log.level);
  const roles: Role[] = [];
  // Garbage left by start-up and by each burst of requests is collected once things are quiet.
  const { idleGc } = await import('../idle-gc.js');
  const gc = idleGc();
  roles.push({ name: 'idle-gc', close: async () => gc.stop() });
  const kube = config.webhook.enabled || config.controller.enabled ? await clusterClient(logger) : undefined;
  if (config.controller.enabled && !kube) {
    throw new ConfigError(['controller.enabled: needs access to a Kubernetes API (run in a Pod, or set KUBECONFIG)'], config.source);
  }

  let mintNamespaceToken: ((namespace: string) => Promise<{ token: string; expiresAt: Date }>) | undefined;
  if (config.registry.enabled) {
    // Imported here, not at the top: the node role runs in processes that must stay small.
    const { buildApp } = await import('../app.js');
    const app = await buildApp(config, { logger });
    const localAuth = app.auth;
    if (localAuth) mintNamespaceToken = (namespace) => localAuth.mintNamespaceToken(namespace);
    const address = await app.listen({ host: config.registry.host, port: config.registry.port });
    const metadata = app.database ? app.database.location : 'embedded';
    logger.info({ address, storage: config.storage.root, metadata, config: config.source ?? '(embedded defaults)' }, 'layover registry listening');
    roles.push({ name: 'registry', close: () => app.close() });
    gc.track(app.server);
    if (config.controller.enabled) {
      const auth = app.auth;
      if (!kube || !auth) throw new Error('controller: no cluster client or auth module');
      const { startController } = await import('../controller/index.js');
      const controller = await startController(config, {
        logger,
        kube,
        mintNamespaceToken: (namespace) => auth.mintNamespaceToken(namespace),
        currentKeyId: () => auth.currentKeyId(),
      });
      roles.push({ name: 'controller', close: () => controller.close() });
    }
  }
  if (config.webhook.enabled) {
    const { startWebhook } = await import('../webhook/server.js');
    // cluster-facts.ts loads @kubernetes/client-node (~50 MiB resident): only with a cluster.
    const cluster = kube ? (await import('../k8s/cluster-facts.js')).createClusterFacts() : undefined;
    const { mintedCredentials } = await import('../webhook/registry-access.js');
    // With the registry's keys in this process the webhook mints its namespace tokens; otherwise
    // it reads each namespace's pull secret (the default).
    const credentials = mintNamespaceToken && !kube ? mintedCredentials(mintNamespaceToken) : undefined;
    const webhook = await startWebhook(config, { logger, kube, cluster, credentials });
    logger.info({ url: webhook.url }, 'layover webhook listening');
    roles.push({ name: 'webhook', close: () => webhook.close() });
    gc.track(webhook.server);
  }

  if (config.node.enabled) {
    const { startNode } = await import('../node/server.js');
    const node = await startNode({ host: config.node.host, port: config.node.port, registry: config.node.registry }, { logger });
    roles.push({ name: 'node', close: () => node.close() });
  }

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    for (const role of roles.reverse()) await role.close().catch((err: unknown) => logger.warn({ err, role: role.name }, 'close failed'));
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}
