// The thin Kubernetes layer (src/k8s/kube.ts) against a loopback stand-in for kube-apiserver
// (test/helpers/fake-apiserver.ts) that speaks its REST paths, status codes and watch stream:
// proves the client library is called with the right paths, bodies and preconditions, and that
// errors keep only the status code.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKube, KubeError, type Kube, type NamespaceObject } from '../../src/k8s/kube.js';
import { startFakeApiServer, type FakeApiServer, type FakeObject, type Interception, type RecordedRequest } from '../helpers/fake-apiserver.js';

describe('Kubernetes client layer', () => {
  let api: FakeApiServer;
  let kube: Kube;
  let TOKEN: string;
  let webhookConfig: FakeObject = {
    apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration', metadata: { name: 'layover', resourceVersion: '9' },
    webhooks: [{ name: 'pods.mirror.layover.dev', clientConfig: { service: { name: 'layover-webhook', namespace: 'layover', path: '/mutate' } }, sideEffects: 'None', admissionReviewVersions: ['v1'] }],
  };
  const requests = () => api.requests;
  // The fake serves only the core group; the webhook configuration is answered here.
  const webhookConfigurations = (req: RecordedRequest): Interception => {
    if (req.path !== '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/layover') return undefined;
    if (req.method === 'PUT') webhookConfig = req.body as FakeObject;
    return { status: 200, body: webhookConfig };
  };

  beforeAll(async () => {
    api = await startFakeApiServer();
    TOKEN = api.token;
    api.put('namespaces', { metadata: { name: 'layover' } });
    api.put('namespaces', { metadata: { name: 'team-a', labels: { 'layover.dev/mirror': 'enabled' } }, status: { phase: 'Active' } });
    api.put('namespaces', { metadata: { name: 'old', deletionTimestamp: '2026-01-01T00:00:00Z' }, status: { phase: 'Terminating' } });
    api.put('services', { metadata: { name: 'layover-registry', namespace: 'layover' }, spec: { type: 'NodePort', ports: [{ name: 'registry', port: 5000, nodePort: 30500, protocol: 'TCP' }] } });
    api.intercept(webhookConfigurations);
    kube = createKube(api.kubeConfig());
  });
  afterAll(() => api.close());

  it('reads the registry Service NodePorts, and undefined for a missing Service', async () => {
    expect(await kube.readServiceNodePorts('layover', 'layover-registry')).toEqual([{ name: 'registry', port: 5000, nodePort: 30500 }]);
    expect(await kube.readServiceNodePorts('layover', 'missing')).toBeUndefined();
    expect(requests().at(-1)?.auth).toBe(`Bearer ${TOKEN}`);
  });

  it('creates, reads, replaces (with resourceVersion) and deletes (with uid precondition) a Secret', async () => {
    expect(await kube.readSecret('team-a', 'layover-pull')).toBeUndefined();
    const created = await kube.createSecret('team-a', { metadata: { name: 'layover-pull', labels: { 'app.kubernetes.io/managed-by': 'layover' } }, type: 'kubernetes.io/dockerconfigjson', data: { '.dockerconfigjson': 'e30=' } });
    expect(created.metadata).toMatchObject({ name: 'layover-pull', uid: expect.any(String), resourceVersion: expect.any(String) });
    const post = requests().find((r) => r.method === 'POST' && r.path === '/api/v1/namespaces/team-a/secrets');
    expect(post?.body).toMatchObject({ apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/dockerconfigjson', data: { '.dockerconfigjson': 'e30=' } });

    const dup = await kube.createSecret('team-a', { metadata: { name: 'layover-pull' }, data: {} }).catch((e: unknown) => e);
    expect(dup).toBeInstanceOf(KubeError);
    expect((dup as KubeError).status).toBe(409);
    expect((dup as Error).message).not.toContain(TOKEN);

    const read = await kube.readSecret('team-a', 'layover-pull');
    expect(read?.metadata.labels).toEqual({ 'app.kubernetes.io/managed-by': 'layover' });
    const replaced = await kube.replaceSecret('team-a', { ...read!, data: { '.dockerconfigjson': 'e30K' } });
    expect(Number(replaced.metadata.resourceVersion)).toBeGreaterThan(Number(read?.metadata.resourceVersion));
    const stale = await kube.replaceSecret('team-a', { ...read!, data: {} }).catch((e: unknown) => e);
    expect((stale as KubeError).status).toBe(409);

    const wrongUid = await kube.deleteSecret('team-a', 'layover-pull', 'someone-else').catch((e: unknown) => e);
    expect((wrongUid as KubeError).status).toBe(409);
    await kube.deleteSecret('team-a', 'layover-pull', created.metadata.uid);
    expect(api.get('secrets', 'team-a', 'layover-pull')).toBeUndefined();
    await kube.deleteSecret('team-a', 'layover-pull', created.metadata.uid); // already gone: not an error
  });

  it('records an Event about a Secret', async () => {
    await kube.createEvent('team-a', { involved: { kind: 'Secret', apiVersion: 'v1', name: 'layover-pull', namespace: 'team-a', uid: 'x' }, type: 'Warning', reason: 'PullSecretConflict', message: 'taken' });
    const post = requests().find((r) => r.method === 'POST' && r.path === '/api/v1/namespaces/team-a/events');
    expect(post?.body).toMatchObject({ type: 'Warning', reason: 'PullSecretConflict', message: 'taken', involvedObject: { kind: 'Secret', name: 'layover-pull', uid: 'x' }, source: { component: 'layover-controller' } });
  });

  it('sets the caBundle of every webhook in the configuration', async () => {
    await kube.setWebhookCABundle('layover', '-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n');
    const webhooks = webhookConfig.webhooks as Array<{ clientConfig: { caBundle?: string; service: unknown } }>;
    expect(Buffer.from(webhooks[0]?.clientConfig.caBundle ?? '', 'base64').toString()).toContain('BEGIN CERTIFICATE');
    expect(webhooks[0]?.clientConfig.service).toEqual({ name: 'layover-webhook', namespace: 'layover', path: '/mutate' });
    expect((webhookConfig.metadata as { resourceVersion: string }).resourceVersion).toBe('9');
  });

  it('watches namespaces: the initial list, then added, changed and deleted ones', async () => {
    const seen: string[] = [];
    const watch = await kube.watchNamespaces({
      upsert: (ns: NamespaceObject) => seen.push(`upsert ${ns.name} ${ns.labels['layover.dev/mirror'] ?? '-'} ${ns.terminating}`),
      remove: (ns: NamespaceObject) => seen.push(`remove ${ns.name}`),
      error: (err: unknown) => seen.push(`error ${String(err)}`),
    });
    try {
      expect(watch.list().map((n) => n.name).sort()).toEqual(['layover', 'old', 'team-a']);
      await expect.poll(() => api.openWatches(), { timeout: 3000 }).toBe(1);
      api.put('namespaces', { metadata: { name: 'team-b', labels: { 'layover.dev/mirror': 'enabled' } } });
      api.put('namespaces', { metadata: { name: 'team-a', labels: {} } });
      api.remove('namespaces', undefined, 'team-b');
      await expect.poll(() => seen.filter((s) => !s.startsWith('upsert old') && !s.startsWith('upsert layover') && !s.startsWith('upsert team-a enabled')), { timeout: 3000 }).toEqual([
        'upsert team-b enabled false',
        'upsert team-a - false',
        'remove team-b',
      ]);
      expect(seen).toContain('upsert old - true');
      expect(watch.list().find((n) => n.name === 'team-a')?.labels).toEqual({});
    } finally {
      await watch.stop();
    }
  });

  it('gives up on a call the server never answers, within the timeout', async () => {
    const impatient = createKube(api.kubeConfig(), { timeoutMs: 300 });
    api.intercept((req) => (req.path.endsWith('/secrets/never') ? 'hang' : webhookConfigurations(req)));
    try {
      const began = Date.now();
      const err = await impatient.readSecret('team-a', 'never').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KubeError);
      expect((err as Error).message).toBe('kubernetes API read secret (timed out)');
      expect(Date.now() - began).toBeLessThan(2000);
    } finally {
      api.intercept(webhookConfigurations);
    }
  });

  it('a stopped namespace watch never starts again, even after the error its abort causes', async () => {
    const errors: unknown[] = [];
    const watch = await kube.watchNamespaces({ upsert() {}, remove() {}, error: (err) => errors.push(err) });
    await expect.poll(() => api.openWatches(), { timeout: 3000 }).toBe(1);
    await watch.stop();
    const after = api.requests.length;
    await expect.poll(() => api.openWatches(), { timeout: 1000 }).toBe(0);
    // client-node's informer used to be restarted 5 s after any error, including this one.
    await new Promise((r) => setTimeout(r, 6000));
    expect(api.requests.slice(after).map((r) => `${r.method} ${r.path}`)).toEqual([]);
  }, 15_000);
});
