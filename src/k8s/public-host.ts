// The host nodes pull from: `registry.publicHost` when configured, else `localhost:<NodePort>`
// of the registry's Service (nodes reach a NodePort on their own loopback).
import type { Config } from '../config/config.js';
import type { Kube } from './kube.js';

/** Preferred names for the registry's port when the Service has several. */
const PORT_NAMES = ['registry', 'http', 'https'];

export async function resolvePublicHost(config: Config, kube: Kube | undefined): Promise<{ host: string; from: 'config' | 'service' }> {
  if (!kube || !config.webhook.publicHostFromService) return { host: config.registry.publicHost, from: 'config' };
  const ports = await kube.readServiceNodePorts(config.webhook.ownNamespace, config.webhook.serviceName);
  if (!ports) throw new Error(`Service ${config.webhook.ownNamespace}/${config.webhook.serviceName} not found`);
  const withNodePort = ports.filter((p) => p.nodePort !== undefined);
  const chosen = PORT_NAMES.map((n) => withNodePort.find((p) => p.name === n)).find(Boolean) ?? withNodePort[0];
  if (!chosen?.nodePort) throw new Error(`Service ${config.webhook.ownNamespace}/${config.webhook.serviceName} has no NodePort`);
  return { host: `localhost:${chosen.nodePort}`, from: 'service' };
}
