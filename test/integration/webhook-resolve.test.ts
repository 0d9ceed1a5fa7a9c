// The webhook rewrites only what will pull: each image is confirmed with a HEAD through a real
// layover registry (auth on, namespace tokens) mirroring a real docker-registry, cached and
// coalesced, within the review's budget; and admitted images are prefetched into the registry,
// narrowed to the nodes' platforms. A counting relay in front of the registry (and one in front
// of the upstream) shows what each step cost.
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildPullSecret } from '../../src/controller/pull-secret.js';
import { defaultConfig } from '../../src/config/resolve.js';
import type { RawConfig } from '../../src/config/schema.js';
import type { ClusterFacts, Platform } from '../../src/k8s/cluster-facts.js';
import type { Kube, SecretObject } from '../../src/k8s/kube.js';
import { createLogger } from '../../src/log.js';
import { mintedCredentials, pullSecretCredentials, type NamespaceCredentials } from '../../src/webhook/registry-access.js';
import { startWebhook, type WebhookServer } from '../../src/webhook/server.js';
import { admissionReview, apiserverDefaults } from '../fixtures/pods/admission.js';
import { startCountingProxy, type CountingProxy } from '../helpers/counting-proxy.js';
import { startDockerRegistry, type DockerRegistry } from '../helpers/docker-registry.js';
import { startLayover, type InProcessLayover } from '../helpers/layover.js';
import { makeOciImage, makeOciIndex, type OciImage } from '../helpers/oci-layout.js';
import { getBytes } from '../helpers/registry-client.js';
import { skopeoCopy } from '../helpers/skopeo.js';
import { makeTempDir, type TempDir } from '../helpers/temp-dir.js';

const logger = createLogger('silent');
const insecure = new Agent({ connect: { rejectUnauthorized: false } });

let tmp: TempDir;
let upstream: DockerRegistry;
let upstreamRelay: CountingProxy;
let layover: InProcessLayover;
let registryRelay: CountingProxy;
let mint: NamespaceCredentials;
let image: OciImage;
const webhooks: WebhookServer[] = [];

type Answer = { uid: string; allowed: boolean; patch?: string; warnings?: string[] };

async function review(url: string, images: string[], namespace = 'team-a', options: { dryRun?: boolean } = {}): Promise<{ images: string[]; warnings: string[]; ms: number }> {
  const pod = apiserverDefaults({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { containers: images.map((img, i) => ({ name: `c${i}`, image: img })) } }, namespace);
  const started = Date.now();
  const res = await request(`${url}/mutate`, { method: 'POST', dispatcher: insecure, headers: { 'content-type': 'application/json' }, body: JSON.stringify(admissionReview(pod, options)) });
  const body = (await res.body.json()) as { response: Answer };
  const ms = Date.now() - started;
  const ops = body.response.patch ? (JSON.parse(Buffer.from(body.response.patch, 'base64').toString()) as Array<{ path: string; value: unknown }>) : [];
  const out = images.map((img, i) => (ops.find((op) => op.path === `/spec/containers/${i}/image`)?.value as string | undefined) ?? img);
  return { images: out, warnings: body.response.warnings ?? [], ms };
}

async function webhook(raw: RawConfig['webhook'], deps: { credentials?: NamespaceCredentials; cluster?: ClusterFacts; registryUrl?: string } = {}): Promise<string> {
  const config = defaultConfig({
    auth: { enabled: true },
    upstreams: [{ prefix: 'up', url: upstreamRelay.url }],
    webhook: { listen: '127.0.0.1:0', selfSigned: true, healthURL: `${deps.registryUrl ?? registryRelay.url}/v2/`, prefetch: false, ...raw },
  });
  const server = await startWebhook(config, { logger, credentials: deps.credentials ?? mint, cluster: deps.cluster });
  webhooks.push(server);
  return server.url;
}

beforeAll(async () => {
  tmp = makeTempDir('layover-webhook-resolve-');
  upstream = await startDockerRegistry();
  upstreamRelay = await startCountingProxy(upstream.url);
  layover = await startLayover({ auth: { enabled: true, users: [{ name: 'admin', password: 'pw', admin: true }] }, upstreams: [{ prefix: 'up', url: upstreamRelay.url, tagTTL: '1h' }] });
  registryRelay = await startCountingProxy(layover.url);
  const auth = layover.app.auth;
  if (!auth) throw new Error('no auth module');
  mint = mintedCredentials((ns) => auth.mintNamespaceToken(ns));
  image = await makeOciImage(`${tmp.path}/app`, { layers: [200_000, 300_000], tag: 'v1', seed: 'resolve-app' });
  await skopeoCopy(image.ref, `docker://${upstream.host}/team/app:v1`);
}, 60_000);

afterAll(async () => {
  for (const w of webhooks) await w.close();
  await registryRelay?.close();
  await layover?.close();
  await upstreamRelay?.close();
  await upstream?.close();
  await insecure.close();
  tmp?.cleanup();
});

describe('resolve check before rewriting', () => {
  it('rewrites to the node role on 127.0.0.1 what resolves, keeps what does not, and says why per image', async () => {
    const url = await webhook({});
    const { images, warnings } = await review(url, [`${upstreamRelay.host}/team/app:v1`, `${upstreamRelay.host}/team/missing:v1`]);
    expect(images).toEqual(['127.0.0.1:5005/up/team/app:v1', `${upstreamRelay.host}/team/missing:v1`]);
    expect(warnings).toEqual([`layover: c1: not found through layover (HTTP 404); ${upstreamRelay.host}/team/missing:v1 left unchanged`]);
  });

  it('a Deployment’s 100 Pods cost one check: cached, and concurrent checks coalesced', async () => {
    const url = await webhook({});
    const img = `${upstreamRelay.host}/team/app:v1`;
    registryRelay.reset();
    const first = await Promise.all(Array.from({ length: 20 }, () => review(url, [img], 'team-b')));
    for (let i = 0; i < 80; i++) expect((await review(url, [img], 'team-b')).images).toEqual(['127.0.0.1:5005/up/team/app:v1']);
    expect(first.every((r) => r.images[0] === '127.0.0.1:5005/up/team/app:v1')).toBe(true);
    expect(registryRelay.count('HEAD', /\/manifests\//)).toBe(1);
  });

  it('keeps the original image when the registry does not confirm within the budget, and answers in time', async () => {
    const url = await webhook({ resolveTimeout: '300ms' });
    registryRelay.delay(3_000);
    try {
      const { images, warnings, ms } = await review(url, [`${upstreamRelay.host}/team/app:v1`], 'team-slow');
      expect(images).toEqual([`${upstreamRelay.host}/team/app:v1`]);
      expect(warnings).toEqual([`layover: c0: not confirmed by the registry in time; ${upstreamRelay.host}/team/app:v1 left unchanged`]);
      expect(ms).toBeLessThan(1_500);
    } finally {
      registryRelay.delay(0);
    }
    // The check went on after the budget and filled the cache: the next Pod is rewritten at once.
    await expect.poll(async () => (await review(url, [`${upstreamRelay.host}/team/app:v1`], 'team-slow')).images[0], { timeout: 6_000, interval: 200 }).toBe('127.0.0.1:5005/up/team/app:v1');
  });

  it('uses the namespace’s pull secret: none yet, or a token that is not valid, means no rewrite', async () => {
    const auth = layover.app.auth!;
    const issued = await auth.mintNamespaceToken('team-c');
    const secrets = new Map<string, SecretObject>([
      ['team-c', buildPullSecret({ namespace: 'team-c', name: 'layover-pull', hosts: ['127.0.0.1:5005'], ...issued })],
      ['team-d', buildPullSecret({ namespace: 'team-d', name: 'layover-pull', hosts: ['127.0.0.1:5005'], ...issued, token: 'forged.token.value' })],
    ]);
    const kube = { readSecret: async (namespace: string, name: string) => (name === 'layover-pull' ? secrets.get(namespace) : undefined) } as unknown as Kube;
    const url = await webhook({}, { credentials: pullSecretCredentials(kube, 'layover-pull') });
    const img = `${upstreamRelay.host}/team/app:v1`;
    expect((await review(url, [img], 'team-c')).images).toEqual(['127.0.0.1:5005/up/team/app:v1']);
    expect(await review(url, [img], 'team-new')).toMatchObject({ images: [img], warnings: [`layover: c0: namespace has no layover-pull Secret yet; ${img} left unchanged`] });
    expect(await review(url, [img], 'team-d')).toMatchObject({ images: [img], warnings: [`layover: c0: namespace team-d may not pull it through layover (HTTP 401); ${img} left unchanged`] });
  });
});

describe('prefetch on admission', () => {
  const arm64: Platform = { os: 'linux', architecture: 'arm64' };
  const cluster = (platforms: Platform[]): ClusterFacts => ({ daemonSetReadyPods: async () => 1, nodePlatforms: async () => platforms });

  it('pulls the admitted image’s blobs for the nodes’ platforms into the registry, which finishes each download after the webhook hangs up', async () => {
    const index = await makeOciIndex(`${tmp.path}/multi`, { layers: [400_000, 500_000], tag: 'v2', seed: 'prefetch-multi' });
    await skopeoCopy(index.ref, `docker://${upstream.host}/team/multi:v2`, { all: true });
    const [amd, arm] = index.images as [OciImage, OciImage];
    const blobsOf = (img: OciImage) => [img.config.digest, ...img.layers.map((l) => l.digest)];
    const armOnly = blobsOf(arm).filter((d) => !blobsOf(amd).includes(d));
    const amdOnly = blobsOf(amd).filter((d) => !blobsOf(arm).includes(d));
    expect(amdOnly.length).toBeGreaterThan(0);

    const url = await webhook({ prefetch: true }, { cluster: cluster([arm64]) });
    upstreamRelay.reset();
    registryRelay.reset();
    const { images } = await review(url, [`${upstreamRelay.host}/team/multi:v2`]);
    expect(images).toEqual(['127.0.0.1:5005/up/team/multi:v2']);
    const fetched = () => blobsOf(arm).filter((d) => upstreamRelay.count('GET', `/v2/team/multi/blobs/${d}`) > 0).length;
    await expect.poll(fetched, { timeout: 10_000, interval: 100 }).toBe(blobsOf(arm).length);
    for (const d of amdOnly) expect(upstreamRelay.count('GET', `/v2/team/multi/blobs/${d}`)).toBe(0);

    // The registry finishes each download alone: kubelet's later pull costs the upstream nothing more.
    const credentials = await mint('team-a');
    const headers = { authorization: `Basic ${Buffer.from(`${credentials!.username}:${credentials!.password}`).toString('base64')}` };
    await expect.poll(async () => {
      const before = upstreamRelay.count('GET', /\/blobs\//);
      for (const d of blobsOf(arm)) expect((await getBytes(`${layover.url}/v2/up/team/multi/blobs/${d}`, { headers })).status).toBe(200);
      return upstreamRelay.count('GET', /\/blobs\//) - before;
    }, { timeout: 10_000, interval: 200 }).toBe(0);
    expect(armOnly.length).toBeGreaterThan(0);

    // A second Pod of the same image is not prefetched again; a dry run is never prefetched.
    const blobGets = registryRelay.count('GET', /\/blobs\//);
    await review(url, [`${upstreamRelay.host}/team/multi:v2`]);
    await review(url, [`${upstreamRelay.host}/team/app:v1`], 'team-a', { dryRun: true });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(registryRelay.count('GET', /\/blobs\//)).toBe(blobGets);
  });

  it('webhook.prefetch: false asks the registry for nothing beyond the check', async () => {
    const url = await webhook({ prefetch: false }, { cluster: cluster([]) });
    registryRelay.reset();
    expect((await review(url, [`${upstreamRelay.host}/team/app:v1`], 'team-e')).images).toEqual(['127.0.0.1:5005/up/team/app:v1']);
    await new Promise((resolve) => setTimeout(resolve, 300));
    // (/v2/ itself is the health check.)
    expect(registryRelay.requests().filter((r) => r.path !== '/v2/').map((r) => `${r.method} ${r.path}`)).toEqual(['HEAD /v2/up/team/app/manifests/v1']);
  });
});

describe('bad input', () => {
  it('answers garbage with 400 and keeps serving', async () => {
    const url = await webhook({});
    for (const body of ['{"apiVersion":', '[]', '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"CREATE","object":{"spec":{"containers":[{"name":"__proto__","image":7}]}}}}']) {
      const res = await request(`${url}/mutate`, { method: 'POST', dispatcher: insecure, headers: { 'content-type': 'application/json' }, body });
      expect(res.statusCode).toBeLessThan(500);
      await res.body.dump();
    }
    expect((await review(url, [`${upstreamRelay.host}/team/app:v1`])).images).toEqual(['127.0.0.1:5005/up/team/app:v1']);
  });
});

