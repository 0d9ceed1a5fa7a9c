// deploy/base/secret-writes-policy.yaml: the ValidatingAdmissionPolicy that limits what layover's
// ServiceAccounts may do with the Secret create grant RBAC cannot scope by name. Its CEL is
// evaluated (test/helpers/admission-policy.ts) against AdmissionRequests a stolen token, the
// controller, the webhook and everyone else would send.
import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config/resolve.js';
import { decide, type AdmissionRequest, type PolicyInput } from '../helpers/admission-policy.js';
import { REGISTRY_CONFIG, WEBHOOK_CONFIG, at, configOf, findObject, render } from '../e2e/manifests.js';

const objs = await render('deploy/overlays/kind');
const policy = findObject(objs, 'ValidatingAdmissionPolicy', 'layover-secret-writes');
const registryConfig = resolveConfig(configOf(objs, REGISTRY_CONFIG), { baseDir: '/' });
const webhookConfig = resolveConfig(configOf(objs, WEBHOOK_CONFIG), { baseDir: '/' });
const PULL = registryConfig.webhook.pullSecretName;
const CERT = webhookConfig.webhook.certSecretName;
const NS = webhookConfig.webhook.ownNamespace;
const CONTROLLER = `system:serviceaccount:${NS}:layover-registry`;
const WEBHOOK = `system:serviceaccount:${NS}:layover-webhook`;

function secretWrite(username: string, operation: AdmissionRequest['operation'], namespace: string, name: string, type?: string): PolicyInput {
  const secret = { apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace }, ...(type && { type }), data: {} };
  return {
    request: { operation, namespace, name, userInfo: { username, groups: ['system:serviceaccounts'] }, resource: { group: '', version: 'v1', resource: 'secrets' } },
    object: operation === 'DELETE' ? null : secret,
    oldObject: operation === 'CREATE' ? null : secret,
  };
}

describe('ValidatingAdmissionPolicy layover-secret-writes', () => {
  it('is bound in every namespace with validationActions Deny, fails closed, and matches only Secret writes', () => {
    const binding = findObject(objs, 'ValidatingAdmissionPolicyBinding', 'layover-secret-writes');
    expect(at(binding, 'spec')).toEqual({ policyName: policy.metadata.name, validationActions: ['Deny'] });
    expect(at(policy, 'spec.failurePolicy')).toBe('Fail');
    expect(at(policy, 'spec.matchConstraints.resourceRules')).toEqual([{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE', 'UPDATE', 'DELETE'], resources: ['secrets'] }]);
  });

  it('the controller may create, update and delete the pull secret of type dockerconfigjson, in any namespace', () => {
    for (const namespace of ['alice', 'team-a', 'default']) {
      expect(decide(policy, secretWrite(CONTROLLER, 'CREATE', namespace, PULL, 'kubernetes.io/dockerconfigjson'))).toEqual({ matched: true, allowed: true });
      expect(decide(policy, secretWrite(CONTROLLER, 'UPDATE', namespace, PULL, 'kubernetes.io/dockerconfigjson'))).toEqual({ matched: true, allowed: true });
      // A wrong-typed managed secret is deleted and re-created: DELETE of the name, whatever its type.
      expect(decide(policy, secretWrite(CONTROLLER, 'DELETE', namespace, PULL))).toEqual({ matched: true, allowed: true });
    }
  });

  it('a stolen controller token cannot mint a ServiceAccount token Secret in kube-system, nor write any other Secret', () => {
    const denied = [
      secretWrite(CONTROLLER, 'CREATE', 'kube-system', 'admin-token', 'kubernetes.io/service-account-token'),
      secretWrite(CONTROLLER, 'CREATE', 'kube-system', PULL, 'kubernetes.io/service-account-token'),
      secretWrite(CONTROLLER, 'CREATE', 'alice', 'other', 'kubernetes.io/dockerconfigjson'),
      secretWrite(CONTROLLER, 'CREATE', 'alice', PULL, 'Opaque'),
      secretWrite(CONTROLLER, 'CREATE', 'alice', PULL, 'kubernetes.io/tls'),
      secretWrite(CONTROLLER, 'CREATE', 'alice', PULL),
      // generateName: the request carries no name.
      secretWrite(CONTROLLER, 'CREATE', 'alice', '', 'kubernetes.io/dockerconfigjson'),
      secretWrite(CONTROLLER, 'UPDATE', 'kube-system', 'bootstrap-token-abcdef', 'bootstrap.kubernetes.io/token'),
      secretWrite(CONTROLLER, 'DELETE', NS, CERT),
      secretWrite(CONTROLLER, 'CREATE', NS, CERT, 'kubernetes.io/tls'),
    ];
    for (const input of denied) {
      const decision = decide(policy, input);
      expect(decision, `${input.request.operation} ${input.request.namespace}/${input.request.name}`).toMatchObject({ matched: true, allowed: false });
      expect(decision.allowed ? '' : decision.message).toBe(`layover: ${CONTROLLER} may not ${input.request.operation} Secret ${input.request.namespace}/${input.request.name} (only its own Secret, of its own type)`);
    }
  });

  it('the self-signed webhook may create and update only its TLS Secret in its own namespace, never delete it', () => {
    expect(decide(policy, secretWrite(WEBHOOK, 'CREATE', NS, CERT, 'kubernetes.io/tls'))).toEqual({ matched: true, allowed: true });
    expect(decide(policy, secretWrite(WEBHOOK, 'UPDATE', NS, CERT, 'kubernetes.io/tls'))).toEqual({ matched: true, allowed: true });
    for (const input of [
      secretWrite(WEBHOOK, 'DELETE', NS, CERT),
      secretWrite(WEBHOOK, 'CREATE', NS, 'layover-registry-token', 'kubernetes.io/service-account-token'),
      secretWrite(WEBHOOK, 'CREATE', 'kube-system', CERT, 'kubernetes.io/tls'),
      secretWrite(WEBHOOK, 'CREATE', NS, CERT, 'Opaque'),
      secretWrite(WEBHOOK, 'CREATE', 'alice', PULL, 'kubernetes.io/dockerconfigjson'),
    ]) {
      expect(decide(policy, input), `${input.request.operation} ${input.request.namespace}/${input.request.name}`).toMatchObject({ matched: true, allowed: false });
    }
  });

  it('other users and ServiceAccounts are not matched at all', () => {
    for (const username of ['kubernetes-admin', 'system:serviceaccount:kube-system:token-cleaner', 'system:serviceaccount:other:layover-registry', `${CONTROLLER}-x`]) {
      expect(decide(policy, secretWrite(username, 'CREATE', 'kube-system', 'admin-token', 'kubernetes.io/service-account-token')), username).toEqual({ matched: false, allowed: true });
    }
  });
});
