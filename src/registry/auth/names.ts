// Names that become registry namespaces (users, teams) or principals (Kubernetes namespaces).
// They are checked here before they reach a users file, a token or a storage path.

/** A user or team name: one repository path component, so that it can be its namespace. */
const ACCOUNT_NAME = /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/;
/** A Kubernetes namespace name (RFC 1123 label). */
const K8S_NAMESPACE = /^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?$/;

/**
 * Names that would make Basic credentials ambiguous: `namespace:N:TOKEN` is split at the first
 * colon by docker, containerd and kubelet, so a user called "namespace" must never exist.
 */
export const RESERVED_ACCOUNT_NAMES = new Set(['namespace', 'team', 'user', 'token', 'v2']);

export function isAccountName(name: string): boolean {
  return name.length <= 64 && ACCOUNT_NAME.test(name) && !RESERVED_ACCOUNT_NAMES.has(name);
}

export function isKubernetesNamespace(name: string): boolean {
  return name.length <= 63 && K8S_NAMESPACE.test(name);
}

export { namespaceOf } from '../names.js';
