// Every kustomization under deploy/ rendered by `kubectl kustomize`, each object checked against
// its Kubernetes schema offline (deploy-schema.ts), then the checks a cluster would only show at
// run time: selectors that select, ports, names and ServiceAccounts that line up, probes,
// resources, the restricted security profile, and the layover configurations that the
// ConfigMaps carry (valid, and agreeing with each other and with the manifests).
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { nodeArgs } from '../../src/node/settings.js';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { Config } from '../../src/config/config.js';
import { resolveConfig } from '../../src/config/resolve.js';
import { parseSize } from '../../src/config/units.js';
import { hashPassword } from '../../src/registry/auth/password.js';
import { readUsersFile } from '../../src/registry/auth/users-file.js';
import { withTempDir } from '../helpers/temp-dir.js';
import {
  REGISTRY_CONFIG, REPO_ROOT, UPSTREAM, WEBHOOK_CONFIG, at, configOf, findObject, kindClusterWithPorts, readKindCluster, render, upstreamObjects, withUpstream,
  type K8sObject,
} from '../e2e/manifests.js';
import { schemaProblems } from './deploy-schema.js';

const KUSTOMIZATIONS = ['deploy/base', 'deploy/overlays/kind', 'deploy/overlays/persistence', 'deploy/overlays/ephemeral', 'deploy/overlays/cert-manager', 'deploy/overlays/nodeport', 'deploy/overlays/scale-out'];
/** Secrets users create from deploy/secrets/*.example.yaml, by name, with the keys each template has. */
const SECRET_TEMPLATES = new Map<string, string[]>();
for (const file of await readdir(path.join(REPO_ROOT, 'deploy/secrets'))) {
  const doc = parse(await readFile(path.join(REPO_ROOT, 'deploy/secrets', file), 'utf8')) as { metadata: { name: string }; stringData?: Record<string, string> };
  SECRET_TEMPLATES.set(doc.metadata.name, Object.keys(doc.stringData ?? {}));
}
/** The node role's namespace (deploy/base/node-*.yaml). */
const NODE_NAMESPACE = 'layover-node';

type Labels = Record<string, string>;
interface Port { name?: string; containerPort?: number; port?: number; targetPort?: number | string; nodePort?: number }
interface Probe { httpGet?: { host?: string; path: string; port: number | string; scheme?: string }; tcpSocket?: { port: number | string } }
interface Mount { name: string; mountPath: string; subPath?: string; readOnly?: boolean }
interface Container {
  name: string; image: string; args?: string[]; ports?: Port[]; volumeMounts?: Mount[];
  env?: Array<{ name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }>;
  livenessProbe?: Probe; readinessProbe?: Probe; startupProbe?: Probe;
  resources?: { requests?: Labels; limits?: Labels };
  securityContext?: { allowPrivilegeEscalation?: boolean; readOnlyRootFilesystem?: boolean; privileged?: boolean; capabilities?: { drop?: string[]; add?: string[] } };
}
interface Volume { name: string; configMap?: { name: string }; secret?: { secretName: string; optional?: boolean }; emptyDir?: { sizeLimit?: string }; persistentVolumeClaim?: unknown }
interface PodSpec {
  serviceAccountName?: string; containers: Container[]; volumes?: Volume[]; enableServiceLinks?: boolean;
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; seccompProfile?: { type: string } };
}
interface Workload extends K8sObject { spec: { selector: { matchLabels: Labels }; template: { metadata: { labels: Labels }; spec: PodSpec }; volumeClaimTemplates?: Array<{ metadata: { name: string }; spec: { resources: { requests: { storage: string } }; storageClassName?: string } }> } }

const workloads = (objs: K8sObject[]) => objs.filter((o): o is Workload => o.kind === 'Deployment' || o.kind === 'StatefulSet' || o.kind === 'DaemonSet');
/** The node role's objects (the DaemonSet and what it needs) live in their own namespace. */
const isNodeRole = (o: K8sObject) => o.metadata.labels?.['app.kubernetes.io/component'] === 'node';
/** The webhook's grant to read the node DaemonSet, which lives with it. */
const isNodePathGrant = (o: K8sObject) => (o.kind === 'Role' || o.kind === 'RoleBinding') && o.metadata.name === 'layover-webhook-node-path';
const selects = (selector: Labels, labels: Labels) => Object.entries(selector).every(([k, v]) => labels[k] === v);
const registryWorkload = (objs: K8sObject[]): Workload => {
  const found = workloads(objs).find((w) => w.metadata.name === 'layover-registry');
  if (!found) throw new Error('no registry workload');
  return found;
};
const webhookWorkload = (objs: K8sObject[]) => findObject(objs, 'Deployment', 'layover-webhook') as Workload;
const first = <T>(items: T[] | undefined, what: string): T => {
  const item = items?.[0];
  if (item === undefined) throw new Error(`no ${what}`);
  return item;
};

function resolved(objs: K8sObject[], name: string): Config {
  return resolveConfig(configOf(objs, name), { source: name, baseDir: '/' });
}

/** Kubernetes quantities as bytes (`10Gi`, `256Mi`); layover sizes use the same binary units. */
function quantityBytes(quantity: string): number {
  const match = /^(\d+)(Ki|Mi|Gi|Ti)$/.exec(quantity);
  if (!match) throw new Error(`unexpected quantity ${quantity}`);
  return Number(match[1]) * 1024 ** (['Ki', 'Mi', 'Gi', 'Ti'].indexOf(match[2] as string) + 1);
}

/** The size of the registry's data volume: its PVC template, or its emptyDir's sizeLimit. */
function dataVolumeBytes(registry: Workload): number {
  const claim = registry.spec.volumeClaimTemplates?.find((t) => t.metadata.name === 'data');
  if (claim) return quantityBytes(claim.spec.resources.requests.storage);
  const emptyDir = registry.spec.template.spec.volumes?.find((v) => v.name === 'data')?.emptyDir;
  if (!emptyDir?.sizeLimit) throw new Error('the registry data volume has no size');
  return quantityBytes(emptyDir.sizeLimit);
}

const rendered = new Map<string, K8sObject[]>();
for (const dir of KUSTOMIZATIONS) rendered.set(dir, await render(dir));
const objectsOf = (dir: string): K8sObject[] => rendered.get(dir) ?? [];

describe.each(KUSTOMIZATIONS)('%s', (dir) => {
  const objs = objectsOf(dir);

  it('every object is valid by its Kubernetes schema (unknown fields, types, required fields)', async () => {
    expect(objs.length).toBeGreaterThanOrEqual(17);
    const problems = (await Promise.all(objs.map((o) => schemaProblems(o)))).flat();
    expect(problems).toEqual([]);
  });

  it('everything namespaced lives in the layover Namespace (restricted), the node role in its own (which allows host networking)', () => {
    const clusterScoped = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'MutatingWebhookConfiguration', 'ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding']);
    for (const o of objs) {
      if (clusterScoped.has(o.kind)) expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBeUndefined();
      else expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBe(isNodeRole(o) || isNodePathGrant(o) ? NODE_NAMESPACE : 'layover');
    }
    expect(findObject(objs, 'Namespace', 'layover').metadata.labels?.['pod-security.kubernetes.io/enforce']).toBe('restricted');
    const nodeObjects = objs.filter((o) => o.metadata.namespace === NODE_NAMESPACE);
    if (nodeObjects.length) {
      // hostNetwork is forbidden by the baseline level too: only privileged admits the DaemonSet.
      expect(findObject(objs, 'Namespace', NODE_NAMESPACE).metadata.labels?.['pod-security.kubernetes.io/enforce']).toBe('privileged');
      // The node role's own objects, and the webhook's read of its DaemonSet's readiness.
      expect(nodeObjects.map((o) => o.kind).sort()).toEqual(['DaemonSet', 'Role', 'RoleBinding', 'ServiceAccount']);
    }
    const names = objs.map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`);
    expect(new Set(names).size).toBe(names.length);
  });

  it('selectors select: each workload its own Pods, each Service and PDB exactly one workload, on ports that exist', () => {
    const all = workloads(objs);
    const scaleOut = dir.endsWith('scale-out');
    const expected = [
      `${dir.endsWith('ephemeral') || scaleOut ? 'Deployment' : 'StatefulSet'}/layover-registry`, 'Deployment/layover-webhook',
      ...(dir.endsWith('nodeport') ? [] : ['DaemonSet/layover-node']), ...(scaleOut ? ['Deployment/layover-controller'] : []),
    ];
    expect(all.map((w) => `${w.kind}/${w.metadata.name}`).sort()).toEqual(expected.sort());
    for (const w of all) expect(selects(w.spec.selector.matchLabels, w.spec.template.metadata.labels), w.metadata.name).toBe(true);
    for (const selecting of objs.filter((o) => o.kind === 'Service' || o.kind === 'PodDisruptionBudget')) {
      const selector = selecting.kind === 'Service' ? at<Labels>(selecting, 'spec.selector') : at<Labels>(selecting, 'spec.selector.matchLabels');
      const matched = all.filter((w) => selects(selector, w.spec.template.metadata.labels));
      expect(matched.map((w) => w.metadata.name), `${selecting.kind}/${selecting.metadata.name}`).toEqual([selecting.metadata.name]);
      if (selecting.kind !== 'Service') continue;
      const containerPorts = (matched[0] as Workload).spec.template.spec.containers.flatMap((c) => c.ports ?? []);
      for (const port of at<Port[]>(selecting, 'spec.ports')) {
        const target = port.targetPort ?? port.port;
        expect(containerPorts.some((p) => p.name === target || p.containerPort === target), `${selecting.metadata.name} → ${String(target)}`).toBe(true);
      }
    }
  });

  it('ServiceAccounts, ConfigMaps and Secrets referenced are rendered (Secrets: or optional, or made by cert-manager)', () => {
    const names = (kind: string) => new Set(objs.filter((o) => o.kind === kind).map((o) => o.metadata.name));
    const certificateSecrets = new Set(objs.filter((o) => o.kind === 'Certificate').map((o) => at<string>(o, 'spec.secretName')));
    for (const w of workloads(objs)) {
      const pod = w.spec.template.spec;
      expect(names('ServiceAccount'), w.metadata.name).toContain(pod.serviceAccountName);
      for (const volume of pod.volumes ?? []) {
        if (volume.configMap) expect(names('ConfigMap')).toContain(volume.configMap.name);
        if (volume.secret && !volume.secret.optional) {
          const madeByWebhook = w.metadata.name === 'layover-webhook' && volume.secret.secretName === resolved(objs, WEBHOOK_CONFIG).webhook.certSecretName;
          // Or one the user creates from a template in deploy/secrets/ (the scale-out overlay's keys).
          const templated = SECRET_TEMPLATES.has(volume.secret.secretName);
          expect(certificateSecrets.has(volume.secret.secretName) || madeByWebhook || templated, volume.secret.secretName).toBe(true);
        }
      }
      for (const container of pod.containers) {
        const volumes = new Set([...(pod.volumes ?? []).map((v) => v.name), ...(w.spec.volumeClaimTemplates ?? []).map((t) => t.metadata.name)]);
        for (const mount of container.volumeMounts ?? []) expect(volumes, `${w.metadata.name} mounts ${mount.name}`).toContain(mount.name);
      }
    }
    for (const binding of objs.filter((o) => o.kind === 'RoleBinding' || o.kind === 'ClusterRoleBinding')) {
      for (const subject of at<Array<{ kind: string; name: string; namespace: string }>>(binding, 'subjects')) {
        expect(subject.kind).toBe('ServiceAccount');
        expect(names('ServiceAccount'), binding.metadata.name).toContain(subject.name);
        expect(subject.namespace).toBe('layover');
      }
      const roleRef = at<{ kind: string; name: string }>(binding, 'roleRef');
      expect(names(roleRef.kind), binding.metadata.name).toContain(roleRef.name);
    }
  });

  it('probes, resources, one tagged image and the restricted securityContext on every container; the registry within 256 MiB', () => {
    for (const w of workloads(objs)) {
      const pod = w.spec.template.spec;
      expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
      expect(pod.securityContext?.runAsUser).toBeGreaterThan(0);
      expect(pod.enableServiceLinks).toBe(false);
      for (const c of pod.containers) {
        const where = `${w.metadata.name}/${c.name}`;
        expect(c.securityContext, where).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
        // A read-only root needs a writable /tmp.
        expect(c.volumeMounts?.some((m) => m.mountPath === '/tmp'), where).toBe(true);
        for (const probe of [c.livenessProbe, c.readinessProbe]) {
          expect(probe?.httpGet, where).toBeDefined();
          expect((c.ports ?? []).map((p) => p.name), where).toContain(probe?.httpGet?.port);
        }
        expect(c.resources?.requests?.cpu, where).toBeDefined();
        expect(c.resources?.requests?.memory, where).toBeDefined();
        expect(c.resources?.limits?.memory, where).toBeDefined();
        expect(quantityBytes(c.resources?.requests?.memory ?? '0Ki')).toBeLessThanOrEqual(quantityBytes(c.resources?.limits?.memory ?? '0Ki'));
      }
    }
    const images = new Set(workloads(objs).flatMap((w) => w.spec.template.spec.containers.map((c) => c.image)));
    expect(images.size, [...images].join(', ')).toBe(1);
    expect([...images][0]).toMatch(/^[a-z0-9./-]+:[\w.-]+$/);
    const registry = first(registryWorkload(objs).spec.template.spec.containers, 'registry container');
    expect(registry.resources?.limits?.memory).toBe('256Mi');
    expect(registry.livenessProbe?.httpGet?.path).toBe('/healthz');
    expect(registry.readinessProbe?.httpGet?.path).toBe('/readyz');
  });

  // The scale-out overlay runs them apart, on no volume (its own describe below).
  if (!dir.endsWith('scale-out')) it('the registry ConfigMap is a valid configuration that runs registry + controller on the mounted volume and port', () => {
    const config = resolved(objs, REGISTRY_CONFIG);
    const w = registryWorkload(objs);
    const container = first(w.spec.template.spec.containers, 'registry container');
    expect(config.registry.enabled && config.controller.enabled && config.auth.enabled).toBe(true);
    expect(config.webhook.enabled).toBe(false);
    expect(config.registry.host).toBe('0.0.0.0');
    expect(container.ports).toContainEqual(expect.objectContaining({ name: 'registry', containerPort: config.registry.port }));
    const configMount = container.volumeMounts?.find((m) => m.name === 'config');
    expect(container.args).toEqual(['serve', '--config', configMount?.mountPath]);
    expect(configMount?.subPath).toBe('config.yaml');
    // Storage, users file and keys all on the data volume, the only writable place besides /tmp.
    const dataMount = container.volumeMounts?.find((m) => m.name === 'data');
    for (const file of [config.storage.root, config.auth.usersFile, config.auth.keysDir]) expect(file.startsWith(dataMount?.mountPath ?? '/nowhere')).toBe(true);
    expect(w.spec.template.spec.serviceAccountName).toBe('layover-registry');
    // The cache budget leaves room on the volume for pushed images.
    expect(config.cache.maxBytes).toBeDefined();
    expect(config.cache.maxBytes ?? Infinity).toBeLessThanOrEqual(0.8 * dataVolumeBytes(w));
  });

  it('registry, controller, webhook and RBAC agree: mirrors, labels, pull secret name, Service, health URL', () => {
    const registry = resolved(objs, REGISTRY_CONFIG);
    const webhook = resolved(objs, WEBHOOK_CONFIG);
    expect(registry.upstreams.map((u) => [u.prefix, u.url, u.aliases])).toEqual(webhook.upstreams.map((u) => [u.prefix, u.url, u.aliases]));
    for (const key of ['namespaceLabel', 'pullSecretName', 'ownNamespace', 'serviceName'] as const) expect(registry.webhook[key], key).toBe(webhook.webhook[key]);
    expect(registry.webhook.publicHostFromService && webhook.webhook.publicHostFromService).toBe(true);
    const service = findObject(objs, 'Service', registry.webhook.serviceName);
    expect(service.metadata.namespace).toBe(registry.webhook.ownNamespace);
    expect(at(service, 'spec.type')).toBe('NodePort');
    const servicePort = first(at<Port[]>(service, 'spec.ports'), 'Service port');
    expect(servicePort.name).toBe('registry');
    expect(webhook.webhook.healthURL).toBe(`http://${service.metadata.name}.${service.metadata.namespace}.svc:${servicePort.port}/v2/`);
    const controllerRules = at<Array<{ resources: string[]; resourceNames?: string[] }>>(findObject(objs, 'ClusterRole', 'layover-controller'), 'rules');
    expect(controllerRules.find((r) => r.resources.includes('secrets') && r.resourceNames)?.resourceNames).toEqual([registry.webhook.pullSecretName]);
    for (const role of ['layover-controller', 'layover-webhook']) {
      const rules = at<Array<{ resources: string[]; resourceNames?: string[] }>>(findObject(objs, 'Role', role), 'rules');
      expect(rules.find((r) => r.resources.includes('services'))?.resourceNames).toEqual([service.metadata.name]);
    }
    const mwc = at<Record<string, unknown>>(findObject(objs, 'MutatingWebhookConfiguration', webhook.webhook.webhookConfigName), 'webhooks.0');
    expect(at(mwc, 'namespaceSelector.matchExpressions.0')).toEqual({ key: webhook.webhook.namespaceLabel, operator: 'In', values: ['enabled'] });
    expect(at(mwc, 'objectSelector.matchExpressions.0.key')).toBe(webhook.webhook.optOutLabel);
    const webhookService = findObject(objs, 'Service', at<string>(mwc, 'clientConfig.service.name'));
    expect(at<Port[]>(webhookService, 'spec.ports').map((p) => p.port)).toContain(at(mwc, 'clientConfig.service.port'));
  });
});

describe.each(KUSTOMIZATIONS.filter((dir) => !dir.endsWith('nodeport')))('%s: the node role', (dir) => {
  const objs = objectsOf(dir);
  const daemonSet = () => findObject(objs, 'DaemonSet', 'layover-node') as Workload;

  /** What `layover node` makes of the DaemonSet's arguments (src/node/settings.ts), as it runs them. */
  const nodeSettings = () => {
    const container = first((daemonSet().spec.template.spec as PodSpec).containers, 'node container');
    const args = container.args ?? [];
    expect(args[0]).toBe('node');
    return nodeArgs(args.slice(1)).settings;
  };

  it('a DaemonSet on the host network, on every node whatever its taints, at node-critical priority, probed on the loopback', () => {
    const pod = daemonSet().spec.template.spec as PodSpec & Record<string, unknown>;
    expect(pod).toMatchObject({ hostNetwork: true, dnsPolicy: 'ClusterFirstWithHostNet', priorityClassName: 'system-node-critical', tolerations: [{ operator: 'Exists' }], automountServiceAccountToken: false });
    const settings = nodeSettings();
    const container = first(pod.containers, 'node container');
    expect(container.ports).toContainEqual(expect.objectContaining({ name: 'node', containerPort: settings.port }));
    // On the host network the Pod IP is the node's address, where the node role does not listen.
    for (const probe of [container.readinessProbe, container.livenessProbe]) expect(probe?.httpGet?.host).toBe(settings.host);
    expect(container.readinessProbe?.httpGet?.path).toBe('/readyz');
    expect(container.livenessProbe?.httpGet?.path).toBe('/healthz');
    expect(at(daemonSet(), 'spec.updateStrategy.rollingUpdate')).toEqual({ maxUnavailable: 1, maxSurge: 0 });
  });

  it('runs `layover node` from the image\'s entry point with its own V8 flags (the image\'s would otherwise win over NODE_OPTIONS)', () => {
    const container = first((daemonSet().spec.template.spec as PodSpec).containers, 'node container') as { command?: string[] };
    const command = container.command ?? [];
    expect(command[0]).toBe('node');
    expect(command.at(-1)).toBe('/app/bin/layover.js');
    expect(command.slice(1, -1).every((flag) => flag.startsWith('--'))).toBe(true);
    expect(command).toContain('--max-old-space-size=16');
  });

  it('listens on the loopback outside the NodePort range, forwarding to the registry Service', () => {
    const settings = nodeSettings();
    expect(settings.host).toBe('127.0.0.1');
    expect(settings.port < 30000 || settings.port > 32767).toBe(true);
    const service = findObject(objs, 'Service', 'layover-registry');
    expect(settings.registry).toBe(`http://${service.metadata.name}.${service.metadata.namespace}.svc:${first(at<Port[]>(service, 'spec.ports'), 'port').port}`);
  });

  it('the webhook rewrites to it and the controller writes pull secrets for it (rewriteTarget: node, same node.listen)', () => {
    const node = nodeSettings();
    for (const name of [WEBHOOK_CONFIG, REGISTRY_CONFIG]) {
      const config = resolved(objs, name);
      expect(config.webhook.rewriteTarget, name).toBe('node');
      expect(`${config.node.host}:${config.node.port}`, name).toBe(`${node.host}:${node.port}`);
      expect(config.node.enabled, name).toBe(false);
    }
  });
});

describe('overlays', () => {
  it('nodeport: no node role, nothing outside the restricted namespace, both configurations otherwise the base\'s with rewriteTarget: nodePort', () => {
    const objs = objectsOf('deploy/overlays/nodeport');
    const base = objectsOf('deploy/base');
    expect(objs.filter((o) => isNodeRole(o) || o.metadata.namespace === NODE_NAMESPACE)).toEqual([]);
    for (const name of [WEBHOOK_CONFIG, REGISTRY_CONFIG]) {
      const config = configOf(objs, name);
      expect(config.webhook?.rewriteTarget, name).toBe('nodePort');
      const { node: _node, ...baseConfig } = configOf(base, name);
      expect({ ...config, webhook: { ...config.webhook, rewriteTarget: 'node' } }, name).toEqual(baseConfig);
    }
    // The node role's Namespace, DaemonSet and ServiceAccount, and the webhook's Role and RoleBinding there.
    expect(objs.length).toBe(base.length - 5);
  });

  it('base: the cluster picks the NodePort; one registry replica on a 10Gi claim of the default class, kept when deleted', () => {
    const objs = objectsOf('deploy/base');
    expect(first(at<Port[]>(findObject(objs, 'Service', 'layover-registry'), 'spec.ports'), 'port').nodePort).toBeUndefined();
    const registry = registryWorkload(objs);
    expect(at(registry, 'spec.replicas')).toBe(1);
    const claim = first(registry.spec.volumeClaimTemplates, 'claim');
    expect(claim.spec.resources.requests.storage).toBe('10Gi');
    expect(claim.spec.storageClassName).toBeUndefined();
    expect(at(registry, 'spec.persistentVolumeClaimRetentionPolicy')).toEqual({ whenDeleted: 'Retain', whenScaled: 'Retain' });
    expect(first(registry.spec.template.spec.containers, 'c').image).toBe('ghcr.io/layover-dev/layover:0.1.0');
  });

  it('kind: NodePort 30500 mapped to the host by kind-cluster.yaml, kube-proxy in iptables mode, the local image, a self-signed webhook', async () => {
    const objs = objectsOf('deploy/overlays/kind');
    const nodePort = first(at<Port[]>(findObject(objs, 'Service', 'layover-registry'), 'spec.ports'), 'port').nodePort;
    expect(nodePort).toBe(30500);
    const cluster = await readKindCluster();
    expect(cluster).toMatchObject({ kind: 'Cluster', apiVersion: 'kind.x-k8s.io/v1alpha4', networking: { kubeProxyMode: 'iptables' } });
    const mappings = cluster.nodes.flatMap((n) => n.extraPortMappings ?? []);
    expect(mappings).toContainEqual({ containerPort: nodePort, hostPort: nodePort, listenAddress: '127.0.0.1', protocol: 'TCP' });
    expect(cluster.containerdConfigPatches?.join('\n')).toMatch(/config_path = "\/etc\/containerd\/certs\.d"/);
    for (const w of workloads(objs)) expect(first(w.spec.template.spec.containers, 'c').image).toBe('layover:dev');
    const webhook = resolved(objs, WEBHOOK_CONFIG);
    expect(webhook.webhook.selfSigned).toBe(true);
    expect(webhook.webhook.tls).toBeUndefined();
    const tls = webhookWorkload(objs).spec.template.spec.volumes?.find((v) => v.secret?.secretName === webhook.webhook.certSecretName);
    expect(tls?.secret?.optional).toBe(true);
  });

  it('persistence: 50Gi on a named storage class, with a cache budget raised to match', () => {
    const objs = objectsOf('deploy/overlays/persistence');
    const claim = first(registryWorkload(objs).spec.volumeClaimTemplates, 'claim');
    expect(claim.spec).toMatchObject({ resources: { requests: { storage: '50Gi' } }, storageClassName: 'standard' });
    expect(resolved(objs, REGISTRY_CONFIG).cache.maxBytes).toBe(parseSize('40GiB'));
    // Only the cache budget differs from the base configuration.
    const base = configOf(objectsOf('deploy/base'), REGISTRY_CONFIG);
    expect({ ...configOf(objs, REGISTRY_CONFIG), cache: base.cache }).toEqual(base);
  });

  it('ephemeral: a Recreate Deployment whose Pod is the base StatefulSet\'s with the data volume on an emptyDir; no claim', () => {
    const objs = objectsOf('deploy/overlays/ephemeral');
    expect(objs.some((o) => o.kind === 'StatefulSet' || o.kind === 'PersistentVolumeClaim')).toBe(false);
    const deployment = registryWorkload(objs);
    expect(deployment.kind).toBe('Deployment');
    expect(at(deployment, 'spec.strategy')).toEqual({ type: 'Recreate' });
    expect(deployment.metadata.annotations?.['layover.dev/storage']).toMatch(/lost when this Pod restarts/);
    const statefulSet = registryWorkload(objectsOf('deploy/base'));
    const pod = structuredClone(deployment.spec.template);
    pod.spec.volumes = pod.spec.volumes?.filter((v) => v.name !== 'data');
    expect(pod).toEqual(statefulSet.spec.template);
    expect(deployment.spec.template.spec.volumes?.find((v) => v.name === 'data')?.emptyDir?.sizeLimit).toBe('10Gi');
  });

  it('cert-manager: the Certificate covers the webhook Service and fills the Secret the webhook mounts', () => {
    const objs = objectsOf('deploy/overlays/cert-manager');
    const cert = findObject(objs, 'Certificate', 'layover-webhook');
    const webhook = resolved(objs, WEBHOOK_CONFIG);
    expect(at<string[]>(cert, 'spec.dnsNames')).toContain(`${webhook.webhook.webhookServiceName}.${webhook.webhook.ownNamespace}.svc`);
    expect(at(cert, 'spec.secretName')).toBe(webhook.webhook.certSecretName);
    const mounted = webhookWorkload(objs).spec.template.spec.volumes?.find((v) => v.secret?.secretName === webhook.webhook.certSecretName);
    expect(mounted).toBeDefined();
  });
});

describe('deploy/secrets templates and containerd mirror mode', () => {
  const readYaml = async (file: string) => parse(await readFile(path.join(REPO_ROOT, file), 'utf8')) as K8sObject;

  it('the Secret templates are valid Secrets named as the registry mounts them, applied by no kustomization', async () => {
    const registry = registryWorkload(objectsOf('deploy/base'));
    const optionalSecrets = (registry.spec.template.spec.volumes ?? []).filter((v) => v.secret?.optional).map((v) => v.secret?.secretName);
    const templates = await Promise.all(['deploy/secrets/users.example.yaml', 'deploy/secrets/upstream-credentials.example.yaml'].map(readYaml));
    expect(templates.map((t) => t.metadata.name).sort()).toEqual([...optionalSecrets].sort());
    for (const t of templates) {
      expect(await schemaProblems(t)).toEqual([]);
      expect(t.metadata.namespace).toBe('layover');
      for (const objs of rendered.values()) expect(objs.some((o) => o.kind === 'Secret' && o.metadata.name === t.metadata.name)).toBe(false);
    }
  });

  it('users template: logs in nobody as shipped; with real hashes it is a valid users file the mount path names', async () => {
    const template = await readYaml('deploy/secrets/users.example.yaml');
    const text = at<Labels>(template, 'stringData')['users.yaml'] ?? '';
    await withTempDir(async (dir) => {
      const { writeFile } = await import('node:fs/promises');
      const file = path.join(dir, 'users.yaml');
      await writeFile(file, text);
      await expect(readUsersFile(file)).rejects.toThrow(/passwordHash: not a scrypt hash/);
      await writeFile(file, text.replaceAll('REPLACE-WITH-layover-user-hash-OUTPUT', await hashPassword('correct horse battery staple')));
      const doc = await readUsersFile(file);
      expect(doc.users.filter((u) => u.admin).map((u) => u.name)).toEqual(['admin']);
    });
    const registry = first(registryWorkload(objectsOf('deploy/base')).spec.template.spec.containers, 'c');
    const mount = registry.volumeMounts?.find((m) => m.name === 'users');
    expect(mount?.readOnly).toBe(true);
    // The path the template tells admins to set is where the Secret is mounted, and it is valid configuration.
    const usersFile = `${mount?.mountPath}/users.yaml`;
    expect(await readFile(path.join(REPO_ROOT, 'deploy/secrets/users.example.yaml'), 'utf8')).toContain(`usersFile: ${usersFile}`);
    expect(resolveConfig({ ...configOf(objectsOf('deploy/base'), REGISTRY_CONFIG), auth: { enabled: true, usersFile } }, { baseDir: '/' }).auth.usersFile).toBe(usersFile);
  });

  it('upstream credentials template: one key per configured mirror, and the passwordFile it shows is valid configuration', async () => {
    const template = await readYaml('deploy/secrets/upstream-credentials.example.yaml');
    const keys = Object.keys(at<Labels>(template, 'stringData'));
    const base = configOf(objectsOf('deploy/base'), REGISTRY_CONFIG);
    const prefixes = (base.upstreams ?? []).map((u) => u.prefix);
    for (const key of keys) expect(prefixes).toContain(key);
    const mount = first(registryWorkload(objectsOf('deploy/base')).spec.template.spec.containers, 'c').volumeMounts?.find((m) => m.name === 'upstream-credentials');
    const passwordFile = `${mount?.mountPath}/docker.io`;
    expect(await readFile(path.join(REPO_ROOT, 'deploy/secrets/upstream-credentials.example.yaml'), 'utf8')).toContain(`passwordFile: ${passwordFile}`);
    const upstreams = (base.upstreams ?? []).map((u) => (u.prefix === 'docker.io' ? { ...u, username: 'someone', passwordFile } : u));
    expect(resolveConfig({ ...base, upstreams }, { baseDir: '/' }).upstreams[0]?.passwordFile).toBe(passwordFile);
  });

  it('mirror mode: one hosts.toml per configured mirror, each sending pulls to layover on the kind NodePort before the upstream', async () => {
    const dir = path.join(REPO_ROOT, 'deploy/mirror-mode/certs.d');
    const hosts = (await readdir(dir)).sort();
    const upstreams = resolved(objectsOf('deploy/base'), REGISTRY_CONFIG).upstreams;
    expect(hosts).toEqual(upstreams.map((u) => u.prefix).sort());
    for (const host of hosts) {
      const toml = await readFile(path.join(dir, host, 'hosts.toml'), 'utf8');
      const upstream = upstreams.find((u) => u.prefix === host);
      expect(toml).toContain(`server = "${upstream?.url}"`);
      expect(toml).toMatch(/\[host\."http:\/\/localhost:30500"\]\n\s+capabilities = \["pull", "resolve"\]/);
    }
  });
});

describe('what the end-to-end suite applies', () => {
  it('adds an in-cluster upstream to both configurations, still valid, and its objects are schema-valid', async () => {
    const objs = withUpstream(objectsOf('deploy/overlays/kind'), { prefix: 'upstream.test', url: 'http://upstream.e2e-upstream.svc:5000', aliases: [`127.0.0.1:${UPSTREAM.hostPort}`] });
    for (const name of [REGISTRY_CONFIG, WEBHOOK_CONFIG]) {
      const config = resolved(objs, name);
      expect(config.upstreams.at(-1)).toMatchObject({ prefix: 'upstream.test', aliases: [`127.0.0.1:${UPSTREAM.hostPort}`] });
      expect(config.upstreams).toHaveLength(5);
    }
    // The original objects are untouched.
    expect(resolved(objectsOf('deploy/overlays/kind'), REGISTRY_CONFIG).upstreams).toHaveLength(4);
    const upstream = upstreamObjects('layover:dev');
    for (const o of [...objs, ...upstream]) expect(await schemaProblems(o)).toEqual([]);
    // On the node's host network, outside the NodePort range: nodes reach it on 127.0.0.1 in every kube-proxy mode.
    expect(at(findObject(upstream, 'Deployment', UPSTREAM.name), 'spec.template.spec.hostNetwork')).toBe(true);
    expect(UPSTREAM.hostPort < 30000 || UPSTREAM.hostPort > 32767).toBe(true);
    expect(at(findObject(upstream, 'Service', UPSTREAM.name), 'spec.ports.0')).toMatchObject({ port: UPSTREAM.port, targetPort: 'registry' });
    const upstreamConfig = resolveConfig(parse(at<Labels>(findObject(upstream, 'ConfigMap', UPSTREAM.name), 'data')['config.yaml'] ?? ''), { baseDir: '/' });
    expect(upstreamConfig.auth.enabled).toBe(false);
    expect(upstreamConfig.registry.port).toBe(UPSTREAM.hostPort);
  });

  it('moves kind-cluster.yaml port mappings to free host ports on loopback and maps extra NodePorts', async () => {
    const cluster = await readKindCluster();
    const moved = kindClusterWithPorts(cluster, new Map([[30500, 41000], [30501, 41001]]));
    expect(moved.nodes[0]?.extraPortMappings).toEqual([
      { containerPort: 30500, hostPort: 41000, listenAddress: '127.0.0.1', protocol: 'TCP' },
      { containerPort: 30501, hostPort: 41001, listenAddress: '127.0.0.1', protocol: 'TCP' },
    ]);
    expect(moved.containerdConfigPatches).toEqual(cluster.containerdConfigPatches);
    expect(() => kindClusterWithPorts(cluster, new Map([[30501, 41001]]))).toThrow(/no host port for NodePort 30500/);
  });
});

describe('deploy/overlays/scale-out', () => {
  const objs = objectsOf('deploy/overlays/scale-out');
  const deployment = (name: string) => findObject(objs, 'Deployment', name) as Workload & { spec: { replicas?: number; strategy?: { type: string } } };
  const containerOf = (w: Workload) => first(w.spec.template.spec.containers, `${w.metadata.name} container`);
  const mountPath = (w: Workload, volume: string) => containerOf(w).volumeMounts?.find((m) => m.name === volume)?.mountPath ?? '/nowhere';
  const secretOf = (w: Workload, volume: string) => w.spec.template.spec.volumes?.find((v) => v.name === volume)?.secret?.secretName ?? '';
  const configOfWorkload = (w: Workload) => resolved(objs, w.spec.template.spec.volumes?.find((v) => v.name === 'config')?.configMap?.name.replace(/-[a-z0-9]{10}$/, '') ?? '');

  it('three stateless registry replicas spread over nodes, one down at a time, with no API token', () => {
    const registry = deployment('layover-registry');
    expect(registry.spec.replicas).toBe(3);
    const pod = registry.spec.template.spec as PodSpec & { automountServiceAccountToken?: boolean; topologySpreadConstraints?: Array<{ topologyKey: string; maxSkew: number; labelSelector: { matchLabels: Labels } }> };
    expect(pod.automountServiceAccountToken).toBe(false);
    const spread = pod.topologySpreadConstraints?.find((c) => c.topologyKey === 'kubernetes.io/hostname');
    expect(spread?.maxSkew).toBe(1);
    expect(selects(spread?.labelSelector.matchLabels ?? { none: 'x' }, registry.spec.template.metadata.labels)).toBe(true);
    const pdb = findObject(objs, 'PodDisruptionBudget', 'layover-registry');
    expect(at(pdb, 'spec.maxUnavailable')).toBe(1);
    expect(containerOf(registry).readinessProbe?.httpGet?.path).toBe('/readyz');
    // No volume claim: nothing ties a replica to a node.
    expect(registry.spec.volumeClaimTemplates).toBeUndefined();
    expect(pod.volumes?.some((v) => v.persistentVolumeClaim)).toBe(false);
  });

  it('its configuration: blob content in S3 and metadata in PostgreSQL, keys and URL read from the mounted Secrets, no controller', () => {
    const registry = deployment('layover-registry');
    const config = configOfWorkload(registry);
    expect(config.storage.driver).toBe('s3');
    expect(config.controller.enabled).toBe(false);
    expect(config.storage.root.startsWith(mountPath(registry, 'spool'))).toBe(true);
    const s3 = config.storage.s3;
    for (const file of [s3?.accessKeyIdFile, s3?.secretAccessKeyFile]) {
      expect(file?.startsWith(`${mountPath(registry, 's3')}/`)).toBe(true);
      expect(SECRET_TEMPLATES.get(secretOf(registry, 's3'))).toContain(path.basename(file ?? ''));
    }
    expect(config.database?.urlFile?.startsWith(`${mountPath(registry, 'database')}/`)).toBe(true);
    expect(SECRET_TEMPLATES.get(secretOf(registry, 'database'))).toContain(path.basename(config.database?.urlFile ?? ''));
  });

  it('each replica advertises its Pod IP on the registry port, where the others stream the blobs it downloads', () => {
    const registry = deployment('layover-registry');
    const container = containerOf(registry);
    expect(container.env?.find((e) => e.name === 'POD_IP')?.valueFrom?.fieldRef?.fieldPath).toBe('status.podIP');
    const saved = process.env.POD_IP;
    process.env.POD_IP = '10.42.0.7';
    try {
      const config = configOfWorkload(registry);
      const port = container.ports?.find((p) => p.name === 'registry')?.containerPort;
      expect(config.registry.port).toBe(port);
      expect(config.cluster?.advertiseUrl).toBe(`http://10.42.0.7:${port}`);
    } finally {
      if (saved === undefined) delete process.env.POD_IP;
      else process.env.POD_IP = saved;
    }
  });

  it('the pull-secret controller runs once, beside the same storage and database, outside the registry Service', () => {
    const controller = deployment('layover-controller');
    expect(controller.spec.replicas).toBe(1);
    expect(controller.spec.strategy?.type).toBe('Recreate');
    expect(controller.spec.template.spec.serviceAccountName).toBe('layover-registry');
    const config = configOfWorkload(controller);
    expect(config.controller.enabled && config.registry.enabled && config.auth.enabled).toBe(true);
    const registryConfig = configOfWorkload(deployment('layover-registry'));
    expect(config.storage.s3).toEqual(registryConfig.storage.s3);
    expect(config.database).toEqual(registryConfig.database);
    for (const key of ['namespaceLabel', 'pullSecretName', 'ownNamespace', 'serviceName', 'rewriteTarget'] as const) expect(config.webhook[key], key).toBe(registryConfig.webhook[key]);
    const service = findObject(objs, 'Service', 'layover-registry');
    expect(selects(at<Labels>(service, 'spec.selector'), controller.spec.template.metadata.labels)).toBe(false);
  });
});
