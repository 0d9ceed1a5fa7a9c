// The few Kubernetes API calls layover makes, behind a small interface of plain objects so the
// webhook and controller are tested against a fake and the client library stays at this edge.
// ApiException messages carry request headers (credentials): only their status code is kept.
import * as k8s from '@kubernetes/client-node';
import { retryOnConflict } from './conflict.js';

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

/** A failed API call: the HTTP status and a message safe to log. */
export class KubeError extends Error {
  constructor(readonly status: number, operation: string) {
    super(`kubernetes API ${operation}: HTTP ${status}`);
    this.name = 'KubeError';
  }
}

export const isNotFound = (err: unknown) => err instanceof KubeError && err.status === 404;
export const isConflict = (err: unknown) => err instanceof KubeError && err.status === 409;

/** Runs one API call; a failure becomes a KubeError carrying only the status code. */
export async function call<T>(operation: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof k8s.ApiException) throw new KubeError(err.code, operation);
    throw new KubeError(0, `${operation} (${(err as NodeJS.ErrnoException).code ?? (err as Error).name})`);
  }
}

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

function toNamespace(ns: k8s.V1Namespace): NamespaceObject {
  return {
    name: ns.metadata?.name ?? '',
    uid: ns.metadata?.uid,
    labels: ns.metadata?.labels ?? {},
    terminating: ns.metadata?.deletionTimestamp !== undefined || ns.status?.phase === 'Terminating',
  };
}

/** The client for the cluster this process runs in (service account) or the current kubeconfig context. */
export function createKube(kubeConfig?: k8s.KubeConfig): Kube {
  const kc = kubeConfig ?? new k8s.KubeConfig();
  if (!kubeConfig) kc.loadFromDefault();
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const admission = kc.makeApiClient(k8s.AdmissionregistrationV1Api);

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
    async watchNamespaces(handlers) {
      const informer = k8s.makeInformer(kc, '/api/v1/namespaces', () => core.listNamespace());
      informer.on('add', (ns) => handlers.upsert(toNamespace(ns)));
      informer.on('update', (ns) => handlers.upsert(toNamespace(ns)));
      informer.on('delete', (ns) => handlers.remove(toNamespace(ns)));
      informer.on('error', (err) => {
        handlers.error(err instanceof k8s.ApiException ? new KubeError(err.code, 'watch namespaces') : err);
        // The informer stops on error; restart it after a pause, as client-go's reflector does.
        setTimeout(() => void informer.start().catch((e: unknown) => handlers.error(e)), 5_000).unref();
      });
      await informer.start();
      return {
        stop: () => informer.stop(),
        list: () => informer.list().map(toNamespace),
      };
    },
  };
}
