// The pull-secret controller: watches namespaces, and for each one that needs attention reads its
// Secret, asks reconcile() what to do and does it. One namespace at a time, retried with backoff.
import type { Config } from '../config/config.js';
import { isConflict, type Kube, type NamespaceObject, type NamespaceWatch, type PodReader, type SecretObject } from '../k8s/kube.js';
import { resolvePublicHost } from '../k8s/public-host.js';
import type { Logger } from '../log.js';
import { podsUsingMirror } from './pod-references.js';
import { buildPullSecret, HOSTS_ANNOTATION, registryHosts } from './pull-secret.js';
import { isOptedIn, reconcile, type Action, type ReconcileSettings } from './reconcile.js';

export interface NamespaceToken { token: string; expiresAt: Date; keyId: string }

export interface ControllerDeps {
  logger: Logger;
  kube: Kube & PodReader;
  /** Mints a token for principal `namespace:<namespace>` (the auth module's TokenService). */
  mintNamespaceToken(namespace: string): Promise<NamespaceToken>;
  /** The id of the key new tokens are signed with; a change refreshes every secret. */
  currentKeyId(): string;
  now?: () => Date;
  /** How often currentKeyId() is compared with the last one seen. */
  keyPollMs?: number;
  /** How often the registry's public host is read again; a change reaches every secret. */
  hostPollMs?: number;
  /** How often an opted-out namespace whose Pods still use the mirror is looked at again. */
  podRecheckMs?: number;
}

export interface Controller {
  close(): Promise<void>;
  /** Resolves when nothing is queued or being worked on (for tests and orderly shutdown). */
  idle(): Promise<void>;
}

const MAX_TIMER_MS = 2 ** 31 - 1;
const BACKOFF_BASE_MS = 1_000;
const BACKOFF_MAX_MS = 5 * 60_000;
const HOST_POLL_MS = 30_000;
const POD_RECHECK_MS = 30_000;

export function reconcileSettings(config: Config): ReconcileSettings {
  return {
    optInLabel: config.webhook.namespaceLabel,
    secretName: config.webhook.pullSecretName,
    excludedNamespaces: new Set([config.webhook.ownNamespace, 'kube-system']),
    refreshBeforeMs: Math.floor(config.controller.tokenTTLMs / 3),
  };
}

export async function startController(config: Config, deps: ControllerDeps): Promise<Controller> {
  const logger = deps.logger.child({ module: 'controller' });
  const { kube } = deps;
  const now = deps.now ?? (() => new Date());
  const settings = reconcileSettings(config);
  // Resolved when needed and every hostPollMs (a recreated Service may get a new NodePort): a
  // change re-queues every opted-in namespace. While the Service cannot be read, reconciliation
  // fails and is retried with backoff.
  let hosts: string[] | undefined;
  const refreshHosts = async (): Promise<{ hosts: string[]; changed: boolean }> => {
    const next = registryHosts((await resolvePublicHost(config, kube)).host);
    const changed = next.join(',') !== hosts?.join(',');
    if (hosts && changed) logger.info({ hosts: next }, 'registry public host changed; refreshing pull secrets');
    hosts = next;
    return { hosts: next, changed };
  };

  const queue = new Set<string>();
  const timers = new Map<string, NodeJS.Timeout>();
  const failures = new Map<string, number>();
  /** Conflicts already reported, by namespace → secret uid@resourceVersion, so an Event is recorded once. */
  const reported = new Map<string, string>();
  /** Opt-outs whose secret is kept for running Pods, already reported by an Event. */
  const keptReported = new Set<string>();
  /** Every namespace the watch reported, kept here because its callbacks run before it returns. */
  const namespaces = new Map<string, NamespaceObject>();
  let watch: NamespaceWatch | undefined;
  let working: Promise<void> | undefined;
  let closed = false;
  let lastKeyId = deps.currentKeyId();

  function enqueueOptedIn(): void {
    for (const ns of namespaces.values()) if (isOptedIn(ns, settings)) enqueue(ns.name);
  }

  function later(name: string, delayMs: number): void {
    if (closed) return;
    clearTimeout(timers.get(name));
    timers.set(name, setTimeout(() => {
      timers.delete(name);
      enqueue(name);
    }, Math.min(Math.max(delayMs, 0), MAX_TIMER_MS)).unref());
  }

  function enqueue(name: string): void {
    if (closed) return;
    queue.add(name);
    working ??= drain().finally(() => {
      working = undefined;
      if (queue.size && !closed) enqueue([...queue][0] as string);
    });
  }

  async function drain(): Promise<void> {
    while (queue.size && !closed) {
      const name = [...queue][0] as string;
      queue.delete(name);
      const ns = namespaces.get(name);
      if (!ns) continue;
      try {
        await handle(ns);
        failures.delete(name);
      } catch (err) {
        const attempt = (failures.get(name) ?? 0) + 1;
        failures.set(name, attempt);
        const delay = Math.min(BACKOFF_BASE_MS * 2 ** (attempt - 1), BACKOFF_MAX_MS);
        logger.warn({ namespace: name, err: (err as Error).message, retryInMs: delay }, 'pull secret reconciliation failed');
        later(name, delay);
      }
    }
  }

  async function handle(ns: NamespaceObject): Promise<void> {
    const current = hosts ?? (await refreshHosts()).hosts;
    const secret = await kube.readSecret(ns.name, settings.secretName);
    const action = reconcile({ namespace: ns, secret, currentKeyId: deps.currentKeyId(), hosts: current, now: now() }, settings);
    await perform(ns, action, secret, current);
  }

  /** Mints and stores a fresh token; false when the Secret changed under us (requeued). */
  async function write(ns: NamespaceObject, hostList: string[], mode: 'create' | 'replace', resourceVersion?: string): Promise<boolean> {
    const issued = await deps.mintNamespaceToken(ns.name);
    const secret = buildPullSecret({ namespace: ns.name, name: settings.secretName, hosts: hostList, ...issued, resourceVersion });
    try {
      if (mode === 'create') await kube.createSecret(ns.name, secret);
      else await kube.replaceSecret(ns.name, secret);
    } catch (err) {
      // Someone wrote the Secret between our read and write: look again rather than overwrite.
      if (!isConflict(err)) throw err;
      enqueue(ns.name);
      return false;
    }
    const refreshAt = issued.expiresAt.getTime() - settings.refreshBeforeMs;
    if (refreshAt - now().getTime() < config.controller.resyncMs) later(ns.name, refreshAt - now().getTime());
    return true;
  }

  /**
   * An opted-out namespace keeps its secret while Pods there may still pull from the mirror
   * (removing it would break their next pull); looked at again every podRecheckMs.
   */
  async function keptForPods(ns: NamespaceObject, secret: SecretObject | undefined, hostList: string[]): Promise<boolean> {
    const recorded = secret?.metadata.annotations?.[HOSTS_ANNOTATION]?.split(',').filter(Boolean) ?? [];
    const using = podsUsingMirror(await kube.listPods(ns.name), [...hostList, ...recorded], config.webhook.originalImagesAnnotation);
    if (using.length === 0) return false;
    later(ns.name, deps.podRecheckMs ?? POD_RECHECK_MS);
    if (keptReported.has(ns.name)) return true;
    logger.info({ namespace: ns.name, secret: settings.secretName, pods: using.length }, 'namespace opted out; pull secret kept while its Pods still use the mirror');
    await kube.createEvent(ns.name, {
      involved: { kind: 'Secret', apiVersion: 'v1', name: settings.secretName, namespace: ns.name, uid: secret?.metadata.uid },
      type: 'Normal',
      reason: 'PullSecretKept',
      message: `Namespace opted out of layover, but ${using.length} Pod(s) here still use its mirror (e.g. ${using[0] ?? ''}); Secret ${settings.secretName} is removed once none does`,
    });
    keptReported.add(ns.name);
    return true;
  }

  async function perform(ns: NamespaceObject, action: Action, secret: SecretObject | undefined, hostList: string[]): Promise<void> {
    const log = { namespace: ns.name, secret: settings.secretName };
    switch (action.type) {
      case 'none':
        if (action.reason === 'up-to-date' && action.recheckAt.getTime() - now().getTime() < config.controller.resyncMs) {
          later(ns.name, action.recheckAt.getTime() - now().getTime());
        }
        return;
      case 'create':
        if (await write(ns, hostList, 'create')) logger.info(log, 'pull secret created');
        return;
      case 'refresh':
        if (await write(ns, hostList, 'replace', action.resourceVersion)) logger.info({ ...log, reason: action.reason }, 'pull secret refreshed');
        return;
      case 'delete': {
        if (await keptForPods(ns, secret, hostList)) return;
        await kube.deleteSecret(ns.name, settings.secretName, action.uid);
        keptReported.delete(ns.name);
        logger.info({ ...log, reason: action.reason }, 'pull secret removed');
        return;
      }
      case 'recreate':
        // The type of a Secret cannot be changed, so a replace would fail on every retry.
        await kube.deleteSecret(ns.name, settings.secretName, action.uid);
        if (await write(ns, hostList, 'create')) logger.info({ ...log, reason: action.reason }, 'pull secret re-created');
        return;
      case 'conflict': {
        const version = `${secret?.metadata.uid ?? ''}@${secret?.metadata.resourceVersion ?? ''}`;
        if (reported.get(ns.name) === version) return;
        const message = `Secret ${settings.secretName} exists and is not managed by layover; it was left unchanged, so Pods here will not get layover's pull credentials`;
        logger.warn(log, 'pull secret name taken by a Secret layover does not manage; left unchanged');
        await kube.createEvent(ns.name, {
          involved: { kind: 'Secret', apiVersion: 'v1', name: settings.secretName, namespace: ns.name, uid: secret?.metadata.uid },
          type: 'Warning',
          reason: 'PullSecretConflict',
          message,
        });
        reported.set(ns.name, version);
        return;
      }
    }
  }

  watch = await kube.watchNamespaces({
    upsert(ns) {
      const before = namespaces.get(ns.name);
      namespaces.set(ns.name, ns);
      const optedIn = isOptedIn(ns, settings);
      if (optedIn) keptReported.delete(ns.name);
      // Namespaces that never opted in are looked at once (a secret may be left from before), then ignored.
      if (optedIn || before === undefined || isOptedIn(before, settings) !== optedIn) enqueue(ns.name);
    },
    remove(ns) {
      namespaces.delete(ns.name);
      reported.delete(ns.name);
      keptReported.delete(ns.name);
      clearTimeout(timers.get(ns.name));
      timers.delete(ns.name);
    },
    error(err) {
      logger.warn({ err: (err as Error).message }, 'namespace watch failed; retrying');
    },
  });

  const resync = setInterval(enqueueOptedIn, config.controller.resyncMs);
  resync.unref();
  const hostPoll = setInterval(() => {
    void refreshHosts()
      .then(({ changed }) => { if (changed) enqueueOptedIn(); })
      .catch((err: unknown) => logger.warn({ err: (err as Error).message }, 'cannot read the registry public host'));
  }, deps.hostPollMs ?? HOST_POLL_MS);
  hostPoll.unref();
  const keyPoll = setInterval(() => {
    const keyId = deps.currentKeyId();
    if (keyId === lastKeyId) return;
    lastKeyId = keyId;
    logger.info('token signing key rotated; refreshing pull secrets');
    enqueueOptedIn();
  }, deps.keyPollMs ?? 10_000);
  keyPoll.unref();
  logger.info({ label: `${settings.optInLabel}=enabled`, secret: settings.secretName }, 'pull secret controller started');

  return {
    async idle() {
      while (working) await working;
    },
    async close() {
      closed = true;
      clearInterval(resync);
      clearInterval(hostPoll);
      clearInterval(keyPoll);
      for (const t of timers.values()) clearTimeout(t);
      timers.clear();
      await watch?.stop();
      await working;
    },
  };
}
