// The host nodes pull from, one rule for the webhook (what images are rewritten to) and the
// controller (which host the pull secret carries credentials for), so the two never disagree:
// - `webhook.rewriteTarget: node` (default): the node role's loopback address, as an IP literal
//   (`localhost` resolves to ::1 first on some nodes, where the node role does not listen);
// - `nodePort`: `registry.publicHost` when configured, else `localhost:<NodePort>` of the
//   registry's Service (nodes reach a NodePort on their own loopback where kube-proxy allows it).
import type { Config } from '../config/config.js';
import type { Kube } from './kube.js';

/** Preferred names for the registry's port when the Service has several. */
const PORT_NAMES = ['registry', 'http', 'https'];

/** The node role's address as nodes write it in image references: always an IP literal. */
export function nodeRoleHost(config: Config): string {
  const { host, port } = config.node;
  // A wildcard listen still answers on loopback; containerd treats loopback IPs as plain HTTP.
  if (host === '' || host === '0.0.0.0' || host === 'localhost') return `127.0.0.1:${port}`;
  if (host === '::' || host === '::1') return `[::1]:${port}`;
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

export async function resolvePublicHost(config: Config, kube: Kube | undefined): Promise<{ host: string; from: 'node' | 'config' | 'service' }> {
  if (config.webhook.rewriteTarget === 'node') return { host: nodeRoleHost(config), from: 'node' };
  if (!kube || !config.webhook.publicHostFromService) return { host: config.registry.publicHost, from: 'config' };
  const ports = await kube.readServiceNodePorts(config.webhook.ownNamespace, config.webhook.serviceName);
  if (!ports) throw new Error(`Service ${config.webhook.ownNamespace}/${config.webhook.serviceName} not found`);
  const withNodePort = ports.filter((p) => p.nodePort !== undefined);
  const chosen = PORT_NAMES.map((n) => withNodePort.find((p) => p.name === n)).find(Boolean) ?? withNodePort[0];
  if (!chosen?.nodePort) throw new Error(`Service ${config.webhook.ownNamespace}/${config.webhook.serviceName} has no NodePort`);
  return { host: `localhost:${chosen.nodePort}`, from: 'service' };
}
