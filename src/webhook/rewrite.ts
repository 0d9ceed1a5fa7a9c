// Where an image should be pulled from: the decision for one image string, given which
// registries layover mirrors and the host nodes reach layover on.
import type { Config } from '../config/config.js';
import { NAME_MAX_LENGTH, formatReference, tryParseNormalized, withDefaultTag } from '../reference/index.js';

export interface MirrorTarget {
  /** How nodes reach the registry, e.g. `localhost:30500`. */
  publicHost: string;
  /** Lower-cased registry hosts (with port when they have one) → the mirror prefix serving them. */
  upstreamByHost: ReadonlyMap<string, string>;
  /** Lower-cased hosts that already are layover (any spelling of the public host). */
  ourHosts: ReadonlySet<string>;
  /** Other names of layover (its Service DNS name, its public URL): images there move to the public host as they are. */
  aliasHosts: ReadonlySet<string>;
}

export type ImageDecision =
  | { kind: 'rewrite'; image: string }
  | { kind: 'ours' }
  | { kind: 'not-mirrored'; domain: string }
  | { kind: 'invalid'; message: string };

const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '[::1]'];
// Docker Hub's API host and its legacy name both mean the `docker.io` images people write.
const DOCKER_HUB_API_HOSTS = new Set(['registry-1.docker.io', 'index.docker.io', 'registry.hub.docker.com']);

function splitHostPort(host: string): { name: string; port?: string } {
  const match = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(host);
  return match ? { name: (match[1] as string).toLowerCase(), ...(match[2] !== undefined && { port: match[2] }) } : { name: host.toLowerCase() };
}

/** Every spelling of the public host a node might use for the same loopback NodePort. */
export function publicHostSpellings(publicHost: string): string[] {
  const { name, port } = splitHostPort(publicHost);
  if (!LOOPBACK_NAMES.includes(name)) return [publicHost.toLowerCase()];
  return LOOPBACK_NAMES.map((n) => (port === undefined ? n : `${n}:${port}`));
}

export function mirrorTargetFromConfig(config: Config, publicHost: string): MirrorTarget {
  const upstreamByHost = new Map<string, string>();
  for (const upstream of config.upstreams) {
    const hosts = [upstream.prefix, ...upstream.aliases];
    try {
      const urlHost = new URL(upstream.url).host.toLowerCase();
      hosts.push(urlHost);
      if (DOCKER_HUB_API_HOSTS.has(urlHost)) hosts.push('docker.io');
    } catch {
      // resolve.ts has already rejected bad URLs; nothing to add.
    }
    for (const host of hosts) {
      const key = host.toLowerCase();
      if (!upstreamByHost.has(key)) upstreamByHost.set(key, upstream.prefix);
    }
  }
  const ourHosts = new Set(publicHostSpellings(publicHost));
  const { serviceName, ownNamespace } = config.webhook;
  const aliasHosts = new Set([`${serviceName}.${ownNamespace}.svc`, `${serviceName}.${ownNamespace}.svc.cluster.local`]);
  if (config.registry.url) {
    try {
      aliasHosts.add(new URL(config.registry.url).host.toLowerCase());
    } catch {
      // not a URL: it names nothing an image could use
    }
  }
  for (const host of ourHosts) aliasHosts.delete(host);
  return { publicHost, upstreamByHost, ourHosts, aliasHosts };
}

/** The decision for one image as written in a container spec. */
export function decideImage(image: string, target: MirrorTarget): ImageDecision {
  const parsed = tryParseNormalized(image);
  if (!parsed.ok) return { kind: 'invalid', message: parsed.error.message };
  const ref = withDefaultTag(parsed.ref);
  const domain = ref.domain.toLowerCase();
  if (target.ourHosts.has(domain)) return { kind: 'ours' };

  let path: string;
  const prefix = target.upstreamByHost.get(domain);
  if (prefix !== undefined) path = `${prefix}/${ref.path}`;
  else if (target.aliasHosts.has(domain) || target.aliasHosts.has(splitHostPort(domain).name)) path = ref.path;
  else return { kind: 'not-mirrored', domain: ref.domain };

  const rewritten = { ...ref, domain: target.publicHost, path };
  if (target.publicHost.length + 1 + path.length > NAME_MAX_LENGTH) {
    return { kind: 'invalid', message: `mirrored name would exceed ${NAME_MAX_LENGTH} characters` };
  }
  return { kind: 'rewrite', image: formatReference(rewritten) };
}
