// Mark-and-sweep on a real filesystem store: exactly the unreferenced blobs go (shared layers
// stay while referenced; index → children → config/layers; referrers follow their subject);
// dry runs change nothing; the grace period and the guard protect what writers just used.
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config/resolve.js';
import type { Digest } from '../../src/registry/digest.js';
import { collectGarbage, type GcOptions } from '../../src/registry/gc/collector.js';
import { ReferenceGuard } from '../../src/registry/gc/guard.js';
import { RegistryService } from '../../src/registry/service.js';
import { openEmbeddedStore, type EmbeddedStore } from '../../src/registry/storage/embedded.js';
import { buildIndex, buildManifest, emptyConfig, imageConfig, randomBlob, type Content } from '../helpers/oci-content.js';
import { makeTempDir, type TempDir } from '../helpers/temp-dir.js';

let tmp: TempDir;
let store: EmbeddedStore;
let service: RegistryService;

/** An hour ahead: every blob and every use is older than the cutoff. */
const later: Partial<GcOptions> = { now: () => Date.now() + 3_600_000 };
const run = (o: Partial<GcOptions> = {}) => collectGarbage(store, { dryRun: false, keepUntagged: false, graceMs: 600_000, ...later, ...o });

async function blobsOnDisk(): Promise<Set<string>> {
  const out = new Set<string>();
  // The content itself (files), not only the metadata's records of it.
  for await (const digest of store.content.list()) out.add(digest);
  const recorded = new Set<string>();
  for await (const b of store.listBlobs()) recorded.add(b.digest);
  expect(recorded).toEqual(out);
  return out;
}

async function push(repo: string, reference: string, blobs: Content[], manifest: Content): Promise<void> {
  for (const b of blobs) await service.ingest(repo, Readable.from([b.bytes]), b.digest as Digest, b.size);
  await service.putManifest(repo, reference, manifest.bytes, manifest.mediaType);
}

function image(seed: string, shared?: Content) {
  const own = randomBlob(3000, `${seed}-layer`);
  const layers = shared ? [shared, own] : [own];
  const config = imageConfig(layers.map((l) => l.digest));
  const manifest = buildManifest({ config, layers });
  return { config, layers, own, manifest, blobs: [config, ...layers], all: [config.digest, ...layers.map((l) => l.digest), manifest.digest] };
}

beforeEach(async () => {
  tmp = makeTempDir('layover-gc-unit-');
  const config = resolveConfig({ storage: { root: `${tmp.path}/data` } }, { baseDir: tmp.path });
  store = await openEmbeddedStore(config.storage.root);
  service = new RegistryService(store, config);
});

afterEach(() => tmp.cleanup());

describe('collectGarbage', () => {
  it('removes exactly the blobs no kept manifest references; a shared layer stays while any reference remains', async () => {
    const shared = randomBlob(5000, 'shared');
    const a = image('a', shared);
    const b = image('b', shared);
    await push('team/app', 'a', a.blobs, a.manifest);
    await push('team/app', 'b', b.blobs, b.manifest);
    expect((await run()).blobs.deleted).toBe(0);

    await service.deleteManifest('team/app', 'a');
    const first = await run();
    const onDisk = await blobsOnDisk();
    // a's manifest, config and own layer go; the shared layer and all of b stay
    for (const d of [a.manifest.digest, a.config.digest, a.own.digest]) expect(onDisk.has(d)).toBe(false);
    for (const d of b.all) expect(onDisk.has(d)).toBe(true);
    expect(first.blobs.deleted).toBe(3);
    expect(first.blobs.bytesFreed).toBe(a.manifest.size + a.config.size + a.own.size);
    expect(first.manifests.deleted).toBe(1);
    expect(await store.statManifest('team/app', a.manifest.digest as Digest)).toBeUndefined();
    // the repository's link to a removed blob is gone too
    expect(await store.listBlobLinks('team/app')).not.toContain(a.own.digest);

    await service.deleteManifest('team/app', 'b');
    await run();
    expect(await blobsOnDisk()).toEqual(new Set());
  });

  it('keeps an index, its child manifests and their blobs through one tag, and frees them all when it goes', async () => {
    const amd = image('amd');
    const arm = image('arm');
    await push('team/multi', amd.manifest.digest, amd.blobs, amd.manifest);
    await push('team/multi', arm.manifest.digest, arm.blobs, arm.manifest);
    const index = buildIndex({ manifests: [{ ...amd.manifest, platform: { os: 'linux', architecture: 'amd64' } }, { ...arm.manifest, platform: { os: 'linux', architecture: 'arm64' } }] });
    await push('team/multi', 'v1', [], index);
    const kept = await run();
    expect(kept.blobs.deleted).toBe(0);
    expect(kept.manifests.deleted).toBe(0);
    expect(kept.blobs.kept).toBe(7);

    await service.deleteManifest('team/multi', 'v1');
    const freed = await run();
    expect(freed.manifests.deleted).toBe(3);
    expect(freed.blobs.deleted).toBe(7);
    expect(await blobsOnDisk()).toEqual(new Set());
  });

  it('keeps referrers while their subject is kept, and removes them with it', async () => {
    const subject = image('subject');
    await push('team/signed', 'v1', subject.blobs, subject.manifest);
    const sigLayer = randomBlob(200, 'signature');
    const signature = buildManifest({ config: emptyConfig(), layers: [sigLayer], artifactType: 'application/vnd.example.signature', subject: subject.manifest });
    await push('team/signed', signature.digest, [emptyConfig(), sigLayer], signature);
    expect((await run()).blobs.deleted).toBe(0);
    expect(await blobsOnDisk()).toContain(sigLayer.digest);

    await service.deleteManifest('team/signed', 'v1');
    const report = await run();
    expect(report.manifests.deleted).toBe(2);
    expect(await blobsOnDisk()).toEqual(new Set());
  });

  it('keeps untagged manifests and their blobs with keepUntagged', async () => {
    const a = image('untagged');
    await push('team/app', 'x', a.blobs, a.manifest);
    await service.deleteManifest('team/app', 'x');
    const report = await run({ keepUntagged: true });
    expect(report.blobs.deleted).toBe(0);
    expect(await blobsOnDisk()).toEqual(new Set(a.all));
  });

  it('a shared blob survives deleting one of two repositories that use it', async () => {
    const a = image('repo-shared');
    await push('one/app', 'v', a.blobs, a.manifest);
    await push('two/app', 'v', a.blobs, a.manifest);
    await store.deleteNamespace('one');
    expect((await run()).blobs.deleted).toBe(0);
    await store.deleteRepository('two/app');
    const report = await run();
    expect(report.blobs.deleted).toBe(a.all.length);
  });

  it('a dry run reports what a real run then deletes, and deletes nothing', async () => {
    const a = image('dry');
    const b = image('dry-b');
    await push('team/app', 'a', a.blobs, a.manifest);
    await push('team/app', 'b', b.blobs, b.manifest);
    await service.deleteManifest('team/app', 'a');
    const before = await blobsOnDisk();
    const dry = await run({ dryRun: true });
    expect(await blobsOnDisk()).toEqual(before);
    expect(await store.statManifest('team/app', a.manifest.digest as Digest)).toBeDefined();
    const real = await run();
    expect(dry.dryRun).toBe(true);
    expect(dry.blobs.deleted).toBe(real.blobs.deleted);
    expect(dry.blobs.bytesFreed).toBe(real.blobs.bytesFreed);
    expect(new Set(dry.blobs.deletedList)).toEqual(new Set(real.blobs.deletedList));
    expect(real.blobs.deleted).toBe(3);
  });

  it('within the grace period nothing is deleted: new blobs and untagged manifests are kept', async () => {
    const a = image('young');
    await push('team/app', 'x', a.blobs, a.manifest);
    await service.deleteManifest('team/app', 'x');
    const report = await collectGarbage(store, { dryRun: false, keepUntagged: false, graceMs: 600_000 });
    expect(report.blobs.deleted).toBe(0);
    expect(report.manifests.deleted).toBe(0);
    expect(report.blobs.recent).toBe(0);
    expect(report.blobs.kept).toBe(a.all.length);
  });

  it('a blob used after marking began is not deleted (the guard), one not used is', async () => {
    const a = image('used');
    const b = image('unused');
    await push('team/app', 'a', a.blobs, a.manifest);
    await push('team/app', 'b', b.blobs, b.manifest);
    await service.deleteManifest('team/app', 'a');
    await service.deleteManifest('team/app', 'b');
    // a's layer is checked by a writer (as a manifest push does) an hour from now, i.e. after the cutoff
    const future = Date.now() + 3_600_000;
    const guard = store.guard as unknown as { lastUse: Map<string, number> };
    guard.lastUse.set(a.own.digest, future);
    const report = await run({ now: () => future });
    const onDisk = await blobsOnDisk();
    expect(onDisk.has(a.own.digest)).toBe(true);
    expect(onDisk.has(b.own.digest)).toBe(false);
    expect(report.blobs.recent).toBe(1);
  });

  it('stops without deleting anything when a kept manifest cannot be parsed', async () => {
    const a = image('broken');
    await push('team/app', 'a', a.blobs, a.manifest);
    const orphan = image('orphan');
    await push('team/app', 'o', orphan.blobs, orphan.manifest);
    await service.deleteManifest('team/app', 'o');
    // The store refuses a manifest that does not parse as what it claims...
    const meta = (await store.statManifest('team/app', a.manifest.digest as Digest))!;
    await expect(store.putManifest('team/app', a.manifest.bytes, { ...meta, mediaType: 'application/vnd.oci.image.index.v1+json' })).rejects.toThrow();
    // ...so an unreadable one can only come from an imported data directory, which marks it.
    store.metadata.database.prepare("INSERT INTO manifest_refs (manifest, kind, ref) VALUES (?, 'unreadable', ?)").run(a.manifest.digest, a.manifest.digest);
    const before = await blobsOnDisk();
    await expect(run()).rejects.toThrow(/nothing was deleted/);
    expect(await blobsOnDisk()).toEqual(before);
  });

  it('removes abandoned upload sessions', async () => {
    await store.createUpload('team/app');
    const report = await run({ uploadMaxAgeMs: 60_000 });
    expect(report.uploadsRemoved).toBe(1);
    expect(await store.listUploads()).toEqual([]);
  });
});

describe('ReferenceGuard', () => {
  it('refuses to delete a digest used at or after the cutoff', async () => {
    let t = 1000;
    const guard = new ReferenceGuard(() => t);
    await guard.use('d');
    let removed = false;
    expect(await guard.deleteIfIdle('d', 1000, async () => void (removed = true))).toBe(false);
    expect(removed).toBe(false);
    t = 5000;
    expect(await guard.deleteIfIdle('d', 2000, async () => void (removed = true))).toBe(true);
    expect(removed).toBe(true);
  });

  it('a use that arrives during a deletion waits for it to finish', async () => {
    const guard = new ReferenceGuard();
    const order: string[] = [];
    let finish!: () => void;
    const deleting = guard.deleteIfIdle('d', Date.now() + 1, () => new Promise<void>((resolve) => (finish = () => { order.push('deleted'); resolve(); })));
    const using = guard.use('d').then(() => order.push('used'));
    await new Promise((r) => setTimeout(r, 20));
    expect(order).toEqual([]);
    expect(guard.idle('d', 0)).toBe(false);
    finish();
    await Promise.all([deleting, using]);
    expect(order).toEqual(['deleted', 'used']);
  });

  it('prune forgets old uses', async () => {
    let t = 10;
    const guard = new ReferenceGuard(() => t);
    await guard.use('old');
    t = 100;
    await guard.use('new');
    guard.prune(50);
    expect(guard.size).toBe(1);
    expect(guard.idle('old', 0)).toBe(true);
  });
});
