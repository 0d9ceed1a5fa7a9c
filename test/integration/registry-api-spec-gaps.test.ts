// What the OCI conformance suites (v1.1.1 and distribution-spec main) ask beyond the basics,
// against a real listening layover with authentication on: an invalid tag read is 404, mounts
// without `from` (automatic content discovery, and anonymous), `?tag=` on a manifest PUT with one
// OCI-Tag per tag, 416 for invalid ranges, and sparse manifests when the registry opts in.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLayover, type InProcessLayover } from '../helpers/layover.js';
import { buildIndex, buildManifest, computeDigest, imageConfig, randomBlob, type Content } from '../helpers/oci-content.js';
import { basicAuthHeader, pushContent, uploadBlob, type Auth } from '../helpers/registry-client.js';
import { rawRequest, type Answer } from '../helpers/raw-http.js';

const ALICE: Auth = { user: 'alice', password: 'alice-secret-1' };
const BOB: Auth = { user: 'bob', password: 'bob-secret-2' };
const ADMIN: Auth = { user: 'admin', password: 'admin-secret-3' };

let layover: InProcessLayover;
let sparse: InProcessLayover;

function call(method: string, target: string, auth?: Auth, headers: Record<string, string> = {}, body?: Buffer, base = layover.url): Promise<Answer> {
  return rawRequest(base, method, target, { ...(auth ? { authorization: basicAuthHeader(auth) } : {}), ...headers }, body);
}

function errorCode(res: Answer): string | undefined {
  return (JSON.parse(res.body.toString('utf8')) as { errors: { code: string }[] }).errors[0]?.code;
}

const mount = (target: string, digest: string, auth?: Auth, from?: string) =>
  call('POST', `/v2/${target}/blobs/uploads/?mount=${digest}${from ? `&from=${from}` : ''}`, auth, { 'content-length': '0' });

async function image(repo: string, auth: Auth, base = layover.url): Promise<{ manifest: Content; layer: Content; config: Content }> {
  const layer = randomBlob(4_000);
  const config = imageConfig([layer.digest]);
  const manifest = buildManifest({ config, layers: [layer] });
  for (const blob of [config, layer]) await uploadBlob(base, repo, blob.digest, blob.bytes, auth);
  return { manifest, layer, config };
}

const putManifest = (repo: string, reference: string, manifest: Content, auth: Auth, base = layover.url) =>
  call('PUT', `/v2/${repo}/manifests/${reference}`, auth, { 'content-type': manifest.mediaType }, manifest.bytes, base);

beforeAll(async () => {
  const auth = {
    enabled: true,
    anonymous: true,
    users: [
      { name: 'admin', password: ADMIN.password, admin: true },
      { name: 'alice', password: ALICE.password },
      { name: 'bob', password: BOB.password },
    ],
    // A public drop box anyone may push to and pull from (the suite's anonymous mount runs there).
    rules: [{ repositories: 'public/**', principals: '$anonymous', actions: ['pull' as const, 'push' as const] }],
  };
  layover = await startLayover({ auth });
  sparse = await startLayover({ registry: { sparseManifests: true }, auth });
}, 60_000);

afterAll(async () => {
  await layover?.close();
  await sparse?.close();
});

describe('a syntactically invalid tag', () => {
  it('GET and HEAD answer 404 MANIFEST_UNKNOWN; PUT keeps 400 TAG_INVALID', async () => {
    const get = await call('GET', '/v2/alice/app/manifests/.INVALID_MANIFEST_NAME', ALICE);
    expect(get.status).toBe(404);
    expect(errorCode(get)).toBe('MANIFEST_UNKNOWN');
    expect((await call('HEAD', '/v2/alice/app/manifests/.INVALID_MANIFEST_NAME', ALICE)).status).toBe(404);
    const { manifest } = await image('alice/app', ALICE);
    const put = await putManifest('alice/app', '.INVALID_MANIFEST_NAME', manifest, ALICE);
    expect(put.status).toBe(400);
    expect(errorCode(put)).toBe('TAG_INVALID');
  });
});

describe('mount without from (automatic content discovery)', () => {
  it('mounts a blob from a repository the caller may pull: 201 with Location and Docker-Content-Digest', async () => {
    const blob = randomBlob(3_000);
    await uploadBlob(layover.url, 'alice/base', blob.digest, blob.bytes, ALICE);
    const res = await mount('alice/app2', blob.digest, ALICE);
    expect(res.status).toBe(201);
    expect(res.headers.location).toBe(`/v2/alice/app2/blobs/${blob.digest}`);
    expect(res.headers['docker-content-digest']).toBe(blob.digest);
    const got = await call('GET', `/v2/alice/app2/blobs/${blob.digest}`, ALICE);
    expect(got.status).toBe(200);
    expect(got.body.equals(blob.bytes)).toBe(true);
  });

  it('does not mount a blob that only repositories the caller cannot read hold: 202, nothing linked', async () => {
    const secret = randomBlob(3_000, 'bob-only');
    await uploadBlob(layover.url, 'bob/private', secret.digest, secret.bytes, BOB);
    const res = await mount('alice/app3', secret.digest, ALICE);
    expect(res.status).toBe(202);
    expect(String(res.headers.location)).toMatch(/^\/v2\/alice\/app3\/blobs\/uploads\//);
    expect((await call('HEAD', `/v2/alice/app3/blobs/${secret.digest}`, ALICE)).status).toBe(404);
    // Same answer as for a digest nobody has.
    expect((await mount('alice/app3', computeDigest('nobody has this'), ALICE)).status).toBe(202);
    // With a `from` the caller may not read, the same.
    expect((await mount('alice/app3', secret.digest, ALICE, 'bob/private')).status).toBe(202);
    // An admin may read everything, so the admin's mount finds it.
    expect((await mount('admin/copy', secret.digest, ADMIN)).status).toBe(201);
  });

  it('anonymous: mounts an existing blob it can read where it may push (201); 401 where it may not push', async () => {
    const blob = randomBlob(2_000, 'public-blob');
    await uploadBlob(layover.url, 'public/one', blob.digest, blob.bytes);
    const res = await mount('public/two', blob.digest);
    expect(res.status).toBe(201);
    expect(res.headers['docker-content-digest']).toBe(blob.digest);
    expect((await call('GET', `/v2/public/two/blobs/${blob.digest}`)).body.equals(blob.bytes)).toBe(true);
    // A blob that only alice holds stays hers.
    const hers = randomBlob(2_000, 'alice-anon');
    await uploadBlob(layover.url, 'alice/base', hers.digest, hers.bytes, ALICE);
    expect((await mount('public/three', hers.digest)).status).toBe(202);
    expect((await mount('alice/base2', blob.digest)).status).toBe(401);
  });
});

describe('PUT manifests/<digest>?tag=', () => {
  it('tags in the same request and answers one OCI-Tag header per tag', async () => {
    const { manifest } = await image('alice/tagged', ALICE);
    const res = await putManifest('alice/tagged', `${manifest.digest}?tag=one&tag=two&tag=three`, manifest, ALICE);
    expect(res.status).toBe(201);
    expect(res.headers['docker-content-digest']).toBe(manifest.digest);
    expect(res.headers['oci-tag']).toEqual(['one', 'two', 'three']);
    const tags = JSON.parse((await call('GET', '/v2/alice/tagged/tags/list', ALICE)).body.toString('utf8')) as { tags: string[] };
    expect(tags.tags).toEqual(['one', 'three', 'two']);
    for (const tag of tags.tags) expect((await call('HEAD', `/v2/alice/tagged/manifests/${tag}`, ALICE)).headers['docker-content-digest']).toBe(manifest.digest);
  });

  it('a sha512-addressed manifest gets its tag this way', async () => {
    const { config, layer } = await image('alice/sha512', ALICE);
    const doc = buildManifest({ config, layers: [layer] });
    const digest = computeDigest(doc.bytes, 'sha512');
    const res = await putManifest('alice/sha512', `${digest}?tag=v1`, doc, ALICE);
    expect(res.status).toBe(201);
    expect(res.headers['oci-tag']).toBe('v1');
    expect((await call('HEAD', '/v2/alice/sha512/manifests/v1', ALICE)).headers['docker-content-digest']).toBe(digest);
  });

  it('an invalid tag parameter is 400 TAG_INVALID and nothing is stored, not even the valid tags', async () => {
    const { manifest } = await image('alice/badtag', ALICE);
    const res = await putManifest('alice/badtag', `${manifest.digest}?tag=good&tag=.bad`, manifest, ALICE);
    expect(res.status).toBe(400);
    expect(errorCode(res)).toBe('TAG_INVALID');
    expect(res.headers['oci-tag']).toBeUndefined();
    expect((await call('HEAD', `/v2/alice/badtag/manifests/${manifest.digest}`, ALICE)).status).toBe(404);
    expect((await call('HEAD', '/v2/alice/badtag/manifests/good', ALICE)).status).toBe(404);
  });
});

describe('Range on a blob GET (RFC 9110)', () => {
  let blob: Content;
  beforeAll(async () => {
    blob = randomBlob(1_000, 'ranges');
    await uploadBlob(layover.url, 'alice/ranges', blob.digest, blob.bytes, ALICE);
  });
  const get = (range: string) => call('GET', `/v2/alice/ranges/blobs/${blob.digest}`, ALICE, { range });

  it.each(['bytes=500-0', 'bytes=1000-', 'bytes=2000-3000', 'bytes=-0', 'bytes=999-1,5000-'])('%s is 416 with Content-Range: bytes */size, not the blob', async (range) => {
    const res = await get(range);
    expect(res.status).toBe(416);
    expect(res.headers['content-range']).toBe('bytes */1000');
    expect(errorCode(res)).toBe('RANGE_INVALID');
  });

  it.each(['bytes=abc', 'items=0-10', 'bytes=', 'bytes=0-1;x', 'bytes=0--1'])('%s (not the grammar) is ignored: 200 and the whole blob', async (range) => {
    const res = await get(range);
    expect(res.status).toBe(200);
    expect(res.body.equals(blob.bytes)).toBe(true);
  });

  it('a valid range is 206 with the bytes asked for', async () => {
    const res = await get('bytes=500-509');
    expect(res.status).toBe(206);
    expect(res.headers['content-range']).toBe('bytes 500-509/1000');
    expect(res.body.equals(blob.bytes.subarray(500, 510))).toBe(true);
  });
});

describe('sparse manifests', () => {
  function sparseIndex(): { index: Content; absent: Content } {
    const layer = randomBlob(1_000);
    const config = imageConfig([layer.digest]);
    const absent = buildManifest({ config, layers: [layer] });
    return { index: buildIndex({ manifests: [{ ...absent, platform: { os: 'linux', architecture: 'arm64' } }] }), absent };
  }

  it('are refused by default (400 MANIFEST_BLOB_UNKNOWN), an index and an image alike', async () => {
    const { index, absent } = sparseIndex();
    const res = await putManifest('alice/sparse', 'v1', index, ALICE);
    expect(res.status).toBe(400);
    expect(errorCode(res)).toBe('MANIFEST_BLOB_UNKNOWN');
    expect(errorCode(await putManifest('alice/sparse', 'img', absent, ALICE))).toBe('MANIFEST_BLOB_UNKNOWN');
  });

  it('with registry.sparseManifests, an index whose children and an image whose blobs are absent are stored', async () => {
    const { index, absent } = sparseIndex();
    const res = await putManifest('alice/sparse', 'v1', index, ALICE, sparse.url);
    expect(res.status).toBe(201);
    const got = await call('GET', '/v2/alice/sparse/manifests/v1', ALICE, { accept: index.mediaType }, undefined, sparse.url);
    expect(got.status).toBe(200);
    expect(got.body.equals(index.bytes)).toBe(true);
    // The absent child is absent, as it should be.
    expect((await call('HEAD', `/v2/alice/sparse/manifests/${absent.digest}`, ALICE, {}, undefined, sparse.url)).status).toBe(404);
    expect((await putManifest('alice/sparse', 'img', absent, ALICE, sparse.url)).status).toBe(201);
    // Access rules still hold.
    expect((await putManifest('bob/sparse', 'v1', index, ALICE, sparse.url)).status).toBe(403);
  });

  it('a complete push works as ever with the option on', async () => {
    const layer = randomBlob(1_000);
    const config = imageConfig([layer.digest]);
    const manifest = buildManifest({ config, layers: [layer] });
    await pushContent(sparse.url, 'alice/full', 'v1', [config, layer], manifest, ALICE);
    expect((await call('GET', `/v2/alice/full/blobs/${layer.digest}`, ALICE, {}, undefined, sparse.url)).body.equals(layer.bytes)).toBe(true);
  });
});
