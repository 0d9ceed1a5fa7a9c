// webhook.rewriteTarget: node. The rewrite target and the pull secret's host follow one rule
// (127.0.0.1:<node port>), and the webhook rewrites only while the node role's DaemonSet reports
// ready Pods, read with the real @kubernetes/client-node from a loopback stand-in for
// kube-apiserver that answers the DaemonSet and Node reads as the real one does.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as k8s from '@kubernetes/client-node';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startController } from '../../src/controller/index.js';
import { defaultConfig } from '../../src/config/resolve.js';
import { createClusterFacts, type ClusterFacts } from '../../src/k8s/cluster-facts.js';
import type { Kube, NamespaceHandlers, PodReader, SecretObject } from '../../src/k8s/kube.js';
import { nodeRoleHost, resolvePublicHost } from '../../src/k8s/public-host.js';
import { createLogger } from '../../src/log.js';
import { watchNodePath } from '../../src/webhook/node-path.js';
import { startWebhook } from '../../src/webhook/server.js';
import { admissionReview, apiserverDefaults } from '../fixtures/pods/admission.js';

const logger = createLogger('silent');
const DS_PATH = '/apis/apps/v1/namespaces/layover-node/daemonsets/layover-node';

describe('rewrite target', () => {
  it('is the node role’s loopback address as an IP literal by default, for the webhook and the controller alike', async () => {
    const config = defaultConfig();
    expect(config.webhook.rewriteTarget).toBe('node');
    expect(await resolvePublicHost(config, undefined)).toEqual({ host: '127.0.0.1:5005', from: 'node' });
    expect(nodeRoleHost(defaultConfig({ node: { listen: 'localhost:5006' } }))).toBe('127.0.0.1:5006');
    expect(nodeRoleHost(defaultConfig({ node: { listen: '0.0.0.0:5007' } }))).toBe('127.0.0.1:5007');
    expect(nodeRoleHost(defaultConfig({ node: { listen: '[::1]:5008' } }))).toBe('[::1]:5008');
  });

  it('gives the controller’s pull secret credentials for 127.0.0.1:<node port>, without reading the Service', async () => {
    const written: SecretObject[] = [];
    const kube: Kube & PodReader = {
      listPods: async () => [],
      readServiceNodePorts: async () => { throw new Error('the NodePort must not matter in node mode'); },
      readSecret: async () => undefined,
      createSecret: async (_ns, secret) => { written.push(secret); return secret; },
      replaceSecret: async (_ns, secret) => secret,
      deleteSecret: async () => {},
      createEvent: async () => {},
      setWebhookCABundle: async () => {},
      // Announced as the watch announces a namespace that exists at start.
      watchNamespaces: async (handlers: NamespaceHandlers) => {
        const ns = { name: 'team-a', labels: { 'layover.dev/mirror': 'enabled' }, terminating: false };
        handlers.upsert(ns);
        return { stop: async () => {}, list: () => [ns] };
      },
    };
    const controller = await startController(defaultConfig({ node: { listen: '127.0.0.1:5099' } }), {
      logger, kube, currentKeyId: () => 'k1',
      mintNamespaceToken: async () => ({ token: 't', expiresAt: new Date(Date.now() + 86_400_000), keyId: 'k1' }),
    });
    await controller.idle();
    await controller.close();
    const auths = (JSON.parse(Buffer.from(written[0]?.data?.['.dockerconfigjson'] ?? '', 'base64').toString()) as { auths: Record<string, unknown> }).auths;
    expect(Object.keys(auths)).toContain('127.0.0.1:5099');
  });
});

describe('node path readiness from the DaemonSet', () => {
  let server: Server;
  let facts: ClusterFacts;
  let answer: { status: number; ready?: number } = { status: 200, ready: 2 };

  function send(res: ServerResponse, status: number, body: unknown) {
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  }
  function handle(req: IncomingMessage, res: ServerResponse) {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (req.method === 'GET' && path === DS_PATH) {
      if (answer.status !== 200) return send(res, answer.status, { kind: 'Status', apiVersion: 'v1', status: 'Failure', code: answer.status, reason: answer.status === 404 ? 'NotFound' : 'InternalError' });
      return send(res, 200, {
        apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'layover-node', namespace: 'layover-node' },
        spec: { selector: { matchLabels: { app: 'layover-node' } }, template: { metadata: { labels: { app: 'layover-node' } }, spec: { containers: [{ name: 'node', image: 'layover' }] } } },
        status: { currentNumberScheduled: 3, desiredNumberScheduled: 3, numberMisscheduled: 0, numberReady: answer.ready ?? 0 },
      });
    }
    if (req.method === 'GET' && path === '/api/v1/nodes') {
      const node = (name: string, os?: string, arch?: string) => ({ metadata: { name }, status: os ? { nodeInfo: { operatingSystem: os, architecture: arch, bootID: '', containerRuntimeVersion: '', kernelVersion: '', kubeProxyVersion: '', kubeletVersion: '', machineID: '', osImage: '', systemUUID: '' } } : {} });
      return send(res, 200, { apiVersion: 'v1', kind: 'NodeList', metadata: {}, items: [node('a', 'linux', 'amd64'), node('b', 'linux', 'arm64'), node('c', 'linux', 'amd64'), node('d')] });
    }
    send(res, 404, { kind: 'Status', apiVersion: 'v1', status: 'Failure', code: 404, reason: 'NotFound' });
  }

  beforeAll(async () => {
    server = createServer(handle);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const kc = new k8s.KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'loopback', server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true }],
      users: [{ name: 'sa', token: 'sa-token' }],
      contexts: [{ name: 'ctx', cluster: 'loopback', user: 'sa' }],
      currentContext: 'ctx',
    });
    facts = createClusterFacts(kc);
  });
  afterAll(() => {
    server.closeAllConnections();
    server.close();
  });

  it('reads numberReady and the nodes’ distinct platforms', async () => {
    answer = { status: 200, ready: 2 };
    expect(await facts.daemonSetReadyPods('layover-node', 'layover-node')).toBe(2);
    expect(await facts.nodePlatforms()).toEqual([{ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64' }]);
    await expect(facts.daemonSetReadyPods('layover', 'other')).rejects.toThrow(/HTTP 404/);
  });

  it('is ready with ready Pods; not with none, a missing DaemonSet or an API error; refreshed in the background', async () => {
    const path = watchNodePath({ readyPods: () => facts.daemonSetReadyPods('layover-node', 'layover-node'), daemonSet: 'layover-node/layover-node', logger, intervalMs: 50 });
    try {
      for (const [next, expected] of [[{ status: 200, ready: 1 }, true], [{ status: 200, ready: 0 }, false], [{ status: 500 }, false], [{ status: 404 }, false], [{ status: 200, ready: 3 }, true]] as const) {
        answer = next;
        await expect.poll(() => path.ready(), { timeout: 2_000, interval: 20 }).toBe(expected);
      }
      // Reviews read the cached answer (cached-probe.ts, tested with the registry health check).
    } finally {
      await path.close();
    }
  });

  it('the webhook rewrites only while the node role is ready, and /readyz says so', async () => {
    const config = defaultConfig({ auth: { enabled: false }, upstreams: [{ prefix: 'ghcr.io', url: 'https://ghcr.io' }], webhook: { listen: '127.0.0.1:0', selfSigned: true, prefetch: false } });
    const deps = {
      logger, cluster: facts,
      health: { healthy: () => true, refresh: async () => true, close: async () => {} },
      resolver: { check: async () => ({ ok: true as const }), close: async () => {} },
    };
    const agent = new Agent({ connect: { rejectUnauthorized: false } });
    const pod = apiserverDefaults({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { containers: [{ name: 'c', image: 'ghcr.io/a/b:1' }] } }, 'team-a');
    const post = async (url: string) => {
      const res = await request(`${url}/mutate`, { method: 'POST', dispatcher: agent, headers: { 'content-type': 'application/json' }, body: JSON.stringify(admissionReview(pod)) });
      return ((await res.body.json()) as { response: { patch?: string; warnings?: string[] } }).response;
    };
    const readyz = async (url: string) => (await (await request(`${url}/readyz`, { dispatcher: agent })).body.json()) as Record<string, string>;
    answer = { status: 200, ready: 0 };
    const down = await startWebhook(config, deps);
    try {
      expect(await post(down.url)).toEqual({ uid: expect.any(String), allowed: true, warnings: ['layover: node role layover-node/layover-node has no ready Pods; images left unchanged'] });
      expect(await readyz(down.url)).toMatchObject({ nodeRole: 'not ready' });
    } finally {
      await down.close();
    }
    answer = { status: 200, ready: 1 };
    const up = await startWebhook(config, deps);
    try {
      const ops = JSON.parse(Buffer.from((await post(up.url)).patch ?? '', 'base64').toString()) as Array<{ path: string; value: string }>;
      expect(ops.find((op) => op.path === '/spec/containers/0/image')?.value).toBe('127.0.0.1:5005/ghcr.io/a/b:1');
      expect(await readyz(up.url)).toMatchObject({ nodeRole: 'ready' });
    } finally {
      await up.close();
      await agent.close();
    }
  });
});
