// Proves the test harness against the real peers alone (docker-registry, skopeo, containerd),
// so every later integration test can trust what the helpers report.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startContainerd, writeHostsToml, type Containerd } from '../helpers/containerd.js';
import { startCountingProxy } from '../helpers/counting-proxy.js';
import { startDockerRegistry, type DockerRegistry } from '../helpers/docker-registry.js';
import { buildIndex, buildManifest, computeDigest, emptyConfig, MediaType, randomBlob } from '../helpers/oci-content.js';
import { makeOciImage, makeOciIndex, type OciImage } from '../helpers/oci-layout.js';
import { seededBytes } from '../helpers/random-bytes.js';
import { getBytes, pushContent } from '../helpers/registry-client.js';
import { skopeoCopy, skopeoDelete, skopeoInspect, skopeoListTags } from '../helpers/skopeo.js';
import { makeTempDir, type TempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait-for.js';

let registry: DockerRegistry;
let containerd: Containerd;
let work: TempDir;
let image: OciImage;

beforeAll(async () => {
  work = makeTempDir();
  [registry, containerd, image] = await Promise.all([
    startDockerRegistry(),
    startContainerd(),
    makeOciImage(path.join(work.path, 'img'), { layers: [200_000, 70_000, 1_000], seed: 'harness', tag: 'v1' }),
  ]);
  await skopeoCopy(image.ref, `docker://${registry.host}/harness/img:v1`);
});

afterAll(async () => {
  await Promise.all([registry?.close(), containerd?.close()]);
  work?.cleanup();
});

describe('OCI layouts', () => {
  it('are reproducible from a seed and hold real tar+gzip layers', async () => {
    const again = await makeOciImage(path.join(work.path, 'again'), { layers: [200_000, 70_000, 1_000], seed: 'harness', tag: 'v1' });
    expect(again.manifest.digest).toBe(image.manifest.digest);
    const other = await makeOciImage(path.join(work.path, 'other'), { layers: 1, seed: 'different' });
    expect(other.layers[0]?.digest).not.toBe(image.layers[0]?.digest);

    const layer = image.layers[1]!;
    const blob = path.join(image.dir, 'blobs', 'sha256', layer.digest.slice(7));
    expect(computeDigest(readFileSync(blob))).toBe(layer.digest);
    // GNU tar must read what we wrote: the file has the declared name, size and bytes.
    const listing = execFileSync('tar', ['-tzvf', blob], { encoding: 'utf8' });
    expect(listing).toMatch(/layer-1\.bin/);
    const extracted = execFileSync('tar', ['-xzOf', blob, 'layer-1.bin']);
    expect(extracted.equals(seededBytes('harness/linux/amd64/1', 70_000))).toBe(true);
    expect(computeDigest(execFileSync('gzip', ['-dc', blob]))).toBe(layer.diffId);
  });
});

describe('skopeo against docker-registry', () => {
  it('pushes an OCI layout and reads the manifest back byte for byte', async () => {
    const raw = await skopeoInspect(`docker://${registry.host}/harness/img:v1`, { raw: true });
    expect(computeDigest(raw)).toBe(image.manifest.digest);
    expect(raw.equals(image.manifest.bytes)).toBe(true);
    const summary = await skopeoInspect(`docker://${registry.host}/harness/img:v1`);
    expect(summary.Digest).toBe(image.manifest.digest);
    expect(summary.Layers).toEqual(image.layers.map((l) => l.digest));
  });

  it('lists tags and deletes', async () => {
    await skopeoCopy(image.ref, `docker://${registry.host}/harness/deleteme:a`);
    await skopeoCopy(`docker://${registry.host}/harness/deleteme:a`, `docker://${registry.host}/harness/deleteme:b`);
    expect((await skopeoListTags(`docker://${registry.host}/harness/deleteme`)).sort()).toEqual(['a', 'b']);
    await skopeoDelete(`docker://${registry.host}/harness/deleteme@${image.manifest.digest}`);
    await expect(skopeoInspect(`docker://${registry.host}/harness/deleteme:a`, { raw: true })).rejects.toThrow(/manifest unknown|not found/i);
  });

  it('copies a multi-platform index with --all, keeping its digest', async () => {
    const multi = await makeOciIndex(path.join(work.path, 'multi'), { layers: 1, seed: 'multi' });
    await skopeoCopy(multi.ref, `docker://${registry.host}/harness/multi:1`, { all: true });
    const raw = await skopeoInspect(`docker://${registry.host}/harness/multi:1`, { raw: true });
    expect(computeDigest(raw)).toBe(multi.index.digest);
    const arm = multi.images.find((i) => i.platform.architecture === 'arm64')!;
    const child = await skopeoInspect(`docker://${registry.host}/harness/multi@${arm.manifest.digest}`, { raw: true });
    expect(computeDigest(child)).toBe(arm.manifest.digest);
  });

  it('raw content helpers push manifests that the registry accepts as the same bytes', async () => {
    const blob = randomBlob(10_000, 'raw');
    const config = emptyConfig();
    const manifest = buildManifest({ config, layers: [blob], artifactType: 'application/vnd.layover.test' });
    await pushContent(registry.url, 'harness/raw', 'r1', [blob, config], manifest);
    const got = await getBytes(`${registry.url}/v2/harness/raw/manifests/r1`, { headers: { accept: MediaType.ociManifest } });
    expect(got.status).toBe(200);
    expect(got.headers['docker-content-digest']).toBe(manifest.digest);
    expect(got.body.equals(manifest.bytes)).toBe(true);
    const blobBack = await getBytes(`${registry.url}/v2/harness/raw/blobs/${blob.digest}`);
    expect(computeDigest(blobBack.body)).toBe(blob.digest);
    const index = buildIndex({ manifests: [manifest] });
    expect(index.digest).toBe(computeDigest(index.bytes));
    expect(computeDigest('', 'sha512')).toMatch(/^sha512:[0-9a-f]{128}$/);
  });
});

describe('containerd', () => {
  it('pulls and unpacks from docker-registry, with every digest as pushed', async () => {
    await containerd.pullWithCtr(`${registry.host}/harness/img:v1`, { plainHttp: true });
    const images = await containerd.images();
    expect(images.find((i) => i.ref === `${registry.host}/harness/img:v1`)?.digest).toBe(image.manifest.digest);
    const stored = await containerd.contentDigests();
    for (const layer of image.layers) expect(stored).toContain(layer.digest);
    expect((await containerd.contentGet(image.config.digest)).equals(image.config.bytes)).toBe(true);
    const files = containerd.unpackedFiles();
    for (const layer of image.layers) expect(files).toContainEqual({ path: layer.fileName, size: layer.fileSize });
  });

  it('pulls through a hosts.toml mirror, sending ?ns= and never the real host', async () => {
    const relay = await startCountingProxy(registry.url);
    const hosts = path.join(work.path, 'hosts');
    try {
      await writeHostsToml(hosts, 'docker.io', relay.url);
      await containerd.pullWithCtr('docker.io/harness/img:v1', { hostsDir: hosts });
      expect((await containerd.images()).find((i) => i.ref === 'docker.io/harness/img:v1')?.digest).toBe(image.manifest.digest);
      const manifestGets = relay.requests().filter((r) => r.path === '/v2/harness/img/manifests/v1');
      expect(manifestGets.length).toBeGreaterThan(0);
      for (const r of relay.requests().filter((r) => r.path !== '/v2/')) expect(r.query).toBe('ns=docker.io');
    } finally {
      await relay.close();
    }
  });

  it('fails a pull of a tag that does not exist', async () => {
    await expect(containerd.pullWithCtr(`${registry.host}/harness/img:nope`, { plainHttp: true })).rejects.toThrow(/not found/);
  });
});

describe('counting relay', () => {
  it('counts requests by method and path', async () => {
    const relay = await startCountingProxy(registry.url);
    try {
      const local = await startContainerd();
      try {
        await local.pullWithCtr(`${relay.host}/harness/img:v1`, { plainHttp: true });
      } finally {
        await local.close();
      }
      for (const layer of image.layers) expect(relay.count('GET', `/v2/harness/img/blobs/${layer.digest}`)).toBe(1);
      expect(relay.count('GET', /\/blobs\//)).toBe(image.layers.length + 1);
      expect(relay.counts()[`GET /v2/harness/img/blobs/${image.config.digest}`]).toBe(1);
      relay.reset();
      expect(relay.requests()).toEqual([]);
    } finally {
      await relay.close();
    }
  });

  it('corrupts bodies, answers errors, goes down and comes back', async () => {
    const relay = await startCountingProxy(registry.url);
    const layer = image.layers[0]!;
    const blobUrl = `${relay.url}/v2/harness/img/blobs/${layer.digest}`;
    try {
      expect(computeDigest((await getBytes(blobUrl)).body)).toBe(layer.digest);

      relay.corrupt((r) => r.path.includes('/blobs/'));
      const bad = await getBytes(blobUrl);
      expect(bad.status).toBe(200);
      expect(bad.body.length).toBe(layer.size);
      expect(computeDigest(bad.body)).not.toBe(layer.digest);
      relay.corrupt(false);

      relay.fail(503);
      expect((await getBytes(blobUrl)).status).toBe(503);
      relay.fail(null);

      await relay.down('refuse');
      await expect(getBytes(blobUrl)).rejects.toThrow();
      await relay.up();
      expect(computeDigest((await getBytes(blobUrl)).body)).toBe(layer.digest);

      await relay.down('reset');
      await expect(getBytes(blobUrl)).rejects.toThrow();
      await relay.up();
      expect((await getBytes(blobUrl)).status).toBe(200);
      expect(relay.count('GET', `/v2/harness/img/blobs/${layer.digest}`)).toBeGreaterThanOrEqual(5);
    } finally {
      await relay.close();
    }
  });
});

describe('docker-registry modes', () => {
  it('htpasswd mode rejects bad credentials and accepts good ones', async () => {
    const user = { user: 'tester', password: 'correct horse' };
    const secured = await startDockerRegistry({ htpasswd: user });
    try {
      await expect(skopeoCopy(image.ref, `docker://${secured.host}/sec/img:1`)).rejects.toThrow(/unauthorized|authentication required/i);
      await skopeoCopy(image.ref, `docker://${secured.host}/sec/img:1`, { destCreds: user });
      expect(await skopeoListTags(`docker://${secured.host}/sec/img`, user)).toEqual(['1']);
      await expect(skopeoListTags(`docker://${secured.host}/sec/img`, { user: 'tester', password: 'wrong' })).rejects.toThrow(/unauthorized|authentication required|invalid username/i);
      expect((await getBytes(`${secured.url}/v2/`)).status).toBe(401);
      expect(secured.accessLog().some((r) => r.status === 401 && r.path === '/v2/')).toBe(true);
      expect(readFileSync(path.join(secured.root, '..', 'htpasswd'), 'utf8')).not.toContain(user.password);
      await expect(containerd.pullWithCtr(`${secured.host}/sec/img:1`, { plainHttp: true })).rejects.toThrow(/401|unauthorized/i);
      await containerd.pullWithCtr(`${secured.host}/sec/img:1`, { plainHttp: true, user });
      expect((await containerd.images()).map((i) => i.ref)).toContain(`${secured.host}/sec/img:1`);
    } finally {
      await secured.close();
    }
  });

  it('proxy mode pulls through from an upstream and stores what it fetched', async () => {
    const mirror = await startDockerRegistry({ proxy: { remoteurl: registry.url } });
    try {
      // A layer no other test fetches: docker-registry writes an access line just after the response ends.
      const layer = image.layers[2]!;
      const upstreamGets = () => registry.accessLog().filter((r) => r.method === 'GET' && r.path === `/v2/harness/img/blobs/${layer.digest}`).length;
      const before = upstreamGets();
      const raw = await skopeoInspect(`docker://${mirror.host}/harness/img:v1`, { raw: true });
      expect(computeDigest(raw)).toBe(image.manifest.digest);
      const blobUrl = `${mirror.url}/v2/harness/img/blobs/${layer.digest}`;
      expect(computeDigest((await getBytes(blobUrl)).body)).toBe(layer.digest);
      // Distribution 2.8 serves a cold miss from one upstream GET and stores it from a second,
      // in the background; once stored, the blob is served locally.
      const hex = layer.digest.slice(7);
      const stored = path.join(mirror.root, 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
      await waitFor(() => existsSync(stored) && upstreamGets() - before === 2, 10_000);
      expect(computeDigest(readFileSync(stored))).toBe(layer.digest);
      expect(computeDigest((await getBytes(blobUrl)).body)).toBe(layer.digest);
      await new Promise((r) => setTimeout(r, 200));
      expect(upstreamGets() - before).toBe(2);
    } finally {
      await mirror.close();
    }
  });
});
