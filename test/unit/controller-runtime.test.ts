// The controller's thin runtime against an in-memory API server that behaves like the real one
// where it matters: resourceVersions, 409 on create-over-existing and stale replace, uid preconditions.
import { afterEach, describe, expect, it } from 'vitest';
import { defaultConfig } from '../../src/config/resolve.js';
import { startController, type Controller } from '../../src/controller/index.js';
import { KubeError, type EventSpec, type Kube, type NamespaceHandlers, type NamespaceObject, type PodSummary, type SecretObject } from '../../src/k8s/kube.js';
import { createLogger } from '../../src/log.js';

class FakeKube implements Kube {
  secrets = new Map<string, SecretObject>();
  events: Array<EventSpec & { namespace: string }> = [];
  namespaces = new Map<string, NamespaceObject>();
  writes: string[] = [];
  failNextRead = 0;
  private rv = 100;
  private handlers?: NamespaceHandlers;

  async readServiceNodePorts(): Promise<Array<{ name: string; port: number; nodePort?: number }> | undefined> {
    return [{ name: 'registry', port: 5000, nodePort: 30500 }];
  }
  async readSecret(namespace: string, name: string) {
    if (this.failNextRead > 0) {
      this.failNextRead--;
      throw new KubeError(503, 'read secret');
    }
    const s = this.secrets.get(`${namespace}/${name}`);
    return s && structuredClone(s);
  }
  async createSecret(namespace: string, secret: SecretObject) {
    const key = `${namespace}/${secret.metadata.name}`;
    if (this.secrets.has(key)) throw new KubeError(409, 'create secret');
    const stored = { ...structuredClone(secret), metadata: { ...secret.metadata, uid: `uid-${++this.rv}`, resourceVersion: String(++this.rv) } };
    this.secrets.set(key, stored);
    this.writes.push(`create ${key}`);
    return stored;
  }
  async replaceSecret(namespace: string, secret: SecretObject) {
    const key = `${namespace}/${secret.metadata.name}`;
    const current = this.secrets.get(key);
    if (!current) throw new KubeError(404, 'replace secret');
    if (secret.metadata.resourceVersion !== undefined && secret.metadata.resourceVersion !== current.metadata.resourceVersion) throw new KubeError(409, 'replace secret');
    const stored = { ...structuredClone(secret), metadata: { ...secret.metadata, uid: current.metadata.uid, resourceVersion: String(++this.rv) } };
    this.secrets.set(key, stored);
    this.writes.push(`replace ${key}`);
    return stored;
  }
  async deleteSecret(namespace: string, name: string, uid?: string) {
    const key = `${namespace}/${name}`;
    const current = this.secrets.get(key);
    if (current && uid && current.metadata.uid !== uid) throw new KubeError(409, 'delete secret');
    if (current) this.writes.push(`delete ${key}`);
    this.secrets.delete(key);
  }
  async createEvent(namespace: string, event: EventSpec) {
    this.events.push({ ...event, namespace });
  }
  async setWebhookCABundle() {}
  async listPods(): Promise<PodSummary[]> {
    return [];
  }
  async watchNamespaces(handlers: NamespaceHandlers) {
    this.handlers = handlers;
    // As the real client does: the initial list is reported through the handlers before it returns.
    for (const ns of this.namespaces.values()) handlers.upsert(ns);
    return { stop: async () => {}, list: () => [...this.namespaces.values()] };
  }
  upsertNamespace(name: string, labels: Record<string, string>) {
    const ns = { name, labels, terminating: false };
    this.namespaces.set(name, ns);
    this.handlers?.upsert(ns);
  }
  removeNamespace(name: string) {
    const ns = this.namespaces.get(name);
    this.namespaces.delete(name);
    if (ns) this.handlers?.remove(ns);
  }
}

const OPT_IN = { 'layover.dev/mirror': 'enabled' };
const decode = (s: SecretObject | undefined) => JSON.parse(Buffer.from(s?.data?.['.dockerconfigjson'] ?? '', 'base64').toString()) as { auths: Record<string, { username: string; password: string }> };

describe('pull-secret controller runtime', () => {
  let controller: Controller | undefined;
  afterEach(async () => {
    await controller?.close();
    controller = undefined;
  });

  function setup(options: { tokenTTL?: string } = {}) {
    const kube = new FakeKube();
    let keyId = 'k1';
    let minted = 0;
    const now = { t: Date.parse('2026-03-01T00:00:00Z') };
    const deps = {
      logger: createLogger('silent'),
      kube,
      currentKeyId: () => keyId,
      now: () => new Date(now.t),
      keyPollMs: 20,
      async mintNamespaceToken(namespace: string) {
        minted++;
        return { token: `token-${namespace}-${minted}`, expiresAt: new Date(now.t + 30 * 86_400_000), keyId };
      },
    };
    const config = defaultConfig({ webhook: { rewriteTarget: 'nodePort' }, controller: { tokenTTL: options.tokenTTL ?? '30d', resync: '10m' } });
    return { kube, deps, config, now, rotate: (id: string) => { keyId = id; }, minted: () => minted };
  }

  it('creates secrets for opted-in namespaces at start and on label, and removes them on opt-out', async () => {
    const { kube, deps, config } = setup();
    kube.namespaces.set('team-a', { name: 'team-a', labels: OPT_IN, terminating: false });
    kube.namespaces.set('team-b', { name: 'team-b', labels: {}, terminating: false });
    controller = await startController(config, deps);
    await controller.idle();
    expect([...kube.secrets.keys()]).toEqual(['team-a/layover-pull']);
    const auths = decode(kube.secrets.get('team-a/layover-pull')).auths;
    expect(Object.keys(auths)).toEqual(['localhost:30500', '127.0.0.1:30500']);
    expect(auths['localhost:30500']).toMatchObject({ username: 'namespace:team-a', password: 'token-team-a-1' });

    kube.upsertNamespace('team-b', OPT_IN);
    await controller.idle();
    expect(kube.secrets.has('team-b/layover-pull')).toBe(true);

    kube.upsertNamespace('team-a', {});
    await controller.idle();
    expect(kube.secrets.has('team-a/layover-pull')).toBe(false);
    expect(kube.writes).toEqual(['create team-a/layover-pull', 'create team-b/layover-pull', 'delete team-a/layover-pull']);
  });

  it('does not rewrite an up-to-date secret on resync-like events', async () => {
    const { kube, deps, config } = setup();
    kube.namespaces.set('team-a', { name: 'team-a', labels: OPT_IN, terminating: false });
    controller = await startController(config, deps);
    await controller.idle();
    kube.upsertNamespace('team-a', { ...OPT_IN, unrelated: 'x' });
    await controller.idle();
    expect(kube.writes).toEqual(['create team-a/layover-pull']);
  });

  it('refreshes every secret when the signing key rotates', async () => {
    const { kube, deps, config, rotate } = setup();
    kube.namespaces.set('team-a', { name: 'team-a', labels: OPT_IN, terminating: false });
    kube.namespaces.set('team-b', { name: 'team-b', labels: OPT_IN, terminating: false });
    controller = await startController(config, deps);
    await controller.idle();
    rotate('k2');
    await expect.poll(() => kube.writes.filter((w) => w.startsWith('replace')).length, { timeout: 2000 }).toBe(2);
    expect(kube.secrets.get('team-a/layover-pull')?.metadata.annotations?.['layover.dev/token-key-id']).toBe('k2');
    expect(decode(kube.secrets.get('team-b/layover-pull')).auths['127.0.0.1:30500']?.password).toBe('token-team-b-4');
  });

  it('refreshes a token found inside its refresh window', async () => {
    const { kube, deps, config, now } = setup();
    // A token that already sits inside its refresh window when the controller starts.
    kube.namespaces.set('team-a', { name: 'team-a', labels: OPT_IN, terminating: false });
    controller = await startController(config, deps);
    await controller.idle();
    const stored = kube.secrets.get('team-a/layover-pull')!;
    stored.metadata.annotations!['layover.dev/token-expires-at'] = new Date(now.t + 5 * 86_400_000).toISOString();
    kube.upsertNamespace('team-a', OPT_IN);
    await controller.idle();
    expect(kube.writes).toEqual(['create team-a/layover-pull', 'replace team-a/layover-pull']);
    expect(Date.parse(kube.secrets.get('team-a/layover-pull')!.metadata.annotations!['layover.dev/token-expires-at']!)).toBe(now.t + 30 * 86_400_000);
  });

  it('schedules the refresh itself when a token expires before the next resync', async () => {
    const kube = new FakeKube();
    kube.namespaces.set('team-a', { name: 'team-a', labels: OPT_IN, terminating: false });
    const config = defaultConfig({ webhook: { rewriteTarget: 'nodePort' }, controller: { tokenTTL: '900ms', resync: '10m' } });
    const expiries: number[] = [];
    controller = await startController(config, {
      logger: createLogger('silent'),
      kube,
      currentKeyId: () => 'k1',
      async mintNamespaceToken() {
        const expiresAt = Date.now() + 900;
        expiries.push(expiresAt);
        return { token: `t${expiries.length}`, expiresAt: new Date(expiresAt), keyId: 'k1' };
      },
    });
    await controller.idle();
    // Refresh is due 300 ms before expiry: about 600 ms after each write.
    await expect.poll(() => kube.writes.length, { timeout: 3000, interval: 50 }).toBeGreaterThanOrEqual(3);
    expect(kube.writes.slice(0, 3)).toEqual(['create team-a/layover-pull', 'replace team-a/layover-pull', 'replace team-a/layover-pull']);
    expect(expiries[1]! - expiries[0]!).toBeGreaterThanOrEqual(550);
    expect(expiries[1]! - expiries[0]!).toBeLessThan(900);
  });

  it('never overwrites a foreign secret: one warning Event, recorded once', async () => {
    const { kube, deps, config } = setup();
    kube.namespaces.set('team-a', { name: 'team-a', labels: OPT_IN, terminating: false });
    kube.secrets.set('team-a/layover-pull', { metadata: { name: 'layover-pull', namespace: 'team-a', uid: 'theirs', resourceVersion: '1' }, type: 'Opaque', data: { x: 'eA==' } });
    controller = await startController(config, deps);
    await controller.idle();
    kube.upsertNamespace('team-a', { ...OPT_IN, again: 'yes' });
    await controller.idle();
    expect(kube.writes).toEqual([]);
    expect(kube.secrets.get('team-a/layover-pull')?.data).toEqual({ x: 'eA==' });
    expect(kube.events).toHaveLength(1);
    expect(kube.events[0]).toMatchObject({ namespace: 'team-a', type: 'Warning', reason: 'PullSecretConflict', involved: { kind: 'Secret', name: 'layover-pull', uid: 'theirs' } });
    // Opting out never deletes it either.
    kube.upsertNamespace('team-a', {});
    await controller.idle();
    expect(kube.secrets.has('team-a/layover-pull')).toBe(true);
  });

  it('cleans up a stale managed secret in a namespace that opted out while it was not running', async () => {
    const { kube, deps, config } = setup();
    kube.namespaces.set('team-a', { name: 'team-a', labels: OPT_IN, terminating: false });
    controller = await startController(config, deps);
    await controller.idle();
    await controller.close();
    kube.namespaces.set('team-a', { name: 'team-a', labels: {}, terminating: false });
    controller = await startController(config, deps);
    await controller.idle();
    expect(kube.secrets.has('team-a/layover-pull')).toBe(false);
  });

  it('waits for the registry Service before writing anything, then uses its NodePort', async () => {
    const { kube, deps, config } = setup();
    kube.namespaces.set('team-a', { name: 'team-a', labels: OPT_IN, terminating: false });
    let service: Array<{ name: string; port: number; nodePort?: number }> | undefined;
    kube.readServiceNodePorts = async () => service;
    controller = await startController(config, deps);
    await controller.idle();
    expect(kube.writes).toEqual([]);
    service = [{ name: 'registry', port: 5000, nodePort: 31111 }];
    await expect.poll(() => kube.secrets.has('team-a/layover-pull'), { timeout: 4000 }).toBe(true);
    expect(Object.keys(decode(kube.secrets.get('team-a/layover-pull')).auths)).toEqual(['localhost:31111', '127.0.0.1:31111']);
  });

  it('retries after an API error', async () => {
    const { kube, deps, config } = setup();
    kube.namespaces.set('team-a', { name: 'team-a', labels: OPT_IN, terminating: false });
    kube.failNextRead = 1;
    controller = await startController(config, deps);
    await expect.poll(() => kube.secrets.has('team-a/layover-pull'), { timeout: 3000 }).toBe(true);
  });

  it('forgets a deleted namespace', async () => {
    const { kube, deps, config, minted } = setup();
    kube.namespaces.set('team-a', { name: 'team-a', labels: OPT_IN, terminating: false });
    controller = await startController(config, deps);
    await controller.idle();
    kube.secrets.delete('team-a/layover-pull');
    kube.removeNamespace('team-a');
    await controller.idle();
    expect(minted()).toBe(1);
    expect(kube.secrets.size).toBe(0);
  });
});
