// A full disk, for real: layover's storage on an 8 MiB tmpfs. A cache fill that runs out of space
// is not the upstream's fault (the circuit breaker stays closed), and every write that cannot be
// stored answers 507 with a Distribution error body, logged once; reads keep working.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCountingProxy, type CountingProxy } from '../helpers/counting-proxy.js';
import { startDockerRegistry, type DockerRegistry } from '../helpers/docker-registry.js';
import { startLayover, type InProcessLayover } from '../helpers/layover.js';
import { buildManifest, emptyConfig, randomBlob, type Content } from '../helpers/oci-content.js';
import { getBytes, pushContent, uploadBlob } from '../helpers/registry-client.js';
import { mountSmallFs, type SmallFs } from '../helpers/small-fs.js';
import { waitFor } from '../helpers/wait-for.js';

// Mounting needs root (the test machines run as root). Anything else is a loud skip, not a pass.
const small: SmallFs | Error = await mountSmallFs('8m').catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));
if (small instanceof Error) console.error(`\n*** storage-full.test.ts SKIPPED: cannot mount a tmpfs here: ${small.message}\n`);
const fs = small instanceof Error ? undefined : small;

let upstream: DockerRegistry;
let relay: CountingProxy;
let layover: InProcessLayover;

const errorBody = (body: Buffer) => JSON.parse(body.toString()) as { errors: { code: string; message: string }[] };
const tmpFiles = () => readdirSync(path.join(layover.root, '_tmp'));

describe.skipIf(!fs)('storage on a full disk (tmpfs)', () => {
  beforeAll(async () => {
    const root = path.join((fs as SmallFs).path, 'data');
    upstream = await startDockerRegistry();
    relay = await startCountingProxy(upstream.url);
    layover = await startLayover({
      upstreams: [{ prefix: 'full', url: relay.url, tagTTL: '1h' }],
      // One failure would mark the upstream down: a full disk must not count as one.
      cache: { downAfterFailures: 1, downFor: '30s' },
    }, { root });
  }, 60_000);

  afterAll(async () => {
    // Never leave the mount behind, even if closing layover hangs (umount falls back to lazy).
    await Promise.race([layover?.close(), new Promise((r) => setTimeout(r, 5000))]);
    await fs?.close();
    await relay?.close();
    await upstream?.close();
  });

  it('a cache fill that runs out of space mid-download does not mark the upstream down; the next miss says the storage is full', async () => {
    const big = randomBlob(6 * 2 ** 20, 'full-big');
    const small1 = randomBlob(50_000, 'full-small-1');
    await uploadBlob(upstream.url, 'team/app', big.digest, Buffer.from(big.bytes));
    await uploadBlob(upstream.url, 'team/app', small1.digest, Buffer.from(small1.bytes));
    relay.throttle(3 * 2 ** 20, (r) => r.path.endsWith(big.digest));
    const download = fetch(`${layover.url}/v2/full/team/app/blobs/${big.digest}`).then(async (res) => {
      await res.arrayBuffer();
      return res.status;
    }).catch(() => 'cut');
    try {
      await waitFor(() => tmpFiles().length > 0, 5000, 20); // the download is writing
      await (fs as SmallFs).fill();
      // Cut mid-body (or, if the disk filled before the response began, a 507).
      expect(['cut', 507]).toContain(await download);
    } finally {
      relay.throttle(null);
    }
    try {
      await waitFor(() => tmpFiles().length === 0, 5000);
      await (fs as SmallFs).fill(); // again: the failed download gave its part back
      const miss = await getBytes(`${layover.url}/v2/full/team/app/blobs/${small1.digest}`);
      expect(miss.status).toBe(507);
      expect(errorBody(miss.body).errors[0]).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/^storage is full/) });
      const metrics = (await getBytes(`${layover.url}/metrics`)).body.toString();
      expect(metrics).not.toMatch(/layover_upstream_errors_total\{upstream="full",reason="(network|down)"\} [1-9]/);
    } finally {
      await (fs as SmallFs).unfill();
    }
    // Space again: the upstream was never marked down, so the next miss is served at once.
    const ok = await getBytes(`${layover.url}/v2/full/team/app/blobs/${small1.digest}`);
    expect(ok.status).toBe(200);
    expect(ok.body.equals(Buffer.from(small1.bytes))).toBe(true);
  });

  it('pushes and cache fills answer 507 UNAVAILABLE "storage is full", logged once; reads keep working', async () => {
    // Content that is here before the disk fills up.
    const config = emptyConfig();
    const layer = randomBlob(100_000, 'full-pushed');
    const manifest = buildManifest({ config, layers: [layer] });
    await pushContent(layover.url, 'alice/app', 'v1', [config, layer], manifest);
    const layer2 = randomBlob(20_000, 'full-pushed-2');
    await uploadBlob(layover.url, 'alice/app', layer2.digest, Buffer.from(layer2.bytes));
    const manifest2 = buildManifest({ config, layers: [layer2] });
    const session = await request(`${layover.url}/v2/alice/app/blobs/uploads/`, { method: 'POST', headers: { 'content-length': '0' } });
    await session.body.dump();
    const sessionUrl = `${layover.url}${String(session.headers.location)}`;
    const mirrored = randomBlob(30_000, 'full-mirrored');
    const mirroredManifest = buildManifest({ config, layers: [mirrored] });
    await pushContent(upstream.url, 'team/cached', 'v1', [config, mirrored], mirroredManifest);
    expect((await getBytes(`${layover.url}/v2/full/team/cached/manifests/v1`, { headers: { accept: mirroredManifest.mediaType } })).status).toBe(200);
    expect((await getBytes(`${layover.url}/v2/full/team/cached/blobs/${mirrored.digest}`)).status).toBe(200);
    const uncached = randomBlob(30_000, 'full-uncached');
    const uncachedManifest = buildManifest({ config, layers: [uncached] });
    await pushContent(upstream.url, 'team/uncached', 'v1', [config, uncached], uncachedManifest);

    const logLines = () => layover.log().split('\n').filter((l) => l.includes('storage is full')).length;
    await (fs as SmallFs).fill();
    try {
      const fresh: Content = randomBlob(10_000, 'full-fresh');
      const attempts: { what: string; status: number; body: Buffer }[] = [];
      const send = async (what: string, url: string, method: 'POST' | 'PATCH' | 'PUT', body: Buffer, headers: Record<string, string>) => {
        const res = await request(url, { method, body, headers: { 'content-length': String(body.length), ...headers } });
        attempts.push({ what, status: res.statusCode, body: Buffer.from(await res.body.arrayBuffer()) });
      };
      await send('monolithic push', `${layover.url}/v2/alice/app/blobs/uploads/?digest=${fresh.digest}`, 'POST', Buffer.from(fresh.bytes), { 'content-type': 'application/octet-stream' });
      await send('upload start', `${layover.url}/v2/alice/app/blobs/uploads/`, 'POST', Buffer.alloc(0), {});
      await send('chunk', sessionUrl, 'PATCH', Buffer.from(fresh.bytes), { 'content-type': 'application/octet-stream' });
      await send('manifest', `${layover.url}/v2/alice/app/manifests/v2`, 'PUT', manifest2.bytes, { 'content-type': manifest2.mediaType });
      for (const what of ['mirror manifest', 'mirror blob']) {
        const url = what === 'mirror manifest' ? `${layover.url}/v2/full/team/uncached/manifests/v1` : `${layover.url}/v2/full/team/uncached/blobs/${uncached.digest}`;
        const res = await getBytes(url, { headers: { accept: uncachedManifest.mediaType } });
        attempts.push({ what, status: res.status, body: res.body });
      }
      for (const a of attempts) {
        expect({ what: a.what, status: a.status }).toEqual({ what: a.what, status: 507 });
        expect(errorBody(a.body).errors[0]).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/^storage is full/) });
      }

      // Reads: pushed and cached content, manifests and blobs.
      const pulled = await getBytes(`${layover.url}/v2/alice/app/manifests/v1`, { headers: { accept: manifest.mediaType } });
      expect(pulled.status).toBe(200);
      expect(pulled.body.equals(manifest.bytes)).toBe(true);
      const blob = await getBytes(`${layover.url}/v2/alice/app/blobs/${layer.digest}`);
      expect(blob.body.equals(Buffer.from(layer.bytes))).toBe(true);
      expect((await getBytes(`${layover.url}/v2/full/team/cached/manifests/v1`, { headers: { accept: mirroredManifest.mediaType } })).status).toBe(200);
      expect((await getBytes(`${layover.url}/v2/full/team/cached/blobs/${mirrored.digest}`)).body.equals(Buffer.from(mirrored.bytes))).toBe(true);

      // Six refusals here (and the failed cache fill before): one log line in all.
      await waitFor(() => logLines() > 0, 3000);
      expect(logLines()).toBe(1);
    } finally {
      await (fs as SmallFs).unfill();
    }
    expect(tmpFiles()).toEqual([]);
  });
});
