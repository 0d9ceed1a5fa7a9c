// The storage contract: the same cases against every (content, metadata) pair in
// test/helpers/storage-drivers.ts, through the Store the registry uses (composed-store.ts).
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { digestOf, type Digest } from '../../src/registry/digest.js';
import type { Descriptor } from '../../src/registry/manifest.js';
import { composeStore, type ComposedStore } from '../../src/registry/storage/composed-store.js';
import { STORAGE_DRIVERS, type StorageSpace } from '../helpers/storage-drivers.js';
import { seededBytes } from '../helpers/random-bytes.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';

async function readAll(stream: Readable | undefined): Promise<Buffer | undefined> {
  if (!stream) return undefined;
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function manifestBytes(seed: string, subject?: { digest: Digest; size: number }): { bytes: Buffer; digest: Digest } {
  const config = digestOf(`config ${seed}`);
  const doc: Record<string, unknown> = { schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: OCI_CONFIG, digest: config, size: 10 }, layers: [] };
  if (subject) doc.subject = { mediaType: OCI_MANIFEST, ...subject };
  const bytes = Buffer.from(JSON.stringify(doc));
  return { bytes, digest: digestOf(bytes) };
}

describe.each(STORAGE_DRIVERS)('storage contract: $name', (driver) => {
  let space: StorageSpace;
  const open: ComposedStore[] = [];
  const storeOf = async (): Promise<ComposedStore> => {
    const store = await composeStore(space.root, (o) => space.content(o), await space.metadata());
    open.push(store);
    return store;
  };
  let store: ComposedStore;

  beforeAll(async () => driver.setup?.(), 180_000);
  afterAll(async () => driver.teardown?.(), 60_000);
  const fresh = async () => {
    space = await driver.space();
    store = await storeOf();
  };
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
    await space?.cleanup();
  });

  it('a blob is visible only once verified; a wrong digest or size stores nothing', async () => {
    await fresh();
    const bytes = seededBytes('visible', 300_000);
    const digest = digestOf(bytes);
    const writer = await store.openBlobWriter({ digest, size: bytes.length });
    await writer.write([bytes.subarray(0, 100_000)]);
    expect(await store.statBlob(digest)).toBeUndefined();
    expect(await store.openBlob(digest)).toBeUndefined();
    await writer.write([bytes.subarray(100_000)]);
    expect(await store.statBlob(digest)).toBeUndefined();
    expect(await writer.commit()).toEqual({ digest, size: bytes.length });
    expect(await store.statBlob(digest)).toEqual({ digest, size: bytes.length });
    expect((await readAll(await store.openBlob(digest)))?.equals(bytes)).toBe(true);

    const other = seededBytes('wrong', 1000);
    const claimed = digestOf('something else');
    await expect(store.ingestBlob(Readable.from([other]), { digest: claimed })).rejects.toMatchObject({ code: 'DIGEST_INVALID' });
    await expect(store.ingestBlob(Readable.from([other]), { digest: digestOf(other), size: 999 })).rejects.toMatchObject({ code: 'SIZE_INVALID' });
    const bad = await store.openBlobWriter({ digest: claimed });
    await bad.write([other]);
    await expect(bad.commit()).rejects.toMatchObject({ code: 'DIGEST_INVALID' });
    for (const d of [claimed, digestOf(other)]) {
      expect(await store.statBlob(d)).toBeUndefined();
      expect(await store.openBlob(d)).toBeUndefined();
    }
    const listed: string[] = [];
    for await (const b of store.listBlobs()) listed.push(b.digest);
    expect(listed).toEqual([digest]);
  });

  it('serves byte ranges and positional reads exactly', async () => {
    await fresh();
    const bytes = seededBytes('ranges', 1_000_003);
    const digest = digestOf(bytes);
    await store.ingestBlob(Readable.from([bytes]), { digest, size: bytes.length });
    for (const [start, end] of [
      [0, 0],
      [1, 10],
      [524_287, 524_289],
      [999_000, 1_000_002],
    ] as const) {
      expect((await readAll(await store.openBlob(digest, { start, end })))?.equals(bytes.subarray(start, end + 1))).toBe(true);
    }
    const reader = await store.openBlobReader(digest);
    const target = Buffer.alloc(100);
    expect(await reader!.read(target, 100, 500_000)).toBe(100);
    expect(target.equals(bytes.subarray(500_000, 500_100))).toBe(true);
    expect(await reader!.read(target, 100, bytes.length)).toBe(0);
    await reader!.close();
  });

  it('links are per repository; provenance per upstream', async () => {
    await fresh();
    const bytes = seededBytes('link', 1000);
    const digest = digestOf(bytes);
    await store.ingestBlob(Readable.from([bytes]), { digest });
    await store.linkBlob('team/one', digest);
    await store.linkBlob('team/one', digest);
    expect(await store.blobLinked('team/one', digest)).toBe(true);
    expect(await store.blobLinked('team/two', digest)).toBe(false);
    expect(await store.listBlobLinks('team/one')).toEqual([digest]);
    await store.linkBlob('alpha/z', digest);
    expect(await store.repositoriesLinking(digest)).toEqual(['alpha/z', 'team/one']);
    expect(await store.repositoriesLinking(digestOf(seededBytes('link-none', 10)))).toEqual([]);
    expect(await store.unlinkBlob('alpha/z', digest)).toBe(true);
    expect(await store.repositoryExists('team/one')).toBe(true);
    expect(await store.unlinkBlob('team/one', digest)).toBe(true);
    expect(await store.unlinkBlob('team/one', digest)).toBe(false);
    expect(await store.blobLinked('team/one', digest)).toBe(false);
    const source = 'f'.repeat(32);
    expect(await store.blobFromSource(digest, source)).toBe(false);
    await store.recordBlobSource(digest, source);
    expect(await store.blobFromSource(digest, source)).toBe(true);
    expect(await store.blobFromSource(digest, 'e'.repeat(32))).toBe(false);
  });

  it('history: audit entries (filtered, paged, pruned), the last N garbage collection runs, storage totals by provenance', async () => {
    await fresh();
    const m = store.metadata;
    const t0 = Date.now();
    await m.appendAudit([
      { at: t0 - 10_000, actor: 'alice', action: 'push', target: 'alice/app:v1', outcome: 'ok', client: '127.0.0.1', detail: { digest: 'sha256:x' } },
      { at: t0 - 5_000, actor: 'bob', action: 'login', target: 'bob', outcome: 'failed', detail: { reason: 'password' } },
    ]);
    await m.appendAudit([{ at: t0, actor: 'cli:root', action: 'user.add', target: 'carol', outcome: 'ok' }, { at: t0, actor: 'cli:root', action: 'users', target: 'x', outcome: 'ok' }]);
    const all = await m.listAudit({ limit: 10 });
    expect(all.map((e) => e.action)).toEqual(['users', 'user.add', 'login', 'push']);
    expect(all[3]).toEqual({ id: all[3]?.id, at: t0 - 10_000, actor: 'alice', action: 'push', target: 'alice/app:v1', outcome: 'ok', client: '127.0.0.1', detail: { digest: 'sha256:x' } });
    // `user` matches user.add, not users.
    expect((await m.listAudit({ limit: 10, action: 'user' })).map((e) => e.target)).toEqual(['carol']);
    expect((await m.listAudit({ limit: 2, before: all[1]?.id })).map((e) => e.action)).toEqual(['login', 'push']);
    expect(await m.pruneAudit(t0 - 7_000)).toBe(1);
    expect((await m.listAudit({ limit: 10 })).map((e) => e.action)).toEqual(['users', 'user.add', 'login']);

    for (let i = 1; i <= 4; i++) await m.recordGcRun({ finishedAt: t0 + i, dryRun: false, outcome: i === 3 ? 'failed' : 'ok', report: i === 3 ? { message: 'boom' } : { freed: i } }, 3);
    const runs = await m.listGcRuns(10);
    expect(runs.map((r) => [r.finishedAt - t0, r.outcome, r.report])).toEqual([[4, 'ok', { freed: 4 }], [3, 'failed', { message: 'boom' }], [2, 'ok', { freed: 2 }]]);

    expect(await m.storageTotals()).toEqual({ pushed: { blobs: 0, bytes: 0 }, mirrored: { blobs: 0, bytes: 0 } });
    const pushed = seededBytes('pushed', 700);
    const mirrored = seededBytes('mirrored', 300);
    await store.ingestBlob(Readable.from([pushed]), { digest: digestOf(pushed) });
    await store.ingestBlob(Readable.from([mirrored]), { digest: digestOf(mirrored) });
    await store.recordBlobSource(digestOf(mirrored), 'f'.repeat(32));
    expect(await m.storageTotals()).toEqual({ pushed: { blobs: 1, bytes: 700 }, mirrored: { blobs: 1, bytes: 300 } });
  });

  it('manifests, tags and pull times: overwrite, delete, and deleting a manifest drops its tags', async () => {
    await fresh();
    const a = manifestBytes('a');
    const b = manifestBytes('b');
    await store.putManifest('team/app', a.bytes, { digest: a.digest, mediaType: OCI_MANIFEST, annotations: { k: 'v' } });
    await store.putManifest('team/app', b.bytes, { digest: b.digest, mediaType: OCI_MANIFEST });
    expect(await store.statManifest('team/app', a.digest)).toEqual({ digest: a.digest, mediaType: OCI_MANIFEST, size: a.bytes.length, annotations: { k: 'v' } });
    expect((await store.getManifest('team/app', a.digest))?.bytes.equals(a.bytes)).toBe(true);
    expect(await store.statManifest('team/other', a.digest)).toBeUndefined();
    await store.setTag('team/app', 'v1', a.digest);
    await store.setTag('team/app', 'latest', a.digest);
    await store.setTag('team/app', 'v2', b.digest);
    expect(await store.listTags('team/app')).toEqual(['latest', 'v1', 'v2']);
    await store.setTag('team/app', 'latest', b.digest);
    expect(await store.resolveTag('team/app', 'latest')).toBe(b.digest);
    expect(await store.deleteTag('team/app', 'v2')).toBe(true);
    expect(await store.deleteTag('team/app', 'v2')).toBe(false);
    const at = new Date(Date.now() - 60_000);
    await store.recordPull('team/app', a.digest, at);
    expect((await store.lastPulled('team/app', a.digest))?.getTime()).toBe(at.getTime());
    expect(await store.lastPulled('team/app', b.digest)).toBeUndefined();
    expect(await store.deleteManifest('team/app', a.digest)).toBe(true);
    expect(await store.listTags('team/app')).toEqual(['latest']);
    expect(await store.resolveTag('team/app', 'v1')).toBeUndefined();
    expect(await store.statManifest('team/app', a.digest)).toBeUndefined();
    expect(await store.deleteManifest('team/app', a.digest)).toBe(false);
    expect(await store.listTags('team/none')).toBeUndefined();
    expect((await store.listManifests('team/app')).map((m) => m.digest)).toEqual([b.digest]);
  });

  it('pages repositories and tags lexically, and filters by namespace', async () => {
    await fresh();
    const m = manifestBytes('paged');
    const names = [...Array.from({ length: 23 }, (_, i) => `ns${i % 3}/repo-${String(i).padStart(2, '0')}`), 'ns1', 'ns10/x'].sort();
    for (const name of names) await store.setTag(name, 'v1', m.digest);
    expect(await store.listRepositories()).toEqual(names);
    const walked: string[] = [];
    for (let after: string | undefined; ; ) {
      const page = await store.listRepositories({ after, limit: 4 });
      walked.push(...page);
      if (page.length < 4) break;
      after = page[page.length - 1];
    }
    expect(walked).toEqual(names);
    expect(await store.listRepositories({ after: 'ns1/repo-04', limit: 2 })).toEqual(['ns1/repo-07', 'ns1/repo-10']);
    expect(await store.listRepositories({ namespace: 'ns1' })).toEqual(names.filter((n) => n === 'ns1' || n.startsWith('ns1/')));
    const tags = Array.from({ length: 30 }, (_, i) => `t${String(i).padStart(3, '0')}`);
    for (const t of [...tags].reverse()) await store.setTag('ns0/tagged', t, m.digest);
    expect(await store.listTags('ns0/tagged', { limit: 5 })).toEqual(tags.slice(0, 5));
    expect(await store.listTags('ns0/tagged', { after: 't027' })).toEqual(['t028', 't029']);
    expect(await store.listTags('ns0/tagged', { after: 't029', limit: 5 })).toEqual([]);
    expect((await store.listTagDetails('ns0/tagged', { after: 't010', limit: 1 }))?.map((t) => t.tag)).toEqual(['t011']);
  });

  it('summarises a page of repositories: tag and manifest counts, newest push, bytes of the distinct blobs held', async () => {
    await fresh();
    const a = manifestBytes('a');
    const b = manifestBytes('b');
    const configA = Buffer.from('config a');
    await store.ingestBlob(Readable.from([configA]), { digest: digestOf(configA) }); // b's config is never stored: it counts nothing
    await store.putManifest('team/app', a.bytes, { digest: a.digest, mediaType: OCI_MANIFEST });
    await store.putManifest('team/app', b.bytes, { digest: b.digest, mediaType: OCI_MANIFEST });
    await store.setTag('team/app', 'v1', a.digest);
    await store.setTag('team/app', 'v2', a.digest);
    await store.setTag('team/app', 'v3', b.digest);
    await store.putManifest('team/copy', a.bytes, { digest: a.digest, mediaType: OCI_MANIFEST });
    await store.linkBlob('team/empty', digestOf(configA));
    const summaries = await store.metadata.repositorySummaries();
    expect(summaries).toEqual([
      { name: 'team/app', tags: 3, manifests: 2, size: a.bytes.length + b.bytes.length + configA.length, pushedAt: expect.any(Number) },
      { name: 'team/copy', tags: 0, manifests: 1, size: a.bytes.length + configA.length },
      { name: 'team/empty', tags: 0, manifests: 0, size: 0 },
    ]);
    expect(await store.metadata.repositorySummaries({ after: 'team/app', limit: 1 })).toEqual([summaries[1]]);
  });

  it('referrers: listed by subject within the repository, gone with their manifest', async () => {
    await fresh();
    const subject = manifestBytes('subject');
    await store.putManifest('team/app', subject.bytes, { digest: subject.digest, mediaType: OCI_MANIFEST });
    const referrers: { digest: Digest; descriptor: Descriptor }[] = [];
    for (const seed of ['sig', 'sbom']) {
      const r = manifestBytes(seed, { digest: subject.digest, size: subject.bytes.length });
      const descriptor: Descriptor = { mediaType: OCI_MANIFEST, digest: r.digest, size: r.bytes.length, artifactType: `application/${seed}` };
      await store.putManifest('team/app', r.bytes, { digest: r.digest, mediaType: OCI_MANIFEST, subject: subject.digest, artifactType: `application/${seed}` }, descriptor);
      referrers.push({ digest: r.digest, descriptor });
    }
    referrers.sort((x, y) => (x.digest < y.digest ? -1 : 1));
    expect(await store.listReferrers('team/app', subject.digest)).toEqual(referrers.map((r) => r.descriptor));
    expect(await store.listReferrers('team/other', subject.digest)).toEqual([]);
    await store.deleteManifest('team/app', referrers[0]!.digest);
    expect(await store.listReferrers('team/app', subject.digest)).toEqual([referrers[1]!.descriptor]);
  });

  it('upload sessions survive reopening the store and resume at their offset', async () => {
    await fresh();
    const bytes = seededBytes('upload', 3_000_000);
    const upload = await store.createUpload('team/app');
    const first = await store.appendUpload(upload, Readable.from([bytes.subarray(0, 1_000_000)]), 0);
    expect(first.size).toBe(1_000_000);
    // Another instance on the same storage (a restart, or another replica) continues the session.
    const second = await storeOf();
    const resumed = await second.getUpload('team/app', upload.id);
    expect(resumed).toMatchObject({ id: upload.id, repository: 'team/app', size: 1_000_000 });
    expect(await second.getUpload('team/other', upload.id)).toBeUndefined();
    await expect(second.appendUpload(resumed!, Readable.from([bytes.subarray(0, 10)]), 5)).rejects.toMatchObject({ code: 'RANGE_INVALID' });
    const grown = await second.appendUpload(resumed!, Readable.from([bytes.subarray(1_000_000, 2_500_000)]), 1_000_000);
    const third = await storeOf();
    const last = await third.appendUpload((await third.getUpload('team/app', upload.id))!, Readable.from([bytes.subarray(2_500_000)]), grown.size);
    expect(last.size).toBe(bytes.length);
    const digest = digestOf(bytes);
    expect(await store.completeUpload((await store.getUpload('team/app', upload.id))!, digest)).toEqual({ digest, size: bytes.length });
    expect(await third.getUpload('team/app', upload.id)).toBeUndefined();
    expect((await readAll(await third.openBlob(digest)))?.equals(bytes)).toBe(true);
    // a wrong digest on completion stores nothing and ends the session
    const bad = await store.createUpload('team/app');
    await store.appendUpload(bad, Readable.from([Buffer.from('abc')]));
    await expect(store.completeUpload((await store.getUpload('team/app', bad.id))!, digestOf('abd'))).rejects.toMatchObject({ code: 'DIGEST_INVALID' });
    expect(await store.statBlob(digestOf('abc'))).toBeUndefined();
    expect(await store.getUpload('team/app', bad.id)).toBeUndefined();
    // cancel and sweep
    const cancelled = await store.createUpload('team/app');
    expect(await second.cancelUpload('team/app', cancelled.id)).toBe(true);
    expect(await store.getUpload('team/app', cancelled.id)).toBeUndefined();
    const idle = await store.createUpload('team/app');
    expect(await store.purgeUploads(new Date(Date.now() - 60_000))).toBe(0);
    expect(await store.purgeUploads(new Date(Date.now() + 60_000))).toBe(1);
    expect(await store.getUpload('team/app', idle.id)).toBeUndefined();
    expect(await store.listUploads()).toEqual([]);
  });

  it('deletes blobs, repositories (not nested ones) and namespaces', async () => {
    await fresh();
    const bytes = seededBytes('deleted', 5000);
    const digest = digestOf(bytes);
    await store.ingestBlob(Readable.from([bytes]), { digest });
    const reader = await store.openBlob(digest);
    await store.deleteBlob(digest);
    expect(await store.statBlob(digest)).toBeUndefined();
    expect(await store.openBlob(digest)).toBeUndefined();
    await store.deleteBlob(digest);
    void reader?.destroy();
    const m = manifestBytes('repo');
    for (const name of ['team/app', 'team/app/nested', 'team/other', 'teams/x']) {
      await store.putManifest(name, m.bytes, { digest: m.digest, mediaType: OCI_MANIFEST });
      await store.setTag(name, 'v1', m.digest);
    }
    expect(await store.deleteRepository('team/app')).toBe(true);
    expect(await store.deleteRepository('team/app')).toBe(false);
    expect(await store.repositoryExists('team/app')).toBe(false);
    expect(await store.listTags('team/app')).toBeUndefined();
    expect(await store.listTags('team/app/nested')).toEqual(['v1']);
    expect(await store.deleteNamespace('team')).toEqual(['team/app/nested', 'team/other']);
    expect(await store.listRepositories()).toEqual(['teams/x']);
  });

  it('concurrent writers of one digest all succeed and leave one correct blob', async () => {
    await fresh();
    const bytes = seededBytes('concurrent', 700_000);
    const digest = digestOf(bytes);
    const second = await storeOf();
    const writers = [
      ...Array.from({ length: 4 }, (_, i) => (i % 2 ? second : store).ingestBlob(Readable.from([bytes.subarray(0, 300_000), bytes.subarray(300_000)]), { digest, size: bytes.length })),
      (async () => {
        const w = await second.openBlobWriter({ digest, size: bytes.length });
        await w.write([bytes]);
        return w.commit();
      })(),
      (async () => {
        const u = await store.createUpload('team/app');
        const grown = await store.appendUpload(u, Readable.from([bytes]));
        return store.completeUpload(grown, digest);
      })(),
    ];
    for (const result of await Promise.all(writers)) expect(result).toEqual({ digest, size: bytes.length });
    expect(await store.statBlob(digest)).toEqual({ digest, size: bytes.length });
    expect((await readAll(await second.openBlob(digest)))?.equals(bytes)).toBe(true);
    const listed: string[] = [];
    for await (const b of store.listBlobs()) listed.push(b.digest);
    expect(listed).toEqual([digest]);
  });
});
