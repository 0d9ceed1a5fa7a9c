// An upstream that rate-limits (issue 12, item 8): after a 429 (or a 503 with Retry-After) layover
// leaves the upstream alone until the time it named, serves what it has (stale tags with a
// Warning) and fails misses at once with the same status and a Retry-After, counting both.
// A real docker-registry behind the counting relay, which answers 429/503 when told to.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCountingProxy, type CountingProxy } from '../helpers/counting-proxy.js';
import { startDockerRegistry, type DockerRegistry } from '../helpers/docker-registry.js';
import { startLayover, type InProcessLayover } from '../helpers/layover.js';
import { buildManifest, emptyConfig, randomBlob, MediaType, type Content } from '../helpers/oci-content.js';
import { getBytes, pushContent } from '../helpers/registry-client.js';

let upstream: DockerRegistry;

beforeAll(async () => {
  upstream = await startDockerRegistry();
}, 60_000);

afterAll(async () => {
  await upstream?.close();
});

async function pushImage(repo: string, tag: string, seed: string): Promise<{ manifest: Content; layer: Content }> {
  const layer = randomBlob(10_000, seed);
  const config = emptyConfig();
  const manifest = buildManifest({ config, layers: [layer], mediaType: MediaType.ociManifest });
  await pushContent(upstream.url, repo, tag, [config, layer], manifest);
  return { manifest, layer };
}

/** Requests the relay passed on or answered, apart from the /v2/ probe. */
const upstreamCalls = (relay: CountingProxy) => relay.requests().filter((r) => r.path !== '/v2/').length;

const errorCode = (body: Buffer) => (JSON.parse(body.toString()) as { errors: { code: string }[] }).errors[0]?.code;

describe('429 with Retry-After', () => {
  let relay: CountingProxy;
  let mirror: InProcessLayover;
  beforeAll(async () => {
    relay = await startCountingProxy(upstream.url);
    mirror = await startLayover({ upstreams: [{ prefix: 'rl', url: relay.url, tagTTL: '1s', maxRetryAfter: '10m' }] } as Parameters<typeof startLayover>[0]);
  });
  afterAll(async () => {
    await mirror?.close();
    await relay?.close();
  });

  it('one upstream request, then misses fail fast with 429 and a capped Retry-After; cached content is still served', async () => {
    const cached = await pushImage('team/cached', 'v1', 'rl-cached');
    expect((await getBytes(`${mirror.url}/v2/rl/team/cached/manifests/v1`)).status).toBe(200);
    expect((await getBytes(`${mirror.url}/v2/rl/team/cached/blobs/${cached.layer.digest}`)).status).toBe(200);
    await new Promise((r) => setTimeout(r, 1_100)); // the tag is now past its TTL
    relay.reset();
    relay.fail(429, (r) => r.path !== '/v2/', { 'retry-after': '3600' });

    const misses = [];
    for (let i = 0; i < 5; i++) misses.push(await getBytes(`${mirror.url}/v2/rl/team/miss${i}/manifests/v1`));
    for (const miss of misses) {
      expect(miss.status).toBe(429);
      expect(errorCode(miss.body)).toBe('TOOMANYREQUESTS');
      const after = Number(miss.headers['retry-after']);
      // Capped at maxRetryAfter (10 min), counted down from the upstream's answer.
      expect(after).toBeGreaterThan(590);
      expect(after).toBeLessThanOrEqual(600);
    }
    expect(upstreamCalls(relay)).toBe(1);

    // A blob miss is refused too, without asking.
    const blobMiss = await getBytes(`${mirror.url}/v2/rl/team/miss0/blobs/${randomBlob(100, 'rl-x').digest}`);
    expect(blobMiss.status).toBe(429);
    expect(blobMiss.headers['retry-after']).toBeDefined();
    // The stale tag is served with a Warning, the cached blob as usual: no upstream request either.
    const stale = await getBytes(`${mirror.url}/v2/rl/team/cached/manifests/v1`);
    expect(stale.status).toBe(200);
    expect(stale.body.equals(cached.manifest.bytes)).toBe(true);
    expect(String(stale.headers.warning)).toMatch(/^110 /);
    expect((await getBytes(`${mirror.url}/v2/rl/team/cached/blobs/${cached.layer.digest}`)).status).toBe(200);
    expect(upstreamCalls(relay)).toBe(1);

    const metrics = (await getBytes(`${mirror.url}/metrics`)).body.toString();
    expect(metrics).toMatch(/layover_upstream_errors_total\{upstream="rl",reason="rate_limited"\} 1\n/);
    expect(metrics).toMatch(/layover_upstream_refused_total\{upstream="rl",reason="rate_limited"\} ([6-9]|\d\d)\n/);
    relay.fail(null);
  }, 30_000);
});

describe('503 with Retry-After', () => {
  it('misses get 503 with the Retry-After without the upstream being asked, until that time has passed', async () => {
    const relay = await startCountingProxy(upstream.url);
    const mirror = await startLayover({ upstreams: [{ prefix: 'busy', url: relay.url }], cache: { downAfterFailures: 10 } });
    try {
      const image = await pushImage('team/busy', 'v1', 'rl-busy');
      relay.fail(503, (r) => r.path !== '/v2/', { 'retry-after': '2' });
      const first = await getBytes(`${mirror.url}/v2/rl/team/busy/manifests/v1`.replace('/rl/', '/busy/'));
      expect(first.status).toBe(503);
      relay.fail(null);
      const refused = await getBytes(`${mirror.url}/v2/busy/team/busy/manifests/v1`);
      expect(refused.status).toBe(503);
      expect(errorCode(refused.body)).toBe('UNAVAILABLE');
      expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(Number(refused.headers['retry-after'])).toBeLessThanOrEqual(2);
      expect(upstreamCalls(relay)).toBe(1);
      await new Promise((r) => setTimeout(r, 2_100));
      const later = await getBytes(`${mirror.url}/v2/busy/team/busy/manifests/v1`);
      expect(later.status).toBe(200);
      expect(later.body.equals(image.manifest.bytes)).toBe(true);
    } finally {
      await mirror.close();
      await relay.close();
    }
  }, 30_000);
});
