// The webhook over real HTTPS, with certificates from certs/make-webhook-cert.sh (openssl) and
// from the in-process selfsigned mode, fed AdmissionReview v1 bodies around Pods that Debian's
// kubectl produced, a real docker-registry as the registry whose health decides fail-open, and
// a certificate rotation done the way kubelet updates a Secret volume.
import { createServer, type Server } from 'node:http';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { connect } from 'node:tls';
import jsonpatch from 'fast-json-patch';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig } from '../../src/config/resolve.js';
import type { RawConfig } from '../../src/config/schema.js';
import type { EventSpec, Kube, NamespaceHandlers, SecretObject } from '../../src/k8s/kube.js';
import { createLogger } from '../../src/log.js';
import { startHealthCheck, type RegistryHealth } from '../../src/webhook/health.js';
import type { ResolveChecker } from '../../src/webhook/resolve-check.js';
import { startWebhook, type WebhookServer } from '../../src/webhook/server.js';
import type { Pod } from '../../src/webhook/types.js';
import { admissionReview, apiserverDefaults, type Json } from '../fixtures/pods/admission.js';
import { startDockerRegistry, type DockerRegistry } from '../helpers/docker-registry.js';
import { requireTool, runTool } from '../helpers/run-tool.js';
import { makeTempDir, type TempDir } from '../helpers/temp-dir.js';

const SERVICE_NAME = 'layover-webhook.layover.svc';
/** These tests are about the webhook's HTTPS and certificates: every image counts as resolving (webhook-resolve.test.ts checks that for real). */
const confirmAll: ResolveChecker = { check: async () => ({ ok: true }), close: async () => {} };
const SCRIPT = path.resolve('certs/make-webhook-cert.sh');
const logger = createLogger('silent');

/** `kubectl run` wants API discovery even for a client dry run: a loopback stub that knows Pods. */
async function startDiscoveryStub(): Promise<{ server: Server; url: string }> {
  const docs: Record<string, unknown> = {
    '/api': { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: '127.0.0.1' }] },
    '/apis': { kind: 'APIGroupList', apiVersion: 'v1', groups: [] },
    '/api/v1': { kind: 'APIResourceList', groupVersion: 'v1', resources: [{ name: 'pods', singularName: 'pod', namespaced: true, kind: 'Pod', verbs: ['create', 'get', 'list'] }] },
  };
  const server = createServer((req, res) => {
    const doc = docs[(req.url ?? '').split('?')[0] as string];
    res.writeHead(doc ? 200 : 404, { 'content-type': 'application/json' }).end(JSON.stringify(doc ?? {}));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

async function kubectlRun(stubUrl: string, args: string[]): Promise<Json> {
  const { stdout } = await runTool('kubectl', ['--server', stubUrl, 'run', ...args, '--dry-run=client', '-o', 'json'], { env: { ...process.env, KUBECONFIG: '/dev/null' } });
  return JSON.parse(stdout) as Json;
}

/** A directory laid out like a Secret volume: tls.crt → ..data/tls.crt, ..data → ..<version>. */
async function makeCertVersion(root: string, version: string, caDir?: string): Promise<string> {
  const dir = path.join(root, `..${version}`);
  await runTool('bash', [SCRIPT, '--out', dir, '--ip', '127.0.0.1', ...(caDir ? ['--ca-dir', caDir] : [])]);
  return dir;
}

function pointDataAt(root: string, version: string): void {
  // kubelet's AtomicWriter: a new symlink beside the old one, renamed over it in one step.
  const tmp = path.join(root, '..data_tmp');
  symlinkSync(`..${version}`, tmp);
  renameSync(tmp, path.join(root, '..data'));
}

async function post(url: string, agent: Agent, body: unknown, raw?: string) {
  const res = await request(`${url}/mutate`, {
    method: 'POST',
    dispatcher: agent,
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: raw ?? JSON.stringify(body),
  });
  return { status: res.statusCode, body: (await res.body.json()) as Json & { response?: Json & { uid: string; allowed: boolean; patchType?: string; patch?: string; warnings?: string[] }; error?: string } };
}

function applyResponse(pod: Json, response: { patch?: string } | undefined): Pod {
  const ops = response?.patch ? (JSON.parse(Buffer.from(response.patch, 'base64').toString()) as jsonpatch.Operation[]) : [];
  return jsonpatch.applyPatch(structuredClone(pod), ops, true, false).newDocument as Pod;
}

/** The certificate the server presents on a fresh TLS connection, verified against `ca`. */
function servedCertificate(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername: SERVICE_NAME, ca }, () => {
      const raw = socket.getPeerCertificate().raw;
      socket.end();
      resolve(new X509Certificate(raw).fingerprint256);
    });
    socket.once('error', reject);
  });
}

const RAW: RawConfig = {
  registry: { publicHost: 'localhost:30500' },
  auth: { enabled: true },
  upstreams: [
    { prefix: 'docker.io', url: 'https://registry-1.docker.io' },
    { prefix: 'ghcr.io', url: 'https://ghcr.io' },
    { prefix: 'quay.io', url: 'https://quay.io' },
  ],
};

describe('webhook over HTTPS with an openssl certificate', () => {
  let tmp: TempDir;
  let stub: { server: Server; url: string };
  let registry: DockerRegistry;
  let health: RegistryHealth;
  let webhook: WebhookServer;
  let agent: Agent;
  let port: number;

  beforeAll(async () => {
    requireTool('openssl');
    requireTool('kubectl', 'kubernetes-client');
    tmp = makeTempDir('layover-webhook-');
    const certs = path.join(tmp.path, 'certs');
    mkdirSync(certs);
    await makeCertVersion(certs, '2026_01_01_v1');
    pointDataAt(certs, '2026_01_01_v1');
    symlinkSync('..data/tls.crt', path.join(certs, 'tls.crt'));
    symlinkSync('..data/tls.key', path.join(certs, 'tls.key'));
    stub = await startDiscoveryStub();
    // With auth on, docker-registry answers /v2/ with 401: an answer, so healthy.
    registry = await startDockerRegistry({ htpasswd: { user: 'u', password: 'p' } });
    health = startHealthCheck({ url: `${registry.url}/v2/`, logger, intervalMs: 60_000 });
    expect(await health.refresh()).toBe(true);
    const config = defaultConfig({ ...RAW, webhook: { rewriteTarget: 'nodePort', listen: '127.0.0.1:0', tls: { cert: path.join(certs, 'tls.crt'), key: path.join(certs, 'tls.key') } } });
    webhook = await startWebhook(config, { logger, health, resolver: confirmAll });
    port = Number(new URL(webhook.url).port);
    agent = new Agent({ connect: { ca: readFileSync(path.join(certs, '..data', 'ca.crt')), servername: SERVICE_NAME } });
  });

  afterAll(async () => {
    await webhook?.close();
    await health?.close();
    await registry?.close();
    await agent?.close();
    stub?.server.close();
    tmp?.cleanup();
  });

  it('rewrites a `kubectl run` Pod, and the patch applies to exactly the Pod that was sent', async () => {
    const pod = apiserverDefaults(await kubectlRun(stub.url, ['web', '--image=nginx', '-n', 'team-a']), 'team-a');
    const review = admissionReview(pod);
    const { status, body } = await post(webhook.url, agent, review);
    expect(status).toBe(200);
    expect(body.apiVersion).toBe('admission.k8s.io/v1');
    expect(body.kind).toBe('AdmissionReview');
    expect(body.response).toMatchObject({ uid: (review.request as Json).uid, allowed: true, patchType: 'JSONPatch' });
    expect(body.response?.warnings).toBeUndefined();
    const out = applyResponse(pod, body.response);
    expect(out.spec?.containers?.[0]?.image).toBe('localhost:30500/docker.io/library/nginx:latest');
    expect(out.spec?.imagePullSecrets).toEqual([{ name: 'layover-pull' }]);
    expect(JSON.parse(out.metadata?.annotations?.['layover.dev/original-images'] ?? '{}')).toEqual({ containers: { web: 'nginx' } });
    expect(out.spec?.volumes).toEqual(pod.spec?.volumes);
    expect(out.spec?.tolerations).toEqual((pod.spec as Json).tolerations);

    // kube-apiserver reinvokes (reinvocationPolicy: IfNeeded) with the patched Pod: nothing more to do.
    const again = await post(webhook.url, agent, admissionReview(out as Json));
    expect(again.body.response).toEqual({ uid: expect.any(String), allowed: true });
  });

  it('rewrites init containers and keeps tag@digest and the Pod’s own pull secret', async () => {
    const digest = 'sha256:6a92cd1fcdc8d8cdec60f33dda4db2cb1fcdcacf3410a8e05b3741f44a9b5998';
    const overrides = { spec: { initContainers: [{ name: 'init', image: `busybox:1.36@${digest}`, command: ['true'] }], imagePullSecrets: [{ name: 'own-creds' }] } };
    const pod = apiserverDefaults(await kubectlRun(stub.url, ['multi', '-n', 'team-a', '--image=ghcr.io/a/b:1', `--overrides=${JSON.stringify(overrides)}`]), 'team-a');
    const { body } = await post(webhook.url, agent, admissionReview(pod));
    const out = applyResponse(pod, body.response);
    expect(out.spec?.initContainers?.[0]?.image).toBe(`localhost:30500/docker.io/library/busybox:1.36@${digest}`);
    expect(out.spec?.containers?.[0]?.image).toBe('localhost:30500/ghcr.io/a/b:1');
    expect(out.spec?.imagePullSecrets).toEqual([{ name: 'own-creds' }, { name: 'layover-pull' }]);
  });

  it('rewrites the image of an ephemeral container added with the pods/ephemeralcontainers subresource', async () => {
    const created = applyResponse(
      apiserverDefaults(await kubectlRun(stub.url, ['tool', '-n', 'team-a', '--image=ghcr.io/a/b:1']), 'team-a'),
      undefined,
    );
    const first = await post(webhook.url, agent, admissionReview(created as Json));
    const running = applyResponse(created as Json, first.body.response);
    const withDebug = structuredClone(running);
    withDebug.spec!.ephemeralContainers = [{ name: 'debugger-abcde', image: 'busybox', imagePullPolicy: 'Always', terminationMessagePath: '/dev/termination-log', terminationMessagePolicy: 'File', stdin: true, tty: true, targetContainerName: 'tool' }];
    const { body } = await post(webhook.url, agent, admissionReview(withDebug as Json, { operation: 'UPDATE', subResource: 'ephemeralcontainers', oldObject: running as Json }));
    const ops = JSON.parse(Buffer.from(body.response?.patch ?? '', 'base64').toString());
    expect(ops).toEqual([{ op: 'replace', path: '/spec/ephemeralContainers/0/image', value: 'localhost:30500/docker.io/library/busybox:latest' }]);
  });

  it('skips a Pod labelled with the opt-out label by kubectl', async () => {
    const pod = apiserverDefaults(await kubectlRun(stub.url, ['skip', '-n', 'team-a', '--image=nginx:1.27', '--labels=layover.dev/skip=true']), 'team-a');
    const { body } = await post(webhook.url, agent, admissionReview(pod));
    expect(body.response).toEqual({ uid: expect.any(String), allowed: true });
  });

  it('answers a dryRun review exactly like the real one (the webhook has no side effects)', async () => {
    const pod = apiserverDefaults(await kubectlRun(stub.url, ['web', '--image=quay.io/a/b:2', '-n', 'team-a']), 'team-a');
    const real = await post(webhook.url, agent, admissionReview(pod, { uid: 'same' }));
    const dry = await post(webhook.url, agent, admissionReview(pod, { uid: 'same', dryRun: true }));
    expect(dry.body).toEqual(real.body);
  });

  it('answers malformed bodies with 400 and a clear message, and keeps serving', async () => {
    const notJson = await post(webhook.url, agent, undefined, '{"apiVersion":');
    expect(notJson.status).toBe(400);
    expect(notJson.body.error).toMatch(/malformed AdmissionReview: .*JSON/i);
    const wrongVersion = await post(webhook.url, agent, { apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview', request: { uid: 'x' } });
    expect(wrongVersion).toEqual({ status: 400, body: { error: 'malformed AdmissionReview: apiVersion must be admission.k8s.io/v1, got "admission.k8s.io/v1beta1"' } });
    const noUid = await post(webhook.url, agent, { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { operation: 'CREATE' } });
    expect(noUid.status).toBe(400);
    expect(noUid.body.error).toMatch(/request.uid/);
    const notAPod = await post(webhook.url, agent, { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'd1', operation: 'CREATE', namespace: 'x', object: { kind: 'Deployment' } } });
    expect(notAPod).toEqual({ status: 200, body: { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: 'd1', allowed: true, warnings: ['layover: object is a Deployment, not a Pod; not changed'] } } });
    const health = await request(`${webhook.url}/healthz`, { dispatcher: agent });
    expect(health.statusCode).toBe(200);
    await health.body.dump();
  });

  it('exports decisions and latency as Prometheus metrics', async () => {
    const res = await request(`${webhook.url}/metrics`, { dispatcher: agent });
    const text = await res.body.text();
    expect(text).toMatch(/layover_webhook_decisions_total\{outcome="mutated",reason="rewritten"\} [1-9]/);
    expect(text).toMatch(/layover_webhook_decisions_total\{outcome="skipped",reason="opt-out"\} 1/);
    expect(text).toMatch(/layover_webhook_decisions_total\{outcome="rejected",reason="malformed"\} 3/);
    expect(text).toMatch(/layover_webhook_review_duration_seconds_count\{outcome="mutated"\} [1-9]/);
    expect(text).toMatch(/layover_webhook_registry_up 1/);
  });

  it('serves a new certificate after the Secret volume is swapped, without a restart', async () => {
    const certs = path.join(tmp.path, 'certs');
    const oldCa = readFileSync(path.join(certs, '..data', 'ca.crt'), 'utf8');
    const before = await servedCertificate(port, oldCa);
    // A new CA too, so only the new certificate can satisfy a client that trusts only it.
    const v2 = await makeCertVersion(certs, '2026_06_01_v2');
    const newCa = readFileSync(path.join(v2, 'ca.crt'), 'utf8');
    const expected = new X509Certificate(readFileSync(path.join(v2, 'tls.crt'))).fingerprint256;
    expect(expected).not.toBe(before);
    pointDataAt(certs, '2026_06_01_v2');
    await expect.poll(() => servedCertificate(port, newCa).catch(() => 'old'), { timeout: 5000, interval: 100 }).toBe(expected);
    await expect(servedCertificate(port, oldCa)).rejects.toThrow();
    // Reviews keep working on the new certificate.
    const fresh = new Agent({ connect: { ca: newCa, servername: SERVICE_NAME } });
    const pod = apiserverDefaults(await kubectlRun(stub.url, ['after', '--image=nginx:1.27', '-n', 'team-a']), 'team-a');
    const { body } = await post(webhook.url, fresh, admissionReview(pod));
    expect(applyResponse(pod, body.response).spec?.containers?.[0]?.image).toBe('localhost:30500/docker.io/library/nginx:1.27');
    await fresh.close();
    agent = new Agent({ connect: { ca: newCa, servername: SERVICE_NAME } });
  });

  it('fails open when the registry stops answering: original images, a warning, allowed', async () => {
    await registry.close();
    expect(await health.refresh()).toBe(false);
    const pod = apiserverDefaults(await kubectlRun(stub.url, ['web', '--image=nginx', '-n', 'team-a']), 'team-a');
    const { status, body } = await post(webhook.url, agent, admissionReview(pod));
    expect(status).toBe(200);
    expect(body.response).toEqual({ uid: expect.any(String), allowed: true, warnings: ['layover: registry localhost:30500 is unreachable; images left unchanged'] });
  });
});

class SelfSignedKube implements Kube {
  secrets = new Map<string, SecretObject>();
  caBundles: string[] = [];
  async readServiceNodePorts(namespace: string, name: string) {
    return namespace === 'layover' && name === 'layover-registry' ? [{ name: 'metrics', port: 9090 }, { name: 'registry', port: 5000, nodePort: 31234 }] : undefined;
  }
  async readSecret(namespace: string, name: string) {
    return this.secrets.get(`${namespace}/${name}`);
  }
  async createSecret(namespace: string, secret: SecretObject) {
    this.secrets.set(`${namespace}/${secret.metadata.name}`, { ...secret, metadata: { ...secret.metadata, resourceVersion: '1' } });
    return secret;
  }
  async replaceSecret(namespace: string, secret: SecretObject) {
    return this.createSecret(namespace, secret);
  }
  async deleteSecret() {}
  async createEvent(_ns: string, _e: EventSpec) {}
  async setWebhookCABundle(name: string, pem: string) {
    expect(name).toBe('layover');
    this.caBundles.push(pem);
  }
  async watchNamespaces(_h: NamespaceHandlers) {
    return { stop: async () => {}, list: () => [] };
  }
}

describe('webhook with the in-process selfsigned certificate', () => {
  it('rewrites nothing while the registry Service cannot be read (no guessed port)', async () => {
    const kube = new SelfSignedKube();
    kube.readServiceNodePorts = async () => undefined;
    const health: RegistryHealth = { healthy: () => true, refresh: async () => true, close: async () => {} };
    const webhook = await startWebhook(defaultConfig({ upstreams: RAW.upstreams, webhook: { rewriteTarget: 'nodePort', listen: '127.0.0.1:0', selfSigned: true } }), { logger, kube, health, resolver: confirmAll });
    const ca = Buffer.from(kube.secrets.get('layover/layover-webhook-tls')?.data?.['ca.crt'] ?? '', 'base64').toString();
    const agent = new Agent({ connect: { ca, servername: SERVICE_NAME } });
    try {
      const pod = apiserverDefaults({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { containers: [{ name: 'c', image: 'ghcr.io/a/b:1' }] } }, 'team-a');
      const { body } = await post(webhook.url, agent, admissionReview(pod));
      expect(body.response).toEqual({ uid: expect.any(String), allowed: true, warnings: ['layover: the registry public host is not known yet; images left unchanged'] });
    } finally {
      await agent.close();
      await webhook.close();
    }
  });


  it('makes a sha256 certificate, stores it, sets the caBundle, reads the NodePort, and reuses it on restart', async () => {
    const kube = new SelfSignedKube();
    const health: RegistryHealth = { healthy: () => true, refresh: async () => true, close: async () => {} };
    const config = defaultConfig({ upstreams: RAW.upstreams, webhook: { rewriteTarget: 'nodePort', listen: '127.0.0.1:0', selfSigned: true } });
    const first = await startWebhook(config, { logger, kube, health, resolver: confirmAll });
    try {
      const stored = kube.secrets.get('layover/layover-webhook-tls');
      expect(stored?.type).toBe('kubernetes.io/tls');
      const ca = Buffer.from(stored?.data?.['ca.crt'] ?? '', 'base64').toString();
      const cert = Buffer.from(stored?.data?.['tls.crt'] ?? '', 'base64').toString();
      expect(kube.caBundles).toEqual([ca]);
      const { stdout } = await runTool('openssl', ['x509', '-noout', '-text'], { input: cert });
      expect(stdout).toMatch(/Signature Algorithm: ecdsa-with-SHA256/);
      expect(stdout).toMatch(/DNS:layover-webhook\.layover\.svc\b/);
      const files = makeTempDir('layover-selfsigned-');
      try {
        writeFileSync(path.join(files.path, 'ca.crt'), ca);
        writeFileSync(path.join(files.path, 'tls.crt'), cert);
        const verified = await runTool('openssl', ['verify', '-CAfile', path.join(files.path, 'ca.crt'), '-verify_hostname', SERVICE_NAME, '-purpose', 'sslserver', path.join(files.path, 'tls.crt')]);
        expect(verified.stdout).toMatch(/: OK/);
      } finally {
        files.cleanup();
      }
      const port = Number(new URL(first.url).port);
      expect(await servedCertificate(port, ca)).toBe(new X509Certificate(cert).fingerprint256);

      const agent = new Agent({ connect: { ca, servername: SERVICE_NAME } });
      const pod = apiserverDefaults({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { containers: [{ name: 'c', image: 'ghcr.io/a/b:1' }] } }, 'team-a');
      const { body } = await post(first.url, agent, admissionReview(pod));
      // The public host came from the registry Service's NodePort.
      expect(applyResponse(pod, body.response).spec?.containers?.[0]?.image).toBe('localhost:31234/ghcr.io/a/b:1');
      await agent.close();
    } finally {
      await first.close();
    }
    const second = await startWebhook(config, { logger, kube, health, resolver: confirmAll });
    try {
      const ca = Buffer.from(kube.secrets.get('layover/layover-webhook-tls')?.data?.['ca.crt'] ?? '', 'base64').toString();
      expect(kube.caBundles).toEqual([ca, ca]);
      const cert = Buffer.from(kube.secrets.get('layover/layover-webhook-tls')?.data?.['tls.crt'] ?? '', 'base64').toString();
      expect(await servedCertificate(Number(new URL(second.url).port), ca)).toBe(new X509Certificate(cert).fingerprint256);
    } finally {
      await second.close();
    }
  });
});
