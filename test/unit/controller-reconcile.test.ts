import { describe, expect, it } from 'vitest';
import type { NamespaceObject, SecretObject } from '../../src/k8s/kube.js';
import { buildPullSecret, registryHosts } from '../../src/controller/pull-secret.js';
import { reconcile, type Observed, type ReconcileSettings } from '../../src/controller/reconcile.js';

const DAY = 86_400_000;
const NOW = new Date('2026-03-01T12:00:00Z');
const HOSTS = ['localhost:30500', '127.0.0.1:30500'];
const settings: ReconcileSettings = {
  optInLabel: 'layover.dev/mirror',
  secretName: 'layover-pull',
  excludedNamespaces: new Set(['layover', 'kube-system']),
  refreshBeforeMs: 10 * DAY,
};

const ns = (name: string, labels: Record<string, string> = { 'layover.dev/mirror': 'enabled' }, terminating = false): NamespaceObject => ({ name, labels, terminating });

function managed(namespace: string, overrides: { expiresAt?: Date; keyId?: string; hosts?: string[] } = {}): SecretObject {
  const secret = buildPullSecret({
    namespace,
    name: 'layover-pull',
    hosts: overrides.hosts ?? HOSTS,
    token: 'tok',
    expiresAt: overrides.expiresAt ?? new Date(NOW.getTime() + 30 * DAY),
    keyId: overrides.keyId ?? 'k1',
  });
  return { ...secret, metadata: { ...secret.metadata, uid: 'uid-1', resourceVersion: '42' } };
}

const foreign = (namespace: string): SecretObject => ({
  metadata: { name: 'layover-pull', namespace, uid: 'uid-f', resourceVersion: '7', labels: { app: 'mine' } },
  type: 'kubernetes.io/dockerconfigjson',
  data: { '.dockerconfigjson': Buffer.from('{"auths":{}}').toString('base64') },
});

function observe(partial: Partial<Observed> & Pick<Observed, 'namespace'>): Observed {
  return { secret: undefined, currentKeyId: 'k1', hosts: HOSTS, now: NOW, ...partial };
}

describe('reconcile: opted-in namespaces', () => {
  it('creates the secret when it is missing', () => {
    expect(reconcile(observe({ namespace: ns('team-a') }), settings)).toEqual({ type: 'create' });
  });

  it('leaves a fresh secret alone and says when to look again', () => {
    const action = reconcile(observe({ namespace: ns('team-a'), secret: managed('team-a') }), settings);
    expect(action).toEqual({ type: 'none', reason: 'up-to-date', recheckAt: new Date(NOW.getTime() + 20 * DAY) });
  });

  it('refreshes before expiry: inside the refresh window, at it, and after expiry', () => {
    for (const remaining of [10 * DAY, 10 * DAY - 1, 1, 0, -DAY]) {
      const secret = managed('team-a', { expiresAt: new Date(NOW.getTime() + remaining) });
      expect(reconcile(observe({ namespace: ns('team-a'), secret }), settings)).toEqual({ type: 'refresh', reason: 'expiring', resourceVersion: '42' });
    }
    const justOutside = managed('team-a', { expiresAt: new Date(NOW.getTime() + 10 * DAY + 1) });
    expect(reconcile(observe({ namespace: ns('team-a'), secret: justOutside }), settings)).toMatchObject({ type: 'none', reason: 'up-to-date' });
  });

  it('refreshes when the signing key rotated, even long before expiry', () => {
    const action = reconcile(observe({ namespace: ns('team-a'), secret: managed('team-a', { keyId: 'k1' }), currentKeyId: 'k2' }), settings);
    expect(action).toEqual({ type: 'refresh', reason: 'key-rotated', resourceVersion: '42' });
  });

  it('refreshes when the registry host changed (a new NodePort)', () => {
    const action = reconcile(observe({ namespace: ns('team-a'), secret: managed('team-a'), hosts: registryHosts('localhost:31000') }), settings);
    expect(action).toEqual({ type: 'refresh', reason: 'hosts-changed', resourceVersion: '42' });
  });

  it('refreshes a managed secret it cannot read (annotation or data damaged)', () => {
    const noAnnotation = managed('team-a');
    noAnnotation.metadata.annotations = {};
    const noData = { ...managed('team-a'), data: {} };
    for (const secret of [noAnnotation, noData]) {
      expect(reconcile(observe({ namespace: ns('team-a'), secret }), settings)).toMatchObject({ type: 'refresh', reason: 'unreadable' });
    }
  });

  it('re-creates a managed secret of the wrong type (the type cannot be changed in place)', () => {
    for (const type of ['Opaque', undefined]) {
      const secret = { ...managed('team-a'), type };
      expect(reconcile(observe({ namespace: ns('team-a'), secret }), settings)).toEqual({ type: 'recreate', reason: 'wrong-type', uid: 'uid-1' });
    }
  });

  it('never overwrites a foreign secret of the same name: reports a conflict', () => {
    const secret = foreign('team-a');
    expect(reconcile(observe({ namespace: ns('team-a'), secret }), settings)).toEqual({ type: 'conflict', secret });
  });
});

describe('reconcile: namespaces that are not (or no longer) opted in', () => {
  it('removes its secret when the label is removed or changed', () => {
    const variants: Array<Record<string, string>> = [{}, { 'layover.dev/mirror': 'disabled' }, { 'layover.dev/mirror': '' }, { other: 'enabled' }];
    for (const labels of variants) {
      expect(reconcile(observe({ namespace: ns('team-a', labels), secret: managed('team-a') }), settings)).toEqual({ type: 'delete', reason: 'opted-out', uid: 'uid-1' });
    }
  });

  it('does nothing without a secret', () => {
    expect(reconcile(observe({ namespace: ns('team-a', {}) }), settings)).toEqual({ type: 'none', reason: 'not-opted-in' });
  });

  it('does not touch a foreign secret in a namespace that is not opted in', () => {
    expect(reconcile(observe({ namespace: ns('team-a', {}), secret: foreign('team-a') }), settings)).toEqual({ type: 'none', reason: 'foreign-secret-left-alone' });
  });

  it('never provisions layover’s own namespace or kube-system, even when labelled, and cleans up there', () => {
    for (const name of ['layover', 'kube-system']) {
      expect(reconcile(observe({ namespace: ns(name) }), settings)).toEqual({ type: 'none', reason: 'not-opted-in' });
      expect(reconcile(observe({ namespace: ns(name), secret: managed(name) }), settings)).toEqual({ type: 'delete', reason: 'excluded-namespace', uid: 'uid-1' });
    }
  });

  it('does nothing in a terminating namespace, whatever its state', () => {
    for (const secret of [undefined, managed('team-a'), foreign('team-a')]) {
      expect(reconcile(observe({ namespace: ns('team-a', undefined, true), secret }), settings)).toEqual({ type: 'none', reason: 'terminating' });
      expect(reconcile(observe({ namespace: ns('team-a', {}, true), secret }), settings)).toEqual({ type: 'none', reason: 'terminating' });
    }
  });
});

describe('the pull secret itself', () => {
  it('is a dockerconfigjson Secret with the namespace token for both loopback spellings', () => {
    const secret = buildPullSecret({ namespace: 'team-a', name: 'layover-pull', hosts: registryHosts('localhost:30500'), token: 'eyJ.tok.sig', expiresAt: new Date('2026-04-01T00:00:00Z'), keyId: 'k9' });
    expect(secret.type).toBe('kubernetes.io/dockerconfigjson');
    expect(secret.metadata.labels).toEqual({ 'app.kubernetes.io/managed-by': 'layover' });
    expect(secret.metadata.annotations).toEqual({
      'layover.dev/token-expires-at': '2026-04-01T00:00:00.000Z',
      'layover.dev/token-key-id': 'k9',
      'layover.dev/registry-hosts': 'localhost:30500,127.0.0.1:30500',
    });
    const config = JSON.parse(Buffer.from(secret.data?.['.dockerconfigjson'] ?? '', 'base64').toString());
    const entry = { username: 'namespace:team-a', password: 'eyJ.tok.sig', auth: Buffer.from('namespace:team-a:eyJ.tok.sig').toString('base64') };
    expect(config).toEqual({ auths: { 'localhost:30500': entry, '127.0.0.1:30500': entry } });
  });

  it('uses just the configured host when it is not a loopback name', () => {
    expect(registryHosts('registry.example.com')).toEqual(['registry.example.com']);
    expect(registryHosts('127.0.0.1:5000')).toEqual(['localhost:5000', '127.0.0.1:5000']);
  });
});
