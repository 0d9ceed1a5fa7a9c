// The pull secret layover keeps in each opted-in namespace: a kubernetes.io/dockerconfigjson
// Secret whose auths carry the namespace's token for every spelling of the registry host, and
// annotations recording when the token expires, which key signed it and for which hosts.
import type { SecretObject } from '../k8s/kube.js';

export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY_VALUE = 'layover';
export const EXPIRES_ANNOTATION = 'layover.dev/token-expires-at';
export const KEY_ID_ANNOTATION = 'layover.dev/token-key-id';
export const HOSTS_ANNOTATION = 'layover.dev/registry-hosts';
export const DOCKER_CONFIG_TYPE = 'kubernetes.io/dockerconfigjson';
export const DOCKER_CONFIG_KEY = '.dockerconfigjson';

/** The user name in the secret. The registry splits Basic credentials at the first colon and
 *  reads `namespace` + `N:TOKEN` as the namespace token form. */
export function namespaceUsername(namespace: string): string {
  return `namespace:${namespace}`;
}

/** Hosts nodes may write for the registry: both loopback spellings of a `localhost:PORT` host. */
export function registryHosts(publicHost: string): string[] {
  const match = /^(localhost|127\.0\.0\.1)(:\d+)?$/i.exec(publicHost);
  if (!match) return [publicHost];
  const port = match[2] ?? '';
  return [`localhost${port}`, `127.0.0.1${port}`];
}

export interface PullSecretContent {
  namespace: string;
  name: string;
  hosts: string[];
  token: string;
  expiresAt: Date;
  keyId: string;
  resourceVersion?: string;
}

export function buildPullSecret(c: PullSecretContent): SecretObject {
  const username = namespaceUsername(c.namespace);
  const auth = Buffer.from(`${username}:${c.token}`).toString('base64');
  const auths = Object.fromEntries(c.hosts.map((host) => [host, { username, password: c.token, auth }]));
  return {
    metadata: {
      name: c.name,
      namespace: c.namespace,
      ...(c.resourceVersion !== undefined && { resourceVersion: c.resourceVersion }),
      labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE },
      annotations: {
        [EXPIRES_ANNOTATION]: c.expiresAt.toISOString(),
        [KEY_ID_ANNOTATION]: c.keyId,
        [HOSTS_ANNOTATION]: c.hosts.join(','),
      },
    },
    type: DOCKER_CONFIG_TYPE,
    data: { [DOCKER_CONFIG_KEY]: Buffer.from(JSON.stringify({ auths })).toString('base64') },
  };
}

export function isManaged(secret: SecretObject): boolean {
  return secret.metadata.labels?.[MANAGED_BY_LABEL] === MANAGED_BY_VALUE;
}
