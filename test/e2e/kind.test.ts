// End to end on a kind cluster, as the README's "Installing on a cluster" has an admin do it:
// build and load the image, apply deploy/overlays/kind, label a namespace, push as a developer,
// run Pods. The upstream registry runs inside the cluster (a second layover, auth off, on
// NodePort 30501) so that no test image comes from the internet. Where no Docker engine runs
// the whole suite is skipped, and says so.
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { skopeoCopy, type Creds } from '../helpers/skopeo.js';
import { waitFor } from '../helpers/wait-for.js';
import { buildImage, createCluster, dockerUnavailable, requireKind, type Cluster } from './cluster.js';
import { UPSTREAM, kindClusterWithPorts, readKindCluster, render, upstreamObjects, withUpstream, type K8sObject } from './manifests.js';

const IMAGE = 'layover:dev';
const REGISTRY_NODE_PORT = 30500;
const UPSTREAM_NODE_PORT = 30501;
const MIRROR = 'upstream.test';
/** What a Pod author writes: the upstream as every node reaches it. */
const UPSTREAM_IMAGE = `localhost:${UPSTREAM_NODE_PORT}/e2e/app:1`;
const MIRRORED_IMAGE = `localhost:${REGISTRY_NODE_PORT}/${MIRROR}/e2e/app:1`;
const PUSHED_IMAGE = `localhost:${REGISTRY_NODE_PORT}/alice/app:1`;
const LABELLED = 'alice';
const UNLABELLED = 'e2e-plain';
const MINUTE = 60_000;

const skipReason = await dockerUnavailable();
const SKIP_NOTE = skipReason && `no Docker engine (${skipReason}): kind cannot run, so the end-to-end suite is skipped`;
if (SKIP_NOTE) console.warn(`test/e2e: SKIPPED: ${SKIP_NOTE}`);
const needsDocker = (ctx: TestContext) => ctx.skip(Boolean(SKIP_NOTE), SKIP_NOTE);

interface Pod { metadata: { annotations?: Record<string, string> }; spec: { containers: Array<{ image: string }>; imagePullSecrets?: Array<{ name: string }> }; status: { phase?: string } }

function pod(name: string, namespace: string, image: string): K8sObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace },
    spec: {
      securityContext: { runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: 'RuntimeDefault' } },
      containers: [{
        name: 'app',
        image,
        command: ['node', '-e', 'setInterval(() => {}, 1 << 30)'],
        securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
      }],
    },
  };
}

/** The sum of a Prometheus counter's samples whose labels include `labels`. */
function counter(metrics: string, name: string, labels: Record<string, string>): number {
  let sum = 0;
  for (const line of metrics.split('\n')) {
    const match = /^(\w+)\{(.*)\} (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = Object.fromEntries([...(match[2] as string).matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(match[3]);
  }
  return sum;
}

describe('layover on kind (deploy/overlays/kind)', () => {
  let cluster: Cluster | undefined;
  let registryUrl = '';
  let upstreamUrl = '';
  let admin: Creds;
  const alice: Creds = { user: 'alice', password: `e2e-${process.pid}-${Date.now()}` };

  const kube = () => {
    if (!cluster) throw new Error('no cluster (set-up failed)');
    return cluster;
  };
  const getPod = (namespace: string, name: string) => kube().kubectlJson<Pod>(['-n', namespace, 'get', 'pod', name]);
  /** What admission makes of a Pod, without creating it. */
  const admitted = (p: K8sObject) => kube().kubectlJson<Pod>(['create', '--dry-run=server', '-f', '-'], JSON.stringify(p));
  const runPod = async (p: K8sObject): Promise<Pod> => {
    await kube().apply([p]);
    const { name, namespace = 'default' } = p.metadata;
    await kube().kubectl(['-n', namespace, 'wait', '--for=jsonpath={.status.phase}=Running', `pod/${name}`, '--timeout=180s']);
    return getPod(namespace, name);
  };

  beforeAll(async () => {
    if (SKIP_NOTE) return;
    requireKind();
    const [registryPort, upstreamPort] = [await freePort(), await freePort()];
    registryUrl = `http://127.0.0.1:${registryPort}`;
    upstreamUrl = `http://127.0.0.1:${upstreamPort}`;
    await buildImage(IMAGE);
    cluster = await createCluster(kindClusterWithPorts(await readKindCluster(), new Map([[REGISTRY_NODE_PORT, registryPort], [UPSTREAM_NODE_PORT, upstreamPort]])));
    await cluster.loadImage(IMAGE);
    await cluster.apply(upstreamObjects(IMAGE, UPSTREAM_NODE_PORT));
    // deploy/overlays/kind as it is, plus the in-cluster upstream in both configurations.
    const upstream = { prefix: MIRROR, url: `http://${UPSTREAM.name}.${UPSTREAM.namespace}.svc:${UPSTREAM.port}`, aliases: [`localhost:${UPSTREAM_NODE_PORT}`] };
    await cluster.apply(withUpstream(await render('deploy/overlays/kind'), upstream));
    for (const [namespace, workload] of [['layover', 'statefulset/layover-registry'], ['layover', 'deployment/layover-webhook'], [UPSTREAM.namespace, `deployment/${UPSTREAM.name}`]]) {
      await cluster.kubectl(['-n', namespace as string, 'rollout', 'status', workload as string, '--timeout=300s']);
    }
    const password = (await cluster.kubectl(['-n', 'layover', 'exec', 'layover-registry-0', '--', 'cat', '/var/lib/layover/_auth/admin-password'])).trim();
    admin = { user: 'admin', password };
    // The upstream's content: the image just built.
    await skopeoCopy(`docker-daemon:${IMAGE}`, `docker://127.0.0.1:${upstreamPort}/e2e/app:1`, { extra: process.env.DOCKER_HOST ? ['--src-daemon-host', process.env.DOCKER_HOST] : [] });
  }, 30 * MINUTE);

  afterAll(async () => {
    await cluster?.delete();
  }, 5 * MINUTE);

  it('the registry and the webhook come up: probes, the first admin, the webhook\'s CA in the MutatingWebhookConfiguration', async (ctx) => {
    needsDocker(ctx);
    for (const probe of ['/healthz', '/readyz']) expect((await fetch(`${registryUrl}${probe}`)).status).toBe(200);
    expect((await fetch(`${registryUrl}/v2/`)).status).toBe(401);
    // The first admin, whose password the first start wrote to the volume (README: read it with kubectl exec).
    const basic = `Basic ${Buffer.from(`${admin.user}:${admin.password}`).toString('base64')}`;
    expect((await fetch(`${registryUrl}/v2/`, { headers: { authorization: basic } })).status).toBe(200);
    const caBundle = await waitFor(async () => (await kube().kubectl(['get', 'mutatingwebhookconfiguration', 'layover', '-o', 'jsonpath={.webhooks[0].clientConfig.caBundle}'])).trim() || undefined, 2 * MINUTE, 1_000);
    expect(Buffer.from(caBundle, 'base64').toString()).toMatch(/BEGIN CERTIFICATE/);
  }, 5 * MINUTE);

  it('a developer account pushes into its own namespace', async (ctx) => {
    needsDocker(ctx);
    await kube().kubectl(['-n', 'layover', 'exec', '-i', 'layover-registry-0', '--', 'node', '/app/bin/layover.js', 'user', 'add', alice.user, '--password-stdin', '--config', '/etc/layover/config.yaml'], alice.password);
    const basic = `Basic ${Buffer.from(`${alice.user}:${alice.password}`).toString('base64')}`;
    // The users file is reloaded on change.
    await waitFor(async () => (await fetch(`${registryUrl}/v2/`, { headers: { authorization: basic } })).status === 200, MINUTE, 500);
    await skopeoCopy(`docker://127.0.0.1:${new URL(upstreamUrl).port}/e2e/app:1`, `docker://127.0.0.1:${new URL(registryUrl).port}/alice/app:1`, { destCreds: alice });
    const tags = await fetch(`${registryUrl}/v2/alice/app/tags/list`, { headers: { authorization: basic } });
    expect(await tags.json()).toMatchObject({ tags: ['1'] });
  }, 10 * MINUTE);

  it('a labelled namespace gets the pull secret for the registry\'s NodePort', async (ctx) => {
    needsDocker(ctx);
    await kube().kubectl(['create', 'namespace', LABELLED]);
    await kube().kubectl(['label', 'namespace', LABELLED, 'layover.dev/mirror=enabled']);
    const secret = await waitFor(() => kube().kubectlJson<{ type: string; data: Record<string, string> }>(['-n', LABELLED, 'get', 'secret', 'layover-pull']), 2 * MINUTE, 1_000);
    expect(secret.type).toBe('kubernetes.io/dockerconfigjson');
    const config = JSON.parse(Buffer.from(secret.data['.dockerconfigjson'] ?? '', 'base64').toString()) as { auths: Record<string, unknown> };
    expect(Object.keys(config.auths)).toContain(`localhost:${REGISTRY_NODE_PORT}`);
  }, 5 * MINUTE);

  it('Pods there are rewritten to the mirror, get the pull secret, run, and the mirror fetched and served the layers', async (ctx) => {
    needsDocker(ctx);
    // The webhook rewrites once it knows the NodePort and sees the registry up.
    await waitFor(async () => (await admitted(pod('probe', LABELLED, UPSTREAM_IMAGE))).spec.containers[0]?.image === MIRRORED_IMAGE, 2 * MINUTE, 2_000);
    const res = await fetch(`${upstreamUrl}/v2/e2e/app/manifests/1`, { headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json' } });
    const { layers } = (await res.json()) as { layers: Array<{ digest: string; size: number }> };
    const layerBytes = layers.reduce((sum, l) => sum + l.size, 0);
    const metric = async (name: string, labels: Record<string, string>) => counter(await (await fetch(`${registryUrl}/metrics`)).text(), name, labels);
    const fetchedBefore = await metric('layover_cache_misses_total', { upstream: MIRROR, kind: 'blob' });
    const servedBefore = await metric('layover_client_bytes_total', { route: 'blob' });

    const mirrored = await runPod(pod('from-upstream', LABELLED, UPSTREAM_IMAGE));
    expect(mirrored.spec.containers[0]?.image).toBe(MIRRORED_IMAGE);
    expect(mirrored.spec.imagePullSecrets).toContainEqual({ name: 'layover-pull' });
    expect(mirrored.metadata.annotations?.['layover.dev/original-images']).toContain(UPSTREAM_IMAGE);
    // The node pulled every layer from layover, which fetched each from the upstream.
    expect(await metric('layover_cache_misses_total', { upstream: MIRROR, kind: 'blob' }) - fetchedBefore).toBeGreaterThanOrEqual(layers.length);
    expect(await metric('layover_client_bytes_total', { route: 'blob' }) - servedBefore).toBeGreaterThanOrEqual(layerBytes);

    const pushed = await runPod(pod('pushed', LABELLED, PUSHED_IMAGE));
    expect(pushed.spec.containers[0]?.image).toBe(PUSHED_IMAGE);
    expect(pushed.spec.imagePullSecrets).toContainEqual({ name: 'layover-pull' });
  }, 10 * MINUTE);

  it('a Pod in an unlabelled namespace is left as written and pulls from the upstream directly', async (ctx) => {
    needsDocker(ctx);
    await kube().kubectl(['create', 'namespace', UNLABELLED]);
    const plain = await runPod(pod('plain', UNLABELLED, UPSTREAM_IMAGE));
    expect(plain.spec.containers[0]?.image).toBe(UPSTREAM_IMAGE);
    expect(plain.spec.imagePullSecrets).toBeUndefined();
    expect(plain.metadata.annotations?.['layover.dev/original-images']).toBeUndefined();
    await expect(kube().kubectl(['-n', UNLABELLED, 'get', 'secret', 'layover-pull'])).rejects.toThrow(/NotFound/);
  }, 5 * MINUTE);

  it('fail-open: with the registry scaled to zero, new Pods keep their original images and still start', async (ctx) => {
    needsDocker(ctx);
    await kube().kubectl(['-n', 'layover', 'scale', 'statefulset/layover-registry', '--replicas=0']);
    await kube().kubectl(['-n', 'layover', 'wait', '--for=delete', 'pod/layover-registry-0', '--timeout=120s']);
    // The webhook's health check notices within seconds; until then it may still rewrite.
    await waitFor(async () => (await admitted(pod('probe', LABELLED, UPSTREAM_IMAGE))).spec.containers[0]?.image === UPSTREAM_IMAGE, 2 * MINUTE, 2_000);
    const started = await runPod(pod('fail-open', LABELLED, UPSTREAM_IMAGE));
    expect(started.spec.containers[0]?.image).toBe(UPSTREAM_IMAGE);
    expect(started.status.phase).toBe('Running');
    await expect(fetch(`${registryUrl}/v2/`, { signal: AbortSignal.timeout(5_000) })).rejects.toThrow();
  }, 5 * MINUTE);
});
