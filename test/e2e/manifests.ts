// deploy/ as objects: rendered by `kubectl kustomize`, looked up by kind and name, and the few
// changes the end-to-end suite makes to them (an in-cluster upstream, free host ports for kind).
// The unit tests check these same functions and objects offline.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments, stringify } from 'yaml';
import type { RawConfig, RawUpstream } from '../../src/config/schema.js';
import { runTool } from '../helpers/run-tool.js';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}

/** Every object `kubectl kustomize` renders from `dir` (relative to the repository root). */
export async function render(dir: string): Promise<K8sObject[]> {
  const { stdout } = await runTool('kubectl', ['kustomize', path.resolve(REPO_ROOT, dir)]);
  return parseAllDocuments(stdout).map((d) => d.toJS() as K8sObject).filter((o) => o !== null);
}

/** The object of this kind and name; a generated ConfigMap or Secret matches without its hash suffix. */
export function findObject(objs: K8sObject[], kind: string, name: string): K8sObject {
  const found = objs.find((o) => o.kind === kind && (o.metadata.name === name || (/^(ConfigMap|Secret)$/.test(kind) && new RegExp(`^${name}-[a-z0-9]{10}$`).test(o.metadata.name))));
  if (!found) throw new Error(`${kind}/${name} is not rendered`);
  return found;
}

/** The value at a dotted path (`spec.template.spec.containers.0`); throws naming the missing step. */
export function at<T>(value: unknown, dotted: string): T {
  let current = value;
  for (const step of dotted.split('.')) {
    if (typeof current !== 'object' || current === null || !(step in current)) throw new Error(`no ${dotted} (stopped at ${step})`);
    current = (current as Record<string, unknown>)[step];
  }
  return current as T;
}

export const REGISTRY_CONFIG = 'layover-registry-config';
export const WEBHOOK_CONFIG = 'layover-webhook';

/** The parsed config.yaml of a ConfigMap. */
export function configOf(objs: K8sObject[], configMap: string): RawConfig {
  const text = at<Record<string, string>>(findObject(objs, 'ConfigMap', configMap), 'data')['config.yaml'];
  if (text === undefined) throw new Error(`ConfigMap ${configMap} has no config.yaml`);
  return parse(text) as RawConfig;
}

/** A copy of `objs` in which both layover configurations (registry and webhook) mirror `upstream` too. */
export function withUpstream(objs: K8sObject[], upstream: RawUpstream): K8sObject[] {
  const copy = structuredClone(objs);
  for (const name of [REGISTRY_CONFIG, WEBHOOK_CONFIG]) {
    const cm = findObject(copy, 'ConfigMap', name);
    const config = configOf(copy, name);
    config.upstreams = [...(config.upstreams ?? []), upstream];
    (cm.data as Record<string, string>)['config.yaml'] = stringify(config);
  }
  return copy;
}

/**
 * An upstream registry inside the cluster: a second layover, auth off, on the node's host network
 * at `hostPort` (outside the NodePort range), so that a node pulls from it on 127.0.0.1 whatever
 * kube-proxy does, and the registry mirrors it through its Service.
 */
export const UPSTREAM = { namespace: 'e2e-upstream', name: 'upstream', port: 5000, hostPort: 5006 } as const;

export function upstreamObjects(image: string): K8sObject[] {
  const { namespace, name, port, hostPort } = UPSTREAM;
  const labels = { 'app.kubernetes.io/name': name };
  const config = { registry: { listen: `0.0.0.0:${hostPort}` }, storage: { root: '/data' }, auth: { enabled: false } };
  return [
    // Host networking is refused by the restricted profile; this namespace is the suite's own.
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace, labels: { 'pod-security.kubernetes.io/enforce': 'privileged' } } },
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace }, data: { 'config.yaml': stringify(config) } },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name, namespace, labels },
      spec: {
        replicas: 1,
        selector: { matchLabels: labels },
        // The host port is taken until the old Pod is gone.
        strategy: { type: 'Recreate' },
        template: {
          metadata: { labels },
          spec: {
            hostNetwork: true,
            dnsPolicy: 'ClusterFirstWithHostNet',
            enableServiceLinks: false,
            securityContext: { runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: 'RuntimeDefault' } },
            containers: [{
              name,
              image,
              args: ['serve', '--config', '/etc/upstream/config.yaml'],
              ports: [{ name: 'registry', containerPort: hostPort }],
              readinessProbe: { httpGet: { path: '/healthz', port: 'registry' }, periodSeconds: 2 },
              securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
              volumeMounts: [{ name: 'config', mountPath: '/etc/upstream' }, { name: 'data', mountPath: '/data' }],
            }],
            volumes: [{ name: 'config', configMap: { name } }, { name: 'data', emptyDir: {} }],
          },
        },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace },
      spec: { type: 'ClusterIP', selector: labels, ports: [{ name: 'registry', port, targetPort: 'registry' }] },
    },
  ];
}

interface PortMapping { containerPort: number; hostPort: number; listenAddress?: string; protocol?: string }
interface KindNode { role: string; extraPortMappings?: PortMapping[] }
export interface KindCluster { kind: string; apiVersion: string; networking?: Record<string, unknown>; containerdConfigPatches?: string[]; nodes: KindNode[] }

/** kube-proxy's modes; the suite runs once in each (kind's `networking.kubeProxyMode`). */
export const KUBE_PROXY_MODES = ['iptables', 'ipvs', 'nftables'] as const;
export type KubeProxyMode = (typeof KUBE_PROXY_MODES)[number];

export async function readKindCluster(): Promise<KindCluster> {
  return parse(await readFile(path.join(REPO_ROOT, 'deploy/overlays/kind/kind-cluster.yaml'), 'utf8')) as KindCluster;
}

/**
 * deploy/overlays/kind/kind-cluster.yaml with its port mappings moved to the host ports given
 * (free ones, so a developer's own kind cluster on 30500 does not collide) and any extra
 * NodePorts mapped too; always on the host's loopback.
 */
export function kindClusterWithPorts(cluster: KindCluster, hostPortOf: ReadonlyMap<number, number>): KindCluster {
  const copy = structuredClone(cluster);
  const node = copy.nodes.find((n) => n.role === 'control-plane');
  if (!node) throw new Error('kind-cluster.yaml has no control-plane node');
  const mapped = new Set((node.extraPortMappings ?? []).map((m) => m.containerPort));
  const mappings = [...(node.extraPortMappings ?? []), ...[...hostPortOf.keys()].filter((p) => !mapped.has(p)).map((containerPort) => ({ containerPort, hostPort: 0, protocol: 'TCP' }))];
  node.extraPortMappings = mappings.map((m) => {
    const hostPort = hostPortOf.get(m.containerPort);
    if (hostPort === undefined) throw new Error(`no host port for NodePort ${m.containerPort}`);
    return { ...m, hostPort, listenAddress: '127.0.0.1' };
  });
  return copy;
}

/** kind-cluster.yaml for one kube-proxy mode, its ports mapped as kindClusterWithPorts does. */
export function kindClusterFor(cluster: KindCluster, mode: KubeProxyMode, hostPortOf: ReadonlyMap<number, number>): KindCluster {
  const copy = kindClusterWithPorts(cluster, hostPortOf);
  copy.networking = { ...copy.networking, kubeProxyMode: mode };
  return copy;
}
