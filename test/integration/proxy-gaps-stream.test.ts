// Pull-through gaps, streaming side, against a real docker-registry behind the counting relay:
// a client arriving mid-download streams before the upstream body ends, and a HEAD on a cold
// blob is answered from an upstream HEAD without downloading or storing anything.
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config/resolve.js';
import type { Digest } from '../../src/registry/digest.js';
import { UpstreamHealth } from '../../src/registry/proxy/health.js';
import { PullThroughSource } from '../../src/registry/proxy/pull-through.js';
import { UpstreamClient } from '../../src/registry/proxy/upstream-client.js';
import { openEmbeddedStore } from '../../src/registry/storage/embedded.js';
import { startCountingProxy, type CountingProxy } from '../helpers/counting-proxy.js';
import { startDockerRegistry, type DockerRegistry } from '../helpers/docker-registry.js';
import { openStoreOf, startLayover, type InProcessLayover } from '../helpers/layover.js';
import { randomBlob, type Content } from '../helpers/oci-content.js';
import { getAndHangUp } from '../helpers/raw-http.js';
import { uploadBlob } from '../helpers/registry-client.js';
import { storedBlobNames } from '../helpers/stored-content.js';
import { makeTempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait-for.js';

let upstream: DockerRegistry;
let relay: CountingProxy;
let mirror: InProcessLayover;

beforeAll(async () => {
  upstream = await startDockerRegistry();
  relay = await startCountingProxy(upstream.url);
  mirror = await startLayover({ upstreams: [{ prefix: 'up', url: relay.url }] });
}, 60_000);

afterAll(async () => {
  await mirror?.close();
  await relay?.close();
  await upstream?.close();
});

const blobPath = (repo: string, digest: string) => `/v2/${repo}/blobs/${digest}`;

interface Timed {
  status: number;
  digest: string;
  size: number;
  startedAt: number;
  firstByteAt: number;
  endedAt: number;
}

/** GETs through the mirror, hashing the body and noting when its first and last bytes came. */
async function timedGet(url: string, onFirstByte?: () => void): Promise<Timed> {
  const startedAt = Date.now();
  const res = await request(url);
  const hash = createHash('sha256');
  let size = 0;
  let firstByteAt = 0;
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    if (!firstByteAt) {
      firstByteAt = Date.now();
      onFirstByte?.();
    }
    hash.update(chunk);
    size += chunk.length;
  }
  return { status: res.statusCode, digest: `sha256:${hash.digest('hex')}`, size, startedAt, firstByteAt, endedAt: Date.now() };
}

/** Every file under the store's root, for "nothing was written". */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
}

describe('a late client streams from the running download', () => {
  it('starts receiving before the upstream body has ended; both get the verified blob from one upstream GET', async () => {
    const blob = randomBlob(4 * 2 ** 20, 'gaps-late-client');
    await uploadBlob(upstream.url, 'team/late', blob.digest, blob.bytes);
    const path = blobPath('team/late', blob.digest);
    relay.reset();
    // ~2 s of upstream body: long enough to arrive in the middle of it.
    relay.throttle(2 * 2 ** 20, (r) => r.method === 'GET' && r.path === path);
    try {
      const url = `${mirror.url}/v2/up/team/late/blobs/${blob.digest}`;
      let earlyHasBytes = false;
      const early = timedGet(url, () => (earlyHasBytes = true));
      // Arrive once the upstream is well under way (the mirror has written some of it, and the
      // early client has its first bytes, which a loaded machine can delay past a fixed wait).
      await waitFor(() => relay.count('GET', path) === 1, 5_000, 10);
      await new Promise((r) => setTimeout(r, 700));
      await waitFor(() => earlyHasBytes, 10_000, 10);
      const late = timedGet(url);
      const [a, b] = await Promise.all([early, late]);
      const upstreamGet = relay.requests().find((r) => r.method === 'GET' && r.path === path);
      const upstreamEnd = upstreamGet?.finishedAt as number;

      for (const got of [a, b]) expect({ status: got.status, digest: got.digest, size: got.size }).toEqual({ status: 200, digest: blob.digest, size: blob.size });
      expect(relay.count('GET', path)).toBe(1);
      expect(upstreamEnd).toBeGreaterThan(0);
      // The late client really came mid-download...
      expect(b.startedAt).toBeGreaterThan(a.firstByteAt);
      expect(b.startedAt).toBeLessThan(upstreamEnd - 500);
      // ...and had bytes long before the upstream was done, not only after.
      expect(b.firstByteAt).toBeLessThan(upstreamEnd - 300);
      // The last byte waits for the verified commit.
      expect(b.endedAt).toBeGreaterThanOrEqual(upstreamEnd);
      console.log(`late client: started ${upstreamEnd - b.startedAt} ms and got its first byte ${upstreamEnd - b.firstByteAt} ms before the upstream body ended`);
    } finally {
      relay.throttle(null);
    }
  }, 30_000);
});

describe('clients of a running download that hang up or ask for a range', () => {
  it('a client that hangs up mid-body does not disturb the download: a ranged and a whole GET get exact bytes, the blob is cached', async () => {
    const blob = randomBlob(3 * 2 ** 20 + 11, 'gaps-hangup');
    await uploadBlob(upstream.url, 'team/hangup', blob.digest, blob.bytes);
    const path = blobPath('team/hangup', blob.digest);
    relay.reset();
    relay.throttle(2 * 2 ** 20, (r) => r.method === 'GET' && r.path === path);
    try {
      const url = `${mirror.url}/v2/up/team/hangup/blobs/${blob.digest}`;
      // Reads 300 KB of the answer, then closes the connection.
      const quitter = getAndHangUp(mirror.url, `/v2/up/team/hangup/blobs/${blob.digest}`, 300_000);
      await waitFor(() => relay.count('GET', path) === 1, 5_000, 10);
      const whole = timedGet(url);
      const ranged = request(url, { headers: { range: 'bytes=1048570-2097160' } }).then(async (res) => ({ status: res.statusCode, bytes: Buffer.from(await res.body.arrayBuffer()) }));
      expect(await quitter).toBeGreaterThanOrEqual(300_000);
      const [w, r] = await Promise.all([whole, ranged]);
      expect({ status: w.status, digest: w.digest, size: w.size }).toEqual({ status: 200, digest: blob.digest, size: blob.size });
      expect(r.status).toBe(206);
      expect(r.bytes.equals(blob.bytes.subarray(1048570, 2097161))).toBe(true);
      expect(relay.count('GET', path)).toBe(1);
      // Cached: served again with no upstream request.
      relay.reset();
      const again = await timedGet(url);
      expect(again.digest).toBe(blob.digest);
      expect(relay.requests()).toHaveLength(0);
    } finally {
      relay.throttle(null);
    }
  }, 30_000);
});

describe('a client that gets hold of a download just as it ends', () => {
  it('reads the stored blob instead of the released download', async () => {
    const tmp = makeTempDir('layover-released-');
    const store = await openEmbeddedStore(path.join(tmp.path, 'data'));
    const config = resolveConfig({ upstreams: [{ prefix: 'up', url: upstream.url }] });
    const client = new UpstreamClient(config.upstreams[0] as (typeof config.upstreams)[number]);
    const source = new PullThroughSource({ store, client, health: new UpstreamHealth({ downAfterFailures: 3, downForMs: 1000 }), maxManifestBytes: 4 * 2 ** 20 });
    try {
      const blob = randomBlob(700_000, 'gaps-released');
      await uploadBlob(upstream.url, 'team/released', blob.digest, blob.bytes);
      // The hit is taken while the download runs, and read only after it has ended.
      const digest = blob.digest as Digest;
      const hit = await source.getBlob('up/team/released', digest, true);
      await waitFor(async () => (await store.statBlob(digest)) !== undefined);
      await new Promise((r) => setTimeout(r, 100));
      const chunks: Buffer[] = [];
      for await (const chunk of (await hit?.open()) as AsyncIterable<Buffer>) chunks.push(chunk);
      expect(createHash('sha256').update(Buffer.concat(chunks)).digest('hex')).toBe(blob.digest.slice('sha256:'.length));
    } finally {
      await client.close();
      tmp.cleanup();
    }
  });
});

describe('HEAD on a mirrored blob', () => {
  let blob: Content;
  const repo = 'team/head';

  beforeAll(async () => {
    blob = randomBlob(3 * 2 ** 20, 'gaps-head');
    await uploadBlob(upstream.url, repo, blob.digest, blob.bytes);
  });

  it('cold: answered from an upstream HEAD with size and digest; no GET upstream, nothing stored', async () => {
    relay.reset();
    const before = filesUnder(mirror.root);
    const blobsBefore = await storedBlobNames(mirror);
    const res = await request(`${mirror.url}/v2/up/${repo}/blobs/${blob.digest}`, { method: 'HEAD' });
    await res.body.dump();
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-length']).toBe(String(blob.size));
    expect(res.headers['docker-content-digest']).toBe(blob.digest);
    expect(relay.count('HEAD', blobPath(repo, blob.digest))).toBe(1);
    // A moment for anything that might have started in the background.
    await new Promise((r) => setTimeout(r, 300));
    expect(relay.count('GET', blobPath(repo, blob.digest))).toBe(0);
    // Before a store is opened here: opening one may create its own files under the root.
    expect(filesUnder(mirror.root)).toEqual(before);
    expect(await storedBlobNames(mirror)).toEqual(blobsBefore);
    const store = await openStoreOf(mirror);
    try {
      expect(await store.statBlob(blob.digest as Digest)).toBeUndefined();
      expect(await store.blobLinked(`up/${repo}`, blob.digest as Digest)).toBe(false);
    } finally {
      await store.close();
    }
  });

  it('cold and missing upstream: 404 BLOB_UNKNOWN, without a body', async () => {
    const missing = randomBlob(1000, 'gaps-head-missing');
    const res = await request(`${mirror.url}/v2/up/${repo}/blobs/${missing.digest}`, { method: 'HEAD' });
    expect(res.statusCode).toBe(404);
    expect((await res.body.arrayBuffer()).byteLength).toBe(0);
  });

  it('during a running download: answered from it (no upstream HEAD); once cached: no upstream request at all', async () => {
    const path = blobPath(repo, blob.digest);
    relay.reset();
    relay.throttle(2 * 2 ** 20, (r) => r.method === 'GET' && r.path === path);
    try {
      const download = timedGet(`${mirror.url}/v2/up/${repo}/blobs/${blob.digest}`);
      await waitFor(() => relay.count('GET', path) === 1, 5_000, 10);
      const head = await request(`${mirror.url}/v2/up/${repo}/blobs/${blob.digest}`, { method: 'HEAD' });
      await head.body.dump();
      expect(head.statusCode).toBe(200);
      expect(head.headers['content-length']).toBe(String(blob.size));
      expect(relay.count('HEAD', path)).toBe(0);
      expect((await download).digest).toBe(blob.digest);
    } finally {
      relay.throttle(null);
    }
    relay.reset();
    const warm = await request(`${mirror.url}/v2/up/${repo}/blobs/${blob.digest}`, { method: 'HEAD' });
    await warm.body.dump();
    expect(warm.statusCode).toBe(200);
    expect(warm.headers['content-length']).toBe(String(blob.size));
    expect(relay.requests()).toEqual([]);
  }, 30_000);
});
