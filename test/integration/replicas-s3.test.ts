// Three `layover serve` processes on ONE Ceph RGW bucket and ONE PostgreSQL database, each on its
// own local root (nothing else shared): issue 14's scale-out. What one replica writes the others
// serve byte for byte; one upload session may hop between replicas; a replica killed mid-push
// leaves nothing corrupt; GC on one replica while two others push loses nothing; tokens are
// accepted cluster-wide; and an outage of PostgreSQL or of the S3 gateway makes requests fail
// cleanly (503 UNAVAILABLE, Distribution JSON) and readiness fail, both recovering by themselves.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SpawnedLayover } from '../helpers/layover.js';
import { buildManifest, computeDigest, content, imageConfig, MediaType, randomBlob, type Content } from '../helpers/oci-content.js';
import { makeOciImage, type OciImage } from '../helpers/oci-layout.js';
import { seededBytes } from '../helpers/random-bytes.js';
import { basicAuthHeader, getBytes, pushContent, uploadBlob, type Auth } from '../helpers/registry-client.js';
import { startReplicaSet, type ReplicaSet } from '../helpers/replica-set.js';
import { skopeoCopy, skopeoInspect } from '../helpers/skopeo.js';
import { makeTempDir, type TempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait-for.js';

const MiB = 2 ** 20;
const admin: Auth = { user: 'admin', password: 'admin-pw-replicas-s3' };
const auth = { authorization: basicAuthHeader(admin) };
let set: ReplicaSet;
let r: SpawnedLayover[];
let s3: S3Client;
let tmp: TempDir;
let image: OciImage;

beforeAll(async () => {
  tmp = makeTempDir('layover-replicas-s3-');
  [set, image] = await Promise.all([
    startReplicaSet({
      count: 3,
      raw: {
        auth: { enabled: true, users: [{ name: 'admin', password: admin.password, admin: true }] },
        // The GC test runs collections itself; a scheduled one must not interfere.
        gc: { interval: '48h' },
      },
    }),
    // One layer larger than a multipart part, so its push streams several parts.
    makeOciImage(path.join(tmp.path, 'img'), { layers: [11 * MiB, 300_000, 2_000], seed: 'replicas-s3', tag: 'v1' }),
  ]);
  r = set.replicas;
  s3 = set.rgw.client();
}, 240_000);

afterAll(async () => {
  await set?.close();
  tmp?.cleanup();
});

const layoutBlob = (dir: string, digest: string) => readFileSync(path.join(dir, 'blobs', 'sha256', digest.slice(7)));
const located = (base: string, location: string) => new URL(location, base);
/** The same upload URL on another replica: only the origin changes. */
const on = (replica: SpawnedLayover, url: URL) => new URL(`${url.pathname}${url.search}`, replica.url);

async function status(url: string | URL, headers: Record<string, string> = auth): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  const res = await request(url, { headers });
  return { status: res.statusCode, body: await res.body.text(), headers: res.headers };
}

async function bucketKeys(prefix: string): Promise<string[]> {
  const out: string[] = [];
  let ContinuationToken: string | undefined;
  do {
    const res = await s3.send(new ListObjectsV2Command({ Bucket: set.bucket, Prefix: prefix, ContinuationToken }));
    for (const o of res.Contents ?? []) out.push(o.Key ?? '');
    ContinuationToken = res.IsTruncated ? res.NextContinuationToken : undefined;
  } while (ContinuationToken);
  return out.sort();
}

/** Every blob object in the bucket hashes to the digest its key names: nothing corrupt or half-written is visible. */
async function expectBucketIntact(): Promise<number> {
  const keys = await bucketKeys(`${set.prefix}blobs/`);
  for (const key of keys) {
    const res = await s3.send(new GetObjectCommand({ Bucket: set.bucket, Key: key }));
    const hash = createHash('sha256');
    for await (const chunk of res.Body as Readable) hash.update(chunk as Buffer);
    expect(`sha256:${hash.digest('hex')}`, key).toBe(`sha256:${key.split('/').at(-1)}`);
  }
  return keys.length;
}

/** The manifest is served byte-exact by `replica` and every blob it names hashes to its digest. */
async function expectPullable(replica: SpawnedLayover, repo: string, reference: string, manifest: Content, blobs: Content[]): Promise<void> {
  const got = await getBytes(`${replica.url}/v2/${repo}/manifests/${reference}`, { auth: admin, headers: { accept: manifest.mediaType } });
  expect(got.status, `${replica.host} ${repo}:${reference}`).toBe(200);
  expect(got.body.equals(manifest.bytes)).toBe(true);
  for (const blob of blobs) {
    const b = await getBytes(`${replica.url}/v2/${repo}/blobs/${blob.digest}`, { auth: admin });
    expect(b.status, `${replica.host} ${repo}@${blob.digest}`).toBe(200);
    expect(computeDigest(b.body)).toBe(blob.digest);
  }
}

async function token(base: string, scope: string): Promise<string> {
  const res = await request(`${base}/token?service=layover&scope=${encodeURIComponent(scope)}`, { headers: auth });
  const body = (await res.body.json()) as { token?: string };
  if (res.statusCode !== 200 || !body.token) throw new Error(`token from ${base}: HTTP ${res.statusCode} ${JSON.stringify(body)}`);
  return body.token;
}

const UNAVAILABLE = /^\{"errors":\[\{"code":"UNAVAILABLE","message":"[^"]+"\}\]\}$/;

describe('three replicas on one S3 bucket and one PostgreSQL', () => {
  it('skopeo pushes through replica 1 and pulls byte-exact through replicas 2 and 3', async () => {
    await skopeoCopy(image.ref, `docker://${r[0]!.host}/team/app:v1`, { destCreds: admin });
    for (const replica of [r[1]!, r[2]!]) {
      const raw = await skopeoInspect(`docker://${replica.host}/team/app:v1`, { raw: true, creds: admin });
      expect(raw.equals(image.manifest.bytes)).toBe(true);
      const out = path.join(tmp.path, `pulled-${replica.port}`);
      await skopeoCopy(`docker://${replica.host}/team/app:v1`, `oci:${out}:v1`, { srcCreds: admin });
      for (const digest of [image.config.digest, ...image.layers.map((l) => l.digest)]) {
        expect(layoutBlob(out, digest).equals(layoutBlob(image.dir, digest))).toBe(true);
      }
    }
    for (const replica of r) expect(replica.log()).not.toMatch(/"level":(50|60)/);
  }, 180_000);

  it('a token minted by replica 1 works on replicas 2 and 3; a forged one does not', async () => {
    const bearer = await token(r[0]!.url, 'repository:team/app:pull');
    for (const replica of [r[1]!, r[2]!]) {
      const tags = await status(`${replica.url}/v2/team/app/tags/list`, { authorization: `Bearer ${bearer}` });
      expect(tags.status).toBe(200);
      expect(JSON.parse(tags.body)).toEqual({ name: 'team/app', tags: ['v1'] });
      // The token's scope holds on the other replica too: it grants no push.
      const post = await request(`${replica.url}/v2/team/app/blobs/uploads/`, { method: 'POST', headers: { authorization: `Bearer ${bearer}`, 'content-length': '0' } });
      await post.body.dump();
      expect(post.statusCode).toBe(401);
    }
    const forged = `${bearer.slice(0, -4)}AAAA`;
    expect((await status(`${r[2]!.url}/v2/team/app/tags/list`, { authorization: `Bearer ${forged}` })).status).toBe(401);
  });

  it('a chunked upload whose PATCHes alternate between replicas 1 and 2 and whose PUT goes to replica 3 lands as one verified blob', async () => {
    const bytes = seededBytes('replicas-chunked', 13 * MiB + 4321);
    const digest = computeDigest(bytes);
    const start = await request(`${r[0]!.url}/v2/team/chunked/blobs/uploads/`, { method: 'POST', headers: { ...auth, 'content-length': '0' } });
    await start.body.dump();
    expect(start.statusCode).toBe(202);
    let url = located(r[0]!.url, start.headers.location as string);
    // Chunks under S3's 5 MiB part minimum and over it, so parts are both buffered and flushed across replicas.
    const sizes = [1 * MiB, 6 * MiB, 700_000, 3 * MiB];
    let offset = 0;
    for (let i = 0; offset < bytes.length; i++) {
      const replica = r[i % 2]!;
      const part = bytes.subarray(offset, offset + sizes[i % sizes.length]!);
      const res = await request(on(replica, url), {
        method: 'PATCH',
        headers: { ...auth, 'content-type': 'application/octet-stream', 'content-range': `${offset}-${offset + part.length - 1}`, 'content-length': String(part.length) },
        body: part,
      });
      const text = await res.body.text();
      expect(res.statusCode, `PATCH ${i} on ${replica.host}: ${text}`).toBe(202);
      expect(res.headers.range).toBe(`0-${offset + part.length - 1}`);
      offset += part.length;
      url = located(replica.url, res.headers.location as string);
      // The session's state is shared: another replica reports the same offset.
      const other = await request(on(r[(i + 1) % 3]!, url), { headers: auth });
      await other.body.dump();
      expect(other.statusCode).toBe(204);
      expect(other.headers.range).toBe(`0-${offset - 1}`);
    }
    const put = on(r[2]!, url);
    put.searchParams.set('digest', digest);
    const done = await request(put, { method: 'PUT', headers: { ...auth, 'content-length': '0' } });
    const text = await done.body.text();
    expect(done.statusCode, text).toBe(201);
    expect(done.headers['docker-content-digest']).toBe(digest);
    expect(await bucketKeys(`${set.prefix}uploads/`)).toEqual([]);
    for (const replica of r) {
      const got = await getBytes(`${replica.url}/v2/team/chunked/blobs/${digest}`, { auth: admin });
      expect(got.status).toBe(200);
      expect(got.body.equals(bytes)).toBe(true);
    }
  }, 120_000);

  it('kill -9 of a replica during 10 parallel pushes: every acknowledged push pulls byte-exact from the survivors, nothing corrupt', async () => {
    const victim = r[2]!;
    const survivors = [r[0]!, r[1]!];
    const images = Array.from({ length: 10 }, (_, i) => {
      const layer = randomBlob(6 * MiB + i, `kill-${i}`);
      const config = imageConfig([layer.digest]);
      return { i, layer, config, manifest: buildManifest({ config, layers: [layer] }), via: r[i % 3]! };
    });
    // The victim's pushes stream their layer slowly, so the kill lands mid-body (mid multipart upload).
    const slowBody = (bytes: Buffer) => Readable.from((async function* () {
      for (let o = 0; o < bytes.length; o += 256 * 1024) {
        yield bytes.subarray(o, o + 256 * 1024);
        await sleep(100);
      }
    })());
    const push = async (img: (typeof images)[number]): Promise<boolean> => {
      const repo = `kill/app-${img.i}`;
      const base = img.via.url;
      const post = await request(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers: { ...auth, 'content-length': '0' } });
      await post.body.dump();
      if (post.statusCode !== 202) return false;
      const target = located(base, post.headers.location as string);
      target.searchParams.set('digest', img.layer.digest);
      const put = await request(target, {
        method: 'PUT',
        headers: { ...auth, 'content-type': 'application/octet-stream', 'content-length': String(img.layer.size) },
        body: img.via === victim ? slowBody(img.layer.bytes) : img.layer.bytes,
      });
      await put.body.dump();
      if (put.statusCode !== 201) return false;
      await pushContent(base, repo, 'v1', [img.config], img.manifest, admin);
      return true;
    };
    const outcomes = images.map((img) => push(img).catch(() => false));
    await sleep(1_500);
    expect(await victim.kill('SIGKILL')).toBe('SIGKILL');
    const acknowledged = (await Promise.all(outcomes)).map((ok, i) => ok && images[i]!).filter((x) => x !== false);
    // The victim's pushes were cut; the survivors' went through.
    expect(acknowledged.map((img) => img.i)).toEqual(images.filter((img) => img.via !== victim).map((img) => img.i));
    for (const img of acknowledged) {
      for (const replica of survivors) await expectPullable(replica, `kill/app-${img.i}`, 'v1', img.manifest, [img.config, img.layer]);
    }
    // What the registry lists is intact: every repository's every tag, manifest and blob.
    const catalog = JSON.parse((await status(`${r[0]!.url}/v2/_catalog?n=1000`)).body) as { repositories: string[] };
    for (const repo of catalog.repositories) {
      const tags = (JSON.parse((await status(`${r[1]!.url}/v2/${repo}/tags/list`)).body) as { tags: string[] | null }).tags ?? [];
      for (const tag of tags) {
        const m = await getBytes(`${r[1]!.url}/v2/${repo}/manifests/${tag}`, { auth: admin, headers: { accept: `${MediaType.ociManifest}, ${MediaType.dockerManifest}` } });
        expect(m.status).toBe(200);
        expect(computeDigest(m.body)).toBe(m.headers['docker-content-digest']);
        const parsed = JSON.parse(m.body.toString()) as { config: { digest: string }; layers: { digest: string }[] };
        for (const d of [parsed.config.digest, ...parsed.layers.map((l) => l.digest)]) {
          const b = await getBytes(`${r[0]!.url}/v2/${repo}/blobs/${d}`, { auth: admin });
          expect(b.status, `${repo}@${d}`).toBe(200);
          expect(computeDigest(b.body)).toBe(d);
        }
      }
    }
    // And every object in the bucket hashes to its name.
    expect(await expectBucketIntact()).toBeGreaterThanOrEqual(acknowledged.length * 2);
    // The victim comes back on the same bucket and database and serves what the others stored.
    await victim.restart();
    await expectPullable(victim, `kill/app-${acknowledged[0]!.i}`, 'v1', acknowledged[0]!.manifest, [acknowledged[0]!.config, acknowledged[0]!.layer]);
  }, 240_000);

  it('GC on replica 3 while replicas 1 and 2 push the same layers for 60 s loses nothing', async () => {
    const DURATION_MS = 60_000;
    // Seen once in two runs at load ~20: a kept image's config blob (pushed by replica 1 or 2
    // moments before its manifest) swept by replica 3 with grace 0 s, i.e. the 2 s minimum guard
    // window. One race that does this, a manifest stamped before the cutoff but committed after
    // the mark, is fixed and tested in gc-replicas-postgres.test.ts; whether it was that one is
    // unproven (2 runs at load 16-20 passed before the fix, 2 after).
    // Kept images share layers A; transient images share layers B and are deleted right after the
    // next one is pushed, so B is again and again unreferenced while a push is about to reference
    // it: the race GC must not lose.
    const shared = [randomBlob(200_000, 'gc-a1'), randomBlob(50_000, 'gc-a2')];
    const transient = [randomBlob(150_000, 'gc-b1'), randomBlob(40_000, 'gc-b2')];
    const repo = 'gc/app';
    const kept: { tag: string; manifest: Content; blobs: Content[] }[] = [];
    const lastTransient: { tag: string; manifest: Content; blobs: Content[] }[] = [];
    const reports: { blobs: { deleted: number }; manifests: { deleted: number } }[] = [];
    let refusals = 0;
    const deadline = Date.now() + DURATION_MS;

    // What a client does: HEAD each blob and upload only the missing ones, then PUT the manifest.
    const pushImage = async (replica: SpawnedLayover, tag: string, layers: Content[], seed: string) => {
      const config = content(JSON.stringify({ ...JSON.parse(imageConfig(layers.map((l) => l.digest)).bytes.toString()), seed }), MediaType.ociConfig);
      const manifest = buildManifest({ config, layers });
      for (let attempt = 0; attempt < 5; attempt++) {
        for (const blob of [config, ...layers]) {
          const head = await request(`${replica.url}/v2/${repo}/blobs/${blob.digest}`, { method: 'HEAD', headers: auth });
          await head.body.dump();
          if (head.statusCode !== 200) await uploadBlob(replica.url, repo, blob.digest, blob.bytes, admin);
        }
        const res = await request(`${replica.url}/v2/${repo}/manifests/${tag}`, { method: 'PUT', headers: { ...auth, 'content-type': manifest.mediaType }, body: manifest.bytes });
        const text = await res.body.text();
        if (res.statusCode === 201) return { tag, manifest, blobs: [config, ...layers] };
        // A blob collected between the HEAD and the PUT is a clean refusal; the client pushes it again.
        expect(res.statusCode, text).toBe(400);
        expect(text).toMatch(/MANIFEST_BLOB_UNKNOWN|BLOB_UNKNOWN/);
        refusals++;
      }
      throw new Error(`push of ${tag} refused five times`);
    };
    const pusher = async (replica: SpawnedLayover, name: string) => {
      let previous: Content | undefined;
      for (let n = 0; Date.now() < deadline; n++) {
        kept.push(await pushImage(replica, `${name}-kept-${n}`, shared, `${name}-kept-${n}`));
        const t = await pushImage(replica, `${name}-t-${n}`, transient, `${name}-t-${n}`);
        if (previous) {
          const del = await request(`${replica.url}/v2/${repo}/manifests/${previous.digest}`, { method: 'DELETE', headers: auth });
          await del.body.dump();
          expect(del.statusCode).toBe(202);
        }
        previous = t.manifest;
        lastTransient[name === 'one' ? 0 : 1] = t;
      }
    };
    const collector = async () => {
      while (Date.now() < deadline) {
        const res = await request(`${r[2]!.url}/api/v1/gc?grace=0s`, { method: 'POST', headers: auth });
        const body = await res.body.text();
        expect(res.statusCode, body).toBe(200);
        reports.push(JSON.parse(body) as (typeof reports)[number]);
        await sleep(300);
      }
    };
    await Promise.all([pusher(r[0]!, 'one'), pusher(r[1]!, 'two'), collector()]);
    // One more collection once the pushes are over, then everything acknowledged and not deleted must pull.
    const last = await request(`${r[2]!.url}/api/v1/gc?grace=0s`, { method: 'POST', headers: auth });
    reports.push((await last.body.json()) as (typeof reports)[number]);
    expect(reports.length).toBeGreaterThan(5);
    // GC did collect: the deleted transient images' manifests and configs.
    expect(reports.reduce((n, x) => n + x.blobs.deleted, 0)).toBeGreaterThan(0);
    expect(kept.length).toBeGreaterThan(4);
    // Every manifest byte-exact; each distinct blob (they are shared) verified once.
    const blobs = new Map<string, Content>();
    for (const img of [...kept, ...lastTransient]) {
      await expectPullable(r[2]!, repo, img.tag, img.manifest, []);
      for (const b of img.blobs) blobs.set(b.digest, b);
    }
    await expectPullable(r[2]!, repo, kept[0]!.tag, kept[0]!.manifest, [...blobs.values()]);
    await expectPullable(r[0]!, repo, lastTransient[1]!.tag, lastTransient[1]!.manifest, lastTransient[1]!.blobs);
    expect(await expectBucketIntact()).toBeGreaterThan(0);
    console.log(`GC race: ${kept.length} kept + 2 transient images verified, ${reports.length} collections, ${refusals} clean refusals`);
  }, 300_000);

  it('PostgreSQL restarted mid-run: requests answer 503 UNAVAILABLE, readiness fails, both recover by themselves', async () => {
    const manifestUrl = (x: SpawnedLayover) => `${x.url}/v2/team/app/manifests/v1`;
    const blobUrl = (x: SpawnedLayover) => `${x.url}/v2/team/app/blobs/${image.layers[1]!.digest}`;
    for (const replica of r) expect((await status(`${replica.url}/readyz`, {})).status).toBe(200);
    // A steady stream of pulls on every replica across the restart: each answers 200 or a clean 503.
    let stop = false;
    const seen = new Map<number, number>();
    const load = Promise.all(r.map(async (replica) => {
      while (!stop) {
        const res = await status(manifestUrl(replica), { ...auth, accept: image.manifest.mediaType });
        seen.set(res.status, (seen.get(res.status) ?? 0) + 1);
        if (res.status !== 200) expect(res.body).toMatch(UNAVAILABLE);
        await sleep(50);
      }
    }));
    await sleep(500);
    await set.postgres.stop();
    try {
      for (const replica of r) {
        for (const url of [manifestUrl(replica), blobUrl(replica)]) {
          const down = await status(url);
          expect(down.status).toBe(503);
          expect(JSON.parse(down.body)).toEqual({ errors: [{ code: 'UNAVAILABLE', message: 'the registry\'s database is unreachable; try again shortly' }] });
          expect(down.headers['retry-after']).toBe('5');
        }
        const post = await request(`${replica.url}/v2/team/app/blobs/uploads/`, { method: 'POST', headers: { ...auth, 'content-length': '0' } });
        expect(post.statusCode).toBe(503);
        expect(await post.body.text()).toMatch(UNAVAILABLE);
        expect((await status(`${replica.url}/readyz`, {})).status).toBe(503);
        expect((await status(`${replica.url}/healthz`, {})).status).toBe(200);
      }
    } finally {
      await set.postgres.start();
    }
    for (const replica of r) {
      await waitFor(async () => (await status(manifestUrl(replica))).status === 200, 30_000);
      await waitFor(async () => (await status(`${replica.url}/readyz`, {})).status === 200, 15_000);
    }
    stop = true;
    await load;
    expect(seen.get(200)).toBeGreaterThan(0);
    expect(seen.get(503)).toBeGreaterThan(0);
    expect([...seen.keys()].sort()).toEqual([200, 503]);
    // Writes work again through every replica, and the others see them.
    const layer = randomBlob(100_000, 'after-pg');
    const config = imageConfig([layer.digest]);
    const manifest = buildManifest({ config, layers: [layer] });
    await pushContent(r[2]!.url, 'team/after', 'pg', [config, layer], manifest, admin);
    await expectPullable(r[0]!, 'team/after', 'pg', manifest, [config, layer]);
    for (const replica of r) expect(replica.alive()).toBe(true);
  }, 120_000);

  it('S3 gateway stopped: readiness fails and blob requests answer 503 UNAVAILABLE; both recover by themselves', async () => {
    const blobUrl = (x: SpawnedLayover) => `${x.url}/v2/team/app/blobs/${image.layers[1]!.digest}`;
    const fresh = randomBlob(300_000, 'during-s3-outage');
    await set.rgw.stopGateway();
    try {
      for (const replica of r) {
        await waitFor(async () => (await status(`${replica.url}/readyz`, {})).status === 503, 20_000, 200);
        const ready = await status(`${replica.url}/readyz`, {});
        expect(JSON.parse(ready.body)).toEqual({ status: 'object storage unreachable' });
        expect((await status(`${replica.url}/healthz`, {})).status).toBe(200);
        const started = Date.now();
        const down = await status(blobUrl(replica));
        expect(down.status, down.body).toBe(503);
        expect(down.body).toMatch(UNAVAILABLE);
        // Cleanly and promptly: not after the SDK's two-minute request timeout.
        expect(Date.now() - started).toBeLessThan(30_000);
        // A push fails cleanly too, and leaves nothing visible.
        const post = await request(`${replica.url}/v2/team/s3down/blobs/uploads/`, { method: 'POST', headers: { ...auth, 'content-length': '0' } });
        const postBody = await post.body.text();
        if (post.statusCode === 202) {
          const target = located(replica.url, post.headers.location as string);
          target.searchParams.set('digest', fresh.digest);
          const put = await request(target, { method: 'PUT', headers: { ...auth, 'content-type': 'application/octet-stream', 'content-length': String(fresh.size) }, body: fresh.bytes });
          expect(put.statusCode).toBe(503);
          expect(await put.body.text()).toMatch(UNAVAILABLE);
        } else {
          expect(post.statusCode).toBe(503);
          expect(postBody).toMatch(UNAVAILABLE);
        }
        const head = await request(`${replica.url}/v2/team/s3down/blobs/${fresh.digest}`, { method: 'HEAD', headers: auth });
        await head.body.dump();
        expect(head.statusCode).not.toBe(200);
      }
    } finally {
      await set.rgw.startGateway();
    }
    for (const replica of r) {
      await waitFor(async () => (await status(`${replica.url}/readyz`, {})).status === 200, 30_000, 200);
      await waitFor(async () => (await status(blobUrl(replica))).status === 200, 30_000, 200);
      const got = await getBytes(blobUrl(replica), { auth: admin });
      expect(got.body.equals(layoutBlob(image.dir, image.layers[1]!.digest))).toBe(true);
    }
    const config = imageConfig([fresh.digest]);
    const manifest = buildManifest({ config, layers: [fresh] });
    await pushContent(r[1]!.url, 'team/s3down', 'v1', [config, fresh], manifest, admin);
    await expectPullable(r[2]!, 'team/s3down', 'v1', manifest, [config, fresh]);
    expect(await expectBucketIntact()).toBeGreaterThan(0);
    // One error line per outage and replica, not one per request.
    for (const replica of r) expect(replica.log().match(/object storage unreachable: requests that need it answer 503/g)?.length ?? 0).toBe(1);
  }, 180_000);
});
