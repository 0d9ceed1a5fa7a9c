// The usage history behind the web page's charts, on both metadata engines (SQLite, and a real
// PostgreSQL shared by two "replicas"): samples are stored and read back in time order, old ones
// are dropped as new ones come (bounded), two replicas' rows of one moment add their traffic up
// without double-counting storage; and the sampler itself measures a real store and records
// traffic as the difference since its previous sample.
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { usageHistory, UsageSampler } from '../../src/api/usage-sampler.js';
import type { Digest } from '../../src/registry/digest.js';
import { RegistryService } from '../../src/registry/service.js';
import { noSyncs } from '../../src/registry/storage/durable.js';
import { EmbeddedStore } from '../../src/registry/storage/embedded.js';
import type { MetadataStore, UsageSample } from '../../src/registry/storage/metadata/types.js';
import { resolveConfig } from '../../src/config/resolve.js';
import { buildManifest, imageConfig, randomBlob, type Content } from '../helpers/oci-content.js';
import { filesystemPostgres, filesystemSqlite, type StorageDriver, type StorageSpace } from '../helpers/storage-drivers.js';
import { makeTempDir } from '../helpers/temp-dir.js';

const MINUTE = 60_000;

function sample(replica: string, at: number, over: Partial<UsageSample> = {}): UsageSample {
  return { replica, at, mirrorBytes: 100, pushedBytes: 200, storedBytes: 250, servedFromCacheBytes: 10, fetchedUpstreamBytes: 5, namespaces: { alice: 200, 'docker.io': 100 }, ...over };
}

for (const driver of [filesystemSqlite, filesystemPostgres()] as StorageDriver[]) {
  describe(`usage samples on ${driver.name}`, () => {
    let space: StorageSpace;
    let a: MetadataStore;
    let b: MetadataStore;

    beforeAll(async () => {
      await driver.setup?.();
      space = await driver.space();
      // Two stores on one database: two replicas (SQLite: two processes' connections to one file).
      a = await space.metadata();
      b = await space.metadata();
      await a.open();
      await b.open();
    }, 120_000);

    afterAll(async () => {
      await a?.close();
      await b?.close();
      await space?.cleanup();
      await driver.teardown?.();
    });

    it('stores samples, reads them oldest first from `since`, and drops those older than the kept window', async () => {
      const t0 = 1_700_000_000_000;
      for (let i = 0; i < 5; i++) await a.addUsageSample(sample('a', t0 + i * MINUTE, { servedFromCacheBytes: i }), t0 - 60 * MINUTE);
      const all = await a.listUsageSamples(0, 100);
      expect(all.map((s) => s.at)).toEqual([0, 1, 2, 3, 4].map((i) => t0 + i * MINUTE));
      expect(all[3]).toEqual(sample('a', t0 + 3 * MINUTE, { servedFromCacheBytes: 3 }));
      expect((await a.listUsageSamples(t0 + 2 * MINUTE, 100)).map((s) => s.servedFromCacheBytes)).toEqual([2, 3, 4]);
      // Over the limit, the newest are kept (a chart ends now, not in the past).
      expect((await a.listUsageSamples(0, 2)).map((s) => s.servedFromCacheBytes)).toEqual([3, 4]);

      // A new sample keeping only the last three minutes removes the older rows, whoever wrote them.
      await b.addUsageSample(sample('b', t0 + 5 * MINUTE), t0 + 3 * MINUTE);
      expect((await a.listUsageSamples(0, 100)).map((s) => `${s.replica}@${(s.at - t0) / MINUTE}`)).toEqual(['a@3', 'a@4', 'b@5']);
      // The same replica and moment twice (a clock stepped back): kept once, no error.
      await b.addUsageSample(sample('b', t0 + 5 * MINUTE, { storedBytes: 1 }), t0 + 3 * MINUTE);
      expect((await b.listUsageSamples(t0 + 5 * MINUTE, 100)).map((s) => s.storedBytes)).toEqual([250]);
    });

    it('adds up the replicas\' traffic of one interval and takes the latest storage figures', async () => {
      const t0 = 1_800_000_000_000;
      await a.addUsageSample(sample('a', t0 + 1_000, { servedFromCacheBytes: 100, fetchedUpstreamBytes: 7, storedBytes: 1_000 }), t0 - MINUTE);
      await b.addUsageSample(sample('b', t0 + 2_000, { servedFromCacheBytes: 50, fetchedUpstreamBytes: 3, storedBytes: 1_100, namespaces: { alice: 1_100 } }), t0 - MINUTE);
      await a.addUsageSample(sample('a', t0 + MINUTE + 1_000, { servedFromCacheBytes: 1, fetchedUpstreamBytes: 0, storedBytes: 1_200 }), t0 - MINUTE);
      const points = await usageHistory(b, t0, MINUTE);
      expect(points).toEqual([
        { at: t0 + 2_000, mirrorBytes: 100, pushedBytes: 200, storedBytes: 1_100, servedFromCacheBytes: 150, fetchedUpstreamBytes: 10, namespaces: { alice: 1_100 } },
        { at: t0 + MINUTE + 1_000, mirrorBytes: 100, pushedBytes: 200, storedBytes: 1_200, servedFromCacheBytes: 1, fetchedUpstreamBytes: 0, namespaces: { alice: 200, 'docker.io': 100 } },
      ]);
    });
  });
}

describe('the usage sampler', () => {
  it('measures a real store by namespace and records traffic since its previous sample', async () => {
    const tmp = makeTempDir('layover-usage-');
    const store = new EmbeddedStore(tmp.path, noSyncs);
    await store.init();
    try {
      const config = resolveConfig({ storage: { root: tmp.path }, upstreams: [{ prefix: 'docker.io', url: 'http://127.0.0.1:9' }] });
      const service = new RegistryService(store, config);
      const put = async (repository: string, seed: string, size: number) => {
        const layer = randomBlob(size, seed);
        const cfg = imageConfig([layer.digest]);
        for (const blob of [cfg, layer] as Content[]) await service.ingest(repository, Readable.from([blob.bytes]), blob.digest as Digest, blob.size);
        const manifest = buildManifest({ config: cfg, layers: [layer] });
        await service.putManifest(repository, 'v1', manifest.bytes, manifest.mediaType);
        return layer.size + cfg.size + manifest.size;
      };
      const aliceBytes = await put('alice/app', 'alice', 40_000);
      const mirrorBytes = await put('docker.io/library/nginx', 'nginx', 60_000);

      let traffic = { servedFromCacheBytes: 1_000, fetchedUpstreamBytes: 400 };
      let now = 1_900_000_000_000;
      const sampler = new UsageSampler({ store, mirrorNamespaces: new Set(['docker.io']), intervalMs: MINUTE, keepMs: 10 * MINUTE, traffic: () => traffic, now: () => now });
      const first = await sampler.sample();
      expect(first).toMatchObject({ pushedBytes: aliceBytes, mirrorBytes, storedBytes: aliceBytes + mirrorBytes, servedFromCacheBytes: 1_000, fetchedUpstreamBytes: 400, namespaces: { alice: aliceBytes, 'docker.io': mirrorBytes } });
      traffic = { servedFromCacheBytes: 1_500, fetchedUpstreamBytes: 400 };
      now += MINUTE;
      const second = await sampler.sample();
      expect(second).toMatchObject({ servedFromCacheBytes: 500, fetchedUpstreamBytes: 0 });
      expect((await store.metadata.listUsageSamples(0, 10)).map((s) => s.at)).toEqual([now - MINUTE, now]);
      // Eleven minutes later the first two are past usage.keep: at most keep/interval rows stay.
      now += 11 * MINUTE;
      await sampler.sample();
      expect((await store.metadata.listUsageSamples(0, 10)).map((s) => s.at)).toEqual([now]);
    } finally {
      await store.close();
      tmp.cleanup();
    }
  });
});
