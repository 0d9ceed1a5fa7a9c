// The thin Kubernetes layer (src/k8s/kube.ts) against a loopback stand-in for kube-apiserver that
// speaks its REST paths, status codes and watch stream: proves the client library is called with
// the right paths, bodies and preconditions, and that errors keep only the status code.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKube, KubeError, type Kube, type NamespaceObject } from '../../src/k8s/kube.js';

const TOKEN = 'sa-token-must-not-leak';

interface Recorded { method: string; path: string; body: unknown; auth?: string; contentType?: string }

describe('Kubernetes client layer', () => {
  let server: Server;
  let kube: Kube;
  const requests: Recorded[] = [];
  const secrets = new Map<string, Record<string, unknown>>();
  let watchResponse: ServerResponse | undefined;
  let webhookConfig: Record<string, unknown> = {
    apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration', metadata: { name: 'layover', resourceVersion: '9' },
    webhooks: [{ name: 'pods.mirror.layover.dev', clientConfig: { service: { name: 'layover-webhook', namespace: 'layover', path: '/mutate' } }, sideEffects: 'None', admissionReviewVersions: ['v1'] }],
  };

  function send(res: ServerResponse, status: number, body: unknown) {
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  }
  const statusBody = (code: number, reason: string) => ({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason, code, message: `${reason} (request had Authorization: Bearer ${TOKEN})` });

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString();
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname;
    requests.push({ method: req.method ?? '', path: path + url.search, body: text ? JSON.parse(text) : undefined, auth: req.headers.authorization, contentType: req.headers['content-type'] });
    const secretMatch = /^\/api\/v1\/namespaces\/([^/]+)\/secrets(?:\/([^/]+))?$/.exec(path);
    if (req.method === 'GET' && path === '/api/v1/namespaces/layover/services/layover-registry') {
      return send(res, 200, { apiVersion: 'v1', kind: 'Service', metadata: { name: 'layover-registry', namespace: 'layover' }, spec: { type: 'NodePort', ports: [{ name: 'registry', port: 5000, nodePort: 30500, protocol: 'TCP' }] } });
    }
    if (path.startsWith('/api/v1/namespaces/layover/services/')) return send(res, 404, statusBody(404, 'NotFound'));
    if (secretMatch) {
      const [, ns, name] = secretMatch;
      const key = `${ns}/${name ?? (JSON.parse(text) as { metadata: { name: string } }).metadata.name}`;
      if (req.method === 'GET') return secrets.has(key) ? send(res, 200, secrets.get(key)) : send(res, 404, statusBody(404, 'NotFound'));
      if (req.method === 'POST') {
        if (secrets.has(key)) return send(res, 409, statusBody(409, 'AlreadyExists'));
        const body = JSON.parse(text) as { metadata: Record<string, unknown> };
        const stored = { ...body, metadata: { ...body.metadata, uid: 'u-1', resourceVersion: '1' } };
        secrets.set(key, stored);
        return send(res, 201, stored);
      }
      if (req.method === 'PUT') {
        const body = JSON.parse(text) as { metadata: Record<string, unknown> };
        const current = secrets.get(key) as { metadata: { resourceVersion: string } } | undefined;
        if (!current) return send(res, 404, statusBody(404, 'NotFound'));
        if (body.metadata.resourceVersion !== current.metadata.resourceVersion) return send(res, 409, statusBody(409, 'Conflict'));
        const stored = { ...body, metadata: { ...body.metadata, resourceVersion: String(Number(current.metadata.resourceVersion) + 1) } };
        secrets.set(key, stored);
        return send(res, 200, stored);
      }
      if (req.method === 'DELETE') {
        const current = secrets.get(key) as { metadata: { uid: string } } | undefined;
        if (!current) return send(res, 404, statusBody(404, 'NotFound'));
        const uid = (JSON.parse(text || '{}') as { preconditions?: { uid?: string } }).preconditions?.uid;
        if (uid && uid !== current.metadata.uid) return send(res, 409, statusBody(409, 'Conflict'));
        secrets.delete(key);
        return send(res, 200, { kind: 'Status', apiVersion: 'v1', status: 'Success' });
      }
    }
    if (req.method === 'POST' && /^\/api\/v1\/namespaces\/[^/]+\/events$/.test(path)) return send(res, 201, JSON.parse(text));
    if (path === '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/layover') {
      if (req.method === 'GET') return send(res, 200, webhookConfig);
      if (req.method === 'PUT') {
        webhookConfig = JSON.parse(text) as Record<string, unknown>;
        return send(res, 200, webhookConfig);
      }
    }
    if (req.method === 'GET' && path === '/api/v1/namespaces') {
      if (url.searchParams.get('watch') === 'true') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.flushHeaders();
        watchResponse = res;
        return;
      }
      return send(res, 200, {
        apiVersion: 'v1', kind: 'NamespaceList', metadata: { resourceVersion: '100' },
        items: [
          { metadata: { name: 'team-a', uid: 'n1', resourceVersion: '50', labels: { 'layover.dev/mirror': 'enabled' } }, status: { phase: 'Active' } },
          { metadata: { name: 'old', uid: 'n2', resourceVersion: '51', deletionTimestamp: '2026-01-01T00:00:00Z' }, status: { phase: 'Terminating' } },
        ],
      });
    }
    send(res, 404, statusBody(404, 'NotFound'));
  }

  beforeAll(async () => {
    server = createServer((req, res) => void handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const kc = new k8s.KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'loopback', server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true }],
      users: [{ name: 'sa', token: TOKEN }],
      contexts: [{ name: 'ctx', cluster: 'loopback', user: 'sa' }],
      currentContext: 'ctx',
    });
    kube = createKube(kc);
  });
  afterAll(() => {
    watchResponse?.end();
    server.closeAllConnections();
    server.close();
  });

  it('reads the registry Service NodePorts, and undefined for a missing Service', async () => {
    expect(await kube.readServiceNodePorts('layover', 'layover-registry')).toEqual([{ name: 'registry', port: 5000, nodePort: 30500 }]);
    expect(await kube.readServiceNodePorts('layover', 'missing')).toBeUndefined();
    expect(requests[0]?.auth).toBe(`Bearer ${TOKEN}`);
  });

  it('creates, reads, replaces (with resourceVersion) and deletes (with uid precondition) a Secret', async () => {
    expect(await kube.readSecret('team-a', 'layover-pull')).toBeUndefined();
    const created = await kube.createSecret('team-a', { metadata: { name: 'layover-pull', labels: { 'app.kubernetes.io/managed-by': 'layover' } }, type: 'kubernetes.io/dockerconfigjson', data: { '.dockerconfigjson': 'e30=' } });
    expect(created.metadata).toMatchObject({ name: 'layover-pull', uid: 'u-1', resourceVersion: '1' });
    const post = requests.find((r) => r.method === 'POST' && r.path === '/api/v1/namespaces/team-a/secrets');
    expect(post?.body).toMatchObject({ apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/dockerconfigjson', data: { '.dockerconfigjson': 'e30=' } });

    const dup = await kube.createSecret('team-a', { metadata: { name: 'layover-pull' }, data: {} }).catch((e: unknown) => e);
    expect(dup).toBeInstanceOf(KubeError);
    expect((dup as KubeError).status).toBe(409);
    expect((dup as Error).message).not.toContain(TOKEN);

    const read = await kube.readSecret('team-a', 'layover-pull');
    expect(read?.metadata.labels).toEqual({ 'app.kubernetes.io/managed-by': 'layover' });
    const replaced = await kube.replaceSecret('team-a', { ...read!, data: { '.dockerconfigjson': 'e30K' } });
    expect(replaced.metadata.resourceVersion).toBe('2');
    const stale = await kube.replaceSecret('team-a', { ...read!, data: {} }).catch((e: unknown) => e);
    expect((stale as KubeError).status).toBe(409);

    const wrongUid = await kube.deleteSecret('team-a', 'layover-pull', 'someone-else').catch((e: unknown) => e);
    expect((wrongUid as KubeError).status).toBe(409);
    await kube.deleteSecret('team-a', 'layover-pull', 'u-1');
    expect(secrets.has('team-a/layover-pull')).toBe(false);
    await kube.deleteSecret('team-a', 'layover-pull', 'u-1'); // already gone: not an error
  });

  it('records an Event about a Secret', async () => {
    await kube.createEvent('team-a', { involved: { kind: 'Secret', apiVersion: 'v1', name: 'layover-pull', namespace: 'team-a', uid: 'x' }, type: 'Warning', reason: 'PullSecretConflict', message: 'taken' });
    const post = requests.find((r) => r.method === 'POST' && r.path === '/api/v1/namespaces/team-a/events');
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
      expect(watch.list().map((n) => n.name).sort()).toEqual(['old', 'team-a']);
      await expect.poll(() => watchResponse !== undefined, { timeout: 3000 }).toBe(true);
      const event = (type: string, name: string, labels: Record<string, string>, rv: string) =>
        watchResponse!.write(`${JSON.stringify({ type, object: { apiVersion: 'v1', kind: 'Namespace', metadata: { name, uid: `uid-${name}`, resourceVersion: rv, labels } } })}\n`);
      event('ADDED', 'team-b', { 'layover.dev/mirror': 'enabled' }, '101');
      event('MODIFIED', 'team-a', {}, '102');
      event('DELETED', 'team-b', {}, '103');
      await expect.poll(() => seen.filter((s) => !s.startsWith('upsert old') && !s.startsWith('upsert team-a enabled')), { timeout: 3000 }).toEqual([
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
});
