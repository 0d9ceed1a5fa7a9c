// The pull-secret controller end to end against a loopback apiserver (test/helpers/fake-apiserver.ts)
// through the real @kubernetes/client-node: start-up with existing namespaces, opt-in and opt-out,
// Pods that still use the mirror, a Secret of the wrong type, a new NodePort, a hanging apiserver,
// a compacted watch history, and shutdown. Resync is 10 minutes: everything here must happen sooner.
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { defaultConfig } from '../../src/config/resolve.js';
import { startController, type Controller, type ControllerDeps } from '../../src/controller/index.js';
import { buildPullSecret } from '../../src/controller/pull-secret.js';
import { createKube, KubeError } from '../../src/k8s/kube.js';
import { createLogger } from '../../src/log.js';
import { startFakeApiServer, type FakeApiServer, type FakeObject } from '../helpers/fake-apiserver.js';

const OPT_IN = { 'layover.dev/mirror': 'enabled' };
const SECRET = 'layover-pull';

const namespace = (name: string, labels: Record<string, string> = {}): FakeObject => ({ metadata: { name, labels }, status: { phase: 'Active' } });
const service = (nodePort: number): FakeObject => ({
  metadata: { name: 'layover-registry', namespace: 'layover' },
  spec: { type: 'NodePort', ports: [{ name: 'registry', port: 5000, nodePort, protocol: 'TCP' }] },
});
const pod = (ns: string, name: string, image: string, extra: { annotations?: Record<string, string>; phase?: string } = {}): FakeObject => ({
  metadata: { name, namespace: ns, ...(extra.annotations && { annotations: extra.annotations }) },
  spec: { containers: [{ name: 'app', image }] },
  status: { phase: extra.phase ?? 'Running' },
});
const managedSecret = (ns: string, type = 'kubernetes.io/dockerconfigjson'): FakeObject => {
  const s = buildPullSecret({ namespace: ns, name: SECRET, hosts: ['localhost:30500', '127.0.0.1:30500'], token: 'old-token', expiresAt: new Date(Date.now() + 86_400_000 * 30), keyId: 'k1' });
  return { ...s, metadata: { ...s.metadata, name: SECRET, namespace: ns }, type };
};
const hostsOf = (s: FakeObject | undefined) => s?.metadata.annotations?.['layover.dev/registry-hosts'];

describe('pull-secret controller against a loopback apiserver', () => {
  let api: FakeApiServer;
  let controller: Controller | undefined;
  let logs: string[];
  let minted: number;

  beforeEach(async () => {
    api = await startFakeApiServer();
    api.put('namespaces', namespace('layover'));
    api.put('services', service(30500));
    logs = [];
    minted = 0;
  });
  afterEach(async () => {
    await controller?.close();
    controller = undefined;
    await api.close();
    // Neither the ServiceAccount token nor a namespace token ever reaches a log line.
    const all = logs.join('');
    expect(all).not.toContain(api.token);
    expect(all).not.toMatch(/ns-token-/);
  });

  function start(options: { timeoutMs?: number } & Partial<ControllerDeps> = {}): Promise<Controller> {
    const sink = new Writable({ write(chunk: Buffer, _enc, done) { logs.push(chunk.toString()); done(); } });
    const { timeoutMs, ...deps } = options;
    // NodePort mode: these tests read the registry Service's NodePort for the public host.
    return startController(defaultConfig({ controller: { resync: '10m' }, webhook: { rewriteTarget: 'nodePort' } }), {
      logger: createLogger('debug', sink),
      kube: createKube(api.kubeConfig(), { timeoutMs: timeoutMs ?? 2_000 }),
      currentKeyId: () => 'k1',
      async mintNamespaceToken(ns) {
        minted++;
        return { token: `ns-token-${ns}-${minted}`, expiresAt: new Date(Date.now() + 30 * 86_400_000), keyId: 'k1' };
      },
      hostPollMs: 200,
      podRecheckMs: 200,
      ...deps,
    });
  }

  it('gives namespaces that exist before start their secret within seconds, not at the resync', async () => {
    api.put('namespaces', namespace('team-a', OPT_IN));
    api.put('namespaces', namespace('team-b', OPT_IN));
    api.put('namespaces', namespace('plain'));
    controller = await start();
    await expect.poll(() => api.get('secrets', 'team-a', SECRET) && api.get('secrets', 'team-b', SECRET), { timeout: 3000 }).toBeTruthy();
    expect(api.get('secrets', 'team-a', SECRET)?.type).toBe('kubernetes.io/dockerconfigjson');
    expect(api.get('secrets', 'plain', SECRET)).toBeUndefined();
    expect(api.get('secrets', 'layover', SECRET)).toBeUndefined();
  });

  it('gives a namespace labelled after start its secret', async () => {
    api.put('namespaces', namespace('team-a'));
    controller = await start();
    await controller.idle();
    api.put('namespaces', namespace('team-a', OPT_IN));
    await expect.poll(() => api.get('secrets', 'team-a', SECRET), { timeout: 3000 }).toBeTruthy();
  });

  it('removes, at start, the stale secret of a namespace that opted out while it was down, and leaves foreign ones', async () => {
    api.put('namespaces', namespace('gone-out'));
    api.put('secrets', managedSecret('gone-out'));
    api.put('namespaces', namespace('other'));
    api.put('secrets', { metadata: { name: SECRET, namespace: 'other', labels: { app: 'mine' } }, type: 'Opaque', data: {} });
    controller = await start();
    await expect.poll(() => api.get('secrets', 'gone-out', SECRET), { timeout: 3000 }).toBeUndefined();
    await controller.idle();
    expect(api.get('secrets', 'other', SECRET)).toBeDefined();
  });

  it('after an opt-out keeps the secret while a Pod still uses the mirror, and removes it once none does', async () => {
    controller = await start();
    api.put('namespaces', namespace('team-a', OPT_IN));
    await expect.poll(() => api.get('secrets', 'team-a', SECRET), { timeout: 3000 }).toBeTruthy();
    api.put('pods', pod('team-a', 'rewritten', 'localhost:30500/docker.io/library/nginx:1.27'));
    api.put('pods', pod('team-a', 'annotated', 'nginx:1.27', { annotations: { 'layover.dev/original-images': '{"containers":{"app":"nginx:1.27"}}' } }));
    api.put('pods', pod('team-a', 'finished', 'localhost:30500/docker.io/library/busybox:1', { phase: 'Succeeded' }));
    api.put('pods', pod('team-a', 'unrelated', 'ghcr.io/a/b:1'));
    api.put('namespaces', namespace('team-a'));

    await expect.poll(() => api.list('events', 'team-a').map((e) => e.reason), { timeout: 3000 }).toContain('PullSecretKept');
    await new Promise((r) => setTimeout(r, 700));
    expect(api.get('secrets', 'team-a', SECRET)).toBeDefined();
    api.remove('pods', 'team-a', 'rewritten');
    await new Promise((r) => setTimeout(r, 700));
    expect(api.get('secrets', 'team-a', SECRET)).toBeDefined();
    api.remove('pods', 'team-a', 'annotated');
    await expect.poll(() => api.get('secrets', 'team-a', SECRET), { timeout: 3000 }).toBeUndefined();
    expect(api.list('events', 'team-a').filter((e) => e.reason === 'PullSecretKept')).toHaveLength(1);
  });

  it('deletes and re-creates a managed secret of the wrong type instead of retrying a replace forever', async () => {
    controller = await start();
    const wrong = api.put('secrets', managedSecret('team-a', 'Opaque'));
    api.put('namespaces', namespace('team-a', OPT_IN));
    await expect.poll(() => api.get('secrets', 'team-a', SECRET)?.type, { timeout: 3000 }).toBe('kubernetes.io/dockerconfigjson');
    expect(api.get('secrets', 'team-a', SECRET)?.metadata.uid).not.toBe(wrong.metadata.uid);
    expect(api.requests.filter((r) => r.method === 'PUT')).toHaveLength(0);
  });

  it('carries a new NodePort into every secret within a second', async () => {
    controller = await start();
    for (const ns of ['team-a', 'team-b', 'team-c']) api.put('namespaces', namespace(ns, OPT_IN));
    await expect.poll(() => ['team-a', 'team-b', 'team-c'].map((ns) => hostsOf(api.get('secrets', ns, SECRET))), { timeout: 3000 })
      .toEqual(Array(3).fill('localhost:30500,127.0.0.1:30500'));
    api.put('services', service(31111));
    await expect.poll(() => ['team-a', 'team-b', 'team-c'].map((ns) => hostsOf(api.get('secrets', ns, SECRET))), { timeout: 1500 })
      .toEqual(Array(3).fill('localhost:31111,127.0.0.1:31111'));
  });

  it('gives up on an API call that hangs, and retries', async () => {
    const kube = createKube(api.kubeConfig(), { timeoutMs: 300 });
    api.intercept((req) => (req.method === 'GET' && req.path.includes('/secrets/') ? 'hang' : undefined));
    const began = Date.now();
    const err = await kube.readSecret('layover', SECRET).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KubeError);
    expect((err as Error).message).toMatch(/timed out/);
    expect(Date.now() - began).toBeLessThan(2000);

    let hung = 0;
    api.intercept((req) => (req.method === 'GET' && req.path.includes('/secrets/') && hung++ === 0 ? 'hang' : undefined));
    controller = await start({ timeoutMs: 300 });
    api.put('namespaces', namespace('team-a', OPT_IN));
    await expect.poll(() => api.get('secrets', 'team-a', SECRET), { timeout: 4000 }).toBeTruthy();
    expect(hung).toBeGreaterThanOrEqual(2);
  });

  it('renews a watch that gets no answer, and lists again when its history is gone (410)', async () => {
    controller = await start({ timeoutMs: 300 });
    await expect.poll(() => api.openWatches(), { timeout: 3000 }).toBe(1);
    // The next watch hangs; the one after is refused; then the history is compacted.
    let watches = 0;
    api.intercept((req) => {
      if (!req.path.includes('watch=true')) return undefined;
      watches++;
      return watches === 1 ? 'hang' : { status: 500 };
    });
    api.endWatches();
    await expect.poll(() => watches, { timeout: 4000 }).toBeGreaterThanOrEqual(2);
    api.put('namespaces', namespace('team-late', OPT_IN));
    api.compact();
    api.intercept(undefined);
    await expect.poll(() => api.get('secrets', 'team-late', SECRET), { timeout: 6000 }).toBeTruthy();
  });

  it('close() stops everything: no request reaches the apiserver afterwards', async () => {
    controller = await start({ keyPollMs: 50 });
    api.put('namespaces', namespace('team-a', OPT_IN));
    await expect.poll(() => api.get('secrets', 'team-a', SECRET), { timeout: 3000 }).toBeTruthy();
    await controller.close();
    controller = undefined;
    const after = api.requests.length;
    await expect.poll(() => api.openWatches(), { timeout: 1000 }).toBe(0);
    api.put('namespaces', namespace('team-b', OPT_IN));
    api.put('services', service(31111));
    // The old informer restarted itself 5 s after the aborted watch reported an error.
    await new Promise((r) => setTimeout(r, 6000));
    expect(api.requests.slice(after).map((r) => `${r.method} ${r.path}`)).toEqual([]);
    expect(api.openWatches()).toBe(0);
  }, 15_000);
});
