// How the webhook talks to the registry on a namespace's behalf (resolve checks, prefetch): the
// registry's base URL, the namespace's credentials, and the path of a rewritten image.
//
// Credentials: the webhook usually runs in its own Deployment, without the registry's signing
// keys, so it reads the namespace's pull secret (the controller writes it): the very credentials
// kubelet will present. A missing secret then fails the check, which is right: a Pod rewritten
// before the controller has written it would get 401s. When the registry (and its keys) run in
// the same process, a namespace token is minted instead.
import { LRUCache } from 'lru-cache';
import type { Config } from '../config/config.js';
import type { Kube } from '../k8s/kube.js';
import { tryParseNormalized } from '../reference/index.js';
import { defaultHealthURL } from './health.js';

export interface Credentials { username: string; password: string }
/** The credentials to use for a namespace; undefined: go anonymous. Rejects with a reason to tell the user. */
export type NamespaceCredentials = (namespace: string) => Promise<Credentials | undefined>;

/** The registry's base URL (no trailing slash): webhook.healthURL (or the local registry) without `/v2/`. */
export function registryBaseURL(config: Config): string {
  return defaultHealthURL(config).replace(/\/v2\/?$/, '').replace(/\/+$/, '');
}

export function authorization(credentials: Credentials | undefined): Record<string, string> {
  if (!credentials) return {};
  return { authorization: `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}` };
}

/** `/v2/<path>/manifests/<digest or tag>` of a rewritten image (`127.0.0.1:5005/docker.io/library/nginx:1`). */
export function manifestPath(image: string): string | undefined {
  const parsed = tryParseNormalized(image);
  if (!parsed.ok) return undefined;
  const reference = parsed.ref.digest ?? parsed.ref.tag ?? 'latest';
  return `/v2/${parsed.ref.path}/manifests/${reference}`;
}

/** The registry's answer to a missing or unusable pull secret, as a user reads it. */
export class CredentialsUnavailable extends Error {
  override name = 'CredentialsUnavailable';
}

interface DockerConfig { auths?: Record<string, { username?: string; password?: string; auth?: string }> }

function fromDockerConfig(encoded: string | undefined): Credentials | undefined {
  if (!encoded) return undefined;
  try {
    const parsed = JSON.parse(Buffer.from(encoded, 'base64').toString('utf8')) as DockerConfig;
    for (const entry of Object.values(parsed.auths ?? {})) {
      if (typeof entry.username === 'string' && typeof entry.password === 'string') return { username: entry.username, password: entry.password };
      if (typeof entry.auth === 'string') {
        const text = Buffer.from(entry.auth, 'base64').toString('utf8');
        // namespace:N:TOKEN: the user name itself holds a colon, the token never does.
        const colon = text.lastIndexOf(':');
        if (colon > 0) return { username: text.slice(0, colon), password: text.slice(colon + 1) };
      }
    }
  } catch {
    // not JSON: reported below as unusable
  }
  return undefined;
}

/** The namespace's pull secret's credentials, each namespace read at most once per `ttlMs`. */
export function pullSecretCredentials(kube: Kube, secretName: string, options: { ttlMs?: number; anonymousFallback?: boolean } = {}): NamespaceCredentials {
  const cache = new LRUCache<string, Promise<Credentials | undefined>>({ max: 5_000, ttl: options.ttlMs ?? 30_000 });
  async function read(namespace: string): Promise<Credentials | undefined> {
    const secret = await kube.readSecret(namespace, secretName).catch((err: unknown) => {
      throw new CredentialsUnavailable(`cannot read Secret ${namespace}/${secretName} (${(err as Error).message})`);
    });
    if (!secret) {
      if (options.anonymousFallback) return undefined;
      throw new CredentialsUnavailable(`namespace has no ${secretName} Secret yet`);
    }
    const credentials = fromDockerConfig(secret.data?.['.dockerconfigjson']);
    if (!credentials) throw new CredentialsUnavailable(`Secret ${namespace}/${secretName} holds no usable credentials`);
    return credentials;
  }
  return (namespace) => {
    let pending = cache.get(namespace);
    if (!pending) {
      pending = read(namespace);
      cache.set(namespace, pending);
      // A failure is cached briefly too (5 s), so a namespace without a secret costs one read per burst.
      pending.catch(() => cache.set(namespace, pending as Promise<Credentials | undefined>, { ttl: 5_000 }));
    }
    return pending;
  };
}

/** Namespace tokens minted in this process (the registry's keys are here), reused until half their life. */
export function mintedCredentials(mint: (namespace: string) => Promise<{ token: string; expiresAt: Date }>, now: () => number = Date.now): NamespaceCredentials {
  const cache = new Map<string, { credentials: Credentials; renewAt: number }>();
  return async (namespace) => {
    const cached = cache.get(namespace);
    if (cached && cached.renewAt > now()) return cached.credentials;
    const issued = await mint(namespace);
    const credentials = { username: `namespace:${namespace}`, password: issued.token };
    cache.set(namespace, { credentials, renewAt: now() + (issued.expiresAt.getTime() - now()) / 2 });
    return credentials;
  };
}

/** The credentials the webhook uses, from what this process has. */
export function defaultCredentials(config: Config, kube: Kube | undefined): NamespaceCredentials {
  // Auth off: the registry lets anyone pull.
  if (!config.auth.enabled) return async () => undefined;
  if (kube) return pullSecretCredentials(kube, config.webhook.pullSecretName, { anonymousFallback: config.auth.anonymous });
  return async () => undefined;
}
