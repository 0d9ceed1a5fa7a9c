// Manifests against a real listening layover: byte-exact round trips of every supported media
// type, references checked (MANIFEST_BLOB_UNKNOWN), subject and OCI-Subject, size limit,
// media type agreement, PUT by digest, ?tag=, sha512.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLayover, type InProcessLayover } from '../helpers/layover.js';
import { buildIndex, buildManifest, computeDigest, content, descriptorOf, emptyConfig, imageConfig, MediaType, randomBlob, type Content } from '../helpers/oci-content.js';
import { uploadBlob } from '../helpers/registry-client.js';
import { getGlobalDispatcher } from 'undici';
import { rawRequest, type Answer } from '../helpers/raw-http.js';

let layover: InProcessLayover;


async function call(method: string, path: string, headers: Record<string, string> = {}, body?: Buffer): Promise<Answer> {
  return rawRequest(layover.url, method, path, headers, body);
}

function expectError(res: Answer, status: number, code: string): { code: string; detail?: unknown } {
  expect(res.status).toBe(status);
  expect(String(res.headers['content-type'])).toMatch(/^application\/json/);
  const doc = JSON.parse(res.body.toString('utf8')) as { errors: { code: string; message: string; detail?: unknown }[] };
  expect(doc.errors[0]?.code).toBe(code);
  expect(typeof doc.errors[0]?.message).toBe('string');
  return doc.errors[0] as { code: string; detail?: unknown };
}

async function put(repo: string, reference: string, manifest: Content, contentType = manifest.mediaType): Promise<Answer> {
  return call('PUT', `/v2/${repo}/manifests/${reference}`, { 'content-type': contentType }, manifest.bytes);
}

async function pushBlobs(repo: string, blobs: Content[]): Promise<void> {
  for (const blob of blobs) await uploadBlob(layover.url, repo, blob.digest, blob.bytes);
}

/** An image whose blobs are already in `repo`; `mediaTypes` picks OCI or Docker. */
async function image(repo: string, docker = false, seed = `${Math.random()}`): Promise<{ manifest: Content; blobs: Content[] }> {
  const layer = randomBlob(2_000, seed, docker ? MediaType.dockerLayerGzip : MediaType.ociLayerGzip);
  const config = imageConfig([layer.digest], undefined, docker ? MediaType.dockerConfig : MediaType.ociConfig);
  await pushBlobs(repo, [config, layer]);
  const manifest = buildManifest({ config, layers: [layer], mediaType: docker ? MediaType.dockerManifest : MediaType.ociManifest });
  return { manifest, blobs: [config, layer] };
}

async function expectRoundTrip(repo: string, reference: string, manifest: Content): Promise<void> {
  for (const ref of [reference, manifest.digest]) {
    const res = await call('GET', `/v2/${repo}/manifests/${ref}`, { accept: manifest.mediaType });
    expect(res.status).toBe(200);
    expect(res.body.equals(manifest.bytes)).toBe(true);
    expect(res.headers['content-type']).toBe(manifest.mediaType);
    expect(res.headers['docker-content-digest']).toBe(manifest.digest);
    expect(res.headers['content-length']).toBe(String(manifest.size));
    const head = await call('HEAD', `/v2/${repo}/manifests/${ref}`);
    expect(head.status).toBe(200);
    expect(head.body.length).toBe(0);
    expect(head.headers['content-length']).toBe(String(manifest.size));
    expect(head.headers['docker-content-digest']).toBe(manifest.digest);
    expect(head.headers['content-type']).toBe(manifest.mediaType);
  }
}

beforeAll(async () => {
  layover = await startLayover();
});
afterAll(async () => {
  await layover?.close();
});

describe('byte-exact round trips', () => {
  it('an OCI image manifest, with odd whitespace and key order kept as sent', async () => {
    const { manifest } = await image('man/oci');
    // Re-serialised with indentation and a trailing newline: the registry must keep these bytes.
    const pretty = content(`${JSON.stringify(JSON.parse(manifest.bytes.toString('utf8')), null, 3)}\n`, MediaType.ociManifest);
    const res = await put('man/oci', 'v1', pretty);
    expect(res.status).toBe(201);
    expect(res.headers.location).toBe(`/v2/man/oci/manifests/${pretty.digest}`);
    expect(res.headers['docker-content-digest']).toBe(pretty.digest);
    expect(res.headers['oci-subject']).toBeUndefined();
    await expectRoundTrip('man/oci', 'v1', pretty);
  });

  it('an OCI index whose children are present', async () => {
    const a = await image('man/index');
    const b = await image('man/index');
    for (const child of [a.manifest, b.manifest]) expect((await put('man/index', child.digest, child)).status).toBe(201);
    const index = buildIndex({
      manifests: [
        { ...a.manifest, platform: { os: 'linux', architecture: 'amd64' } },
        { ...b.manifest, platform: { os: 'linux', architecture: 'arm64' } },
      ],
    });
    expect((await put('man/index', 'multi', index)).status).toBe(201);
    await expectRoundTrip('man/index', 'multi', index);
  });

  it('a Docker schema2 manifest and a Docker manifest list', async () => {
    const a = await image('man/docker', true);
    const res = await put('man/docker', 'v2', a.manifest);
    expect(res.status).toBe(201);
    await expectRoundTrip('man/docker', 'v2', a.manifest);
    const list = buildIndex({ manifests: [{ ...a.manifest, platform: { os: 'linux', architecture: 'amd64' } }], mediaType: MediaType.dockerManifestList });
    expect((await put('man/docker', 'list', list)).status).toBe(201);
    await expectRoundTrip('man/docker', 'list', list);
  });

  it('a manifest without a mediaType field takes its type from Content-Type', async () => {
    const config = emptyConfig();
    const layer = randomBlob(100);
    await pushBlobs('man/plain', [config, layer]);
    const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, config: descriptorOf(config), layers: [descriptorOf(layer)] }));
    const manifest = content(bytes, MediaType.ociManifest);
    expect((await put('man/plain', 'v1', manifest)).status).toBe(201);
    await expectRoundTrip('man/plain', 'v1', manifest);
  });

  it('an artifact manifest with artifactType and subject: OCI-Subject on PUT', async () => {
    const subject = await image('man/art');
    expect((await put('man/art', 'v1', subject.manifest)).status).toBe(201);
    const config = emptyConfig();
    const payload = randomBlob(64, undefined, 'application/vnd.example.signature');
    await pushBlobs('man/art', [config, payload]);
    const artifact = buildManifest({ config, layers: [payload], artifactType: 'application/vnd.example.sig', subject: subject.manifest });
    const res = await put('man/art', artifact.digest, artifact);
    expect(res.status).toBe(201);
    expect(res.headers['oci-subject']).toBe(subject.manifest.digest);
    await expectRoundTrip('man/art', artifact.digest, artifact);
  });

  it('a subject that is not in the registry is accepted (the referrer may arrive first)', async () => {
    const config = emptyConfig();
    await pushBlobs('man/art', [config]);
    const ghost = { mediaType: MediaType.ociManifest, digest: computeDigest('absent subject'), size: 123 };
    const artifact = buildManifest({ config, layers: [], artifactType: 'application/vnd.example.sbom', subject: ghost });
    const res = await put('man/art', artifact.digest, artifact);
    expect(res.status).toBe(201);
    expect(res.headers['oci-subject']).toBe(ghost.digest);
  });
});

describe('references must exist', () => {
  it('a manifest with a missing layer or config is MANIFEST_BLOB_UNKNOWN and is not stored', async () => {
    const config = imageConfig([]);
    await pushBlobs('man/missing', [config]);
    const missing = randomBlob(500);
    const manifest = buildManifest({ config, layers: [missing] });
    const err = expectError(await put('man/missing', 'v1', manifest), 400, 'MANIFEST_BLOB_UNKNOWN');
    expect(JSON.stringify(err.detail)).toContain(missing.digest);
    expect((await call('HEAD', `/v2/man/missing/manifests/${manifest.digest}`)).status).toBe(404);
    expect((await call('HEAD', '/v2/man/missing/manifests/v1')).status).toBe(404);
    const noConfig = buildManifest({ config: randomBlob(10), layers: [] });
    expectError(await put('man/missing', 'v2', noConfig), 400, 'MANIFEST_BLOB_UNKNOWN');
  });

  it('a blob pushed to another repository does not satisfy the reference', async () => {
    const { manifest } = await image('man/elsewhere');
    expectError(await put('man/here', 'v1', manifest), 400, 'MANIFEST_BLOB_UNKNOWN');
  });

  it('an index with a missing child manifest is MANIFEST_BLOB_UNKNOWN', async () => {
    const present = await image('man/idx-missing');
    expect((await put('man/idx-missing', present.manifest.digest, present.manifest)).status).toBe(201);
    const absent = await image('man/idx-missing'); // its blobs are here, its manifest is not
    const index = buildIndex({ manifests: [present.manifest, absent.manifest] });
    const err = expectError(await put('man/idx-missing', 'multi', index), 400, 'MANIFEST_BLOB_UNKNOWN');
    expect(JSON.stringify(err.detail)).toContain(absent.manifest.digest);
  });

  it('foreign (non-distributable) layers need not be present', async () => {
    const config = imageConfig([]);
    await pushBlobs('man/foreign', [config]);
    const foreign = { mediaType: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip', digest: computeDigest('windows base'), size: 10, urls: ['https://example.invalid/layer'] };
    const manifest = buildManifest({ config: { ...descriptorOf(config), mediaType: MediaType.dockerConfig }, layers: [foreign], mediaType: MediaType.dockerManifest });
    expect((await put('man/foreign', 'v1', manifest)).status).toBe(201);
  });

  it('urls make no ordinary layer optional: its blob must be here; a non-distributable one with urls need not be', async () => {
    const config = imageConfig([]);
    await pushBlobs('man/urls', [config]);
    const urls = ['https://example.invalid/layer'];
    const ordinary = { ...descriptorOf(randomBlob(300)), urls };
    const withUrls = buildManifest({ config, layers: [ordinary] });
    const err = expectError(await put('man/urls', 'v1', withUrls), 400, 'MANIFEST_BLOB_UNKNOWN');
    expect(JSON.stringify(err.detail)).toContain(ordinary.digest);
    expect((await call('HEAD', `/v2/man/urls/manifests/${withUrls.digest}`)).status).toBe(404);
    const nondistributable = { mediaType: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip', digest: computeDigest('licensed base'), size: 13, urls };
    const foreign = buildManifest({ config, layers: [nondistributable] });
    expect((await put('man/urls', 'v2', foreign)).status).toBe(201);
    await expectRoundTrip('man/urls', 'v2', foreign);
  });
});

describe('size limit', () => {
  function paddedManifest(config: Content, size: number): Content {
    const base = { schemaVersion: 2, mediaType: MediaType.ociManifest, config: descriptorOf(config), layers: [], annotations: { pad: '' } };
    const overhead = Buffer.byteLength(JSON.stringify(base));
    base.annotations.pad = 'x'.repeat(size - overhead);
    const out = content(JSON.stringify(base), MediaType.ociManifest);
    expect(out.size).toBe(size);
    return out;
  }

  it('accepts a manifest of exactly 4 MiB and refuses one byte more with 413', async () => {
    const config = emptyConfig();
    await pushBlobs('man/big', [config]);
    const limit = 4 * 2 ** 20;
    const fits = paddedManifest(config, limit);
    expect((await put('man/big', 'fits', fits)).status).toBe(201);
    await expectRoundTrip('man/big', 'fits', fits);
    const tooBig = paddedManifest(config, limit + 1);
    const res = await put('man/big', 'big', tooBig);
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body.toString('utf8')).errors[0].code).toBeTypeOf('string');
    expect((await call('HEAD', '/v2/man/big/manifests/big')).status).toBe(404);
  });

  it('refuses an oversized manifest sent without Content-Length (chunked) with 413', async () => {
    const config = emptyConfig();
    const tooBig = paddedManifest(config, 4 * 2 ** 20 + 1000);
    const { Readable } = await import('node:stream');
    const res = await getGlobalDispatcher().request({
      origin: layover.url,
      path: '/v2/man/big/manifests/chunked',
      method: 'PUT',
      headers: { 'content-type': MediaType.ociManifest },
      body: Readable.from([tooBig.bytes.subarray(0, 2 ** 21), tooBig.bytes.subarray(2 ** 21)]),
    });
    expect(res.statusCode).toBe(413);
    await res.body.dump();
  });
});

describe('validation', () => {
  it('a Content-Type that contradicts the mediaType field is MANIFEST_INVALID', async () => {
    const { manifest } = await image('man/type');
    expectError(await put('man/type', 'v1', manifest, MediaType.ociIndex), 400, 'MANIFEST_INVALID');
    expectError(await put('man/type', 'v1', manifest, MediaType.dockerManifest), 400, 'MANIFEST_INVALID');
    expect((await call('HEAD', '/v2/man/type/manifests/v1')).status).toBe(404);
  });

  it('malformed JSON, a wrong schemaVersion, a bad descriptor or an unknown type is MANIFEST_INVALID', async () => {
    const config = emptyConfig();
    await pushBlobs('man/type', [config]);
    const bad = [
      '{not json',
      '[]',
      JSON.stringify({ schemaVersion: 1, mediaType: MediaType.ociManifest, config: descriptorOf(config), layers: [] }),
      JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: { ...descriptorOf(config), digest: 'sha256:zz' }, layers: [] }),
      JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: { ...descriptorOf(config), size: -1 }, layers: [] }),
      JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.example.unknown', config: descriptorOf(config), layers: [] }),
      JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex }),
    ];
    for (const text of bad) {
      const res = await call('PUT', '/v2/man/type/manifests/bad', { 'content-type': MediaType.ociManifest }, Buffer.from(text));
      expect(res.status, text.slice(0, 80)).toBe(400);
      expect(JSON.parse(res.body.toString('utf8')).errors[0].code, text.slice(0, 80)).toBe('MANIFEST_INVALID');
    }
  });

  it('PUT by digest stores under that digest; a digest that does not match the body is DIGEST_INVALID', async () => {
    const { manifest } = await image('man/bydigest');
    const wrong = computeDigest('not the manifest');
    expectError(await put('man/bydigest', wrong, manifest), 400, 'DIGEST_INVALID');
    expect((await call('HEAD', `/v2/man/bydigest/manifests/${wrong}`)).status).toBe(404);
    expect((await call('HEAD', `/v2/man/bydigest/manifests/${manifest.digest}`)).status).toBe(404);
    const res = await put('man/bydigest', manifest.digest, manifest);
    expect(res.status).toBe(201);
    expect(res.headers['docker-content-digest']).toBe(manifest.digest);
    // Pushed by digest only: no tag appears.
    const tags = await call('GET', '/v2/man/bydigest/tags/list');
    expect(JSON.parse(tags.body.toString('utf8')).tags).toEqual([]);
  });

  it('PUT by digest with ?tag= tags it, several tags at once', async () => {
    const { manifest } = await image('man/qtag');
    const res = await put('man/qtag', `${manifest.digest}?tag=one&tag=two`, manifest);
    expect(res.status).toBe(201);
    for (const tag of ['one', 'two']) await expectRoundTrip('man/qtag', tag, manifest);
    const tags = await call('GET', '/v2/man/qtag/tags/list');
    expect(JSON.parse(tags.body.toString('utf8')).tags).toEqual(['one', 'two']);
  });

  it('?tag= with an invalid tag is refused before anything is stored', async () => {
    const { manifest } = await image('man/qtag-bad');
    const res = await put('man/qtag-bad', `${manifest.digest}?tag=..%2Fescape`, manifest);
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body.toString('utf8')).errors[0].code).toBe('TAG_INVALID');
    expect((await call('HEAD', `/v2/man/qtag-bad/manifests/${manifest.digest}`)).status).toBe(404);
  });

  it('moving a tag points it at the new manifest', async () => {
    const a = await image('man/move');
    const b = await image('man/move');
    expect((await put('man/move', 'latest', a.manifest)).status).toBe(201);
    expect((await put('man/move', 'latest', b.manifest)).status).toBe(201);
    await expectRoundTrip('man/move', 'latest', b.manifest);
    // The first one is still there by digest.
    expect((await call('GET', `/v2/man/move/manifests/${a.manifest.digest}`)).status).toBe(200);
  });

  it('unknown tag or digest is 404 MANIFEST_UNKNOWN', async () => {
    expectError(await call('GET', '/v2/man/oci/manifests/nope'), 404, 'MANIFEST_UNKNOWN');
    expectError(await call('GET', `/v2/man/oci/manifests/${computeDigest('nope')}`), 404, 'MANIFEST_UNKNOWN');
    const head = await call('HEAD', '/v2/man/oci/manifests/nope');
    expect(head.status).toBe(404);
    expect(head.body.length).toBe(0);
  });
});

describe('sha512 manifests', () => {
  it('PUT by a sha512 digest stores and serves it under that digest', async () => {
    const { manifest } = await image('man/sha512');
    const digest = computeDigest(manifest.bytes, 'sha512');
    const res = await put('man/sha512', `${digest}?tag=v512`, manifest);
    expect(res.status).toBe(201);
    expect(res.headers['docker-content-digest']).toBe(digest);
    const byDigest = await call('GET', `/v2/man/sha512/manifests/${digest}`);
    expect(byDigest.status).toBe(200);
    expect(byDigest.body.equals(manifest.bytes)).toBe(true);
    const byTag = await call('GET', '/v2/man/sha512/manifests/v512');
    expect(byTag.headers['docker-content-digest']).toBe(digest);
    expect(byTag.body.equals(manifest.bytes)).toBe(true);
  });

  it('references sha512 blobs', async () => {
    const layerBytes = randomBlob(1_000).bytes;
    const layer = content(layerBytes, MediaType.ociLayerGzip, 'sha512');
    const config = content(imageConfig([]).bytes, MediaType.ociConfig, 'sha512');
    await pushBlobs('man/sha512', [config, layer]);
    const manifest = buildManifest({ config, layers: [layer] });
    expect((await put('man/sha512', 'blobs512', manifest)).status).toBe(201);
    await expectRoundTrip('man/sha512', 'blobs512', manifest);
    const missing = buildManifest({ config, layers: [content(randomBlob(5).bytes, MediaType.ociLayerGzip, 'sha512')] });
    expectError(await put('man/sha512', 'missing', missing), 400, 'MANIFEST_BLOB_UNKNOWN');
  });
});
