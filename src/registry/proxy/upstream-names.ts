// How a local mirror repository maps onto its upstream: `<prefix>/<path>` is `<path>` upstream,
// with Docker Hub's convention that a one-component name lives under `library/`.
import type { UpstreamConfig } from '../../config/config.js';

const DOCKER_HUB_HOSTS = new Set(['registry-1.docker.io', 'index.docker.io', 'docker.io']);

export function hostOf(url: string): string {
  return new URL(url).host.toLowerCase();
}

export function isDockerHub(upstream: UpstreamConfig): boolean {
  return upstream.prefix === 'docker.io' || DOCKER_HUB_HOSTS.has(hostOf(upstream.url));
}

/** The names that select an upstream as a first path component: prefix and aliases. */
export function namesOf(upstream: UpstreamConfig): string[] {
  return [upstream.prefix, ...upstream.aliases];
}

/**
 * The names containerd may send as `?ns=` for this upstream: its prefix, aliases and URL host
 * (and Docker Hub's well-known hosts for a Docker Hub upstream).
 */
export function namespacesOf(upstream: UpstreamConfig): string[] {
  const out = [...namesOf(upstream), hostOf(upstream.url)];
  if (isDockerHub(upstream)) out.push(...DOCKER_HUB_HOSTS);
  return out;
}

/** The upstream repository path of a local repository name, or undefined when it has none. */
export function upstreamPath(upstream: UpstreamConfig, localName: string): string | undefined {
  const slash = localName.indexOf('/');
  if (slash === -1) return undefined;
  const path = localName.slice(slash + 1);
  if (isDockerHub(upstream) && !path.includes('/')) return `library/${path}`;
  return path;
}
