// The few Kubernetes API calls layover makes, behind a small interface of plain objects so the
// webhook and controller are tested against a fake and the client library stays at this edge.
// ApiException messages carry request headers (credentials): only their status code is kept.
import * as k8s from '@kubernetes/client-node';
import { retryOnConflict } from './conflict.js';
import { API_TIMEOUT_MS, makeTimedApiClient } from './api-timeout.js';
import { call } from './kube-call.js';
import { isConflict, isNotFound } from './kube-error.js';
import { startReflector } from './reflector.js';
import { watchStream } from './watch-stream.js';

export interface ObjectRef { name: string; namespace?: string; uid?: string; resourceVersion?: string }

export interface SecretObject {
  metadata: ObjectRef & { labels?: Record<string, string>; annotations?: Record<string, string> };
  type?: string;
  data?: Record<string, string>;
}

export interface NamespaceObject {
  name: string;
  uid?: string;
  labels: Record<string, string>;
  terminating: boolean;
}

export interface EventSpec {
  involved: { kind: string; apiVersion: string } & ObjectRef;
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

export interface NamespaceWatch {
  stop(): Promise<void>;
  list(): NamespaceObject[];
}

export interface NamespaceHandlers {
  upsert(ns: NamespaceObject): void;
  remove(ns: NamespaceObject): void;
  error(err: unknown): void;
}

/** What the controller needs to know of a Pod: whether it may still pull from the mirror. */
export interface PodSummary {
  name: string;
  phase?: string;
  images: string[];
  annotations: Record<string, string>;
}

/** Separate from Kube so that the webhook's stand-ins need not implement it. */
export interface PodReader {
  listPods(namespace: string): Promise<PodSummary[]>;
}

export interface Kube {
  /** NodePorts of a Service, by port name ('' when unnamed), or undefined when it does not exist. */
  readServiceNodePorts(namespace: string, name: string): Promise<Array<{ name: string; port: number; nodePort?: number }> | undefined>;
  readSecret(namespace: string, name: string): Promise<SecretObject | undefined>;
  /** Throws KubeError with status 409 when it already exists. */
  createSecret(namespace: string, secret: SecretObject): Promise<SecretObject>;
  /** Replaces with optimistic concurrency when metadata.resourceVersion is set (409 on conflict). */
  replaceSecret(namespace: string, secret: SecretObject): Promise<SecretObject>;
  /** Deletes only the exact object seen (uid precondition); a missing Secret is not an error. */
  deleteSecret(namespace: string, name: string, uid?: string): Promise<void>;
  createEvent(namespace: string, event: EventSpec): Promise<void>;
  /**
   * Sets caBundle on every webhook of a MutatingWebhookConfiguration (read, then replace with the
   * read resourceVersion, retried on 409); no write when it already holds this bundle.
   */
  setWebhookCABundle(configName: string, caBundlePem: string): Promise<void>;
  watchNamespaces(handlers: NamespaceHandlers): Promise<NamespaceWatch>;
}

export { KubeError, isConflict, isGone, isNotFound } from './kube-error.js';

function toSecret(s: k8s.V1Secret): SecretObject {
  const m = s.metadata ?? {};
  return {
    metadata: { name: m.name ?? '', namespace: m.namespace, uid: m.uid, resourceVersion: m.resourceVersion, labels: m.labels, annotations: m.annotations },
    type: s.type,
    data: s.data,
  };
}

function fromSecret(s: SecretObject): k8s.V1Secret {
  return { apiVersion: 'v1', kind: 'Secret', metadata: { ...s.metadata }, type: s.type, data: s.data };
}

function toPod(pod: k8s.V1Pod): PodSummary {
  const spec = pod.spec;
  const containers = [...(spec?.containers ?? []), ...(spec?.initContainers ?? []), ...(spec?.ephemeralContainers ?? [])];
  return {
    name: pod.metadata?.name ?? '',
    phase: pod.status?.phase,
    images: containers.map((c) => c.image ?? '').filter(Boolean),
    annotations: pod.metadata?.annotations ?? {},
  };
}

function toNamespace(ns: k8s.V1Namespace): NamespaceObject {
  return {
    name: ns.metadata?.name ?? '',
    uid: ns.metadata?.uid,
    labels: ns.metadata?.labels ?? {},
    terminating: ns.metadata?.deletionTimestamp !== undefined || ns.status?.phase === 'Terminating',
  };
}

/** How long one watch request lasts before it is renewed (the server ends it; client-go picks 5-10 min). */
const WATCH_SECONDS = 300;

/** The client for the cluster this process runs in (service account) or the current kubeconfig context. */
export function createKube(kubeConfig?: k8s.KubeConfig, options: { timeoutMs?: number } = {}): Kube & PodReader {
  const kc = kubeConfig ?? new k8s.KubeConfig();
  if (!kubeConfig) kc.loadFromDefault();
  const timeoutMs = options.timeoutMs ?? API_TIMEOUT_MS;
  const core = makeTimedApiClient(kc, k8s.CoreV1Api, timeoutMs);
  const admission = makeTimedApiClient(kc, k8s.AdmissionregistrationV1Api, timeoutMs);

  return {
    async readServiceNodePorts(namespace, name) {
      try {
        const svc = await call('read service', () => core.readNamespacedService({ namespace, name }));
        return (svc.spec?.ports ?? []).map((p) => ({ name: p.name ?? '', port: p.port, ...(p.nodePort !== undefined && { nodePort: p.nodePort }) }));
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },
    async readSecret(namespace, name) {
      try {
        return toSecret(await call('read secret', () => core.readNamespacedSecret({ namespace, name })));
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },
    async createSecret(namespace, secret) {
      return toSecret(await call('create secret', () => core.createNamespacedSecret({ namespace, body: fromSecret(secret) })));
    },
    async replaceSecret(namespace, secret) {
      return toSecret(await call('replace secret', () => core.replaceNamespacedSecret({ namespace, name: secret.metadata.name, body: fromSecret(secret) })));
    },
    async deleteSecret(namespace, name, uid) {
      try {
        await call('delete secret', () => core.deleteNamespacedSecret({ namespace, name, body: uid ? { preconditions: { uid } } : {} }));
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    },
    async createEvent(namespace, event) {
      const now = new Date();
      await call('create event', () => core.createNamespacedEvent({
        namespace,
        body: {
          metadata: { generateName: `${event.involved.name}.`, namespace },
          involvedObject: { ...event.involved },
          type: event.type,
          reason: event.reason,
          message: event.message,
          source: { component: 'layover-controller' },
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
        },
      }));
    },
    async setWebhookCABundle(configName, caBundlePem) {
      const caBundle = Buffer.from(caBundlePem).toString('base64');
      await retryOnConflict(async () => {
        const current = await call('read webhook configuration', () => admission.readMutatingWebhookConfiguration({ name: configName }));
        const webhooks = current.webhooks ?? [];
        if (webhooks.every((webhook) => webhook.clientConfig.caBundle === caBundle)) return;
        for (const webhook of webhooks) webhook.clientConfig.caBundle = caBundle;
        // `current` carries the resourceVersion read: a concurrent change makes this a 409.
        await call('replace webhook configuration', () => admission.replaceMutatingWebhookConfiguration({ name: configName, body: current }));
      }, isConflict);
    },
    async listPods(namespace) {
      const pods = await call('list pods', () => core.listNamespacedPod({ namespace }));
      return pods.items.map(toPod);
    },
    async watchNamespaces(handlers) {
      const reflector = startReflector<k8s.V1Namespace>({
        async list() {
          const list = await call('list namespaces', () => core.listNamespace());
          return { items: list.items, resourceVersion: list.metadata?.resourceVersion ?? '' };
        },
        watch: (resourceVersion, signal, onEvent) => watchStream(kc, {
          path: '/api/v1/namespaces', resourceVersion, signal, timeoutSeconds: WATCH_SECONDS, connectTimeoutMs: timeoutMs,
        }, onEvent),
      }, {
        upsert: (ns) => handlers.upsert(toNamespace(ns)),
        remove: (ns) => handlers.remove(toNamespace(ns)),
        error: (err) => handlers.error(err),
      });
      await reflector.started;
      return {
        stop: () => reflector.stop(),
        list: () => reflector.list().map(toNamespace),
      };
    },
  };
}
