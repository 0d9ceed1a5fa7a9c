// `du` aggregates maintained per-repository holdings (repository_holdings, metadata/schema.ts
// migration 5), recomputed on read for the repositories whose summary version moved. On both
// engines, after each step of a mixed sequence of writes through the store's own methods (push,
// mirror caching a manifest before its layers, layers shared across namespaces, an index,
// references gained by a shared manifest, manifest and tag deletes, a GC sweep, an eviction,
// repository and namespace deletes, blob deletes), du over every repository and over subsets
// (what a non-admin sees) must equal the former from-scratch statement (kept below as the
// reference). The migration's backfill must equal what the refreshes maintained, and on
// PostgreSQL two store instances (two replicas) writing and reading concurrently must end exact.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runSweep, StillReferencedError } from '../../src/database/sweep.js';
import { HOLDINGS_BACKFILL, MIGRATIONS, namespaceOfSql, type Dialect } from '../../src/registry/storage/metadata/schema.js';
import type { MetadataStore, UsageAggregate } from '../../src/registry/storage/metadata/types.js';
import { AT, blob, d, image, IMAGE, INDEX, metadataEngines, put, SIZES, type MetadataEngine } from '../helpers/metadata-engines.js';

const MIRRORS = ['docker.io', 'ghcr.io'];
const HOLDINGS_MIGRATION = MIGRATIONS.find((m) => m.statements.includes(HOLDINGS_BACKFILL[0]!))!.version;

interface Holding {
  repository: string;
  digest: string;
  namespace: string;
  size: number | null;
}
type Held = MetadataStore & { storedHoldings(): Promise<Holding[]> };

/**
 * The former du statement (before migration 5), from scratch over manifests and their
 * references: the reference. Parameters: the repositories (when restricted), the mirror namespaces.
 */
function formerUsageSql(dialect: Dialect, restricted: boolean): string {
  const inList = (column: string) => (dialect === 'postgres' ? `${column} = ANY(?::text[])` : `${column} IN (SELECT value FROM json_each(?))`);
  return `WITH chosen AS (
      SELECT r.name, ${namespaceOfSql('r.name', dialect)} AS ns FROM repositories r${restricted ? ` WHERE ${inList('r.name')}` : ''}
    ),
    held AS (
      SELECT c.ns, m.repository, m.digest FROM chosen c JOIN manifests m ON m.repository = c.name
      UNION
      SELECT c.ns, m.repository, x.ref FROM chosen c JOIN manifests m ON m.repository = c.name JOIN manifest_refs x ON x.manifest = m.digest WHERE x.kind <> 'unreadable'
    ),
    held_by_namespace AS (
      SELECT DISTINCT ns, digest FROM held
    ),
    holders AS (
      SELECT digest, COUNT(*) AS repositories, MIN(CASE WHEN ${inList('ns')} THEN 1 ELSE 0 END) AS mirror_only
      FROM held GROUP BY digest
    )
    SELECT 'repositories' AS section, ns AS namespace, COUNT(*) AS amount FROM chosen GROUP BY ns
    UNION ALL
    SELECT 'bytes', n.ns, SUM(b.size) FROM held_by_namespace n JOIN blobs b ON b.digest = n.digest GROUP BY n.ns
    UNION ALL
    SELECT 'shared', NULL, SUM(b.size) FROM holders h JOIN blobs b ON b.digest = h.digest WHERE h.repositories > 1
    UNION ALL
    SELECT 'cache', NULL, SUM(b.size) FROM holders h JOIN blobs b ON b.digest = h.digest WHERE h.mirror_only = 1
    UNION ALL
    SELECT 'stored', NULL, SUM(size) FROM blobs
    UNION ALL
    SELECT 'blobs', NULL, COUNT(*) FROM blobs`;
}

async function reference(engine: MetadataEngine, repositories?: string[]): Promise<UsageAggregate> {
  const list = (xs: string[]) => (engine.name === 'postgres' ? xs : JSON.stringify(xs));
  const rows = await engine.query(formerUsageSql(engine.name, repositories !== undefined), [...(repositories ? [list(repositories)] : []), list(MIRRORS)]);
  const usage: UsageAggregate = { namespaces: [], sharedBytes: 0, cacheBytes: 0, storedBytes: 0, blobs: 0 };
  const byNamespace = new Map<string, { namespace: string; repositories: number; bytes: number }>();
  const entry = (ns: string) => byNamespace.get(ns) ?? byNamespace.set(ns, { namespace: ns, repositories: 0, bytes: 0 }).get(ns)!;
  for (const row of rows) {
    const amount = Number(row.amount ?? 0);
    if (row.section === 'repositories') entry(String(row.namespace)).repositories = amount;
    else if (row.section === 'bytes') entry(String(row.namespace)).bytes = amount;
    else if (row.section === 'shared') usage.sharedBytes = amount;
    else if (row.section === 'cache') usage.cacheBytes = amount;
    else if (row.section === 'stored') usage.storedBytes = amount;
    else if (row.section === 'blobs') usage.blobs = amount;
  }
  usage.namespaces = sorted([...byNamespace.values()]);
  return usage;
}

const sorted = <T extends { namespace: string }>(xs: T[]) => [...xs].sort((a, b) => (a.namespace < b.namespace ? -1 : a.namespace > b.namespace ? 1 : 0));

async function served(meta: MetadataStore, repositories?: string[]): Promise<UsageAggregate> {
  const usage = await meta.storageUsage({ ...(repositories ? { repositories } : {}), mirrorNamespaces: MIRRORS });
  return { ...usage, namespaces: sorted(usage.namespaces) };
}

/** du over every repository and over subsets equals the reference; the fixture is not vacuous. */
async function expectExact(engine: MetadataEngine, meta: MetadataStore, label: string): Promise<UsageAggregate> {
  const expected = await reference(engine);
  expect(await served(meta), label).toEqual(expected);
  const all = await meta.listRepositories();
  const subsets = [all.filter((_, i) => i % 2 === 0), all.filter((_, i) => i % 2 === 1), all.slice(0, 1), [], ['no/such-repository', ...all.slice(-1)]];
  for (const subset of subsets) expect(await served(meta, subset), `${label}, over ${subset.join(' ')}`).toEqual(await reference(engine, subset));
  return expected;
}

for (const engine of metadataEngines('holdings')) {
  describe(`du over maintained holdings on ${engine.name}`, () => {
    let meta: Held;

    beforeAll(async () => {
      await engine.setup();
      meta = await engine.store();
    }, 120_000);

    afterAll(async () => {
      await engine.teardown();
    });

    it('equals the from-scratch statement after every step of a mixed sequence of writes', async () => {
      await expectExact(engine, meta, 'empty');
      // A push: blobs, then the manifest, then its tag.
      for (const b of ['c1', 'l1', 'l2', 'm1']) await blob(meta, b);
      await put(meta, 'alice/app', 'm1', image('m1', ['c1', 'l1', 'l2']));
      await meta.setTag('alice/app', 'v1', d('m1'), AT + 1);
      await expectExact(engine, meta, 'push');

      // A mirror caches a manifest before its layers (sizes appear as they arrive); a layer shared
      // with a pushed namespace is not cache, one held by two mirror namespaces is.
      await put(meta, 'docker.io/library/x', 'm2', image('m2', ['c1', 'l3']));
      await expectExact(engine, meta, 'mirror manifest without its layers');
      await blob(meta, 'l3');
      await meta.addBlobSource(d('l3'), 'upstream-1');
      await expectExact(engine, meta, 'mirror layer cached');
      await blob(meta, 'm2');
      await put(meta, 'ghcr.io/org/y', 'm2', image('m2', ['c1', 'l3']));
      const mirrored = await expectExact(engine, meta, 'second mirror namespace');
      expect(mirrored.cacheBytes).toBe(SIZES.l3! + SIZES.m2!);
      expect(mirrored.sharedBytes).toBe(SIZES.c1! + SIZES.l3! + SIZES.m2!);

      // A second image in alice, an index over m1 and m3 in another repository (m3 stored there too).
      for (const b of ['m3', 'l4', 'i1']) await blob(meta, b);
      await put(meta, 'alice/app', 'm3', image('m3', ['c1', 'l4']));
      await meta.setTag('alice/app', 'v1', d('m3'), AT + 5);
      await meta.setTag('alice/app', 'v2', d('m1'), AT + 3);
      await expectExact(engine, meta, 'second image, tag moved');
      await put(meta, 'alice/multi', 'i1', [{ manifest: d('i1'), kind: 'child', ref: d('m1') }, { manifest: d('i1'), kind: 'child', ref: d('m3') }], INDEX);
      await put(meta, 'alice/multi', 'm3', image('m3', ['c1', 'l4']));
      await meta.setTag('alice/multi', 'latest', d('i1'), AT + 6);
      await expectExact(engine, meta, 'index');

      // References are global: a manifest first stored without them (as unreadable) gains them
      // when stored again in another namespace, and the first repository's bytes change too.
      for (const b of ['dup', 'l5', 'u1']) await blob(meta, b);
      await put(meta, 'bob/a', 'dup', [{ manifest: d('dup'), kind: 'unreadable', ref: d('dup') }]);
      await expectExact(engine, meta, 'unreadable manifest');
      await put(meta, 'carol/b', 'dup', image('dup', ['l5']));
      await expectExact(engine, meta, 'shared manifest gains references');

      // Tag and manifest deletes (a manifest deleted takes its tags along).
      await meta.deleteTag('alice/app', 'v2');
      await expectExact(engine, meta, 'tag deleted');
      await meta.deleteManifest('alice/app', d('m1'));
      await expectExact(engine, meta, 'manifest deleted');

      // A GC sweep of an untagged revision, then a blob some manifests still reference.
      await meta.setTag('bob/a', 'keep', d('dup'), AT + 7);
      await put(meta, 'bob/a', 'm3', image('m3', ['c1', 'l4']));
      await expectExact(engine, meta, 'bob pushes m3');
      await runSweep(AT + 1_000_000, () => meta.deleteManifest('bob/a', d('m3')));
      // On PostgreSQL a sweep's re-check keeps a blob that a manifest references (database/sweep.ts,
      // 1); SQLite's one process leaves that to its in-process guard. Deleted outside a sweep, as
      // the blob API does, the holders' sizes shrink.
      if (engine.name === 'postgres') await expect(runSweep(AT + 1_000_000, () => meta.deleteBlob(d('l4')))).rejects.toBeInstanceOf(StillReferencedError);
      await meta.deleteBlob(d('l4'));
      await expectExact(engine, meta, 'GC sweep');

      // A cache eviction: the mirror's revision, its link, then its layer's blob (still held by ghcr.io).
      await meta.link('docker.io/library/x', d('l3'), AT);
      await meta.deleteManifest('docker.io/library/x', d('m2'));
      await meta.unlink('docker.io/library/x', d('l3'));
      await meta.deleteBlob(d('l3'));
      await expectExact(engine, meta, 'eviction');

      // A blob deleted and stored again (its holders' bytes go and come back).
      await meta.deleteBlob(d('c1'));
      await expectExact(engine, meta, 'shared config deleted');
      await blob(meta, 'c1');
      await expectExact(engine, meta, 'shared config stored again');

      // Repositories and namespaces deleted; a name created again starts empty, then holds again.
      await meta.deleteRepository('carol/b');
      await expectExact(engine, meta, 'repository deleted');
      await blob(meta, 'm4');
      await put(meta, 'dave/one', 'm4', image('m4', ['c1', 'l5']));
      await put(meta, 'dave/two', 'm4', image('m4', ['c1', 'l5']));
      await expectExact(engine, meta, 'dave pushed');
      expect(await meta.deleteNamespace('dave')).toEqual(['dave/one', 'dave/two']);
      await expectExact(engine, meta, 'namespace deleted');
      await meta.link('dave/one', d('c1'), AT + 10);
      await expectExact(engine, meta, 'name linked again');
      await put(meta, 'dave/one', 'm4', image('m4', ['c1', 'l5']));
      const last = await expectExact(engine, meta, 'name pushed again');
      expect(last.namespaces.map((n) => n.namespace)).toEqual(['alice', 'bob', 'dave', 'docker.io', 'ghcr.io']);
      expect((await meta.storedHoldings()).length).toBeGreaterThan(10);
    });

    it('migration backfill equals the maintained holdings', async () => {
      await served(meta);
      const maintained = await meta.storedHoldings();
      const expected = await reference(engine);
      // Back to the schema before the holdings, then opened again: the migration runs.
      await engine.exec(
        `DROP TABLE holdings_versions; DROP TABLE repository_holdings;
         DELETE FROM schema_version WHERE version >= ${HOLDINGS_MIGRATION}; INSERT INTO schema_version (version) SELECT ${HOLDINGS_MIGRATION - 1} WHERE NOT EXISTS (SELECT 1 FROM schema_version)`,
      );
      const migrated = await engine.store();
      expect(await migrated.storedHoldings()).toEqual(maintained);
      expect(await served(migrated)).toEqual(expected);
      meta = migrated;
    });

    it('two store instances writing and reading concurrently end exact', async () => {
      const other = await engine.store();
      for (const b of ['c1', 'l1', 'l2', 'm1', 'm2', 'm3']) await blob(meta, b);
      // A repository that nobody writes during the race, deleted during it (beside du's refreshes).
      await put(meta, 'race/gone', 'm1', image('m1', ['l1', 'c1']));
      await meta.setTag('race/gone', 'x', d('m1'), AT);
      const stores = [meta, other];
      const rounds = 12;
      await Promise.all(
        stores.map(async (s, i) => {
          for (let n = 0; n < rounds; n++) {
            const m = ['m1', 'm2', 'm3'][(n + i) % 3]!;
            const repository = ['race/app', 'race/other', 'docker.io/race'][(n + 2 * i) % 3]!;
            const work: Promise<unknown>[] = [
              put(s, repository, m, image(m, [['l1', 'l2', 'c1'][(n + i) % 3]!, 'c1']), IMAGE, AT + n),
              s.setTag(repository, `t${i}-${n % 4}`, d(m), AT + 100 * n + i),
              s.storageUsage({ mirrorNamespaces: MIRRORS }),
              s.storageUsage({ repositories: ['race/app', 'docker.io/race'], mirrorNamespaces: MIRRORS }),
            ];
            if (n % 3 === 2) work.push(s.deleteManifest(repository, d(['m1', 'm2', 'm3'][(n + 1) % 3]!)));
            if (n % 4 === 3) work.push(s.deleteBlob(d('l2')).then(() => blob(s, 'l2')));
            if (n === 7 && i === 1) work.push(s.deleteRepository('race/gone'));
            await Promise.all(work);
          }
        }),
      );
      for (const s of stores) await expectExact(engine, s, 'after the race, read by a replica');
    }, 60_000);

    it('a repository deleted while other writes mark or extend it never fails them', async () => {
      // Each round: a repository holding a manifest, deleted by one store while the other deletes
      // and re-adds blobs it holds (marking its summary) and tags or links into it.
      const other = await engine.store();
      const failures: unknown[] = [];
      for (let n = 0; n < 40; n++) {
        const repository = `delrace/r${n % 4}`;
        for (const b of ['c1', 'l1', 'l2', 'm1']) await blob(meta, b);
        await put(meta, repository, 'm1', image('m1', ['c1', 'l1', 'l2']));
        const outcomes = await Promise.allSettled([
          meta.deleteRepository(repository),
          other.deleteBlob(d('l1')).then(() => blob(other, 'l1')),
          other.deleteBlob(d('l2')),
          n % 2 ? other.setTag(repository, 'v', d('m1'), AT + n) : other.link(repository, d('c1'), AT + n),
        ]);
        failures.push(...outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason] : [])));
      }
      expect(failures).toEqual([]);
      await expectExact(engine, meta, 'after deletes raced with writes');
    }, 60_000);

    // PostgreSQL only: SQLite has one writer, so no delete can be in flight beside a write.
    if (engine.name === 'postgres') it('writes wait for a repository delete in flight on another replica, then skip or recreate it', async () => {
      for (const b of ['c1', 'l1', 'l2', 'm1']) await blob(meta, b);
      await put(meta, 'held/marked', 'm1', image('m1', ['c1', 'l1']));
      await put(meta, 'held/tagged', 'm1', image('m1', ['c1', 'l1']));
      const waiting = async () =>
        Number((await engine.query(`SELECT COUNT(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`, []))[0]!.n);

      // The blob's delete marks the summaries of its holders: its statement already saw the
      // repository when the delete commits, and must skip it (not fail on the foreign key).
      let commit = await engine.begin!('DELETE FROM repositories WHERE name = ?', ['held/marked']);
      const marking = meta.deleteBlob(d('l1'));
      await expect.poll(waiting, { timeout: 10_000 }).toBeGreaterThan(0);
      await commit();
      await marking;
      expect(await meta.getBlob(d('l1'))).toBeUndefined();
      expect(await meta.listRepositories()).not.toContain('held/marked');

      // A tag written into a repository while its delete is in flight creates it again.
      commit = await engine.begin!('DELETE FROM repositories WHERE name = ?', ['held/tagged']);
      const tagging = meta.setTag('held/tagged', 'again', d('m1'), AT + 1);
      await expect.poll(waiting, { timeout: 10_000 }).toBeGreaterThan(0);
      await commit();
      await tagging;
      expect(await meta.resolveTag('held/tagged', 'again')).toBe(d('m1'));

      // A reader storing a recomputed summary of a repository whose delete commits meanwhile.
      await put(meta, 'held/summed', 'm1', image('m1', ['c1']));
      commit = await engine.begin!('DELETE FROM repositories WHERE name = ?', ['held/summed']);
      const summing = meta.repositorySummaries({ namespace: 'held' });
      await expect.poll(waiting, { timeout: 10_000 }).toBeGreaterThan(0);
      await commit();
      expect((await summing).map((s) => s.name)).toContain('held/tagged');
      expect((await meta.repositorySummaries({ namespace: 'held' })).map((s) => s.name)).toEqual(['held/tagged']);
      await blob(meta, 'l1');
      await expectExact(engine, meta, 'after writes waited for deletes');
    }, 60_000);
  });
}
