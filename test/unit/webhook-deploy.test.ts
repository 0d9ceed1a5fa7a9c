// deploy/ for the webhook and controller, rendered by kubectl kustomize and checked against what
// the webhook and controller expect: names, selectors, policies, mounts and least-privilege RBAC.
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { resolveConfig } from '../../src/config/resolve.js';
import { runTool } from '../helpers/run-tool.js';

type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; annotations?: Record<string, string> }; [k: string]: unknown };

async function render(dir: string): Promise<Obj[]> {
  const { stdout } = await runTool('kubectl', ['kustomize', dir]);
  return parseAllDocuments(stdout).map((d) => d.toJS() as Obj);
}
const find = (objs: Obj[], kind: string, name: string): Obj => {
  const found = objs.find((o) => o.kind === kind && o.metadata.name === name);
  if (!found) throw new Error(`${kind}/${name} not rendered`);
  return found;
};
/** The value at a dotted path (`spec.template.spec.containers.0`); throws when a step is missing. */
function at<T>(value: unknown, dotted: string): T {
  let current = value;
  for (const step of dotted.split('.')) {
    if (typeof current !== 'object' || current === null || !(step in current)) throw new Error(`no ${dotted} (stopped at ${step})`);
    current = (current as Record<string, unknown>)[step];
  }
  return current as T;
}
type Mount = { name: string; mountPath: string; subPath?: string };
type Rule = { verbs: string[] };

describe('deploy/base (webhook and controller)', async () => {
  const objs = await render('deploy/base');

  it('renders every object with an apiVersion, kind and name', () => {
    expect(objs.length).toBeGreaterThanOrEqual(14);
    for (const o of objs) {
      expect(o.apiVersion).toMatch(/^[a-z0-9.]*\/?v1$/);
      expect(o.metadata.name).toMatch(/^[a-z0-9][-a-z0-9.]*$/);
    }
  });

  it('MutatingWebhookConfiguration: as the issue specifies', () => {
    const config = find(objs, 'MutatingWebhookConfiguration', 'layover');
    expect(at<unknown[]>(config, 'webhooks')).toHaveLength(1);
    const wh = at<Record<string, unknown>>(config, 'webhooks.0');
    expect(wh).toMatchObject({
      admissionReviewVersions: ['v1'],
      sideEffects: 'None',
      failurePolicy: 'Ignore',
      timeoutSeconds: 5,
      reinvocationPolicy: 'IfNeeded',
      clientConfig: { service: { name: 'layover-webhook', namespace: 'layover', path: '/mutate', port: 443 } },
    });
    expect(wh.rules).toEqual([{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE', 'UPDATE'], resources: ['pods', 'pods/ephemeralcontainers'], scope: 'Namespaced' }]);
    expect(at(wh, 'namespaceSelector.matchExpressions')).toEqual([
      { key: 'layover.dev/mirror', operator: 'In', values: ['enabled'] },
      { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', 'layover'] },
    ]);
    expect(at(wh, 'objectSelector.matchExpressions')).toEqual([{ key: 'layover.dev/skip', operator: 'NotIn', values: ['true'] }]);
  });

  it('the webhook ConfigMap is a valid layover configuration matching the manifests', () => {
    const cm = find(objs, 'ConfigMap', 'layover-webhook');
    const config = resolveConfig(parse(at<Record<string, string>>(cm, 'data')['config.yaml'] ?? ''), { source: 'configmap', baseDir: '/' });
    const deployment = find(objs, 'Deployment', 'layover-webhook');
    const pod = at<Record<string, unknown>>(deployment, 'spec.template.spec');
    const container = at<Record<string, unknown>>(pod, 'containers.0');
    const tlsMount = at<Mount[]>(container, 'volumeMounts').find((m) => m.name === 'tls');
    if (!tlsMount) throw new Error('no tls mount');
    expect(config.webhook.tls?.cert.startsWith(`${tlsMount.mountPath}/`)).toBe(true);
    expect(tlsMount.subPath).toBeUndefined();
    expect(at(at<Array<{ name: string }>>(pod, 'volumes').find((v) => v.name === 'tls'), 'secret.secretName')).toBe(config.webhook.certSecretName);
    expect(at(container, 'ports.0.containerPort')).toBe(config.webhook.port);
    expect(config.webhook.publicHostFromService).toBe(true);
    expect(config.webhook).toMatchObject({ rewriteTarget: 'node', resolveTimeoutMs: 2_000, prefetch: true });
    // The controller's pull secret is for the host the webhook rewrites to.
    const registryConfig = find(objs, 'ConfigMap', at<string>(find(objs, 'StatefulSet', 'layover-registry'), 'spec.template.spec.volumes.0.configMap.name'));
    const controllerConfig = resolveConfig(parse(Object.values(at<Record<string, string>>(registryConfig, 'data'))[0] ?? ''), { source: 'registry', baseDir: '/' });
    expect(controllerConfig.webhook.rewriteTarget).toBe(config.webhook.rewriteTarget);
    expect(`${controllerConfig.node.host}:${controllerConfig.node.port}`).toBe(`${config.node.host}:${config.node.port}`);
    expect(config.webhook.pullSecretName).toBe('layover-pull');
    expect(pod.serviceAccountName).toBe('layover-webhook');
    expect(container.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true });
    expect(at(deployment, 'spec.replicas')).toBe(2);
    const service = find(objs, 'Service', 'layover-webhook');
    expect(at(service, 'spec.selector')).toEqual(at(deployment, 'spec.selector.matchLabels'));
    expect(at(find(objs, 'PodDisruptionBudget', 'layover-webhook'), 'spec.selector.matchLabels')).toEqual(at(deployment, 'spec.selector.matchLabels'));
  });

  it('RBAC: the controller gets namespaces list/watch, the pull secret by name, events; the webhook only reads (deploy-rbac.test.ts has every grant)', () => {
    const controller = at<Rule[]>(find(objs, 'ClusterRole', 'layover-controller'), 'rules');
    expect(controller).toContainEqual({ apiGroups: [''], resources: ['namespaces'], verbs: ['list', 'watch'] });
    expect(controller).toContainEqual({ apiGroups: [''], resources: ['secrets'], resourceNames: ['layover-pull'], verbs: ['get', 'list', 'update', 'delete'] });
    expect(controller).toContainEqual({ apiGroups: [''], resources: ['events'], verbs: ['create'] });
    for (const rule of controller) expect(rule.verbs).not.toContain('*');
    // The MutatingWebhookConfiguration is writable only in the self-signed overlay.
    expect(objs.some((o) => o.kind === 'ClusterRole' && JSON.stringify(o).includes('mutatingwebhookconfigurations'))).toBe(false);
    const webhookRole = find(objs, 'Role', 'layover-webhook');
    expect(webhookRole.metadata.namespace).toBe('layover');
    expect(at<Rule[]>(webhookRole, 'rules')).toContainEqual({ apiGroups: [''], resources: ['services'], resourceNames: ['layover-registry'], verbs: ['get'] });
  });
});

describe('deploy/overlays/cert-manager', async () => {
  const objs = await render('deploy/overlays/cert-manager');
  const issuerOf = (cert: Obj) => {
    expect(at(cert, 'spec.issuerRef.kind')).toBe('Issuer');
    return find(objs, 'Issuer', at<string>(cert, 'spec.issuerRef.name'));
  };

  it('a CA chain: self-signed Issuer → CA Certificate → CA Issuer → the serving Certificate in the Secret the webhook mounts', () => {
    const serving = find(objs, 'Certificate', 'layover-webhook');
    expect(at(serving, 'spec.secretName')).toBe('layover-webhook-tls');
    expect(at(serving, 'spec.dnsNames')).toContain('layover-webhook.layover.svc');
    expect(at<Record<string, unknown>>(serving, 'spec').isCA).toBeUndefined();
    expect(at(serving, 'spec.usages')).toContain('server auth');
    // The serving certificate is not self-signed: its Issuer is a CA Issuer holding the CA Certificate's Secret.
    const caIssuer = issuerOf(serving);
    const ca = objs.find((o) => o.kind === 'Certificate' && at(o, 'spec.secretName') === at(caIssuer, 'spec.ca.secretName'));
    if (!ca) throw new Error('no Certificate fills the CA Issuer\'s Secret');
    expect(at(ca, 'spec.isCA')).toBe(true);
    expect(at(ca, 'spec.usages')).toContain('cert sign');
    expect(at(issuerOf(ca), 'spec')).toEqual({ selfSigned: {} });
    // The CA outlives many serving certificates, and keeps its key when renewed.
    const hours = (o: Obj) => Number(/^(\d+)h$/.exec(at<string>(o, 'spec.duration'))?.[1]);
    expect(hours(ca)).toBeGreaterThanOrEqual(10 * hours(serving));
    expect(at(ca, 'spec.privateKey.rotationPolicy')).toBe('Never');
    // The caBundle is the CA's, so a serving-certificate renewal never changes it.
    expect(find(objs, 'MutatingWebhookConfiguration', 'layover').metadata.annotations).toEqual({ 'cert-manager.io/inject-ca-from': `layover/${ca.metadata.name}` });
  });
});
