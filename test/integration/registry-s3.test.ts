// layover with its blob content on a real Ceph RGW (storage.driver: s3): skopeo copies an image
// in and out byte for byte, a chunked push of small PATCHes lands as one verified object, blob
// GETs stream from the bucket (with ranges) or, in redirect mode, answer 307 to a presigned URL
// that curl and undici follow to the right bytes, and a pull-through cache fill lands in S3.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCephRgw, type CephRgw } from '../helpers/ceph-rgw.js';
import { startDockerRegistry, type DockerRegistry } from '../helpers/docker-registry.js';
import { spawnLayover, startLayover, type InProcessLayover, type SpawnedLayover } from '../helpers/layover.js';
import { computeDigest } from '../helpers/oci-content.js';
import { makeOciImage, type OciImage } from '../helpers/oci-layout.js';
import { seededBytes } from '../helpers/random-bytes.js';
import { uploadBlob } from '../helpers/registry-client.js';
import { runTool } from '../helpers/run-tool.js';
import { skopeoCopy, skopeoInspect } from '../helpers/skopeo.js';
import { makeTempDir, type TempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait-for.js';

let rgw: CephRgw;
let s3: S3Client;
let bucket: string;
let layover: SpawnedLayover;
let tmp: TempDir;
let image: OciImage;
const MiB = 2 ** 20;

beforeAll(async () => {
  tmp = makeTempDir();
  [rgw, image] = await Promise.all([
    startCephRgw(),
    // One layer larger than a multipart part, so the push streams several parts.
    makeOciImage(path.join(tmp.path, 'img'), { layers: [12 * MiB, 300_000, 2_000], seed: 's3-image', tag: 'v1' }),
  ]);
  s3 = rgw.client();
  bucket = await rgw.createBucket('registry');
  layover = await spawnLayover({}, { s3: { ...rgw, bucket, prefix: 'reg/' } });
}, 180_000);

afterAll(async () => {
  await layover?.close();
  await rgw?.close();
  tmp?.cleanup();
});

async function keys(prefix = ''): Promise<string[]> {
  const out: string[] = [];
  let ContinuationToken: string | undefined;
  do {
    const res = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken }));
    for (const o of res.Contents ?? []) out.push(o.Key ?? '');
    ContinuationToken = res.IsTruncated ? res.NextContinuationToken : undefined;
  } while (ContinuationToken);
  return out.sort();
}

const blobKey = (digest: string) => `reg/blobs/sha256/${digest.slice(7, 9)}/${digest.slice(7)}`;

function layoutBlob(dir: string, digest: string): Buffer {
  return readFileSync(path.join(dir, 'blobs', 'sha256', digest.slice(7)));
}

describe('layover on S3 (Ceph RGW)', () => {
  it('skopeo copies an image in and out byte-exact; the bucket holds exactly its blobs', async () => {
    await skopeoCopy(image.ref, `docker://${layover.host}/team/app:v1`);
    const raw = await skopeoInspect(`docker://${layover.host}/team/app:v1`, { raw: true });
    expect(raw.equals(image.manifest.bytes)).toBe(true);
    const out = path.join(tmp.path, 'pulled');
    await skopeoCopy(`docker://${layover.host}/team/app:v1`, `oci:${out}:v1`);
    for (const layer of image.layers) {
      expect(layoutBlob(out, layer.digest).equals(layoutBlob(image.dir, layer.digest))).toBe(true);
    }
    expect(layoutBlob(out, image.config.digest).equals(image.config.bytes)).toBe(true);
    const expected = [image.manifest.digest, image.config.digest, ...image.layers.map((l) => l.digest)].map(blobKey).sort();
    // Only blobs: no upload chunk or temporary object is left behind once the push is done.
    expect(await keys('reg/')).toEqual(expected);
    expect(layover.log()).not.toMatch(/"level":(50|60)/);
  });

  it('a chunked push of PATCHes under 5 MiB lands as one verified blob, streamed back with ranges', async () => {
    const bytes = seededBytes('s3-chunked-http', 7 * MiB + 999);
    const digest = computeDigest(bytes);
    const start = await request(`${layover.url}/v2/team/chunked/blobs/uploads/`, { method: 'POST' });
    await start.body.dump();
    expect(start.statusCode).toBe(202);
    let location = new URL(start.headers.location as string, layover.url).toString();
    const chunk = 1536 * 1024;
    for (let offset = 0; offset < bytes.length; offset += chunk) {
      const part = bytes.subarray(offset, offset + chunk);
      const res = await request(location, {
        method: 'PATCH',
        headers: { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${offset + part.length - 1}`, 'content-length': String(part.length) },
        body: part,
      });
      await res.body.dump();
      expect(res.statusCode).toBe(202);
      expect(res.headers.range).toBe(`0-${offset + part.length - 1}`);
      location = new URL(res.headers.location as string, layover.url).toString();
    }
    // A PATCH at a stale offset is refused and changes nothing.
    const stale = await request(location, { method: 'PATCH', headers: { 'content-range': '0-9', 'content-length': '10' }, body: bytes.subarray(0, 10) });
    await stale.body.dump();
    expect(stale.statusCode).toBe(416);
    const put = await request(`${location}${location.includes('?') ? '&' : '?'}digest=${digest}`, { method: 'PUT', headers: { 'content-length': '0' } });
    await put.body.dump();
    expect(put.statusCode).toBe(201);
    expect(await keys('reg/uploads/')).toEqual([]);

    const whole = await request(`${layover.url}/v2/team/chunked/blobs/${digest}`);
    expect(whole.statusCode).toBe(200);
    expect(Buffer.from(await whole.body.arrayBuffer()).equals(bytes)).toBe(true);
    const ranged = await request(`${layover.url}/v2/team/chunked/blobs/${digest}`, { headers: { range: `bytes=${5 * MiB - 3}-${5 * MiB + 2}` } });
    expect(ranged.statusCode).toBe(206);
    expect(ranged.headers['content-range']).toBe(`bytes ${5 * MiB - 3}-${5 * MiB + 2}/${bytes.length}`);
    expect(Buffer.from(await ranged.body.arrayBuffer()).equals(bytes.subarray(5 * MiB - 3, 5 * MiB + 3))).toBe(true);
  });

  it('redirect mode answers a blob GET with 307 to a presigned URL that curl and undici follow; HEAD stays local', async () => {
    const redirectBucket = await rgw.createBucket('redirect');
    let redirecting: InProcessLayover | undefined;
    try {
      redirecting = await startLayover({}, { s3: { ...rgw, bucket: redirectBucket, redirect: true } });
      const bytes = seededBytes('s3-redirect', 3 * MiB + 17);
      const digest = computeDigest(bytes);
      await uploadBlob(redirecting.url, 'team/redirect', digest, bytes);
      const blobUrl = `${redirecting.url}/v2/team/redirect/blobs/${digest}`;

      const first = await request(blobUrl);
      await first.body.dump();
      expect(first.statusCode).toBe(307);
      const location = first.headers.location as string;
      expect(location.startsWith(`${rgw.endpoint}/${redirectBucket}/blobs/sha256/${digest.slice(7, 9)}/${digest.slice(7)}?`)).toBe(true);
      expect(location).toMatch(/X-Amz-Expires=300\b/);

      const followed = await fetch(blobUrl);
      expect(followed.status).toBe(200);
      expect(Buffer.from(await followed.arrayBuffer()).equals(bytes)).toBe(true);
      const ranged = await fetch(blobUrl, { headers: { range: 'bytes=100-199' } });
      expect(ranged.status).toBe(206);
      expect(Buffer.from(await ranged.arrayBuffer()).equals(bytes.subarray(100, 200))).toBe(true);

      const file = path.join(tmp.path, 'curl-out');
      await runTool('curl', ['-sSfL', '-o', file, blobUrl]);
      expect(readFileSync(file).equals(bytes)).toBe(true);

      const head = await request(blobUrl, { method: 'HEAD' });
      await head.body.dump();
      expect(head.statusCode).toBe(200);
      expect(head.headers['content-length']).toBe(String(bytes.length));
      expect(head.headers['docker-content-digest']).toBe(digest);
      // An unknown blob is still the registry's 404, not a redirect.
      const missing = await request(`${redirecting.url}/v2/team/redirect/blobs/${computeDigest(Buffer.from('nope'))}`);
      await missing.body.dump();
      expect(missing.statusCode).toBe(404);
    } finally {
      await redirecting?.close();
    }
    // Without redirect mode the same kind of GET streams the bytes itself.
    const direct = await request(`${layover.url}/v2/team/app/blobs/${image.layers[1]!.digest}`);
    expect(direct.statusCode).toBe(200);
    expect(Buffer.from(await direct.body.arrayBuffer()).equals(layoutBlob(image.dir, image.layers[1]!.digest))).toBe(true);
  });

  it('a pull-through cache fill streams to the client and lands in S3', async () => {
    let upstream: DockerRegistry | undefined;
    let mirror: InProcessLayover | undefined;
    try {
      upstream = await startDockerRegistry();
      await skopeoCopy(image.ref, `docker://${upstream.host}/lib/app:v1`);
      const mirrorBucket = await rgw.createBucket('mirror');
      mirror = await startLayover({ upstreams: [{ prefix: 'up', url: upstream.url }] }, { s3: { ...rgw, bucket: mirrorBucket } });
      const out = path.join(tmp.path, 'through-mirror');
      await skopeoCopy(`docker://${mirror.host}/up/lib/app:v1`, `oci:${out}:v1`);
      for (const layer of image.layers) expect(layoutBlob(out, layer.digest).equals(layoutBlob(image.dir, layer.digest))).toBe(true);
      // The client's last byte goes on the digest's verdict and the upload's publication lands
      // just behind it; a HEAD on the same layover waits for that commit (Store.commitBehind).
      for (const layer of image.layers) {
        const head = await request(`${mirror.url}/v2/up/lib/app/blobs/${layer.digest}`, { method: 'HEAD' });
        await head.body.dump();
        expect(head.statusCode).toBe(200);
      }
      const res = await s3.send(new ListObjectsV2Command({ Bucket: mirrorBucket }));
      const stored = (res.Contents ?? []).map((o) => o.Key ?? '');
      for (const layer of image.layers) expect(stored).toContain(`blobs/sha256/${layer.digest.slice(7, 9)}/${layer.digest.slice(7)}`);
      expect(stored.filter((k) => !k.startsWith('blobs/'))).toEqual([]);
      // Served again from S3 with the upstream gone.
      await upstream.close();
      upstream = undefined;
      const again = await request(`${mirror.url}/v2/up/lib/app/blobs/${image.layers[0]!.digest}`);
      expect(again.statusCode).toBe(200);
      expect(computeDigest(Buffer.from(await again.body.arrayBuffer()))).toBe(image.layers[0]!.digest);
    } finally {
      await mirror?.close();
      await upstream?.close();
    }
  });

  // Last: it stops the gateway for a while.
  it('readiness fails while the bucket does not answer and comes back with it, liveness stays up', async () => {
    const status = async (p: string) => (await request(`${layover.url}${p}`)).statusCode;
    expect(await status('/readyz')).toBe(200);
    const gateway = rgw.pids.at(-1)!;
    process.kill(gateway, 'SIGSTOP');
    try {
      await waitFor(async () => (await status('/readyz')) === 503, 20_000, 200);
      const answer = await request(`${layover.url}/readyz`);
      expect(await answer.body.json()).toEqual({ status: 'object storage unreachable' });
      expect(await status('/healthz')).toBe(200);
    } finally {
      process.kill(gateway, 'SIGCONT');
    }
    await waitFor(async () => (await status('/readyz')) === 200, 20_000, 200);
  }, 60_000);
});
