// `du`'s figures (GET /api/v1/storage, the usage sampler) come from one aggregate statement in the
// metadata engine. On both engines they must equal what the former computation in JavaScript
// gave (kept below as the reference: each repository's closure of manifests, children, configs
// and layers, unioned per namespace) on a fixture with what makes the sums subtle: layers shared
// across namespaces and with a mirror, an index whose child is stored in another repository only,
// a referrer, a repository without manifests, an unreadable manifest, a referenced blob that is
// not stored and a stored blob nothing references; over every repository and over a subset (what
// a non-admin sees).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storageUsage, type NamespaceUsage, type StorageUsage } from '../../src/api/inventory.js';
import type { Digest } from '../../src/registry/digest.js';
import { namespaceOf } from '../../src/registry/names.js';
import type { ManifestRef, MetadataStore } from '../../src/registry/storage/metadata/types.js';
import { filesystemPostgres, filesystemSqlite, type StorageDriver, type StorageSpace } from '../helpers/storage-drivers.js';

const MIRRORS = new Set(['docker.io']);
const IMAGE = 'application/vnd.oci.image.manifest.v1+json';
const INDEX = 'application/vnd.oci.image.index.v1+json';

const d = (name: string) => `sha256:${name.padEnd(64, '0')}` as Digest;
// Sizes are distinct powers of two, so that any blob counted twice or missed changes every sum.
const SIZES: Record<string, number> = { c1: 1, l1: 2, l2: 4, l3: 8, l4: 16, l5: 32, m1: 64, m2: 128, m3: 256, i1: 512, r1: 1024, orphan: 2048, u1: 4096 };

/** The former Inventory.storage, over the metadata's scans: the reference the SQL must equal. */
async function referenceUsage(meta: MetadataStore, repositories: string[]): Promise<StorageUsage> {
  const revisions = new Map<string, Digest[]>();
  for await (const r of meta.scanManifests()) revisions.set(r.repository, [...(revisions.get(r.repository) ?? []), r.digest]);
  const refs = new Map<Digest, { blobs: Digest[]; children: Digest[] }>();
  for await (const r of meta.scanManifestRefs()) {
    const entry = refs.get(r.manifest) ?? { blobs: [], children: [] };
    refs.set(r.manifest, entry);
    if (r.kind === 'blob') entry.blobs.push(r.ref);
    else if (r.kind === 'child') entry.children.push(r.ref);
  }
  const sizes = new Map<Digest, number>();
  for await (const b of meta.scanBlobs()) sizes.set(b.digest, b.size);
  const closure = (own: Set<Digest>, mine: Set<Digest>, digest: Digest): void => {
    if (own.has(digest)) return;
    own.add(digest);
    if (!mine.has(digest)) return;
    for (const blob of refs.get(digest)?.blobs ?? []) own.add(blob);
    for (const child of refs.get(digest)?.children ?? []) closure(own, mine, child);
  };
  const byNamespace = new Map<string, { repositories: number; digests: Set<Digest> }>();
  const holders = new Map<Digest, number>();
  for (const repository of repositories) {
    const ns = namespaceOf(repository);
    const entry = byNamespace.get(ns) ?? { repositories: 0, digests: new Set<Digest>() };
    byNamespace.set(ns, entry);
    entry.repositories += 1;
    const mine = new Set(revisions.get(repository) ?? []);
    const own = new Set<Digest>();
    for (const digest of mine) closure(own, mine, digest);
    for (const x of own) {
      entry.digests.add(x);
      holders.set(x, (holders.get(x) ?? 0) + 1);
    }
  }
  const bytesOf = (digests: Iterable<Digest>) => [...digests].reduce((a, x) => a + (sizes.get(x) ?? 0), 0);
  const namespaces: NamespaceUsage[] = [...byNamespace]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([namespace, e]) => ({ namespace, kind: MIRRORS.has(namespace) ? 'mirror' : 'pushed', repositories: e.repositories, bytes: bytesOf(e.digests) }));
  const pushed = new Set<Digest>();
  for (const [namespace, e] of byNamespace) if (!MIRRORS.has(namespace)) for (const x of e.digests) pushed.add(x);
  let cacheBytes = 0;
  let sharedBytes = 0;
  for (const [x, count] of holders) {
    if (count > 1) sharedBytes += sizes.get(x) ?? 0;
    if (!pushed.has(x)) cacheBytes += sizes.get(x) ?? 0;
  }
  return {
    cacheBytes,
    sharedBytes,
    namespaces,
    mirrorBytes: namespaces.filter((n) => n.kind === 'mirror').reduce((a, n) => a + n.bytes, 0),
    pushedBytes: namespaces.filter((n) => n.kind === 'pushed').reduce((a, n) => a + n.bytes, 0),
    storedBytes: bytesOf(sizes.keys()),
    blobs: sizes.size,
  };
}

async function seed(meta: MetadataStore): Promise<void> {
  const at = 1_700_000_000_000;
  // l9 is referenced but never stored: it counts 0 everywhere.
  for (const [name, size] of Object.entries(SIZES)) await meta.putBlob({ digest: d(name), size, createdAt: at });
  const image = (m: string, blobs: string[]): ManifestRef[] => blobs.map((b) => ({ manifest: d(m), kind: 'blob', ref: d(b) }));
  const put = async (repository: string, m: string, mediaType: string, refs: ManifestRef[], subject?: string) =>
    meta.putManifest(
      { repository, digest: d(m), mediaType, size: SIZES[m] ?? 0, createdAt: at, ...(subject ? { subject: d(subject) } : {}) },
      refs,
      subject ? { mediaType, digest: d(m), size: SIZES[m] ?? 0 } : undefined,
    );
  await put('alice/app', 'm1', IMAGE, image('m1', ['c1', 'l1', 'l2']));
  await meta.setTag('alice/app', 'v1', d('m1'), at);
  // A referrer (a signature) of m1, with its own layer.
  await put('alice/app', 'r1', IMAGE, image('r1', ['c1', 'l4']), 'm1');
  // An index whose child m1 is stored in alice/app only: here it counts m1's bytes, not its layers.
  await put('alice/tools/multi', 'i1', INDEX, [
    { manifest: d('i1'), kind: 'child', ref: d('m1') },
    { manifest: d('i1'), kind: 'child', ref: d('m3') },
  ]);
  await put('alice/tools/multi', 'm3', IMAGE, image('m3', ['c1', 'l3', 'l9']));
  await meta.setTag('alice/tools/multi', 'latest', d('i1'), at);
  await put('bob/app', 'm2', IMAGE, image('m2', ['c1', 'l1']));
  await meta.setTag('bob/app', 'v2', d('m2'), at);
  // The mirror holds m2 too (shared with bob) and a layer of its own.
  await put('docker.io/library/x', 'm2', IMAGE, image('m2', ['c1', 'l1']));
  await put('docker.io/library/y', 'm3', IMAGE, image('m3', ['c1', 'l3', 'l9']));
  await put('docker.io/library/z', 'l5', IMAGE, []);
  // A manifest whose bytes could not be parsed: it counts itself only.
  await put('carol/broken', 'u1', IMAGE, [{ manifest: d('u1'), kind: 'unreadable', ref: d('u1') }]);
  // A repository with a link and no manifest.
  await meta.link('carol/empty', d('l2'), at);
}

for (const driver of [filesystemSqlite, filesystemPostgres()] as StorageDriver[]) {
  describe(`du's aggregate on ${driver.name}`, () => {
    let space: StorageSpace;
    let meta: MetadataStore;

    beforeAll(async () => {
      await driver.setup?.();
      space = await driver.space();
      meta = await space.metadata();
      await meta.open();
      await seed(meta);
    }, 120_000);

    afterAll(async () => {
      await meta?.close();
      await space?.cleanup();
      await driver.teardown?.();
    });

    it('equals the per-repository closure over every repository', async () => {
      const all = await meta.listRepositories();
      const expected = await referenceUsage(meta, all);
      expect(await storageUsage(meta, MIRRORS)).toEqual(expected);
      // The fixture does exercise what it claims (guards against a vacuous comparison).
      expect(expected.namespaces.map((n) => `${n.namespace}:${n.repositories}:${n.bytes}`)).toEqual([
        // alice: m1 c1 l1 l2 r1 l4 i1 m3 l3 = 64+1+2+4+1024+16+512+256+8
        'alice:2:1887',
        // bob: m2 c1 l1
        'bob:1:131',
        // carol: u1 (and the empty repository)
        'carol:2:4096',
        // docker.io: m2 c1 l1 m3 l3 l5
        'docker.io:3:427',
      ]);
      expect(expected.sharedBytes).toBe(1 + 2 + 64 + 128 + 256 + 8);
      expect(expected.cacheBytes).toBe(32);
      expect(expected.storedBytes).toBe(Object.values(SIZES).reduce((a, b) => a + b, 0));
    });

    it('equals it over a subset of the repositories (what a non-admin sees)', async () => {
      for (const subset of [['alice/app', 'bob/app'], ['alice/tools/multi', 'docker.io/library/y'], ['carol/empty'], []]) {
        expect(await storageUsage(meta, MIRRORS, subset)).toEqual(await referenceUsage(meta, subset));
      }
    });
  });
}
