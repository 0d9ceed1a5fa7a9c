// End to end on kind, as the README's "Installing on a cluster" has an admin do it: build the
// image, load it, apply deploy/overlays/kind, label a namespace, push as a developer, run Pods.
// Once per kube-proxy mode (iptables, ipvs, nftables): nodes pull through the node role on
// 127.0.0.1, which must not depend on what kube-proxy does with localhost. The upstream registry
// runs inside the cluster on the node's host network (a second layover, auth off), so no test
// image comes from the internet. Where no Docker engine runs the whole suite is skipped, and
// says so.
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { skopeoCopy, type Creds } from '../helpers/skopeo.js';
import { makeTempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait-for.js';
import { buildImage, createCluster, dockerUnavailable, requireTools, saveImage, type Cluster } from './cluster.js';
import { KUBE_PROXY_MODES, UPSTREAM, kindClusterFor, readKindCluster, render, upstreamObjects, withUpstream, type K8sObject, type KubeProxyMode } from './manifests.js';

const IMAGE = 'layover:dev';
const REGISTRY_NODE_PORT = 30500;
/** The node role (DaemonSet layover-node) on every node's loopback. */
const NODE_HOST = '127.0.0.1:5005';
const MIRROR = 'upstream.test';
/** What a Pod author writes: the upstream as every node reaches it (host network, loopback). */
const UPSTREAM_IMAGE = `127.0.0.1:${UPSTREAM.hostPort}/e2e/app:1`;
const MIRRORED_IMAGE = `${NODE_HOST}/${MIRROR}/e2e/app:1`;
const PUSHED_IMAGE = `${NODE_HOST}/alice/app:1`;
const LABELLED = 'alice';
const UNLABELLED = 'e2e-plain';
const MINUTE = 60_000;

const skipReason = await dockerUnavailable();
const DOCKER_AT = process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock';
const SKIP_NOTE = skipReason && `no Docker engine at ${DOCKER_AT} (${skipReason}): kind cannot run, so the end-to-end suite is skipped`;
if (SKIP_NOTE) console.warn(`test/e2e: SKIPPED: ${SKIP_NOTE}`);
const needsDocker = (ctx: TestContext) => ctx.skip(Boolean(SKIP_NOTE), SKIP_NOTE);

interface Pod {
  metadata: { annotations?: Record<string, string> };
  spec: { containers: Array<{ image: string }>; imagePullSecrets?: Array<{ name: string }> };
  status: { phase?: string; containerStatuses?: Array<{ imageID: string }> };
}

function pod(name: string, namespace: string, image: string, extra: { labels?: Record<string, string>; nodeSelector?: Record<string, string> } = {}): K8sObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, ...(extra.labels && { labels: extra.labels }) },
    spec: {
      ...(extra.nodeSelector && { nodeSelector: extra.nodeSelector }),
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

/** The image is built and saved once, for every mode's cluster. */
let imageArchive: Promise<string> | undefined;
const archiveDir = makeTempDir('layover-e2e-image-');
function savedImage(): Promise<string> {
  imageArchive ??= (async () => {
    await requireTools();
    await buildImage(IMAGE);
    return saveImage(IMAGE, archiveDir.path);
  })();
  return imageArchive;
}
afterAll(() => archiveDir.cleanup());

/** One cluster in one kube-proxy mode, set up as an admin would; everything a mode's tests need. */
interface Setup { cluster: Cluster; registryUrl: string; upstreamUrl: string; admin: Creds; archive: string }

async function setUp(mode: KubeProxyMode): Promise<Setup> {
  const archive = await savedImage();
  const [registryPort, upstreamPort] = [await freePort(), await freePort()];
  const ports = new Map([[REGISTRY_NODE_PORT, registryPort], [UPSTREAM.hostPort, upstreamPort]]);
  const cluster = await createCluster(kindClusterFor(await readKindCluster(), mode, ports), mode);
  try {
    await cluster.loadImage(archive);
    await cluster.apply(upstreamObjects(IMAGE));
    // deploy/overlays/kind as it is (the node DaemonSet comes from the base), plus the in-cluster upstream.
    const upstream = { prefix: MIRROR, url: `http://${UPSTREAM.name}.${UPSTREAM.namespace}.svc:${UPSTREAM.port}`, aliases: [`127.0.0.1:${UPSTREAM.hostPort}`] };
    const objects = withUpstream(await render('deploy/overlays/kind'), upstream);
    await cluster.apply(objects);
    const nodeRole = objects.find((o) => o.kind === 'DaemonSet' && o.metadata.name === 'layover-node');
    if (!nodeRole) throw new Error('deploy/overlays/kind renders no DaemonSet layover-node (the node role)');
    const rollouts: Array<[string, string]> = [
      ['layover', 'statefulset/layover-registry'],
      ['layover', 'deployment/layover-webhook'],
      [nodeRole.metadata.namespace ?? 'layover', 'daemonset/layover-node'],
      [UPSTREAM.namespace, `deployment/${UPSTREAM.name}`],
    ];
    for (const [namespace, workload] of rollouts) await cluster.kubectl(['-n', namespace, 'rollout', 'status', workload, '--timeout=300s']);
    const password = (await cluster.kubectl(['-n', 'layover', 'exec', 'layover-registry-0', '--', 'cat', '/var/lib/layover/_auth/admin-password'])).trim();
    // The upstream's content: the image just built, from the saved archive.
    await skopeoCopy(`docker-archive:${archive}`, `docker://127.0.0.1:${upstreamPort}/e2e/app:1`);
    return { cluster, registryUrl: `http://127.0.0.1:${registryPort}`, upstreamUrl: `http://127.0.0.1:${upstreamPort}`, admin: { user: 'admin', password }, archive };
  } catch (err) {
    await cluster.delete().catch(() => undefined);
    throw err;
  }
}

describe.each(KUBE_PROXY_MODES)('layover on kind, kube-proxy in %s mode (deploy/overlays/kind)', (mode) => {
  let setup: Setup | undefined;
  const alice: Creds = { user: 'alice', password: `e2e-${process.pid}-${Date.now()}` };

  const env = (): Setup => {
    if (!setup) throw new Error('no cluster (set-up failed)');
    return setup;
  };
  const kube = () => env().cluster;
  const getPod = (namespace: string, name: string) => kube().kubectlJson<Pod>(['-n', namespace, 'get', 'pod', name]);
  /** What admission makes of a Pod, without creating it. */
  const admitted = (p: K8sObject) => kube().kubectlJson<Pod>(['create', '--dry-run=server', '-f', '-'], JSON.stringify(p));
  const runPod = async (p: K8sObject): Promise<Pod> => {
    await kube().apply([p]);
    const { name, namespace = 'default' } = p.metadata;
    await kube().kubectl(['-n', namespace, 'wait', '--for=jsonpath={.status.phase}=Running', `pod/${name}`, '--timeout=180s']);
    return getPod(namespace, name);
  };
  const metric = async (name: string, labels: Record<string, string>) => counter(await (await fetch(`${env().registryUrl}/metrics`)).text(), name, labels);
  const basic = (c: Creds) => `Basic ${Buffer.from(`${c.user}:${c.password}`).toString('base64')}`;

  beforeAll(async () => {
    if (SKIP_NOTE) return;
    setup = await setUp(mode);
  }, 40 * MINUTE);

  afterAll(async () => {
    await setup?.cluster.delete();
  }, 5 * MINUTE);

  it('kube-proxy runs in this mode; the registry, the node role and the webhook come up, the webhook\'s CA in the caBundle', async (ctx) => {
    needsDocker(ctx);
    const proxyConfig = await kube().kubectl(['-n', 'kube-system', 'get', 'configmap', 'kube-proxy', '-o', 'jsonpath={.data.config\\.conf}']);
    expect(proxyConfig).toMatch(new RegExp(`^mode: "?${mode}"?$`, 'm'));
    for (const probe of ['/healthz', '/readyz']) expect((await fetch(`${env().registryUrl}${probe}`)).status).toBe(200);
    expect((await fetch(`${env().registryUrl}/v2/`)).status).toBe(401);
    // The first admin, whose password the first start wrote to the volume (README: read it with kubectl exec).
    expect((await fetch(`${env().registryUrl}/v2/`, { headers: { authorization: basic(env().admin) } })).status).toBe(200);
    const caBundle = await waitFor(async () => (await kube().kubectl(['get', 'mutatingwebhookconfiguration', 'layover', '-o', 'jsonpath={.webhooks[0].clientConfig.caBundle}'])).trim() || undefined, 2 * MINUTE, 1_000);
    expect(Buffer.from(caBundle, 'base64').toString()).toMatch(/BEGIN CERTIFICATE/);
  }, 5 * MINUTE);

  it('least privilege: the registry\'s ServiceAccount may create the pull secret, but no ServiceAccount token Secret in kube-system', async (ctx) => {
    needsDocker(ctx);
    const asController = ['--as', 'system:serviceaccount:layover:layover-registry'];
    const stolen = ['-n', 'kube-system', 'create', 'secret', 'generic', 'stolen', '--type', 'kubernetes.io/service-account-token'];
    // RBAC lets it create Secrets anywhere; the ValidatingAdmissionPolicy refuses this one (once the apiserver has loaded it).
    await waitFor(async () => (await kube().kubectl([...asController, ...stolen]).then(() => 'created', (err: Error) => err.message)).includes('layover-secret-writes') || undefined, MINUTE, 2_000);
    await expect(kube().kubectl(['-n', 'kube-system', 'get', 'secret', 'stolen'])).rejects.toThrow(/NotFound/);
    await kube().kubectl(['create', 'namespace', 'e2e-policy']);
    await kube().kubectl([...asController, '-n', 'e2e-policy', 'create', 'secret', 'docker-registry', 'layover-pull', '--docker-server', NODE_HOST, '--docker-username', 'u', '--docker-password', 'p']);
    await expect(kube().kubectl([...asController, '-n', 'e2e-policy', 'create', 'secret', 'docker-registry', 'other', '--docker-server', NODE_HOST, '--docker-username', 'u', '--docker-password', 'p'])).rejects.toThrow(/layover-secret-writes/);
    await kube().kubectl(['delete', 'namespace', 'e2e-policy', '--wait=false']);
  }, 5 * MINUTE);

  it('a developer account pushes into its own namespace', async (ctx) => {
    needsDocker(ctx);
    await kube().kubectl(['-n', 'layover', 'exec', '-i', 'layover-registry-0', '--', 'node', '/app/bin/layover.js', 'user', 'add', alice.user, '--password-stdin', '--config', '/etc/layover/config.yaml'], alice.password);
    // The users file is reloaded on change.
    await waitFor(async () => (await fetch(`${env().registryUrl}/v2/`, { headers: { authorization: basic(alice) } })).status === 200, MINUTE, 500);
    await skopeoCopy(`docker-archive:${env().archive}`, `docker://127.0.0.1:${new URL(env().registryUrl).port}/alice/app:1`, { destCreds: alice });
    const tags = await fetch(`${env().registryUrl}/v2/alice/app/tags/list`, { headers: { authorization: basic(alice) } });
    expect(await tags.json()).toMatchObject({ tags: ['1'] });
  }, 10 * MINUTE);

  it('a labelled namespace gets the pull secret for the node role\'s address', async (ctx) => {
    needsDocker(ctx);
    await kube().kubectl(['create', 'namespace', LABELLED]);
    await kube().kubectl(['label', 'namespace', LABELLED, 'layover.dev/mirror=enabled']);
    const secret = await waitFor(() => kube().kubectlJson<{ type: string; data: Record<string, string> }>(['-n', LABELLED, 'get', 'secret', 'layover-pull']), 2 * MINUTE, 1_000);
    expect(secret.type).toBe('kubernetes.io/dockerconfigjson');
    const config = JSON.parse(Buffer.from(secret.data['.dockerconfigjson'] ?? '', 'base64').toString()) as { auths: Record<string, unknown> };
    expect(Object.keys(config.auths)).toContain(NODE_HOST);
  }, 5 * MINUTE);

  it('prefetch: once a rewritten Pod is admitted, the registry fetches its layers before any node pulls', async (ctx) => {
    needsDocker(ctx);
    // The webhook rewrites once the image resolves through layover and the node role is ready.
    await waitFor(async () => (await admitted(pod('probe', LABELLED, UPSTREAM_IMAGE))).spec.containers[0]?.image === MIRRORED_IMAGE, 3 * MINUTE, 2_000);
    const res = await fetch(`${env().upstreamUrl}/v2/e2e/app/manifests/1`, { headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json' } });
    const { layers } = (await res.json()) as { layers: Array<{ digest: string; size: number }> };
    const fetchedBefore = await metric('layover_cache_misses_total', { upstream: MIRROR, kind: 'blob' });
    // A Pod no node can take: admitted (and so prefetched), never pulled.
    await kube().apply([pod('unschedulable', LABELLED, UPSTREAM_IMAGE, { nodeSelector: { 'layover.dev/e2e': 'no-such-node' } })]);
    expect((await getPod(LABELLED, 'unschedulable')).spec.containers[0]?.image).toBe(MIRRORED_IMAGE);
    await waitFor(async () => (await metric('layover_cache_misses_total', { upstream: MIRROR, kind: 'blob' })) - fetchedBefore >= layers.length || undefined, 3 * MINUTE, 2_000);
    expect((await getPod(LABELLED, 'unschedulable')).status.phase).toBe('Pending');
  }, 10 * MINUTE);

  it('Pods there are rewritten to the node role, get the pull secret, and run on images pulled through it', async (ctx) => {
    needsDocker(ctx);
    const servedBefore = await metric('layover_client_bytes_total', { route: 'blob' });
    const mirrored = await runPod(pod('from-upstream', LABELLED, UPSTREAM_IMAGE));
    expect(mirrored.spec.containers[0]?.image).toBe(MIRRORED_IMAGE);
    expect(mirrored.spec.imagePullSecrets).toContainEqual({ name: 'layover-pull' });
    expect(mirrored.metadata.annotations?.['layover.dev/original-images']).toContain(UPSTREAM_IMAGE);
    // The node pulled from 127.0.0.1:5005 (nothing else listens there), and the registry served the layers.
    expect(mirrored.status.containerStatuses?.[0]?.imageID.startsWith(`${NODE_HOST}/${MIRROR}/e2e/app@sha256:`)).toBe(true);
    expect(await metric('layover_client_bytes_total', { route: 'blob' }) - servedBefore).toBeGreaterThan(0);

    const pushed = await runPod(pod('pushed', LABELLED, PUSHED_IMAGE));
    expect(pushed.spec.containers[0]?.image).toBe(PUSHED_IMAGE);
    expect(pushed.spec.imagePullSecrets).toContainEqual({ name: 'layover-pull' });
    // Same content as the mirrored image: containerd may report either name's digest, both on the node role.
    expect(pushed.status.containerStatuses?.[0]?.imageID.startsWith(`${NODE_HOST}/`)).toBe(true);
  }, 10 * MINUTE);

  it('opt-out: a Pod labelled layover.dev/skip, and any Pod of an unlabelled namespace, keep their image and pull from the upstream directly', async (ctx) => {
    needsDocker(ctx);
    const skipped = await runPod(pod('skipped', LABELLED, UPSTREAM_IMAGE, { labels: { 'layover.dev/skip': 'true' } }));
    expect(skipped.spec.containers[0]?.image).toBe(UPSTREAM_IMAGE);
    expect(skipped.metadata.annotations?.['layover.dev/original-images']).toBeUndefined();

    await kube().kubectl(['create', 'namespace', UNLABELLED]);
    const plain = await runPod(pod('plain', UNLABELLED, UPSTREAM_IMAGE));
    expect(plain.spec.containers[0]?.image).toBe(UPSTREAM_IMAGE);
    expect(plain.spec.imagePullSecrets).toBeUndefined();
    expect(plain.metadata.annotations?.['layover.dev/original-images']).toBeUndefined();
    await expect(kube().kubectl(['-n', UNLABELLED, 'get', 'secret', 'layover-pull'])).rejects.toThrow(/NotFound/);
  }, 5 * MINUTE);

  it('fail-open: with the registry scaled to zero, new Pods keep their original images and start; a Pod already on the mirror keeps its pull secret', async (ctx) => {
    needsDocker(ctx);
    await kube().kubectl(['-n', 'layover', 'scale', 'statefulset/layover-registry', '--replicas=0']);
    await kube().kubectl(['-n', 'layover', 'wait', '--for=delete', 'pod/layover-registry-0', '--timeout=120s']);
    // The webhook notices within seconds (the image no longer resolves, the node role turns unready).
    await waitFor(async () => (await admitted(pod('probe', LABELLED, UPSTREAM_IMAGE))).spec.containers[0]?.image === UPSTREAM_IMAGE, 2 * MINUTE, 2_000);
    const started = await runPod(pod('fail-open', LABELLED, UPSTREAM_IMAGE));
    expect(started.spec.containers[0]?.image).toBe(UPSTREAM_IMAGE);
    expect(started.status.phase).toBe('Running');
    // imagePullSecrets cannot be added later: a Pod that references the mirror gets it whatever the registry's health.
    expect((await admitted(pod('on-mirror', LABELLED, MIRRORED_IMAGE))).spec.imagePullSecrets).toContainEqual({ name: 'layover-pull' });
    await expect(fetch(`${env().registryUrl}/v2/`, { signal: AbortSignal.timeout(5_000) })).rejects.toThrow();
  }, 5 * MINUTE);
});
