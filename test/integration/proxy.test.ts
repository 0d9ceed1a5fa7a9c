// The pull-through cache against a real docker-registry upstream on 127.0.0.1 (through a
// counting relay that can corrupt, fail or go down), pulled by skopeo and containerd.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startContainerd, writeHostsToml } from '../helpers/containerd.js';
import { startCountingProxy, type CountingProxy } from '../helpers/counting-proxy.js';
import { startDockerRegistry, type DockerRegistry } from '../helpers/docker-registry.js';
import { openStoreOf, startLayover, type InProcessLayover } from '../helpers/layover.js';
import { computeDigest } from '../helpers/oci-content.js';
import { makeOciImage, makeOciIndex, type OciImage } from '../helpers/oci-layout.js';
import { getBytes, uploadBlob } from '../helpers/registry-client.js';
import { skopeoCopy, skopeoInspect } from '../helpers/skopeo.js';
import { makeTempDir, type TempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait-for.js';
import type { Digest } from '../../src/registry/digest.js';
import { EmbeddedStore } from '../../src/registry/storage/embedded.js';

/** A second view of a layover's storage (no init: that would clear its temporary files). */
// Reads the mirror's storage from the side: the embedded store on its root, or, on the suite's
// PostgreSQL/S3 modes, a store of its own on the same database and bucket (closed at the end).
const opened: { close(): Promise<void> }[] = [];
afterAll(async () => {
  for (const store of opened.splice(0)) await store.close();
});
async function storeOf(l: InProcessLayover): Promise<EmbeddedStore | Awaited<ReturnType<typeof openStoreOf>>> {
  if (!l.config.database && l.config.storage.driver !== 's3') return new EmbeddedStore(l.root);
  const store = await openStoreOf(l);
  opened.push(store);
  return store;
}

let upstream: DockerRegistry;
let relay: CountingProxy;
let layover: InProcessLayover;
let tmp: TempDir;
let image: OciImage;

const blobPath = (repo: string, digest: string) => `/v2/${repo}/blobs/${digest}`;

async function pushUpstream(name: string, opts: Parameters<typeof makeOciImage>[1]): Promise<OciImage> {
  const img = await makeOciImage(`${tmp.path}/${name.replaceAll('/', '_')}-${opts.tag ?? 'latest'}-${opts.seed ?? ''}`, opts);
  await skopeoCopy(img.ref, `docker://${upstream.host}/${name}:${img.tag}`);
  return img;
}

/** GET through layover, hashing the body; a cut connection rejects. */
async function fetchDigest(url: string): Promise<{ status: number; digest: string; size: number }> {
  const res = await fetch(url);
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { status: res.status, digest: `sha256:${hash.digest('hex')}`, size };
}

beforeAll(async () => {
  tmp = makeTempDir('layover-proxy-test-');
  upstream = await startDockerRegistry();
  relay = await startCountingProxy(upstream.url);
  layover = await startLayover({
    upstreams: [{ prefix: 'up', url: relay.url, tagTTL: '1h' }],
    cache: { downAfterFailures: 2, downFor: '1s' },
  });
  image = await pushUpstream('team/app', { layers: [300_000, 1_000_000, 50_000], tag: 'v1', seed: 'proxy-main' });
}, 60_000);

afterAll(async () => {
  await layover?.close();
  await relay?.close();
  await upstream?.close();
  tmp?.cleanup();
});

describe('pull-through from a docker-registry upstream', () => {
  it('skopeo pulls through the mirror with the upstream digests, then from the cache alone', async () => {
    relay.reset();
    const out = `${tmp.path}/pulled-skopeo`;
    await skopeoCopy(`docker://${layover.host}/up/team/app:v1`, `oci:${out}:v1`);
    const raw = await skopeoInspect(`docker://${layover.host}/up/team/app:v1`, { raw: true });
    expect(raw.equals(image.manifest.bytes)).toBe(true);
    expect(computeDigest(await skopeoInspect(`oci:${out}:v1`, { raw: true }))).toBe(image.manifest.digest);
    for (const layer of image.layers) expect(relay.count('GET', blobPath('team/app', layer.digest))).toBe(1);

    // Stored under the local name: the second pull is local (tags within TTL, digests always).
    relay.reset();
    await skopeoCopy(`docker://${layover.host}/up/team/app:v1`, `oci:${tmp.path}/pulled-skopeo-2:v1`);
    await skopeoCopy(`docker://${layover.host}/up/team/app@${image.manifest.digest}`, `oci:${tmp.path}/pulled-skopeo-3:v1`);
    expect(relay.requests().filter((r) => r.path !== '/v2/')).toEqual([]);
    const store = await storeOf(layover);
    expect(await store.resolveTag('up/team/app', 'v1')).toBe(image.manifest.digest);
    for (const layer of image.layers) expect(await store.blobLinked('up/team/app', layer.digest as Digest)).toBe(true);
  });

  it('containerd (ctr pull --plain-http) pulls through with the upstream digests', async () => {
    const img = await pushUpstream('team/ctr', { layers: 2, tag: 'v1', seed: 'proxy-ctr' });
    const containerd = await startContainerd();
    try {
      await containerd.pullWithCtr(`localhost:${layover.port}/up/team/ctr:v1`, { plainHttp: true });
      const images = await containerd.images();
      expect(images.find((i) => i.ref === `localhost:${layover.port}/up/team/ctr:v1`)?.digest).toBe(img.manifest.digest);
      const content = await containerd.contentDigests();
      for (const layer of img.layers) expect(content).toContain(layer.digest);
      expect(containerd.unpackedFiles().map((f) => f.path)).toContain('layer-0.bin');
    } finally {
      await containerd.close();
    }
  });

  it('mirrors a multi-arch index as it is and fetches children when asked', async () => {
    const index = await makeOciIndex(`${tmp.path}/index`, { layers: 1, tag: 'multi', seed: 'proxy-index' });
    await skopeoCopy(index.ref, `docker://${upstream.host}/team/multi:multi`, { all: true });
    const raw = await skopeoInspect(`docker://${layover.host}/up/team/multi:multi`, { raw: true });
    expect(raw.equals(index.index.bytes)).toBe(true);
    const child = index.images[1] as OciImage;
    await skopeoCopy(`docker://${layover.host}/up/team/multi@${child.manifest.digest}`, `oci:${tmp.path}/child:c`);
    expect(await (await storeOf(layover)).statManifest('up/team/multi', child.manifest.digest as Digest)).toBeDefined();
    expect(await (await storeOf(layover)).statManifest('up/team/multi', (index.images[0] as OciImage).manifest.digest as Digest)).toBeUndefined();
  });

  it('16 parallel cold pulls of one blob cause exactly one upstream GET', async () => {
    const img = await pushUpstream('team/big', { layers: [8 * 2 ** 20], tag: 'v1', seed: 'proxy-coalesce' });
    const layer = img.layers[0] as OciImage['layers'][number];
    relay.reset();
    relay.delay(150); // every client arrives while the fetch is in flight
    try {
      const results = await Promise.all(Array.from({ length: 16 }, () => fetchDigest(`${layover.url}/v2/up/team/big/blobs/${layer.digest}`)));
      for (const r of results) expect(r).toEqual({ status: 200, digest: layer.digest, size: layer.size });
    } finally {
      relay.delay(0);
    }
    expect(relay.count('GET', blobPath('team/big', layer.digest))).toBe(1);
    const metrics = (await getBytes(`${layover.url}/metrics`)).body.toString();
    const coalesced = /layover_cache_coalesced_total\{upstream="up",kind="blob"\} (\d+)/.exec(metrics);
    expect(Number(coalesced?.[1])).toBeGreaterThanOrEqual(15);
  });

  it('a corrupt upstream blob is never cached: the client errors and a later healthy pull succeeds', async () => {
    const img = await pushUpstream('team/corrupt', { layers: [2 * 2 ** 20], tag: 'v1', seed: 'proxy-corrupt' });
    const layer = img.layers[0] as OciImage['layers'][number];
    relay.corrupt((r) => r.path.includes('/blobs/'));
    try {
      await expect(fetchDigest(`${layover.url}/v2/up/team/corrupt/blobs/${layer.digest}`)).rejects.toThrow();
      await expect(skopeoCopy(`docker://${layover.host}/up/team/corrupt:v1`, `oci:${tmp.path}/corrupt:v1`)).rejects.toThrow();
    } finally {
      relay.corrupt(false);
    }
    expect(await (await storeOf(layover)).statBlob(layer.digest as Digest)).toBeUndefined();
    const ok = await fetchDigest(`${layover.url}/v2/up/team/corrupt/blobs/${layer.digest}`);
    expect(ok).toEqual({ status: 200, digest: layer.digest, size: layer.size });
    await skopeoCopy(`docker://${layover.host}/up/team/corrupt:v1`, `oci:${tmp.path}/corrupt-ok:v1`);
  });

  it('a corrupt upstream manifest is refused and not cached', async () => {
    const img = await pushUpstream('team/badmanifest', { layers: 1, tag: 'v1', seed: 'proxy-badmanifest' });
    relay.corrupt((r) => r.path.includes('/manifests/'));
    try {
      const res = await getBytes(`${layover.url}/v2/up/team/badmanifest/manifests/${img.manifest.digest}`);
      expect(res.status).toBeGreaterThanOrEqual(400);
      const byTag = await getBytes(`${layover.url}/v2/up/team/badmanifest/manifests/v1`);
      expect(byTag.status).toBeGreaterThanOrEqual(400);
    } finally {
      relay.corrupt(false);
    }
    expect(await (await storeOf(layover)).statManifest('up/team/badmanifest', img.manifest.digest as Digest)).toBeUndefined();
    expect(await (await storeOf(layover)).resolveTag('up/team/badmanifest', 'v1')).toBeUndefined();
    const res = await getBytes(`${layover.url}/v2/up/team/badmanifest/manifests/v1`, { headers: { accept: img.manifest.mediaType } });
    expect(res.status).toBe(200);
    expect(res.body.equals(img.manifest.bytes)).toBe(true);
  });

  it('refuses pushes into a mirror namespace', async () => {
    const body = Buffer.from('not allowed');
    await expect(uploadBlob(layover.url, 'up/team/app', computeDigest(body), body)).rejects.toThrow(/403|DENIED/);
  });

  it('an unknown upstream repository or tag is 404', async () => {
    expect((await getBytes(`${layover.url}/v2/up/team/nothing/manifests/v1`)).status).toBe(404);
    expect((await getBytes(`${layover.url}/v2/up/team/app/manifests/nope`)).status).toBe(404);
  });
});

describe('offline upstream and tag TTL', () => {
  let relay2: CountingProxy;
  let mirror: InProcessLayover;

  beforeAll(async () => {
    relay2 = await startCountingProxy(upstream.url);
    mirror = await startLayover({ upstreams: [{ prefix: 'hub', url: relay2.url, tagTTL: '1500ms' }], cache: { downAfterFailures: 2, downFor: '2s' } });
  });
  afterAll(async () => {
    await mirror?.close();
    await relay2?.close();
  });

  it('serves a tag from cache within its TTL and the retagged image after it', async () => {
    const v1 = await pushUpstream('team/ttl', { layers: 1, tag: 'current', seed: 'ttl-1' });
    const first = await getBytes(`${mirror.url}/v2/hub/team/ttl/manifests/current`);
    expect(first.headers['docker-content-digest']).toBe(v1.manifest.digest);
    const v2 = await pushUpstream('team/ttl', { layers: 1, tag: 'current', seed: 'ttl-2' });
    expect(v2.manifest.digest).not.toBe(v1.manifest.digest);
    const within = await getBytes(`${mirror.url}/v2/hub/team/ttl/manifests/current`);
    expect(within.headers['docker-content-digest']).toBe(v1.manifest.digest);
    await new Promise((r) => setTimeout(r, 1700));
    relay2.reset();
    const after = await getBytes(`${mirror.url}/v2/hub/team/ttl/manifests/current`);
    expect(after.headers['docker-content-digest']).toBe(v2.manifest.digest);
    expect(after.body.equals(v2.manifest.bytes)).toBe(true);
    expect(relay2.count('HEAD', '/v2/team/ttl/manifests/current')).toBe(1);
    // Revalidated and unchanged: a HEAD only, no GET.
    await new Promise((r) => setTimeout(r, 1700));
    relay2.reset();
    const same = await getBytes(`${mirror.url}/v2/hub/team/ttl/manifests/current`);
    expect(same.headers['docker-content-digest']).toBe(v2.manifest.digest);
    expect(relay2.count('HEAD', '/v2/team/ttl/manifests/current')).toBe(1);
    expect(relay2.count('GET', '/v2/team/ttl/manifests/current')).toBe(0);
  });

  it('a stale tag read by a HEAD and a GET at once: the GET gets the whole manifest, although the HEAD started the revalidation', async () => {
    const img = await pushUpstream('team/headget', { layers: 1, tag: 'v1', seed: 'head-get' });
    const url = `${mirror.url}/v2/hub/team/headget/manifests/v1`;
    const accept = { accept: img.manifest.mediaType };
    expect((await getBytes(url, { headers: accept })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 1700)); // past the TTL: the next read revalidates
    relay2.delay(400);
    try {
      const head = fetch(url, { method: 'HEAD', headers: accept });
      await new Promise((r) => setTimeout(r, 100)); // the HEAD's revalidation is held at the upstream
      const get = await getBytes(url, { headers: accept });
      expect(get.status).toBe(200);
      expect(get.headers['docker-content-digest']).toBe(img.manifest.digest);
      expect(get.body.equals(img.manifest.bytes)).toBe(true);
      const headRes = await head;
      expect(headRes.status).toBe(200);
      expect(headRes.headers.get('docker-content-digest')).toBe(img.manifest.digest);
      expect(headRes.headers.get('content-length')).toBe(String(img.manifest.bytes.length));
    } finally {
      relay2.delay(0);
    }
  });

  it('a tag deleted upstream is 404 after its TTL', async () => {
    const img = await pushUpstream('team/gone', { layers: 1, tag: 'v1', seed: 'gone-1' });
    expect((await getBytes(`${mirror.url}/v2/hub/team/gone/manifests/v1`)).status).toBe(200);
    const res = await fetch(`${upstream.url}/v2/team/gone/manifests/${img.manifest.digest}`, { method: 'DELETE' });
    expect(res.status).toBe(202);
    await new Promise((r) => setTimeout(r, 1700));
    expect((await getBytes(`${mirror.url}/v2/hub/team/gone/manifests/v1`)).status).toBe(404);
  });

  it('keeps serving every pulled tag and digest when the upstream is down; a new image fails fast', async () => {
    const img = await pushUpstream('team/offline', { layers: 2, tag: 'v1', seed: 'offline-1' });
    await skopeoCopy(`docker://${mirror.host}/hub/team/offline:v1`, `oci:${tmp.path}/offline-a:v1`);
    await relay2.down();
    try {
      // Within the TTL: a plain local read.
      await skopeoCopy(`docker://${mirror.host}/hub/team/offline:v1`, `oci:${tmp.path}/offline-b:v1`);
      await skopeoCopy(`docker://${mirror.host}/hub/team/offline@${img.manifest.digest}`, `oci:${tmp.path}/offline-c:v1`);
      // Past the TTL: served stale, with a Warning.
      await new Promise((r) => setTimeout(r, 1700));
      const stale = await getBytes(`${mirror.url}/v2/hub/team/offline/manifests/v1`);
      expect(stale.status).toBe(200);
      expect(stale.headers['docker-content-digest']).toBe(img.manifest.digest);
      expect(String(stale.headers.warning)).toMatch(/^110 .*stale/);
      await skopeoCopy(`docker://${mirror.host}/hub/team/offline:v1`, `oci:${tmp.path}/offline-d:v1`);

      const started = Date.now();
      const miss = await getBytes(`${mirror.url}/v2/hub/team/never/manifests/v1`);
      expect(miss.status).toBe(503);
      expect(miss.body.toString()).toMatch(/upstream hub is (unreachable|down)/);
      const again = await getBytes(`${mirror.url}/v2/hub/team/never2/manifests/v1`);
      expect(again.status).toBe(503);
      expect(again.body.toString()).toMatch(/upstream hub is down after repeated failures/);
      expect(Date.now() - started).toBeLessThan(2000);
    } finally {
      await relay2.up();
    }
    // Once the down period is over the upstream is tried again.
    await waitFor(async () => (await getBytes(`${mirror.url}/v2/hub/team/offline/manifests/v1`)).headers.warning === undefined, 6000, 200);
  });
});

describe('containerd mirror mode (hosts.toml, ?ns=)', () => {
  it('serves docker.io/library/… from the docker.io upstream without rewriting', async () => {
    const img = await pushUpstream('library/nsimage', { layers: 2, tag: '1.25', seed: 'ns-mode' });
    const nsRelay = await startCountingProxy(upstream.url);
    const mirror = await startLayover({ upstreams: [{ prefix: 'docker.io', url: nsRelay.url }] });
    const containerd = await startContainerd();
    const hosts = makeTempDir('layover-hosts-');
    try {
      await writeHostsToml(hosts.path, 'docker.io', mirror.url);
      await containerd.pullWithCtr('docker.io/library/nsimage:1.25', { hostsDir: hosts.path });
      const images = await containerd.images();
      expect(images.find((i) => i.ref === 'docker.io/library/nsimage:1.25')?.digest).toBe(img.manifest.digest);
      expect(await (await storeOf(mirror)).resolveTag('docker.io/library/nsimage', '1.25')).toBe(img.manifest.digest);
      for (const layer of img.layers) expect(nsRelay.count('GET', blobPath('library/nsimage', layer.digest))).toBe(1);
      // The short Docker Hub form maps onto library/ as well.
      const short = await getBytes(`${mirror.url}/v2/docker.io/nsimage/manifests/1.25`);
      expect(short.headers['docker-content-digest']).toBe(img.manifest.digest);
    } finally {
      await containerd.close();
      await mirror.close();
      await nsRelay.close();
      hosts.cleanup();
    }
  });
});

describe('upstream health', () => {
  it('marks an upstream down after repeated failures, and a cache hit still works meanwhile', async () => {
    const failing = await startCountingProxy(upstream.url);
    const mirror = await startLayover({ upstreams: [{ prefix: 'flaky', url: failing.url }], cache: { downAfterFailures: 2, downFor: '30s' } });
    try {
      const img = await pushUpstream('team/flaky', { layers: 1, tag: 'v1', seed: 'flaky' });
      expect((await getBytes(`${mirror.url}/v2/flaky/team/flaky/manifests/${img.manifest.digest}`)).status).toBe(200);
      failing.fail(503, (r) => r.path !== '/v2/');
      expect((await getBytes(`${mirror.url}/v2/flaky/team/x1/manifests/v1`)).status).toBe(503);
      expect((await getBytes(`${mirror.url}/v2/flaky/team/x2/manifests/v1`)).status).toBe(503);
      failing.reset();
      const fast = await getBytes(`${mirror.url}/v2/flaky/team/x3/manifests/v1`);
      expect(fast.status).toBe(503);
      expect(fast.body.toString()).toMatch(/down after repeated failures/);
      expect(failing.requests()).toEqual([]);
      expect((await getBytes(`${mirror.url}/v2/flaky/team/flaky/manifests/${img.manifest.digest}`)).status).toBe(200);
      const metrics = (await getBytes(`${mirror.url}/metrics`)).body.toString();
      expect(metrics).toMatch(/layover_upstream_errors_total\{upstream="flaky",reason="down"\} [1-9]/);
      expect(metrics).toMatch(/layover_upstream_errors_total\{upstream="flaky",reason="status_5xx"\} [1-9]/);
    } finally {
      await mirror.close();
      await failing.close();
    }
  });
});
