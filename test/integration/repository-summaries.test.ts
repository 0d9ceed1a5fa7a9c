// `ls` reads one maintained row per repository (repository_summaries, metadata/schema.ts
// migration 4): every write marks the rows it changes stale in its own transaction, and readers
// recompute stale rows. On both engines, after each step of a mixed sequence of writes through the
// store's own methods (push, tag move and delete, manifest, repository and namespace delete, a
// mirror caching a manifest before its layers, a GC sweep, an eviction, pull recording, references
// of a manifest shared by two repositories), the summaries served and the rows stored must equal a
// computation from scratch over the store's scans (kept below as the reference: each repository's
// tags, manifests and the distinct stored blobs its manifests hold). The migration's backfill must
// equal it too, and on PostgreSQL two store instances (two replicas) writing and reading one
// repository concurrently must still end exact.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runSweep, StillReferencedError } from '../../src/database/sweep.js';
import type { Digest } from '../../src/registry/digest.js';
import { MIGRATIONS, SUMMARY_BACKFILL } from '../../src/registry/storage/metadata/schema.js';
import type { MetadataStore, RepositorySummary } from '../../src/registry/storage/metadata/types.js';
import { AT, blob, d, image, IMAGE, INDEX, metadataEngines, put } from '../helpers/metadata-engines.js';

const SUMMARY_MIGRATION = MIGRATIONS.find((m) => m.statements.includes(SUMMARY_BACKFILL))!.version;

type Summarised = MetadataStore & {
  storedSummaries(): Promise<{ name: string; current: boolean; summary: RepositorySummary }[]>;
  backfillSummaries(): Promise<void>;
};

/** Every repository's figures from the store's scans: the reference the maintained rows must equal. */
async function reference(meta: MetadataStore): Promise<RepositorySummary[]> {
  const sizes = new Map<Digest, number>();
  for await (const b of meta.scanBlobs()) sizes.set(b.digest, b.size);
  const refs = new Map<Digest, Digest[]>();
  for await (const r of meta.scanManifestRefs()) if (r.kind !== 'unreadable') refs.set(r.manifest, [...(refs.get(r.manifest) ?? []), r.ref]);
  const manifests = new Map<string, Digest[]>();
  for await (const m of meta.scanManifests()) manifests.set(m.repository, [...(manifests.get(m.repository) ?? []), m.digest]);
  const out: RepositorySummary[] = [];
  for (const name of await meta.listRepositories()) {
    const tags = (await meta.listTags(name)) ?? [];
    const own = manifests.get(name) ?? [];
    const held = new Set<Digest>();
    for (const m of own) for (const x of [m, ...(refs.get(m) ?? [])]) held.add(x);
    const size = [...held].reduce((a, x) => a + (sizes.get(x) ?? 0), 0);
    const pushed = tags.length ? Math.max(...tags.map((t) => t.updatedAt)) : undefined;
    out.push({ name, tags: tags.length, manifests: own.length, size, ...(pushed === undefined ? {} : { pushedAt: pushed }) });
  }
  return out;
}

/** What ls serves and, once served, what is stored: both equal the reference, every row current. */
async function expectExact(meta: Summarised, label: string): Promise<void> {
  const expected = await reference(meta);
  expect(await meta.repositorySummaries(), label).toEqual(expected);
  const stored = await meta.storedSummaries();
  expect(stored.map((s) => s.summary), label).toEqual(expected);
  expect(stored.filter((s) => !s.current).map((s) => s.name), label).toEqual([]);
}

async function staleNames(meta: Summarised): Promise<string[]> {
  return (await meta.storedSummaries()).filter((s) => !s.current).map((s) => s.name);
}

for (const engine of metadataEngines('summaries')) {
  describe(`maintained repository summaries on ${engine.name}`, () => {
    let meta: Summarised;

    beforeAll(async () => {
      await engine.setup();
      meta = await engine.store();
    }, 120_000);

    afterAll(async () => {
      await engine.teardown();
    });

    it('equal the computation from scratch after every step of a mixed sequence of writes', async () => {
      // A push: blobs, then the manifest, then its tag.
      for (const b of ['c1', 'l1', 'l2', 'm1']) await blob(meta, b);
      await put(meta, 'alice/app', 'm1', image('m1', ['c1', 'l1', 'l2']));
      await meta.setTag('alice/app', 'v1', d('m1'), AT + 1);
      expect(await staleNames(meta)).toEqual(['alice/app']);
      await expectExact(meta, 'push');

      // A mirror caches a manifest before its layers: it grows as they arrive.
      await put(meta, 'docker.io/library/x', 'm2', image('m2', ['c1', 'l3']));
      await expectExact(meta, 'mirror manifest without its layers');
      await blob(meta, 'l3');
      await meta.addBlobSource(d('l3'), 'upstream-1');
      expect(await staleNames(meta)).toEqual(['docker.io/library/x']);
      await expectExact(meta, 'mirror layer cached');
      await blob(meta, 'm2');
      await expectExact(meta, 'mirror manifest blob cached');

      // Tag moves, a second tag, a tag deleted; an index over m1 and m3 in another repository.
      for (const b of ['m3', 'l4', 'i1']) await blob(meta, b);
      await put(meta, 'alice/app', 'm3', image('m3', ['c1', 'l4']));
      await meta.setTag('alice/app', 'v1', d('m3'), AT + 5);
      await meta.setTag('alice/app', 'v2', d('m1'), AT + 3);
      await expectExact(meta, 'tag moved, second tag');
      await meta.deleteTag('alice/app', 'v1');
      expect(await staleNames(meta)).toEqual(['alice/app']);
      await expectExact(meta, 'tag deleted');
      await put(meta, 'alice/multi', 'i1', [{ manifest: d('i1'), kind: 'child', ref: d('m1') }, { manifest: d('i1'), kind: 'child', ref: d('m3') }], INDEX);
      await meta.setTag('alice/multi', 'latest', d('i1'), AT + 6);
      await expectExact(meta, 'index');

      // References are global: a manifest first stored without them (as unreadable) gains them
      // when stored again elsewhere, and the first repository's size changes too.
      for (const b of ['dup', 'l5', 'u1']) await blob(meta, b);
      await put(meta, 'bob/a', 'dup', [{ manifest: d('dup'), kind: 'unreadable', ref: d('dup') }]);
      await expectExact(meta, 'unreadable manifest');
      await put(meta, 'bob/b', 'dup', image('dup', ['l5']));
      expect(await staleNames(meta)).toEqual(['bob/a', 'bob/b']);
      await expectExact(meta, 'shared manifest gains references');

      // Pull times do not change a summary; recording them must not disturb the rows either.
      await meta.recordPulls([{ repository: 'alice/app', digest: d('m1'), at: AT + 9 }, { repository: 'docker.io/library/x', digest: d('m2'), at: AT + 9 }]);
      await meta.forgetPull('alice/app', d('m1'));
      expect(await staleNames(meta)).toEqual([]);
      await expectExact(meta, 'pulls recorded');

      // A manifest deleted takes its tags along.
      await meta.deleteManifest('alice/app', d('m1'));
      await expectExact(meta, 'manifest deleted');

      // A GC sweep of an untagged revision, then a blob some manifests still reference (sizes shrink).
      await meta.setTag('bob/a', 'keep', d('dup'), AT + 7);
      await put(meta, 'bob/a', 'm3', image('m3', ['c1', 'l4']));
      await runSweep(AT + 1_000_000, () => meta.deleteManifest('bob/a', d('m3')));
      // On PostgreSQL a sweep's re-check keeps a blob that a manifest references (database/sweep.ts,
      // 1); SQLite's one process leaves that to its in-process guard. Deleted outside a sweep, as
      // the blob API does, the holders' sizes shrink.
      if (engine.name === 'postgres') await expect(runSweep(AT + 1_000_000, () => meta.deleteBlob(d('l4')))).rejects.toBeInstanceOf(StillReferencedError);
      await meta.deleteBlob(d('l4'));
      expect((await staleNames(meta)).sort()).toEqual(['alice/app', 'bob/a']);
      await expectExact(meta, 'GC sweep');

      // A cache eviction: the mirror's revision, its link, then its layer's blob.
      await meta.link('docker.io/library/x', d('l3'), AT);
      await meta.deleteManifest('docker.io/library/x', d('m2'));
      await meta.unlink('docker.io/library/x', d('l3'));
      await meta.deleteBlob(d('l3'));
      await expectExact(meta, 'eviction');

      // Repositories and namespaces deleted; a name created again by a link alone starts empty.
      await meta.deleteRepository('bob/b');
      await expectExact(meta, 'repository deleted');
      await put(meta, 'carol/one', 'm3', image('m3', ['c1']));
      await meta.setTag('carol/one', 't', d('m3'), AT + 8);
      await expectExact(meta, 'carol pushed');
      expect(await meta.deleteNamespace('carol')).toEqual(['carol/one']);
      await meta.link('carol/one', d('c1'), AT + 10);
      await expectExact(meta, 'namespace deleted, name linked again');

      // Paged and namespace-restricted reads serve the same rows.
      const all = await reference(meta);
      expect(await meta.repositorySummaries({ after: 'alice/app', limit: 2 })).toEqual(all.slice(1, 3));
      expect(await meta.repositorySummaries({ namespace: 'bob' })).toEqual(all.filter((s) => s.name.startsWith('bob/')));
    });

    it('migration backfill equals the computation from scratch', async () => {
      const expected = await reference(meta);
      expect(expected.length).toBeGreaterThan(3);
      // Back to the schema before the summaries, then opened again: the migration runs.
      // (Later migrations' tables first: du's holdings, migration 5, reference the summaries' versions.)
      await engine.exec(
        `DROP TABLE IF EXISTS holdings_versions; DROP TABLE IF EXISTS repository_holdings; DROP TABLE repository_summaries;
         DELETE FROM schema_version WHERE version >= ${SUMMARY_MIGRATION}; INSERT INTO schema_version (version) SELECT ${SUMMARY_MIGRATION - 1} WHERE NOT EXISTS (SELECT 1 FROM schema_version)`,
      );
      const migrated = await engine.store();
      const stored = await migrated.storedSummaries();
      expect(stored.map((s) => s.summary)).toEqual(expected);
      expect(stored.every((s) => s.current)).toBe(true);
      // The same backfill run by hand (the benchmark, after seeding the tables directly).
      await migrated.backfillSummaries();
      expect((await migrated.storedSummaries()).map((s) => s.summary)).toEqual(expected);
      await expectExact(migrated, 'after backfill');
      meta = migrated;
    });

    it('two store instances writing and reading one repository concurrently end exact', async () => {
      const other = await engine.store();
      for (const b of ['c1', 'l1', 'l2', 'l4', 'm1', 'm2', 'm3']) await blob(meta, b);
      const stores = [meta, other];
      const rounds = 12;
      await Promise.all(
        stores.map(async (s, i) => {
          for (let n = 0; n < rounds; n++) {
            const m = ['m1', 'm2', 'm3'][(n + i) % 3]!;
            const work: Promise<unknown>[] = [
              put(s, 'race/app', m, image(m, [['l1', 'l2', 'l4'][(n + i) % 3]!, 'c1']), IMAGE, AT + n),
              s.setTag('race/app', `t${i}-${n % 4}`, d(m), AT + 100 * n + i),
              s.repositorySummaries({ namespace: 'race' }),
            ];
            if (n % 3 === 2) work.push(s.deleteTag('race/app', `t${1 - i}-${(n + 1) % 4}`));
            if (n % 4 === 3) work.push(s.deleteManifest('race/app', d(['m1', 'm2', 'm3'][(n + 1) % 3]!)));
            // l2, not l4: the first test's sweep left a tombstone for l4, and a push referencing a freshly swept blob is refused.
            if (n % 5 === 4) work.push(s.deleteBlob(d('l2')).then(() => blob(s, 'l2')));
            await Promise.all(work);
          }
        }),
      );
      for (const s of stores) await expectExact(s, `after the race, read by a replica`);
    }, 60_000);
  });
}
