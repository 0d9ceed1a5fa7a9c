// parseManifest: what the registry reads from a manifest (type, references, subject) without ever
// re-serialising it, and the malformed documents it refuses.
import { describe, expect, it } from 'vitest';
import { digestOf } from '../../src/registry/digest.js';
import { MediaType, parseManifest, parseManifestYielding } from '../../src/registry/manifest.js';

const d = (s: string): string => digestOf(s);
const desc = (s: string, mediaType = 'application/vnd.oci.image.layer.v1.tar+gzip', extra: Record<string, unknown> = {}) => ({ mediaType, digest: d(s), size: s.length, ...extra });
const json = (doc: unknown): Buffer => Buffer.from(JSON.stringify(doc));

function invalid(bytes: Buffer, contentType?: string): void {
  expect(() => parseManifest(bytes, contentType)).toThrow(expect.objectContaining({ code: 'MANIFEST_INVALID', status: 400 }));
}

describe('image manifests', () => {
  const config = desc('config', 'application/vnd.oci.image.config.v1+json');
  const doc = { schemaVersion: 2, mediaType: MediaType.ociManifest, config, layers: [desc('l1'), desc('l2')] };

  it('lists config and layers as the blobs to check, in order', () => {
    const info = parseManifest(json(doc), MediaType.ociManifest);
    expect(info).toMatchObject({ mediaType: MediaType.ociManifest, isIndex: false, blobs: [d('config'), d('l1'), d('l2')], manifests: [] });
    expect(info.subject).toBeUndefined();
    // Without artifactType, the config media type stands in for it (referrers API).
    expect(info.artifactType).toBe('application/vnd.oci.image.config.v1+json');
  });

  it('takes the type from the document when Content-Type is generic, and from Content-Type when the document has none', () => {
    expect(parseManifest(json(doc), 'application/json').mediaType).toBe(MediaType.ociManifest);
    expect(parseManifest(json(doc), undefined).mediaType).toBe(MediaType.ociManifest);
    const { mediaType: _omit, ...bare } = doc;
    expect(parseManifest(json(bare), `${MediaType.ociManifest}; charset=utf-8`).mediaType).toBe(MediaType.ociManifest);
    // Neither: the shape decides.
    expect(parseManifest(json(bare), undefined).mediaType).toBe(MediaType.ociManifest);
  });

  it('a Content-Type that contradicts mediaType is refused', () => {
    invalid(json(doc), MediaType.ociIndex);
    invalid(json(doc), MediaType.dockerManifest);
  });

  it('Docker schema2 with the Docker types', () => {
    const docker = { schemaVersion: 2, mediaType: MediaType.dockerManifest, config: desc('c', 'application/vnd.docker.container.image.v1+json'), layers: [desc('x', 'application/vnd.docker.image.rootfs.diff.tar.gzip')] };
    expect(parseManifest(json(docker), MediaType.dockerManifest).blobs).toEqual([d('c'), d('x')]);
  });

  it('foreign (non-distributable) layers are not required to be present', () => {
    const withForeign = {
      ...doc,
      layers: [desc('here'), desc('win', 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip', { urls: ['https://example.invalid/w'] }), desc('nd', 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip', { urls: ['https://example.invalid/n'] })],
    };
    expect(parseManifest(json(withForeign), undefined).blobs).toEqual([d('config'), d('here')]);
  });

  it('an ordinary layer with urls is still required: only the media type makes a layer foreign', () => {
    const withUrls = { ...doc, layers: [desc('here'), desc('remote', undefined, { urls: ['https://example.invalid/x'] })] };
    expect(parseManifest(json(withUrls), undefined).blobs).toEqual([d('config'), d('here'), d('remote')]);
  });

  it('artifactType, subject and annotations are read', () => {
    const artifact = { ...doc, artifactType: 'application/vnd.example.sig', subject: desc('subj', MediaType.ociManifest), annotations: { a: 'b' } };
    const info = parseManifest(json(artifact), undefined);
    expect(info.artifactType).toBe('application/vnd.example.sig');
    expect(info.subject).toEqual({ mediaType: MediaType.ociManifest, digest: d('subj'), size: 4 });
    expect(info.annotations).toEqual({ a: 'b' });
  });

  it('a sha512 descriptor is accepted', () => {
    const sha512 = { ...doc, layers: [{ mediaType: 'x', digest: digestOf('big', 'sha512'), size: 3 }] };
    expect(parseManifest(json(sha512), undefined).blobs).toContain(digestOf('big', 'sha512'));
  });
});

describe('indexes', () => {
  it('an OCI index lists its children as manifests, not blobs', () => {
    const index = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [desc('m1', MediaType.ociManifest), desc('m2', MediaType.ociManifest)] };
    expect(parseManifest(json(index), MediaType.ociIndex)).toMatchObject({ isIndex: true, blobs: [], manifests: [d('m1'), d('m2')] });
  });

  it('a Docker manifest list, and an index recognised by shape', () => {
    const list = { schemaVersion: 2, mediaType: MediaType.dockerList, manifests: [desc('m', MediaType.dockerManifest)] };
    expect(parseManifest(json(list), MediaType.dockerList).isIndex).toBe(true);
    const bare = { schemaVersion: 2, manifests: [] };
    expect(parseManifest(json(bare), undefined)).toMatchObject({ mediaType: MediaType.ociIndex, isIndex: true, manifests: [] });
  });

  it('an index with a subject and artifactType', () => {
    const index = { schemaVersion: 2, mediaType: MediaType.ociIndex, artifactType: 'application/vnd.example.bundle', manifests: [], subject: desc('s', MediaType.ociManifest) };
    const info = parseManifest(json(index), undefined);
    expect(info.artifactType).toBe('application/vnd.example.bundle');
    expect(info.subject?.digest).toBe(d('s'));
  });

  it('an index without manifests is refused', () => {
    invalid(json({ schemaVersion: 2, mediaType: MediaType.ociIndex }));
  });
});

describe('malformed manifests', () => {
  const config = desc('config', 'application/vnd.oci.image.config.v1+json');
  it.each([
    ['not JSON', Buffer.from('{nope')],
    ['empty', Buffer.alloc(0)],
    ['an array', json([])],
    ['a string', json('manifest')],
    ['null', json(null)],
    ['schemaVersion 1', json({ schemaVersion: 1, mediaType: MediaType.ociManifest, config, layers: [] })],
    ['schemaVersion as string', json({ schemaVersion: '2', mediaType: MediaType.ociManifest, config, layers: [] })],
    ['unknown media type', json({ schemaVersion: 2, mediaType: 'application/vnd.example+json', config, layers: [] })],
    ['no type and no shape', json({ schemaVersion: 2 })],
    ['config not an object', json({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: 'x', layers: [] })],
    ['config without digest', json({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: { mediaType: 'x', size: 1 }, layers: [] })],
    ['invalid digest', json({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: { ...config, digest: 'sha256:abc' }, layers: [] })],
    ['traversal digest', json({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: { ...config, digest: `sha256:../../${'a'.repeat(58)}` }, layers: [] })],
    ['negative size', json({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: { ...config, size: -1 }, layers: [] })],
    ['fractional size', json({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: { ...config, size: 1.5 }, layers: [] })],
    ['huge size', json({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: { ...config, size: 2 ** 60 }, layers: [] })],
    ['size as string', json({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: { ...config, size: '1' }, layers: [] })],
    ['empty mediaType in descriptor', json({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: { ...config, mediaType: '' }, layers: [] })],
    ['layers not an array', json({ schemaVersion: 2, mediaType: MediaType.ociManifest, config, layers: {} })],
    ['a layer that is null', json({ schemaVersion: 2, mediaType: MediaType.ociManifest, config, layers: [null] })],
    ['docker manifest without layers', json({ schemaVersion: 2, mediaType: MediaType.dockerManifest, config })],
    ['annotations with a number', json({ schemaVersion: 2, mediaType: MediaType.ociManifest, config, layers: [], annotations: { a: 1 } })],
    ['subject that is not a descriptor', json({ schemaVersion: 2, mediaType: MediaType.ociManifest, config, layers: [], subject: 'sha256:x' })],
    ['index child with a bad digest', json({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [{ mediaType: MediaType.ociManifest, digest: 'md5:abc', size: 1 }] })],
  ])('%s is MANIFEST_INVALID', (_what, bytes) => {
    invalid(bytes);
  });

  it('a deeply nested document is refused or parsed, never a crash', () => {
    const deep = Buffer.from(`${'['.repeat(5000)}${']'.repeat(5000)}`);
    invalid(deep);
  });
});

describe('parseManifestYielding (request handlers)', () => {
  const big = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: Array.from({ length: 5000 }, (_, i) => desc(`child ${i}`, MediaType.ociManifest)) };

  it('gives what parseManifest gives, letting other work run in between for a large manifest', async () => {
    let ranMeanwhile = false;
    setImmediate(() => {
      ranMeanwhile = true;
    });
    const info = await parseManifestYielding(json(big), MediaType.ociIndex);
    expect(ranMeanwhile).toBe(true);
    expect(info).toEqual(parseManifest(json(big), MediaType.ociIndex));
    expect(info.manifests).toHaveLength(5000);
  });

  it('refuses what parseManifest refuses, with the same error', async () => {
    const bad = { ...big, manifests: [...big.manifests, { mediaType: MediaType.ociManifest, digest: 'sha256:nope', size: 1 }] };
    await expect(parseManifestYielding(json(bad), undefined)).rejects.toMatchObject({ code: 'MANIFEST_INVALID', message: 'manifests[5000].digest: invalid' });
    await expect(parseManifestYielding(Buffer.concat([json(big), Buffer.from('x')]), undefined)).rejects.toMatchObject({ code: 'MANIFEST_INVALID' });
  });
});
