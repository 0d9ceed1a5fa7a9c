// The referrers API against a real listening layover: empty index, descriptors of every manifest
// whose subject is the digest, artifactType filtering with OCI-Filters-Applied, deletion.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLayover, type InProcessLayover } from '../helpers/layover.js';
import { buildIndex, buildManifest, computeDigest, emptyConfig, imageConfig, MediaType, randomBlob, type Content } from '../helpers/oci-content.js';
import { putManifest, uploadBlob } from '../helpers/registry-client.js';
import { rawRequest, type Answer } from '../helpers/raw-http.js';

let layover: InProcessLayover;

interface Index { schemaVersion: number; mediaType: string; manifests: { mediaType: string; digest: string; size: number; artifactType?: string; annotations?: Record<string, string> }[] }

async function call(method: string, path: string): Promise<Answer> {
  return rawRequest(layover.url, method, path);
}

async function referrers(repo: string, digest: string, query = ''): Promise<{ res: Answer; index: Index }> {
  const res = await call('GET', `/v2/${repo}/referrers/${digest}${query}`);
  expect(res.status).toBe(200);
  expect(res.headers['content-type']).toBe(MediaType.ociIndex);
  return { res, index: JSON.parse(res.body.toString('utf8')) as Index };
}

const REPO = 'ref/app';
let subject: Content;
let signature: Content;
let sbom: Content;
let plain: Content;
let indexReferrer: Content;

beforeAll(async () => {
  layover = await startLayover();
  const layer = randomBlob(1_000);
  const config = imageConfig([layer.digest]);
  const empty = emptyConfig();
  const sigPayload = randomBlob(100, 'sig', 'application/vnd.example.sig.v1');
  const sbomPayload = randomBlob(200, 'sbom', 'application/spdx+json');
  for (const blob of [layer, config, empty, sigPayload, sbomPayload]) await uploadBlob(layover.url, REPO, blob.digest, blob.bytes);
  subject = buildManifest({ config, layers: [layer] });
  await putManifest(layover.url, REPO, 'v1', subject);
  signature = buildManifest({ config: empty, layers: [sigPayload], artifactType: 'application/vnd.example.sig', subject, annotations: { 'org.example.signer': 'ci' } });
  sbom = buildManifest({ config: empty, layers: [sbomPayload], artifactType: 'application/spdx+json', subject });
  // No artifactType: the config's media type stands in for it, as the spec says.
  const customConfig = { ...emptyConfig(), mediaType: 'application/vnd.example.config.v1+json' };
  await uploadBlob(layover.url, REPO, customConfig.digest, customConfig.bytes);
  plain = buildManifest({ config: customConfig, layers: [], subject });
  await putManifest(layover.url, REPO, signature.digest, signature);
  await putManifest(layover.url, REPO, sbom.digest, sbom);
  await putManifest(layover.url, REPO, plain.digest, plain);
  indexReferrer = buildIndex({ manifests: [sbom], artifactType: 'application/vnd.example.bundle', subject });
  await putManifest(layover.url, REPO, indexReferrer.digest, indexReferrer);
});
afterAll(async () => {
  await layover?.close();
});

describe('referrers', () => {
  it('an unknown subject answers an empty image index with 200', async () => {
    const { res, index } = await referrers(REPO, computeDigest('nothing refers to this'));
    expect(index).toEqual({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] });
    expect(res.headers['oci-filters-applied']).toBeUndefined();
  });

  it('an unknown repository answers an empty index too', async () => {
    const { index } = await referrers('ref/none', subject.digest);
    expect(index.manifests).toEqual([]);
  });

  it('lists a descriptor per referrer with mediaType, size, artifactType and annotations', async () => {
    const { index, res } = await referrers(REPO, subject.digest);
    expect(res.headers['oci-filters-applied']).toBeUndefined();
    const byDigest = new Map(index.manifests.map((d) => [d.digest, d]));
    expect([...byDigest.keys()].sort()).toEqual([signature.digest, sbom.digest, plain.digest, indexReferrer.digest].sort());
    expect(byDigest.get(signature.digest)).toEqual({
      mediaType: MediaType.ociManifest,
      digest: signature.digest,
      size: signature.size,
      artifactType: 'application/vnd.example.sig',
      annotations: { 'org.example.signer': 'ci' },
    });
    expect(byDigest.get(plain.digest)?.artifactType).toBe('application/vnd.example.config.v1+json');
    expect(byDigest.get(indexReferrer.digest)).toMatchObject({ mediaType: MediaType.ociIndex, size: indexReferrer.size, artifactType: 'application/vnd.example.bundle' });
  });

  it('filters by artifactType and says so with OCI-Filters-Applied', async () => {
    const { index, res } = await referrers(REPO, subject.digest, `?artifactType=${encodeURIComponent('application/vnd.example.sig')}`);
    expect(res.headers['oci-filters-applied']).toBe('artifactType');
    expect(index.manifests.map((d) => d.digest)).toEqual([signature.digest]);
    const none = await referrers(REPO, subject.digest, '?artifactType=application%2Fnone');
    expect(none.res.headers['oci-filters-applied']).toBe('artifactType');
    expect(none.index.manifests).toEqual([]);
  });

  it('referrers are per repository', async () => {
    const { index } = await referrers('ref/other', subject.digest);
    expect(index.manifests).toEqual([]);
  });

  it('a referrer pushed before its subject is listed', async () => {
    const ghost = computeDigest('subject not pushed yet');
    const empty = emptyConfig();
    const early = buildManifest({ config: empty, layers: [], artifactType: 'application/vnd.example.early', subject: { mediaType: MediaType.ociManifest, digest: ghost, size: 42 } });
    await putManifest(layover.url, REPO, early.digest, early);
    const { index } = await referrers(REPO, ghost);
    expect(index.manifests.map((d) => d.digest)).toEqual([early.digest]);
  });

  it('deleting a referrer manifest removes it from the list; deleting a tag does not', async () => {
    const empty = emptyConfig();
    const temp = buildManifest({ config: empty, layers: [], artifactType: 'application/vnd.example.temp', subject });
    await putManifest(layover.url, REPO, 'temp-tag', temp);
    const filter = `?artifactType=${encodeURIComponent('application/vnd.example.temp')}`;
    expect((await referrers(REPO, subject.digest, filter)).index.manifests).toHaveLength(1);
    expect((await call('DELETE', `/v2/${REPO}/manifests/temp-tag`)).status).toBe(202);
    expect((await referrers(REPO, subject.digest, filter)).index.manifests).toHaveLength(1);
    expect((await call('DELETE', `/v2/${REPO}/manifests/${temp.digest}`)).status).toBe(202);
    expect((await referrers(REPO, subject.digest, filter)).index.manifests).toEqual([]);
  });

  it('an invalid digest is 400 DIGEST_INVALID', async () => {
    const res = await call('GET', `/v2/${REPO}/referrers/sha256:1234`);
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body.toString('utf8')).errors[0].code).toBe('DIGEST_INVALID');
    const tag = await call('GET', `/v2/${REPO}/referrers/v1`);
    expect(tag.status).toBe(400);
    expect(JSON.parse(tag.body.toString('utf8')).errors[0].code).toBe('DIGEST_INVALID');
  });
});
