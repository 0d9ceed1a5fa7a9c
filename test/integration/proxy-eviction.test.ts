// The cache budget over real pulls: least recently pulled mirrored images go first, expired ones
// go regardless, and content pushed into a registry namespace is never evicted, even where it
// shares blobs with the mirror.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDockerRegistry, type DockerRegistry } from '../helpers/docker-registry.js';
import { openStoreOf, startLayover, type InProcessLayover } from '../helpers/layover.js';
import { makeOciImage, type OciImage } from '../helpers/oci-layout.js';
import { skopeoCopy, skopeoInspect } from '../helpers/skopeo.js';
import { makeTempDir, type TempDir } from '../helpers/temp-dir.js';
import type { Digest } from '../../src/registry/digest.js';
import { evictMirrorCache } from '../../src/registry/gc/eviction.js';
import type { ComposedStore } from '../../src/registry/storage/composed-store.js';
import { EmbeddedStore } from '../../src/registry/storage/embedded.js';

let tmp: TempDir;
let upstream: DockerRegistry;
let layover: InProcessLayover;
let store: ComposedStore;
const images: Record<'a' | 'b' | 'c', OciImage> = {} as Record<'a' | 'b' | 'c', OciImage>;

const bytesOf = (img: OciImage) => img.manifest.size + img.config.size + img.layers.reduce((n, l) => n + l.size, 0);
const blobsOf = (img: OciImage) => [img.manifest.digest, img.config.digest, ...img.layers.map((l) => l.digest)] as Digest[];
const isMirror = (repo: string) => repo.startsWith('up/');

beforeAll(async () => {
  tmp = makeTempDir('layover-eviction-');
  upstream = await startDockerRegistry();
  layover = await startLayover({ upstreams: [{ prefix: 'up', url: upstream.url }] });
  // The embedded store on the root, or on the suite's PostgreSQL/S3 modes a store on the same database and bucket.
  store = layover.config.database || layover.config.storage.driver === 's3' ? await openStoreOf(layover) : new EmbeddedStore(layover.root);
  for (const [name, sizes] of [['a', [200_000, 300_000]], ['b', [400_000]], ['c', [500_000, 100_000]]] as const) {
    images[name] = await makeOciImage(`${tmp.path}/${name}`, { layers: [...sizes], tag: 'v1', seed: `evict-${name}` });
    await skopeoCopy(images[name].ref, `docker://${upstream.host}/lib/${name}:v1`);
    await skopeoCopy(`docker://${layover.host}/up/lib/${name}:v1`, `oci:${tmp.path}/pulled-${name}:v1`);
  }
  // Pushed content that shares every blob with mirrored image a.
  await skopeoCopy(images.a.ref, `docker://${layover.host}/alice/app:v1`);
  const hour = 3_600_000;
  const now = Date.now();
  await store.recordPull('up/lib/a', images.a.manifest.digest as Digest, new Date(now - 3 * hour));
  await store.recordPull('up/lib/b', images.b.manifest.digest as Digest, new Date(now - 2 * hour));
  await store.recordPull('up/lib/c', images.c.manifest.digest as Digest, new Date(now - 1 * hour));
}, 90_000);

afterAll(async () => {
  await store?.close();
  await layover?.close();
  await upstream?.close();
  tmp?.cleanup();
});

describe('mirror cache eviction', () => {
  it('evicts least recently pulled first, down to the budget, and never pushed content', async () => {
    const report = await evictMirrorCache(store, isMirror, { maxBytes: bytesOf(images.c) });
    // a's blobs are all held by alice/app, so only b and c count against the budget.
    expect(report.bytesBefore).toBe(bytesOf(images.b) + bytesOf(images.c));
    expect(report.evicted.map((e) => [e.repository, e.reason])).toEqual([['up/lib/a', 'budget'], ['up/lib/b', 'budget']]);
    expect(report.bytesAfter).toBe(bytesOf(images.c));

    for (const digest of blobsOf(images.b)) expect(await store.statBlob(digest)).toBeUndefined();
    for (const digest of [...blobsOf(images.a), ...blobsOf(images.c)]) expect(await store.statBlob(digest)).toBeDefined();
    expect(await store.resolveTag('up/lib/a', 'v1')).toBeUndefined();
    expect(await store.resolveTag('up/lib/c', 'v1')).toBe(images.c.manifest.digest);

    // The pushed image pulls whole; the mirrored c is still a local hit.
    await skopeoCopy(`docker://${layover.host}/alice/app:v1`, `oci:${tmp.path}/alice-after:v1`);
    expect((await skopeoInspect(`oci:${tmp.path}/alice-after:v1`, { raw: true })).equals(images.a.manifest.bytes)).toBe(true);
    await upstream.close();
    await skopeoCopy(`docker://${layover.host}/up/lib/c:v1`, `oci:${tmp.path}/c-after:v1`);
  });

  it('expires mirrored images unused for expireAfter, and still keeps pushed content', async () => {
    const report = await evictMirrorCache(store, isMirror, { expireAfterMs: 30 * 60_000 });
    expect(report.evicted.map((e) => [e.repository, e.reason])).toEqual([['up/lib/c', 'expired']]);
    expect(report.bytesAfter).toBe(0);
    for (const digest of blobsOf(images.c)) expect(await store.statBlob(digest)).toBeUndefined();
    expect(await store.resolveTag('alice/app', 'v1')).toBe(images.a.manifest.digest);
    for (const digest of blobsOf(images.a)) expect(await store.statBlob(digest)).toBeDefined();
  });
});
