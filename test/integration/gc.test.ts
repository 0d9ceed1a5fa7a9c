// Garbage collection on a real listening layover: it runs online, over and over, while 20 images
// are pushed in parallel (10 by skopeo, 10 by a client that skips blobs the registry already has,
// reusing a layer that is garbage when the pushes start). Nothing is lost: every image pulls
// afterwards with every digest verified, before and after a later collection. And a plain run
// removes exactly the unreferenced blobs, keeping a layer two images share until both are gone.
import { createHash } from 'node:crypto';
import path from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GcReport } from '../../src/registry/gc/collector.js';
import { EmbeddedStore } from '../../src/registry/storage/embedded.js';
import { openStoreOf, startLayover, type InProcessLayover } from '../helpers/layover.js';
import { buildManifest, computeDigest, imageConfig, randomBlob, type Content } from '../helpers/oci-content.js';
import { makeOciImage, type OciImage } from '../helpers/oci-layout.js';
import { getBytes, putManifest, uploadBlob } from '../helpers/registry-client.js';
import { requireTool } from '../helpers/run-tool.js';
import { skopeoCopy, skopeoInspect } from '../helpers/skopeo.js';
import { makeTempDir, type TempDir } from '../helpers/temp-dir.js';

const GRACE_MS = 3000;
let layover: InProcessLayover;
let tmp: TempDir;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function gc(dryRun = false): Promise<GcReport> {
  const res = await request(`${layover.url}/api/v1/gc${dryRun ? '?dryRun=true' : ''}`, { method: 'POST' });
  const body = (await res.body.json()) as GcReport;
  if (res.statusCode !== 200) throw new Error(`gc: HTTP ${res.statusCode} ${JSON.stringify(body)}`);
  return body;
}

async function blobsOnDisk(): Promise<Set<string>> {
  const out = new Set<string>();
  // A second handle on the same root, without init(): that would clear the running server's temp
  // files. On PostgreSQL or S3 (the suite's other modes), a store of its own on the same database and bucket.
  const shared = layover.config.database !== undefined || layover.config.storage.driver === 's3';
  const store = shared ? await openStoreOf(layover) : new EmbeddedStore(layover.root);
  try {
    // The files themselves, and the metadata's records of them: the two must agree.
    for await (const digest of store.content.list()) out.add(digest);
    const recorded = new Set<string>();
    for await (const b of store.listBlobs()) recorded.add(b.digest);
    expect(recorded).toEqual(out);
  } finally {
    await store.close();
  }
  return out;
}

/** Pushes the way docker and skopeo do: HEAD each blob, upload only the missing ones, then the manifest. */
async function pushSkippingExisting(repo: string, tag: string, blobs: Content[], manifest: Content): Promise<void> {
  for (const blob of blobs) {
    const head = await request(`${layover.url}/v2/${repo}/blobs/${blob.digest}`, { method: 'HEAD' });
    await head.body.dump();
    if (head.statusCode === 200) continue;
    await uploadBlob(layover.url, repo, blob.digest, blob.bytes);
  }
  await putManifest(layover.url, repo, tag, manifest);
}

/** GETs the manifest by tag and every blob it names, checking every digest. */
async function verifyPull(repo: string, tag: string, manifest: Content): Promise<void> {
  const m = await getBytes(`${layover.url}/v2/${repo}/manifests/${tag}`, { headers: { accept: manifest.mediaType } });
  expect(m.status, `${repo}:${tag} manifest`).toBe(200);
  expect(computeDigest(m.body)).toBe(manifest.digest);
  const doc = JSON.parse(m.body.toString('utf8')) as { config: { digest: string }; layers: { digest: string }[] };
  for (const d of [doc.config.digest, ...doc.layers.map((l) => l.digest)]) {
    const b = await getBytes(`${layover.url}/v2/${repo}/blobs/${d}`);
    expect(b.status, `${repo}:${tag} blob ${d}`).toBe(200);
    expect(`sha256:${createHash('sha256').update(b.body).digest('hex')}`).toBe(d);
  }
}

function rawImage(seed: string, shared: Content) {
  const own = randomBlob(64 * 1024, `${seed}-own`);
  const config = imageConfig([shared.digest, own.digest]);
  return { blobs: [config, shared, own], manifest: buildManifest({ config, layers: [shared, own] }), own };
}

beforeAll(async () => {
  requireTool('skopeo');
  tmp = makeTempDir('layover-gc-it-');
  layover = await startLayover({ gc: { grace: `${GRACE_MS / 1000}s` } });
});

afterAll(async () => {
  await layover?.close();
  tmp?.cleanup();
});

describe('garbage collection on a running layover', () => {
  it('runs repeatedly during 20 parallel pushes and loses nothing; every image pulls with verified digests', async () => {
    // Garbage: images whose tags are deleted, one of them sharing its base layer with what comes next.
    const base = randomBlob(256 * 1024, 'gc-base');
    const garbage: Content[][] = [];
    for (let i = 0; i < 20; i++) {
      const g = rawImage(`garbage-${i}`, i === 0 ? base : randomBlob(32 * 1024, `garbage-base-${i}`));
      await pushSkippingExisting('team/app', `old-${i}`, g.blobs, g.manifest);
      const del = await request(`${layover.url}/api/v1/tag?repository=team/app&tag=old-${i}`, { method: 'DELETE' });
      expect(del.statusCode).toBe(200);
      await del.body.dump();
      garbage.push(g.blobs);
    }
    const skopeoImages: OciImage[] = [];
    for (let i = 0; i < 10; i++) skopeoImages.push(await makeOciImage(path.join(tmp.path, `img-${i}`), { layers: [40_000, 20_000], seed: `gc-skopeo-${i}`, tag: 't' }));
    const rawImages = Array.from({ length: 10 }, (_, i) => rawImage(`fresh-${i}`, base));
    await sleep(GRACE_MS + 200); // the garbage is now old enough to collect

    let pushing = true;
    const runs: GcReport[] = [];
    const collector = (async () => {
      // At least three runs, however fast the pushes are.
      while (pushing || runs.length < 3) {
        runs.push(await gc());
        await sleep(5);
      }
    })();
    const started = Date.now();
    await Promise.all([
      ...skopeoImages.map((img, i) => skopeoCopy(img.ref, `docker://${layover.host}/team/s${i}:v1`)),
      ...rawImages.map((img, i) => pushSkippingExisting('team/app', `new-${i}`, img.blobs, img.manifest)),
    ]);
    const pushMs = Date.now() - started;
    pushing = false;
    await collector;
    const pushesEnd = started + pushMs;
    expect(runs.filter((r) => Date.parse(r.startedAt) < pushesEnd).length).toBeGreaterThanOrEqual(1);
    const freed = runs.reduce((a, r) => a + r.blobs.bytesFreed, 0);
    expect(freed).toBeGreaterThan(0);

    const verifyAll = async () => {
      for (const [i, img] of rawImages.entries()) await verifyPull('team/app', `new-${i}`, img.manifest);
      for (const [i, img] of skopeoImages.entries()) {
        await verifyPull(`team/s${i}`, 'v1', img.manifest);
        const out = path.join(tmp.path, `pulled-${i}`);
        await skopeoCopy(`docker://${layover.host}/team/s${i}:v1`, `oci:${out}:v1`); // skopeo checks every digest itself
        expect(computeDigest(await skopeoInspect(`oci:${out}:v1`, { raw: true }))).toBe(img.manifest.digest);
      }
    };
    await verifyAll();

    // Once the guard's window has passed, only references protect: a further run must keep all of it.
    await sleep(GRACE_MS + 200);
    const after = await gc();
    await verifyAll();
    const onDisk = await blobsOnDisk();
    for (const blobs of garbage.slice(1)) for (const b of blobs) expect(onDisk.has(b.digest)).toBe(false);
    expect(onDisk.has(base.digest)).toBe(true);
    console.info(`gc during pushes: ${runs.length} runs (${runs.map((r) => r.durationMs).join('/')} ms) around ${pushMs} ms of pushing, ${freed} bytes freed; final run ${after.durationMs} ms, kept ${after.blobs.kept} blobs`);
   // 20 skopeo and raw pushes, then 20 verified pulls twice: minutes on a loaded machine, more on S3.
  }, 240_000);

  it('removes exactly the unreferenced blobs: a shared layer stays until its last image goes', async () => {
    const shared = randomBlob(100_000, 'exact-shared');
    const a = rawImage('exact-a', shared);
    const b = rawImage('exact-b', shared);
    await pushSkippingExisting('exact/app', 'a', a.blobs, a.manifest);
    await pushSkippingExisting('exact/app', 'b', b.blobs, b.manifest);
    await sleep(GRACE_MS + 200);
    await gc();
    const before = await blobsOnDisk();

    await (await request(`${layover.url}/api/v1/tag?repository=exact/app&tag=a`, { method: 'DELETE' })).body.dump();
    await sleep(GRACE_MS + 200);
    const dry = await gc(true);
    expect(await blobsOnDisk()).toEqual(before);
    const report = await gc();
    const expected = [a.manifest, a.blobs[0] as Content, a.own];
    expect(new Set(report.blobs.deletedList)).toEqual(new Set(expected.map((c) => c.digest)));
    expect(report.blobs.bytesFreed).toBe(expected.reduce((n, c) => n + c.size, 0));
    expect(dry.blobs.bytesFreed).toBe(report.blobs.bytesFreed);
    const now = await blobsOnDisk();
    expect([...before].filter((d) => !now.has(d)).sort()).toEqual(expected.map((c) => c.digest).sort());
    await verifyPull('exact/app', 'b', b.manifest);

    await (await request(`${layover.url}/api/v1/tag?repository=exact/app&tag=b`, { method: 'DELETE' })).body.dump();
    await sleep(GRACE_MS + 200);
    const last = await gc();
    expect(new Set(last.blobs.deletedList)).toEqual(new Set(b.blobs.map((c) => c.digest).concat(b.manifest.digest)));
    const status = (await (await request(`${layover.url}/api/v1/gc`)).body.json()) as { lastRun: GcReport; nextRunAt: string };
    expect(status.lastRun.finishedAt).toBe(last.finishedAt);
    expect(Date.parse(status.nextRunAt)).toBeGreaterThan(Date.now());
    const metrics = (await getBytes(`${layover.url}/metrics`)).body.toString();
    expect(Number(/^layover_gc_freed_bytes_total (\d+)/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(last.blobs.bytesFreed);
    expect(metrics).toMatch(/^layover_gc_runs_total\{outcome="ok",dry_run="true"\} [1-9]/m);
  });
});
