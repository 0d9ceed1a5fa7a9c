// What to do about one namespace's pull secret, as a pure function of what is observed:
// the namespace, the Secret of that name (if any), the current signing key and the time.
import type { NamespaceObject, SecretObject } from '../k8s/kube.js';
import { DOCKER_CONFIG_KEY, DOCKER_CONFIG_TYPE, EXPIRES_ANNOTATION, HOSTS_ANNOTATION, KEY_ID_ANNOTATION, isManaged } from './pull-secret.js';

export interface ReconcileSettings {
  /** Namespace label whose value "enabled" opts in. */
  optInLabel: string;
  secretName: string;
  /** Namespaces that never get a secret even when labelled (layover's own, kube-system). */
  excludedNamespaces: ReadonlySet<string>;
  /** A token is replaced this long before it expires. */
  refreshBeforeMs: number;
}

export interface Observed {
  namespace: NamespaceObject;
  secret: SecretObject | undefined;
  currentKeyId: string;
  hosts: string[];
  now: Date;
}

export type RefreshReason = 'expiring' | 'key-rotated' | 'hosts-changed' | 'unreadable';

export type Action =
  | { type: 'none'; reason: 'up-to-date'; recheckAt: Date }
  | { type: 'none'; reason: 'not-opted-in' | 'terminating' | 'foreign-secret-left-alone' }
  | { type: 'create' }
  | { type: 'refresh'; reason: RefreshReason; resourceVersion?: string }
  /** A Secret's type is immutable: one of the wrong type is deleted (this exact one) and created anew. */
  | { type: 'recreate'; reason: 'wrong-type'; uid?: string }
  | { type: 'delete'; reason: 'opted-out' | 'excluded-namespace'; uid?: string }
  | { type: 'conflict'; secret: SecretObject };

export function isOptedIn(ns: NamespaceObject, settings: ReconcileSettings): boolean {
  return ns.labels[settings.optInLabel] === 'enabled' && !settings.excludedNamespaces.has(ns.name);
}

export function reconcile(observed: Observed, settings: ReconcileSettings): Action {
  const { namespace, secret } = observed;
  // A terminating namespace refuses new objects and deletes its secrets itself.
  if (namespace.terminating) return { type: 'none', reason: 'terminating' };
  const optedIn = isOptedIn(namespace, settings);

  if (!optedIn) {
    if (!secret) return { type: 'none', reason: 'not-opted-in' };
    if (!isManaged(secret)) return { type: 'none', reason: 'foreign-secret-left-alone' };
    const reason = settings.excludedNamespaces.has(namespace.name) ? 'excluded-namespace' : 'opted-out';
    return { type: 'delete', reason, uid: secret.metadata.uid };
  }

  if (!secret) return { type: 'create' };
  if (!isManaged(secret)) return { type: 'conflict', secret };

  const refresh = (reason: RefreshReason): Action => ({ type: 'refresh', reason, resourceVersion: secret.metadata.resourceVersion });
  const annotations = secret.metadata.annotations ?? {};
  const expiresAt = Date.parse(annotations[EXPIRES_ANNOTATION] ?? '');
  if (secret.type !== DOCKER_CONFIG_TYPE) return { type: 'recreate', reason: 'wrong-type', uid: secret.metadata.uid };
  if (!secret.data?.[DOCKER_CONFIG_KEY] || Number.isNaN(expiresAt)) return refresh('unreadable');
  if (annotations[KEY_ID_ANNOTATION] !== observed.currentKeyId) return refresh('key-rotated');
  if (annotations[HOSTS_ANNOTATION] !== observed.hosts.join(',')) return refresh('hosts-changed');
  const refreshAt = expiresAt - settings.refreshBeforeMs;
  if (observed.now.getTime() >= refreshAt) return refresh('expiring');
  return { type: 'none', reason: 'up-to-date', recheckAt: new Date(refreshAt) };
}
