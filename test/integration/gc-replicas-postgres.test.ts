// Garbage collection on one replica while another writes, with the metadata in PostgreSQL: the
// database-level rule of src/database/sweep.ts. Two stores (two replicas' views: own pools, own
// in-process guards) on one database and one content directory; the real collector runs on B.
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Database } from '../../src/database/database.js';
import type { Digest } from '../../src/registry/digest.js';
import { withTryAdvisoryLock } from '../../src/database/advisory-lock.js';
import { LOCK } from '../../src/database/locks.js';
import { collectGarbage, type GcReport } from '../../src/registry/gc/collector.js';
import { scheduleEviction } from '../../src/registry/gc/eviction.js';
import type { ComposedStore } from '../../src/registry/storage/composed-store.js';
import { openSharedStore } from '../../src/registry/storage/shared.js';
import { buildIndex, buildManifest, imageConfig, randomBlob, type Content } from '../helpers/oci-content.js';
import { startPostgres, type Postgres } from '../helpers/postgres.js';
import { makeTempDir, type TempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait-for.js';

let server: Postgres;
let databases = 0;
const cleanups: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  server = await startPostgres();
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(async () => {
  await server?.close();
});

/** Replicas A and B on one fresh database and one directory; A's clock can be set back. */
async function replicas(): Promise<{ a: ComposedStore; b: ComposedStore; aClock: { offsetMs: number }; poolB: Database }> {
  const url = await server.createDatabase(`gc_${++databases}`);
  const dir: TempDir = makeTempDir('layover-gc-replicas-');
  const aClock = { offsetMs: 0 };
  const [poolA, poolB] = [new Database(url), new Database(url)];
  const a = await openSharedStore(dir.path, poolA, () => Date.now() + aClock.offsetMs);
  const b = await openSharedStore(dir.path, poolB);
  cleanups.push(async () => {
    await a.close();
    await b.close();
    await poolA.close();
    await poolB.close();
    dir.cleanup();
  });
  return { a, b, aClock, poolB };
}

async function put(store: ComposedStore, blob: Content): Promise<void> {
  await store.ingestBlob(Readable.from([blob.bytes]), { digest: (blob.digest as Digest), size: blob.size });
}

/** What a registry does for a manifest PUT once it has checked the blobs: store it, link, tag. */
async function pushManifest(store: ComposedStore, repository: string, tag: string, manifest: Content, blobs: Content[]): Promise<void> {
  for (const blob of blobs) await store.linkBlob(repository, (blob.digest as Digest));
  await store.putManifest(repository, manifest.bytes, { digest: (manifest.digest as Digest), mediaType: manifest.mediaType });
  await store.setTag(repository, tag, (manifest.digest as Digest));
}

function gc(store: ComposedStore): Promise<GcReport> {
  return collectGarbage(store, { dryRun: false, keepUntagged: false, graceMs: 0 });
}

/**
 * Runs `action` once, when B's collector first calls the scan `key` of `owner` (listBlobs: after
 * the mark and the manifest sweep; metadata.scanLinks: after the mark, before the manifest
 * sweep). `ran` tells whether it did; `restore` puts the scan back.
 */
function beforeFirstScan<T extends object, K extends keyof T>(owner: T, key: K, action: () => Promise<void>): { ran: () => boolean; restore: () => void } {
  const original = owner[key];
  const scan = (original as (...args: unknown[]) => AsyncIterable<unknown>).bind(owner);
  let ran = false;
  (owner as Record<K, unknown>)[key] = async function* (...args: unknown[]) {
    if (!ran) {
      ran = true;
      await action();
    }
    yield* scan(...args);
  };
  return { ran: () => ran, restore: () => void ((owner as Record<K, unknown>)[key] = original) };
}

describe('GC on replica B while replica A writes (metadata in PostgreSQL)', () => {
  it('keeps a blob that A references after B marked it as garbage, and sweeps it once it is really unused', async () => {
    const { a, b, aClock } = await replicas();
    const layer = randomBlob(40_000, 'old-layer');
    // Pushed an hour ago and referenced by nothing since: garbage, as far as B's mark can tell.
    aClock.offsetMs = -3_600_000;
    await put(a, layer);
    aClock.offsetMs = 0;
    const config = imageConfig([(layer.digest as Digest)]);
    const manifest = buildManifest({ config, layers: [layer] });

    // A's push lands between B's mark and B's sweep: B lists the blobs to sweep only after marking.
    const push = beforeFirstScan(b, 'listBlobs', async () => {
      await put(a, config);
      await pushManifest(a, 'team/app', 'v1', manifest, [config, layer]);
    });
    const report = await gc(b);
    expect(push.ran()).toBe(true);
    expect(report.blobs.deletedList).not.toContain((layer.digest as Digest));
    expect(await a.statBlob((layer.digest as Digest))).toEqual({ digest: (layer.digest as Digest), size: layer.size });
    expect(await b.getManifest('team/app', (manifest.digest as Digest))).toMatchObject({ bytes: manifest.bytes });

    // Untagged and old enough, the same blob goes at a later run, content and record.
    push.restore();
    await a.deleteTag('team/app', 'v1');
    await new Promise((r) => setTimeout(r, 2_100)); // past the guard's minimum window
    const later = await gc(b);
    expect(later.blobs.deletedList).toContain((layer.digest as Digest));
    expect(await a.statBlob((layer.digest as Digest))).toBeUndefined();
    expect(await a.openBlob((layer.digest as Digest))).toBeUndefined();
  });

  it('keeps the blobs of a manifest that commits after B\'s mark, however long before its commit A stamped it', async () => {
    // Under load a manifest PUT can wait seconds between the moment its revision is stamped and
    // its commit (a pool connection, locks, a stalled event loop): a stamp older than B's cutoff
    // must not make its references look like garbage that was already unreferenced at the mark.
    const { a, b, aClock } = await replicas();
    const layer = randomBlob(35_000, 'stalled-layer');
    aClock.offsetMs = -3_600_000;
    await put(a, layer);
    const config = imageConfig([(layer.digest as Digest)]);
    await put(a, config);
    const manifest = buildManifest({ config, layers: [layer] });
    const push = beforeFirstScan(b, 'listBlobs', async () => {
      aClock.offsetMs = -10_000;
      await pushManifest(a, 'team/stalled', 'v1', manifest, [config, layer]);
      aClock.offsetMs = 0;
    });
    const report = await gc(b);
    expect(push.ran()).toBe(true);
    expect(report.blobs.deletedList).toEqual([]);
    for (const blob of [layer, config]) expect(await b.statBlob(blob.digest as Digest)).toEqual({ digest: blob.digest, size: blob.size });
    expect(await b.getManifest('team/stalled', manifest.digest as Digest)).toMatchObject({ bytes: manifest.bytes });
  });

  it('makes A\'s manifest push fail cleanly when B swept a blob A had checked a moment before', async () => {
    const { a, b, aClock } = await replicas();
    const layer = randomBlob(30_000, 'swept-layer');
    aClock.offsetMs = -3_600_000;
    await put(a, layer);
    aClock.offsetMs = 0;
    // A's existence check passes…
    expect(await a.statBlob((layer.digest as Digest))).toBeDefined();
    // …then B's sweep deletes the blob before A writes its manifest.
    const report = await gc(b);
    expect(report.blobs.deletedList).toContain((layer.digest as Digest));
    const config = imageConfig([(layer.digest as Digest)]);
    await put(a, config);
    const manifest = buildManifest({ config, layers: [layer] });
    await expect(a.putManifest('team/late', manifest.bytes, { digest: (manifest.digest as Digest), mediaType: manifest.mediaType })).rejects.toMatchObject({
      code: 'MANIFEST_BLOB_UNKNOWN',
    });
    await expect(a.linkBlob('team/late', (layer.digest as Digest))).rejects.toMatchObject({ code: 'BLOB_UNKNOWN' });
    // Nothing half-written: no revision, and the repository does not exist.
    expect(await b.statManifest('team/late', (manifest.digest as Digest))).toBeUndefined();
    expect(await b.repositoryExists('team/late')).toBe(false);
    // The client pushes the blob again and then the manifest: that works.
    await put(a, layer);
    await pushManifest(a, 'team/late', 'v1', manifest, [config, layer]);
    expect(await b.resolveTag('team/late', 'v1')).toBe((manifest.digest as Digest));
  });

  it('keeps an untagged manifest that A tags again after B marked it', async () => {
    const { a, b, aClock } = await replicas();
    const layer = randomBlob(20_000, 'retag-layer');
    const config = imageConfig([(layer.digest as Digest)]);
    const manifest = buildManifest({ config, layers: [layer] });
    aClock.offsetMs = -3_600_000;
    await put(a, layer);
    await put(a, config);
    await pushManifest(a, 'team/retag', 'old', manifest, [config, layer]);
    await a.deleteTag('team/retag', 'old');
    aClock.offsetMs = 0;
    // B marks (the revision is untagged and old), then A tags it again before B sweeps manifests:
    // the links are B's last scan before the sweep.
    const tag = beforeFirstScan(b.metadata, 'scanLinks', async () => {
      await a.setTag('team/retag', 'again', (manifest.digest as Digest));
    });
    await gc(b);
    expect(tag.ran()).toBe(true);
    expect(await b.resolveTag('team/retag', 'again')).toBe((manifest.digest as Digest));
    expect(await b.getManifest('team/retag', (manifest.digest as Digest))).toMatchObject({ bytes: manifest.bytes });
    expect(await b.statBlob((layer.digest as Digest))).toBeDefined();
  });

  it('keeps an untagged manifest that a tagged index names, pushed by A after B\'s mark and stamped before its cutoff', async () => {
    const { a, b, aClock } = await replicas();
    const layer = randomBlob(15_000, 'child-layer');
    const config = imageConfig([(layer.digest as Digest)]);
    const child = buildManifest({ config, layers: [layer] });
    aClock.offsetMs = -3_600_000;
    await put(a, layer);
    await put(a, config);
    // Pushed by digest an hour ago: untagged and old, garbage as far as B's mark can tell.
    for (const blob of [config, layer]) await a.linkBlob('team/multi', blob.digest as Digest);
    await a.putManifest('team/multi', child.bytes, { digest: child.digest as Digest, mediaType: child.mediaType });
    const index = buildIndex({ manifests: [child] });
    const push = beforeFirstScan(b.metadata, 'scanLinks', async () => {
      // A request that waited seconds between its stamp and its commit (see above).
      aClock.offsetMs = -10_000;
      await a.putManifest('team/multi', index.bytes, { digest: index.digest as Digest, mediaType: index.mediaType });
      await a.setTag('team/multi', 'v1', index.digest as Digest);
      aClock.offsetMs = 0;
    });
    const report = await gc(b);
    expect(push.ran()).toBe(true);
    expect(report.manifests.deletedList).toEqual([]);
    expect(await b.getManifest('team/multi', child.digest as Digest)).toMatchObject({ bytes: child.bytes });
    for (const blob of [layer, config]) expect(await b.statBlob(blob.digest as Digest)).toBeDefined();
  });

  it('evicts the mirror cache on one replica at a time: rounds skip while another replica holds the lock', async () => {
    const { a, b, poolB } = await replicas();
    const layer = randomBlob(25_000, 'mirrored-layer');
    const config = imageConfig([(layer.digest as Digest)]);
    const manifest = buildManifest({ config, layers: [layer] });
    await put(a, layer);
    await put(a, config);
    await pushManifest(a, 'mirror/app', 'v1', manifest, [config, layer]);
    await a.recordPull('mirror/app', (manifest.digest as Digest), new Date(Date.now() - 86_400_000));

    // Another replica is mid-round: it holds the eviction lock until released.
    let release!: () => void;
    const holder = withTryAdvisoryLock(poolB, LOCK.eviction, () => new Promise<void>((r) => (release = r)));
    await waitFor(() => release !== undefined);
    const evictionLock = <T>(fn: () => Promise<T>) => withTryAdvisoryLock(poolB, LOCK.eviction, fn);
    const stop = scheduleEviction(b, (repo) => repo.startsWith('mirror/'), { expireAfterMs: 60_000 }, 100, undefined, evictionLock);
    cleanups.push(stop);
    await new Promise((r) => setTimeout(r, 1_000));
    // Ten rounds came and went; every one skipped.
    expect(await a.statManifest('mirror/app', (manifest.digest as Digest))).toBeDefined();
    release();
    expect(await holder).toEqual({ acquired: true, value: undefined });
    await waitFor(async () => (await a.statManifest('mirror/app', (manifest.digest as Digest))) === undefined, 10_000);
    await waitFor(async () => (await a.statBlob((layer.digest as Digest))) === undefined, 10_000);
  });
});
