// DELETE of manifests (by digest and by tag) and blobs against a real listening layover.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLayover, type InProcessLayover } from '../helpers/layover.js';
import { buildManifest, computeDigest, imageConfig, randomBlob, type Content } from '../helpers/oci-content.js';
import { putManifest, uploadBlob } from '../helpers/registry-client.js';
import { getGlobalDispatcher } from 'undici';
import { rawRequest, type Answer } from '../helpers/raw-http.js';

let layover: InProcessLayover;


async function call(method: string, path: string): Promise<Answer> {
  return rawRequest(layover.url, method, path);
}

function expectError(res: Answer, status: number, code: string): void {
  expect(res.status).toBe(status);
  expect(String(res.headers['content-type'])).toMatch(/^application\/json/);
  expect((JSON.parse(res.body.toString('utf8')) as { errors: { code: string }[] }).errors[0]?.code).toBe(code);
}

async function tags(repo: string): Promise<string[]> {
  const res = await call('GET', `/v2/${repo}/tags/list`);
  return (JSON.parse(res.body.toString('utf8')) as { tags: string[] }).tags;
}

async function pushImage(repo: string, tagsToSet: string[]): Promise<{ manifest: Content; layer: Content; config: Content }> {
  const layer = randomBlob(3_000);
  const config = imageConfig([layer.digest]);
  for (const blob of [layer, config]) await uploadBlob(layover.url, repo, blob.digest, blob.bytes);
  const manifest = buildManifest({ config, layers: [layer] });
  for (const tag of tagsToSet) await putManifest(layover.url, repo, tag, manifest);
  return { manifest, layer, config };
}

beforeAll(async () => {
  layover = await startLayover();
});
afterAll(async () => {
  await layover?.close();
});

describe('manifest deletion', () => {
  it('by tag removes only that tag: 202, the manifest stays reachable by digest and other tags', async () => {
    const { manifest } = await pushImage('del/tag', ['a', 'b']);
    const res = await call('DELETE', '/v2/del/tag/manifests/a');
    expect(res.status).toBe(202);
    expect(await tags('del/tag')).toEqual(['b']);
    expectError(await call('GET', '/v2/del/tag/manifests/a'), 404, 'MANIFEST_UNKNOWN');
    expect((await call('GET', '/v2/del/tag/manifests/b')).status).toBe(200);
    expect((await call('GET', `/v2/del/tag/manifests/${manifest.digest}`)).status).toBe(200);
    expectError(await call('DELETE', '/v2/del/tag/manifests/a'), 404, 'MANIFEST_UNKNOWN');
  });

  it('by digest removes the manifest and every tag pointing at it', async () => {
    const { manifest, layer } = await pushImage('del/digest', ['x', 'y']);
    const res = await call('DELETE', `/v2/del/digest/manifests/${manifest.digest}`);
    expect(res.status).toBe(202);
    expect(await tags('del/digest')).toEqual([]);
    expectError(await call('GET', `/v2/del/digest/manifests/${manifest.digest}`), 404, 'MANIFEST_UNKNOWN');
    expect((await call('HEAD', '/v2/del/digest/manifests/x')).status).toBe(404);
    // Blobs are GC's business, not the manifest DELETE's.
    expect((await call('HEAD', `/v2/del/digest/blobs/${layer.digest}`)).status).toBe(200);
    expectError(await call('DELETE', `/v2/del/digest/manifests/${manifest.digest}`), 404, 'MANIFEST_UNKNOWN');
  });

  it('deleting in one repository leaves the same manifest in another', async () => {
    const layer = randomBlob(500, 'shared-del');
    const config = imageConfig([layer.digest]);
    const manifest = buildManifest({ config, layers: [layer] });
    for (const repo of ['del/one', 'del/two']) {
      for (const blob of [layer, config]) await uploadBlob(layover.url, repo, blob.digest, blob.bytes);
      await putManifest(layover.url, repo, 'v1', manifest);
    }
    expect((await call('DELETE', `/v2/del/one/manifests/${manifest.digest}`)).status).toBe(202);
    expect((await call('GET', '/v2/del/two/manifests/v1')).status).toBe(200);
    expect((await call('GET', `/v2/del/two/manifests/${manifest.digest}`)).status).toBe(200);
  });

  it('an unknown tag or digest is 404 MANIFEST_UNKNOWN; a malformed reference is 400', async () => {
    expectError(await call('DELETE', '/v2/del/none/manifests/nope'), 404, 'MANIFEST_UNKNOWN');
    expectError(await call('DELETE', `/v2/del/none/manifests/${computeDigest('x')}`), 404, 'MANIFEST_UNKNOWN');
    expectError(await call('DELETE', '/v2/del/none/manifests/sha256:short'), 400, 'DIGEST_INVALID');
  });
});

describe('blob deletion', () => {
  it('DELETE answers 202, then GET and HEAD are 404 and a second DELETE is 404', async () => {
    const blob = randomBlob(2_000);
    await uploadBlob(layover.url, 'del/blob', blob.digest, blob.bytes);
    const res = await call('DELETE', `/v2/del/blob/blobs/${blob.digest}`);
    expect(res.status).toBe(202);
    expectError(await call('GET', `/v2/del/blob/blobs/${blob.digest}`), 404, 'BLOB_UNKNOWN');
    expect((await call('HEAD', `/v2/del/blob/blobs/${blob.digest}`)).status).toBe(404);
    expectError(await call('DELETE', `/v2/del/blob/blobs/${blob.digest}`), 404, 'BLOB_UNKNOWN');
  });

  it('removes the blob from that repository only', async () => {
    const blob = randomBlob(2_000);
    await uploadBlob(layover.url, 'del/blob-a', blob.digest, blob.bytes);
    await uploadBlob(layover.url, 'del/blob-b', blob.digest, blob.bytes);
    expect((await call('DELETE', `/v2/del/blob-a/blobs/${blob.digest}`)).status).toBe(202);
    const other = await call('GET', `/v2/del/blob-b/blobs/${blob.digest}`);
    expect(other.status).toBe(200);
    expect(other.body.equals(blob.bytes)).toBe(true);
  });

  it('a manifest that needs a deleted blob can no longer be pushed', async () => {
    const { manifest, layer } = await pushImage('del/needs', []);
    expect((await call('DELETE', `/v2/del/needs/blobs/${layer.digest}`)).status).toBe(202);
    const res = await getGlobalDispatcher().request({
      origin: layover.url,
      path: '/v2/del/needs/manifests/v1',
      method: 'PUT',
      headers: { 'content-type': manifest.mediaType },
      body: manifest.bytes,
    });
    expect(res.statusCode).toBe(400);
    expect(((await res.body.json()) as { errors: { code: string }[] }).errors[0]?.code).toBe('MANIFEST_BLOB_UNKNOWN');
  });

  it('an unknown blob is 404 BLOB_UNKNOWN; a malformed digest is 400 DIGEST_INVALID', async () => {
    expectError(await call('DELETE', `/v2/del/blob/blobs/${computeDigest('never')}`), 404, 'BLOB_UNKNOWN');
    expectError(await call('DELETE', '/v2/del/blob/blobs/sha256:nothex'), 400, 'DIGEST_INVALID');
  });
});
