import jsonpatch from 'fast-json-patch';
import { describe, expect, it } from 'vitest';
import { defaultConfig } from '../../src/config/resolve.js';
import type { RawConfig } from '../../src/config/schema.js';
import { mutatePod, plannedImages, type ImageCheck, type MutationInput, type MutationResult } from '../../src/webhook/mutate.js';
import { podOf, readReview, reviewResponse } from '../../src/webhook/review.js';
import { decideImage } from '../../src/webhook/rewrite.js';
import { mutationSettings } from '../../src/webhook/server.js';
import type { Container, Pod } from '../../src/webhook/types.js';
import { apiserverDefaults, loadPod } from '../fixtures/pods/admission.js';

const RAW: RawConfig = {
  registry: { publicHost: 'localhost:30500', url: 'https://mirror.example.com' },
  auth: { enabled: true },
  upstreams: [
    { prefix: 'docker.io', url: 'https://registry-1.docker.io' },
    { prefix: 'ghcr.io', url: 'https://ghcr.io' },
    { prefix: 'quay.io', url: 'https://quay.io', aliases: ['quay', 'quay-mirror.corp:5000'] },
    { prefix: 'k8s', url: 'https://registry.k8s.io' },
    { prefix: 'corp', url: 'https://registry.corp.example:5443' },
  ],
};
const config = defaultConfig(RAW);
const settings = mutationSettings(config, 'localhost:30500');
const DIGEST = 'sha256:6a92cd1fcdc8d8cdec60f33dda4db2cb1fcdcacf3410a8e05b3741f44a9b5998';
const ANNOTATION = 'layover.dev/original-images';

function pod(fixture: string, namespace = 'team-a'): Pod {
  return apiserverDefaults(loadPod(fixture), namespace) as Pod;
}

function run(p: Pod, extra: Partial<MutationInput> = {}, s = settings): MutationResult {
  return mutatePod({ operation: 'CREATE', namespace: 'team-a', pod: p, registryHealthy: true, ...extra }, s);
}

function applied(p: Pod, result: MutationResult): Pod {
  return jsonpatch.applyPatch(structuredClone(p), structuredClone(result.patch), true, false).newDocument;
}

const images = (p: Pod, kind: 'containers' | 'initContainers' | 'ephemeralContainers' = 'containers') => (p.spec?.[kind] ?? []).map((c) => c.image);

describe('image decisions', () => {
  const cases: Array<[string, string | null]> = [
    ['nginx', 'localhost:30500/docker.io/library/nginx:latest'],
    ['library/nginx:1.27', 'localhost:30500/docker.io/library/nginx:1.27'],
    ['index.docker.io/bitnami/redis', 'localhost:30500/docker.io/bitnami/redis:latest'],
    ['ghcr.io/a/b:1', 'localhost:30500/ghcr.io/a/b:1'],
    [`ghcr.io/a/b@${DIGEST}`, `localhost:30500/ghcr.io/a/b@${DIGEST}`],
    [`nginx:1.27@${DIGEST}`, `localhost:30500/docker.io/library/nginx:1.27@${DIGEST}`],
    // A path-component alias never steals a Docker Hub name: `quay/…` is docker.io/quay/….
    ['quay/prometheus/node-exporter:v1', 'localhost:30500/docker.io/quay/prometheus/node-exporter:v1'],
    ['quay-mirror.corp:5000/prometheus/node-exporter:v1', 'localhost:30500/quay.io/prometheus/node-exporter:v1'],
    ['QUAY.IO/prometheus/node-exporter:v1', 'localhost:30500/quay.io/prometheus/node-exporter:v1'],
    ['registry.k8s.io/pause:3.9', 'localhost:30500/k8s/pause:3.9'],
    ['registry.corp.example:5443/team/app:2', 'localhost:30500/corp/team/app:2'],
    ['layover-registry.layover.svc:5000/alice/app:1', 'localhost:30500/alice/app:1'],
    ['layover-registry.layover.svc.cluster.local/alice/app', 'localhost:30500/alice/app:latest'],
    ['mirror.example.com/alice/app:3', 'localhost:30500/alice/app:3'],
    ['registry.corp.example/team/app:2', null],
    ['gcr.io/distroless/static', null],
    ['localhost:5000/app', null],
  ];
  it.each(cases)('%s → %s', (image, expected) => {
    const decision = decideImage(image, settings.target);
    if (expected === null) expect(decision.kind).toBe('not-mirrored');
    else expect(decision).toEqual({ kind: 'rewrite', image: expected });
  });

  it('recognises every spelling of its own loopback host', () => {
    for (const image of ['localhost:30500/docker.io/library/nginx:1', '127.0.0.1:30500/ghcr.io/a/b:1', '[::1]:30500/alice/app', 'LOCALHOST:30500/x/y']) {
      expect(decideImage(image, settings.target)).toEqual({ kind: 'ours' });
    }
    expect(decideImage('localhost:30501/x/y', settings.target).kind).toBe('not-mirrored');
  });

  it('reports invalid references instead of guessing', () => {
    expect(decideImage('Nginx', settings.target).kind).toBe('invalid');
    expect(decideImage('nginx@sha256:123', settings.target).kind).toBe('invalid');
  });
});

describe('Pod mutation on CREATE', () => {
  it('rewrites a kubectl-run Pod, appends the pull secret and records the original image', () => {
    const p = pod('nginx.json');
    const result = run(p);
    expect(result).toMatchObject({ outcome: 'mutated', reason: 'rewritten', warnings: [] });
    const out = applied(p, result);
    expect(images(out)).toEqual(['localhost:30500/docker.io/library/nginx:latest']);
    expect(out.spec?.imagePullSecrets).toEqual([{ name: 'layover-pull' }]);
    expect(JSON.parse(out.metadata?.annotations?.[ANNOTATION] ?? '')).toEqual({ containers: { web: 'nginx' } });
    // Nothing else changed: the patch is the diff and touches only these three places.
    expect(result.patch.map((op) => `${op.op} ${op.path}`).sort()).toEqual([
      'add /metadata/annotations',
      'add /spec/imagePullSecrets',
      'replace /spec/containers/0/image',
    ]);
    expect({ ...out, metadata: { ...out.metadata, annotations: undefined }, spec: { ...out.spec, containers: undefined, imagePullSecrets: undefined } })
      .toEqual({ ...p, metadata: { ...p.metadata, annotations: undefined }, spec: { ...p.spec, containers: undefined, imagePullSecrets: undefined } });
  });

  it('rewrites init containers, keeps tag@digest byte for byte and the Pod’s own pull secrets first', () => {
    const p = pod('multi.json');
    const out = applied(p, run(p));
    expect(images(out, 'initContainers')).toEqual([`localhost:30500/docker.io/library/busybox:1.36@${DIGEST}`]);
    expect(images(out)).toEqual(['localhost:30500/quay.io/prometheus/node-exporter:v1.8.0']);
    expect(out.spec?.imagePullSecrets).toEqual([{ name: 'own-creds' }, { name: 'layover-pull' }]);
    expect(JSON.parse(out.metadata?.annotations?.[ANNOTATION] ?? '')).toEqual({
      initContainers: { init: `busybox:1.36@${DIGEST}` },
      containers: { multi: 'quay.io/prometheus/node-exporter:v1.8.0' },
    });
  });

  it('rewrites ephemeral containers present at creation too', () => {
    const p = pod('ghcr.json');
    p.spec!.ephemeralContainers = [{ name: 'debug', image: 'busybox' }];
    const out = applied(p, run(p));
    expect(images(out, 'ephemeralContainers')).toEqual(['localhost:30500/docker.io/library/busybox:latest']);
    expect(JSON.parse(out.metadata?.annotations?.[ANNOTATION] ?? '').ephemeralContainers).toEqual({ debug: 'busybox' });
  });

  it('is idempotent: a second pass over its own output changes nothing', () => {
    for (const fixture of ['nginx.json', 'ghcr.json', 'multi.json']) {
      const p = pod(fixture);
      const once = applied(p, run(p));
      const again = run(once);
      expect(again.patch).toEqual([]);
      expect(again).toMatchObject({ outcome: 'unchanged', reason: 'already-mirrored' });
    }
  });

  it('on reinvocation rewrites only what another webhook added and keeps the first originals', () => {
    const p = pod('ghcr.json');
    const once = applied(p, run(p));
    once.spec!.containers!.push({ name: 'sidecar', image: 'docker.io/istio/proxyv2:1.22.0' });
    const second = run(once);
    const out = applied(once, second);
    expect(images(out)).toEqual(['localhost:30500/ghcr.io/a/b:1', 'localhost:30500/docker.io/istio/proxyv2:1.22.0']);
    expect(JSON.parse(out.metadata?.annotations?.[ANNOTATION] ?? '')).toEqual({ containers: { tool: 'ghcr.io/a/b:1', sidecar: 'docker.io/istio/proxyv2:1.22.0' } });
    expect(out.spec?.imagePullSecrets).toEqual([{ name: 'layover-pull' }]);
  });

  it('never modifies the Pod it is given (the patch is a diff against it)', () => {
    const deepFreeze = <T>(value: T): T => {
      if (typeof value === 'object' && value !== null) {
        for (const child of Object.values(value)) deepFreeze(child);
        Object.freeze(value);
      }
      return value;
    };
    for (const fixture of ['nginx.json', 'multi.json']) {
      const p = pod(fixture);
      p.metadata!.annotations = { [ANNOTATION]: JSON.stringify({ containers: { other: 'x' } }) };
      const before = JSON.stringify(p);
      const result = run(deepFreeze(p));
      expect(result.outcome).toBe('mutated');
      expect(JSON.stringify(p)).toBe(before);
    }
  });

  it('never duplicates the pull secret', () => {
    const p = pod('nginx.json');
    p.spec!.imagePullSecrets = [{ name: 'layover-pull' }, { name: 'mine' }];
    const out = applied(p, run(p));
    expect(out.spec?.imagePullSecrets).toEqual([{ name: 'layover-pull' }, { name: 'mine' }]);
  });

  it('adds the pull secret to a Pod that already names the mirror directly', () => {
    const p = pod('nginx.json');
    p.spec!.containers![0]!.image = '127.0.0.1:30500/alice/app:1';
    const result = run(p);
    expect(result).toMatchObject({ outcome: 'mutated', reason: 'pull-secret-added' });
    const out = applied(p, result);
    expect(images(out)).toEqual(['127.0.0.1:30500/alice/app:1']);
    expect(out.spec?.imagePullSecrets).toEqual([{ name: 'layover-pull' }]);
    expect(out.metadata?.annotations?.[ANNOTATION]).toBeUndefined();
  });

  it('leaves images from registries it does not mirror alone, with a warning, and adds nothing', () => {
    const p = pod('nginx.json');
    p.spec!.containers![0]!.image = 'gcr.io/distroless/static:nonroot';
    const result = run(p);
    expect(result).toMatchObject({ patch: [], outcome: 'unchanged', reason: 'no-mirrored-images' });
    expect(result.warnings).toEqual(['layover: web: gcr.io is not mirrored; gcr.io/distroless/static:nonroot left unchanged']);
  });

  it('leaves an invalid reference alone and says why', () => {
    const p = pod('nginx.json');
    p.spec!.containers!.push({ name: 'bad', image: 'Bad/Image' });
    const result = run(p);
    const out = applied(p, result);
    expect(images(out)).toEqual(['localhost:30500/docker.io/library/nginx:latest', 'Bad/Image']);
    expect(result.warnings.join('\n')).toMatch(/bad: invalid reference "Bad\/Image".*left unchanged/);
  });

  it('does not replace an annotation of the same name that is not its own', () => {
    const p = pod('nginx.json');
    p.metadata!.annotations = { [ANNOTATION]: 'not json' };
    const result = run(p);
    const out = applied(p, result);
    expect(out.metadata?.annotations?.[ANNOTATION]).toBe('not json');
    expect(images(out)).toEqual(['localhost:30500/docker.io/library/nginx:latest']);
    expect(result.warnings.join()).toMatch(/is not layover's/);
  });
});

describe('skip rules', () => {
  it('imagePullPolicy Never keeps that container’s image (and only that one)', () => {
    const p = pod('never.json');
    p.spec!.containers![0]!.image = 'nginx:1.27';
    p.spec!.containers!.push({ name: 'other', image: 'nginx:1.27', imagePullPolicy: 'IfNotPresent' });
    const result = run(p);
    const out = applied(p, result);
    expect(images(out)).toEqual(['nginx:1.27', 'localhost:30500/docker.io/library/nginx:1.27']);
    expect(result.warnings).toEqual(['layover: local: imagePullPolicy Never; nginx:1.27 left unchanged']);
  });

  it('static (mirror) Pods are never touched', () => {
    const p = pod('nginx.json');
    p.metadata!.annotations = { 'kubernetes.io/config.mirror': 'abc123' };
    expect(run(p)).toEqual({ patch: [], warnings: [], outcome: 'skipped', reason: 'static-pod' });
  });

  it('the opt-out label (from kubectl --labels) skips the Pod', () => {
    expect(run(pod('optout.json'))).toMatchObject({ patch: [], outcome: 'skipped', reason: 'opt-out' });
  });

  it('the opt-out annotation skips the Pod; a value other than "true" does not', () => {
    const p = pod('nginx.json');
    p.metadata!.annotations = { 'layover.dev/skip': 'true' };
    expect(run(p)).toMatchObject({ patch: [], reason: 'opt-out' });
    p.metadata!.annotations = { 'layover.dev/skip': 'false' };
    expect(run(p)).toMatchObject({ outcome: 'mutated' });
  });

  it('layover’s own namespace and kube-system are never touched', () => {
    for (const namespace of ['layover', 'kube-system']) {
      expect(run(pod('nginx.json', namespace), { namespace })).toMatchObject({ patch: [], outcome: 'skipped', reason: 'system-namespace' });
    }
  });

  it('fails open when the registry is unhealthy: original images kept, a warning says so', () => {
    const result = run(pod('multi.json'), { registryHealthy: false });
    expect(result).toMatchObject({ patch: [], outcome: 'skipped', reason: 'registry-unhealthy' });
    expect(result.warnings).toEqual(['layover: registry localhost:30500 is unreachable; images left unchanged']);
  });

  it('an unhealthy registry does not matter when nothing would be rewritten', () => {
    const p = pod('nginx.json');
    p.spec!.containers![0]!.image = 'localhost:30500/alice/app:1';
    expect(run(p, { registryHealthy: false })).toMatchObject({ outcome: 'mutated', reason: 'pull-secret-added' });
  });

  it('DELETE, CONNECT and unknown subresources are answered without change', () => {
    expect(run(pod('nginx.json'), { operation: 'DELETE' }).reason).toBe('unsupported-operation');
    expect(run(pod('nginx.json'), { operation: 'UPDATE', subResource: 'status' }).reason).toBe('unsupported-operation');
    expect(run(pod('nginx.json'), { operation: 'CREATE', subResource: 'binding' }).reason).toBe('unsupported-operation');
  });
});

describe('a Pod that already references the mirror keeps or gets the pull secret', () => {
  function mixed(): Pod {
    const p = pod('nginx.json');
    p.spec!.containers!.push({ name: 'mirrored', image: '127.0.0.1:30500/ghcr.io/a/b:1' });
    return p;
  }

  it('gets it while the registry is unhealthy, and the other images keep their originals', () => {
    const p = mixed();
    const result = run(p, { registryHealthy: false });
    expect(result).toMatchObject({ outcome: 'mutated', reason: 'pull-secret-added' });
    expect(result.warnings).toEqual(['layover: registry localhost:30500 is unreachable; images left unchanged']);
    const out = applied(p, result);
    expect(images(out)).toEqual(['nginx', '127.0.0.1:30500/ghcr.io/a/b:1']);
    expect(out.spec?.imagePullSecrets).toEqual([{ name: 'layover-pull' }]);
  });

  it('gets it while the node role has no ready Pods', () => {
    const p = mixed();
    const result = run(p, { nodePathReady: false }, { ...settings, nodeDaemonSet: 'layover/layover-node' });
    expect(result.warnings).toEqual(['layover: node role layover/layover-node has no ready Pods; images left unchanged']);
    expect(applied(p, result).spec?.imagePullSecrets).toEqual([{ name: 'layover-pull' }]);
    expect(run(pod('nginx.json'), { nodePathReady: false })).toMatchObject({ patch: [], outcome: 'skipped', reason: 'node-path-unready' });
  });

  it('gets it when none of its other images could be confirmed', () => {
    const p = mixed();
    const out = applied(p, run(p, { checks: new Map() }));
    expect(images(out)).toEqual(['nginx', '127.0.0.1:30500/ghcr.io/a/b:1']);
    expect(out.spec?.imagePullSecrets).toEqual([{ name: 'layover-pull' }]);
  });
});

describe('resolve checks', () => {
  it('rewrites only confirmed images; each other one keeps its original with a warning saying why', () => {
    const p = pod('nginx.json');
    p.spec!.containers!.push({ name: 'b', image: 'ghcr.io/a/b:1' }, { name: 'c', image: 'quay.io/a/c:1' });
    const input: MutationInput = { operation: 'CREATE', namespace: 'team-a', pod: p, registryHealthy: true };
    expect(plannedImages(input, settings)).toEqual(['localhost:30500/docker.io/library/nginx:latest', 'localhost:30500/ghcr.io/a/b:1', 'localhost:30500/quay.io/a/c:1']);
    const checks = new Map<string, ImageCheck>([
      ['localhost:30500/docker.io/library/nginx:latest', { ok: true }],
      ['localhost:30500/ghcr.io/a/b:1', { ok: false, reason: 'not found through layover (HTTP 404)' }],
    ]);
    const result = run(p, { checks });
    expect(result.warnings).toEqual([
      'layover: b: not found through layover (HTTP 404); ghcr.io/a/b:1 left unchanged',
      'layover: c: not confirmed by the registry in time; quay.io/a/c:1 left unchanged',
    ]);
    const out = applied(p, result);
    expect(images(out)).toEqual(['localhost:30500/docker.io/library/nginx:latest', 'ghcr.io/a/b:1', 'quay.io/a/c:1']);
    expect(JSON.parse(out.metadata?.annotations?.[ANNOTATION] ?? '')).toEqual({ containers: { web: 'nginx' } });
    expect(run(pod('nginx.json'), { checks: new Map() })).toMatchObject({ patch: [], outcome: 'skipped', reason: 'unresolved' });
  });

  it('plans nothing for Pods it would not touch', () => {
    const base = { operation: 'CREATE', namespace: 'kube-system', pod: pod('nginx.json'), registryHealthy: true };
    expect(plannedImages(base, settings)).toEqual([]);
    expect(plannedImages({ ...base, namespace: 'team-a', pod: pod('optout.json') }, settings)).toEqual([]);
  });
});

describe('container names that are Object.prototype properties', () => {
  it('records the original image of containers named constructor, __proto__, toString, hasOwnProperty', () => {
    const names = ['constructor', '__proto__', 'toString', 'hasOwnProperty'];
    const p = pod('nginx.json');
    // Parsed from JSON, as the review body is: `__proto__` is then an own property.
    p.spec!.containers = JSON.parse(JSON.stringify(names.map((name, i) => ({ name, image: `nginx:1.${i}` })))) as Container[];
    p.spec!.initContainers = JSON.parse('[{"name":"__proto__","image":"busybox:1"}]') as Container[];
    const result = run(p);
    const out = applied(p, result);
    const recorded = JSON.parse(out.metadata?.annotations?.[ANNOTATION] ?? '') as Record<string, Record<string, string>>;
    for (const [i, name] of names.entries()) expect(Object.hasOwn(recorded.containers!, name) && recorded.containers![name]).toBe(`nginx:1.${i}`);
    expect(Object.hasOwn(recorded.initContainers!, '__proto__')).toBe(true);
    // Reinvoked with another webhook's container added: the recorded originals survive the round trip.
    out.spec!.containers!.push({ name: 'valueOf', image: 'ghcr.io/a/b:1' });
    const again = JSON.parse(applied(out, run(out)).metadata?.annotations?.[ANNOTATION] ?? '') as Record<string, Record<string, string>>;
    expect(Object.keys(again.containers!).sort()).toEqual([...names, 'valueOf'].sort());
    expect(again.containers!['__proto__']).toBe('nginx:1.1');
  });
});

describe('UPDATE', () => {
  function created(fixture: string): Pod {
    const p = pod(fixture);
    return applied(p, run(p));
  }

  it('rewrites an image the user is changing, and nothing but image fields', () => {
    const old = created('multi.json');
    const next = structuredClone(old);
    next.spec!.containers![0]!.image = 'quay.io/prometheus/node-exporter:v1.9.0';
    next.metadata!.labels = { ...next.metadata!.labels, changed: 'yes' };
    const result = run(next, { operation: 'UPDATE', oldPod: old });
    expect(result.patch).toEqual([{ op: 'replace', path: '/spec/containers/0/image', value: 'localhost:30500/quay.io/prometheus/node-exporter:v1.9.0' }]);
  });

  it('does not rewrite images an UPDATE leaves alone (that would restart running containers)', () => {
    const old = pod('nginx.json');
    const next = structuredClone(old);
    next.metadata!.labels = { ...next.metadata!.labels, touched: 'yes' };
    next.spec!.imagePullSecrets = [{ name: 'layover-pull' }];
    old.spec!.imagePullSecrets = [{ name: 'layover-pull' }];
    expect(run(next, { operation: 'UPDATE', oldPod: old })).toMatchObject({ patch: [], outcome: 'unchanged' });
  });

  it('refuses to rewrite when the Pod lacks the pull secret, which cannot be added after creation', () => {
    const old = pod('ghcr.json');
    const next = structuredClone(old);
    next.spec!.containers![0]!.image = 'ghcr.io/a/b:2';
    const result = run(next, { operation: 'UPDATE', oldPod: old });
    expect(result).toMatchObject({ patch: [], outcome: 'skipped', reason: 'update-without-pull-secret' });
    // With anonymous pulls allowed the secret is not needed and the image is rewritten.
    const open = mutationSettings(defaultConfig({ ...RAW, auth: { enabled: true, anonymous: true } }), 'localhost:30500');
    expect(run(next, { operation: 'UPDATE', oldPod: old }, open).patch).toEqual([{ op: 'replace', path: '/spec/containers/0/image', value: 'localhost:30500/ghcr.io/a/b:2' }]);
  });

  it('pods/ephemeralcontainers: rewrites only the new ephemeral container', () => {
    const old = created('ghcr.json');
    const next = structuredClone(old);
    next.spec!.ephemeralContainers = [{ name: 'debugger-x1', image: 'busybox:1.36', imagePullPolicy: 'IfNotPresent', terminationMessagePolicy: 'File', stdin: true, tty: true, targetContainerName: 'tool' }];
    const result = run(next, { operation: 'UPDATE', subResource: 'ephemeralcontainers', oldPod: old });
    expect(result.patch).toEqual([{ op: 'replace', path: '/spec/ephemeralContainers/0/image', value: 'localhost:30500/docker.io/library/busybox:1.36' }]);
    // Reinvoked on its own output: nothing more.
    const out = applied(next, result);
    expect(run(out, { operation: 'UPDATE', subResource: 'ephemeralcontainers', oldPod: old }).patch).toEqual([]);
  });

  it('pods/ephemeralcontainers: leaves existing ephemeral containers alone', () => {
    const old = created('ghcr.json');
    old.spec!.ephemeralContainers = [{ name: 'first', image: 'busybox:1.36' }];
    const next = structuredClone(old);
    next.spec!.ephemeralContainers!.push({ name: 'second', image: 'ghcr.io/a/debug:1' });
    const out = applied(next, run(next, { operation: 'UPDATE', subResource: 'ephemeralcontainers', oldPod: old }));
    expect(images(out, 'ephemeralContainers')).toEqual(['busybox:1.36', 'localhost:30500/ghcr.io/a/debug:1']);
  });
});

describe('AdmissionReview envelope', () => {
  it('refuses bodies that are not AdmissionReview v1 requests with a clear message', () => {
    expect(() => readReview(null)).toThrow(/JSON AdmissionReview object/);
    expect(() => readReview([])).toThrow(/JSON AdmissionReview object/);
    expect(() => readReview({ apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview', request: {} })).toThrow(/apiVersion must be admission.k8s.io\/v1/);
    expect(() => readReview({ apiVersion: 'admission.k8s.io/v1', kind: 'Pod' })).toThrow(/kind must be AdmissionReview/);
    expect(() => readReview({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' })).toThrow(/request is missing/);
    expect(() => readReview({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { operation: 'CREATE' } })).toThrow(/uid/);
    expect(() => readReview({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'u', operation: 'CREATE', object: 'x' } })).toThrow(/request.object/);
  });

  it('tells a Pod from something else', () => {
    expect(podOf({ kind: 'Deployment' })).toEqual({ problem: 'object is a Deployment, not a Pod' });
    expect(podOf({ kind: 'Pod', spec: { containers: 'x' } })).toEqual({ problem: 'spec.containers is not a list of objects' });
    expect(podOf({ kind: 'Pod', spec: { containers: [{ image: 'x' }] } })).toMatchObject({ problem: expect.stringMatching(/without a name/) });
    expect(podOf({ kind: 'Pod', spec: { containers: [{ name: 'a', image: 'x' }] } })).toHaveProperty('pod');
  });

  it('answers with the uid, allowed, and a base64 JSONPatch only when there is one', () => {
    expect(reviewResponse('u1', [], [])).toEqual({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: 'u1', allowed: true } });
    const ops = [{ op: 'replace' as const, path: '/spec/containers/0/image', value: 'x' }];
    const answer = reviewResponse('u2', ops, ['w']);
    expect(answer.response).toMatchObject({ uid: 'u2', allowed: true, patchType: 'JSONPatch', warnings: ['w'] });
    expect(JSON.parse(Buffer.from(answer.response.patch ?? '', 'base64').toString())).toEqual(ops);
  });
});

describe('the patch', () => {
  // The patch is written op by op (mutate.ts); applied, it must give what a full diff would: the
  // images rewritten, the originals recorded, the pull secret appended, nothing else touched.
  const shapes: Array<[string, (p: Pod) => Pod]> = [
    ['no metadata', (p) => ({ ...p, metadata: undefined })],
    ['metadata without annotations', (p) => ({ ...p, metadata: { ...p.metadata, annotations: undefined } })],
    ['other annotations, keys with / and ~', (p) => ({ ...p, metadata: { ...p.metadata, annotations: { 'a/b~c': '1' } } })],
    ['originals already recorded for another container', (p) => ({ ...p, metadata: { ...p.metadata, annotations: { [ANNOTATION]: '{"containers":{"gone":"nginx:1"}}' } } })],
    ['a pull secret of its own', (p) => ({ ...p, spec: { ...p.spec, imagePullSecrets: [{ name: 'own' }] } })],
  ];
  for (const [name, shape] of shapes) {
    it(`applies cleanly and changes only what it names: ${name}`, () => {
      for (const fixture of ['multi.json', 'nginx.json']) {
        const input = shape(pod(fixture));
        const before = structuredClone(input);
        const result = run(input);
        expect(result.outcome).toBe('mutated');
        const after = applied(input, result);
        expect(input).toEqual(before); // the input is never modified
        const rewritten = (after.spec?.containers ?? []).map((c) => c.image);
        expect(rewritten.every((image) => image?.startsWith('localhost:30500/'))).toBe(true);
        const originals = JSON.parse(after.metadata?.annotations?.[ANNOTATION] ?? '{}') as Record<string, Record<string, string>>;
        for (const c of input.spec?.containers ?? []) expect(originals.containers?.[c.name]).toBe(c.image);
        for (const [key, value] of Object.entries(input.metadata?.annotations ?? {})) if (key !== ANNOTATION) expect(after.metadata?.annotations?.[key]).toBe(value);
        expect(after.spec?.imagePullSecrets?.at(-1)).toEqual({ name: settings.pullSecretName });
        expect(after.spec?.imagePullSecrets?.slice(0, -1)).toEqual(input.spec?.imagePullSecrets ?? []);
        // Everything but the images, the annotation and the secrets is as it was.
        const strip = (p: Pod) => ({ ...p, metadata: { ...p.metadata, annotations: undefined }, spec: { ...p.spec, imagePullSecrets: undefined, containers: undefined, initContainers: undefined } });
        expect(strip(after)).toEqual(strip(input));
      }
    });
  }
});
