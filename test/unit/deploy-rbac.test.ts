// Least privilege in every kustomization: the exact grants each ServiceAccount ends up with (the
// API calls src/ makes, and nothing else), no wildcards, and no Secret create grant without the
// ValidatingAdmissionPolicy that limits it (deploy-policy.test.ts evaluates that policy).
import { describe, expect, it } from 'vitest';
import { decide } from '../helpers/admission-policy.js';
import { at, findObject, render, type K8sObject } from '../e2e/manifests.js';

const KUSTOMIZATIONS = ['deploy/base', 'deploy/overlays/kind', 'deploy/overlays/persistence', 'deploy/overlays/ephemeral', 'deploy/overlays/cert-manager'];
/** The one overlay that turns webhook.selfSigned on. */
const SELF_SIGNED = 'deploy/overlays/kind';

interface Rule { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] }
interface Subject { kind: string; name: string; namespace?: string }

/** Every grant as `sa verb group/resource[/name] @scope`, one line each, sorted. */
function grants(objs: K8sObject[]): string[] {
  const lines: string[] = [];
  for (const binding of objs.filter((o) => o.kind === 'RoleBinding' || o.kind === 'ClusterRoleBinding')) {
    const roleRef = at<{ kind: string; name: string }>(binding, 'roleRef');
    const role = objs.find((o) => o.kind === roleRef.kind && o.metadata.name === roleRef.name && (roleRef.kind === 'ClusterRole' || o.metadata.namespace === binding.metadata.namespace));
    if (!role) throw new Error(`${binding.kind}/${binding.metadata.name}: ${roleRef.kind}/${roleRef.name} is not rendered`);
    const scope = binding.kind === 'RoleBinding' ? `@${binding.metadata.namespace}` : '@cluster';
    for (const subject of at<Subject[]>(binding, 'subjects')) {
      for (const rule of at<Rule[]>(role, 'rules')) {
        for (const group of rule.apiGroups) for (const resource of rule.resources) for (const verb of rule.verbs) {
          for (const name of rule.resourceNames ?? ['']) lines.push(`${subject.name} ${verb} ${group || 'core'}/${resource}${name && `/${name}`} ${scope}`);
        }
      }
    }
  }
  return lines.sort();
}

const CONTROLLER = [
  'layover-registry list core/namespaces @cluster',
  'layover-registry watch core/namespaces @cluster',
  'layover-registry get core/pods @cluster',
  'layover-registry list core/pods @cluster',
  'layover-registry watch core/pods @cluster',
  ...['get', 'list', 'update', 'delete'].map((verb) => `layover-registry ${verb} core/secrets/layover-pull @cluster`),
  'layover-registry create core/secrets @cluster',
  'layover-registry create core/events @cluster',
  'layover-registry get core/services/layover-registry @layover',
];
const WEBHOOK = [
  'layover-webhook get core/services/layover-registry @layover',
  'layover-webhook get apps/daemonsets/layover-node @layover-node',
  'layover-webhook get core/nodes @cluster',
  'layover-webhook list core/nodes @cluster',
  'layover-webhook get core/secrets/layover-pull @cluster',
];
const WEBHOOK_SELF_SIGNED = [
  'layover-webhook get core/secrets/layover-webhook-tls @layover',
  'layover-webhook update core/secrets/layover-webhook-tls @layover',
  'layover-webhook create core/secrets @layover',
  'layover-webhook get admissionregistration.k8s.io/mutatingwebhookconfigurations/layover @cluster',
  'layover-webhook update admissionregistration.k8s.io/mutatingwebhookconfigurations/layover @cluster',
];

const rendered = new Map<string, K8sObject[]>();
for (const dir of KUSTOMIZATIONS) rendered.set(dir, await render(dir));

describe.each(KUSTOMIZATIONS)('RBAC of %s', (dir) => {
  const objs = rendered.get(dir) ?? [];

  it('grants exactly what the code calls; the MutatingWebhookConfiguration and the TLS Secret only in self-signed mode', () => {
    const expected = [...CONTROLLER, ...WEBHOOK, ...(dir === SELF_SIGNED ? WEBHOOK_SELF_SIGNED : [])].sort();
    expect(grants(objs)).toEqual(expected);
  });

  it('no wildcard verb, resource or API group; no escalate, bind, impersonate; no access to ServiceAccount tokens', () => {
    for (const role of objs.filter((o) => o.kind === 'Role' || o.kind === 'ClusterRole')) {
      for (const rule of at<Rule[]>(role, 'rules')) {
        for (const list of [rule.verbs, rule.resources, rule.apiGroups]) expect(list, role.metadata.name).not.toContain('*');
        for (const verb of ['escalate', 'bind', 'impersonate', 'deletecollection']) expect(rule.verbs, role.metadata.name).not.toContain(verb);
        expect(rule.resources).not.toContain('serviceaccounts/token');
        // Reading Secrets is only ever by name: an unnamed get/list/watch would read every Secret.
        if (rule.resources.includes('secrets')) expect(rule.resourceNames !== undefined || rule.verbs.every((v) => v === 'create'), role.metadata.name).toBe(true);
      }
    }
  });

  it('every ServiceAccount that may create Secrets is held by the Secret-writes policy, bound with Deny', () => {
    const creators = new Set(grants(objs).filter((g) => / create core\/secrets /.test(g)).map((g) => g.split(' ')[0] as string));
    expect(creators.size).toBeGreaterThan(0);
    const policy = findObject(objs, 'ValidatingAdmissionPolicy', 'layover-secret-writes');
    expect(at(findObject(objs, 'ValidatingAdmissionPolicyBinding', 'layover-secret-writes'), 'spec.validationActions')).toEqual(['Deny']);
    for (const sa of creators) {
      const request = { operation: 'CREATE' as const, namespace: 'kube-system', name: 'stolen', userInfo: { username: `system:serviceaccount:layover:${sa}` } };
      const secret = { metadata: { name: 'stolen', namespace: 'kube-system' }, type: 'kubernetes.io/service-account-token' };
      expect(decide(policy, { request, object: secret, oldObject: null }), sa).toMatchObject({ matched: true, allowed: false });
    }
  });
});
