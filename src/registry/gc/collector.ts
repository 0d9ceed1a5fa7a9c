// Online mark-and-sweep garbage collection over the store. The mark phase reads the metadata's
// indexes in a few scans (revisions, manifest references, tag targets, links): O(manifests +
// blobs), whatever the number of tags or repositories, and no manifest's bytes.
//
// Mark: in every repository, the tagged manifests (and, with keepUntagged or within the grace
// period, the untagged ones) are roots; an index keeps its child manifests, a kept manifest keeps
// its referrers (signatures, SBOMs: manifests whose subject it is), and every kept manifest keeps
// its own bytes, its config and its layers. Blobs are shared, so a blob stays while any kept
// manifest of any repository references it.
// Sweep: untagged manifests that are not kept lose their revision; then every blob that nothing
// marked, older than the cutoff and unused since (guard.ts explains why that is enough to be safe
// against concurrent pushes), is deleted along with the repositories' links to it.
import type { Digest } from '../digest.js';
import type { Store, StoredManifest } from '../storage/store.js';
import { toStored } from '../storage/composed-store.js';

/** The guard's window never drops below this, whatever `gc.grace` says (see guard.ts). */
export const MIN_GUARD_WINDOW_MS = 2_000;
/** Reports list at most this many digests; the counts are always complete. */
const LISTED = 200;

export interface GcOptions {
  dryRun: boolean;
  keepUntagged: boolean;
  graceMs: number;
  /** Upload sessions started longer ago than this are removed (skipped when undefined). */
  uploadMaxAgeMs?: number;
  now?: () => number;
}

export interface GcReport {
  dryRun: boolean;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  repositories: number;
  manifests: { kept: number; deleted: number; deletedList: { repository: string; digest: Digest }[] };
  blobs: { kept: number; deleted: number; recent: number; bytesKept: number; bytesFreed: number; deletedList: Digest[] };
  uploadsRemoved: number;
}

interface RepositoryMark {
  repository: string;
  revisions: Map<Digest, StoredManifest>;
  kept: Set<Digest>;
}

export class GcError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GcError';
  }
}

export async function collectGarbage(store: Store, options: GcOptions): Promise<GcReport> {
  const now = options.now ?? Date.now;
  const started = now();
  const cutoff = started - Math.max(options.graceMs, MIN_GUARD_WINDOW_MS);
  const marked = new Set<Digest>();
  const links = new Map<Digest, string[]>();
  const report: GcReport = {
    dryRun: options.dryRun,
    startedAt: new Date(started).toISOString(),
    finishedAt: '',
    durationMs: 0,
    repositories: 0,
    manifests: { kept: 0, deleted: 0, deletedList: [] },
    blobs: { kept: 0, deleted: 0, recent: 0, bytesKept: 0, bytesFreed: 0, deletedList: [] },
    uploadsRemoved: 0,
  };

  // Everything the mark phase needs, in a handful of indexed scans (no manifest is read).
  const refs = new Map<Digest, { blobs: Digest[]; children: Digest[]; unreadable: boolean }>();
  for await (const r of store.metadata.scanManifestRefs()) {
    let entry = refs.get(r.manifest);
    if (!entry) refs.set(r.manifest, (entry = { blobs: [], children: [], unreadable: false }));
    if (r.kind === 'blob') entry.blobs.push(r.ref);
    else if (r.kind === 'child') entry.children.push(r.ref);
    else entry.unreadable = true;
  }
  const marks = new Map<string, RepositoryMark>();
  const markOf = (repository: string): RepositoryMark => {
    let repo = marks.get(repository);
    if (!repo) marks.set(repository, (repo = { repository, revisions: new Map(), kept: new Set() }));
    return repo;
  };
  const created = new Map<string, number>();
  for await (const r of store.metadata.scanManifests()) {
    markOf(r.repository).revisions.set(r.digest, toStored(r));
    created.set(`${r.repository}@${r.digest}`, r.createdAt);
  }

  const visit = async (repo: RepositoryMark, digest: Digest): Promise<void> => {
    if (repo.kept.has(digest)) return;
    repo.kept.add(digest);
    marked.add(digest);
    if (!repo.revisions.has(digest)) return; // a tag or index naming a manifest this repository lacks: keep the digest only
    const entry = refs.get(digest);
    if (!entry) return;
    // Deleting on a guess could destroy data: stop before anything is swept.
    if (entry.unreadable) throw new GcError(`cannot read manifest ${digest} in ${repo.repository}; nothing was deleted`);
    for (const blob of entry.blobs) marked.add(blob);
    for (const child of entry.children) await visit(repo, child);
  };

  /** Referrers of kept manifests are kept too, until nothing changes. */
  const keepReferrers = async (repo: RepositoryMark): Promise<void> => {
    for (let changed = true; changed; ) {
      changed = false;
      for (const [digest, meta] of repo.revisions) {
        if (meta.subject && repo.kept.has(meta.subject) && !repo.kept.has(digest)) {
          await visit(repo, digest);
          changed = true;
        }
      }
    }
  };

  // ---- mark ----
  report.repositories = (await store.listRepositories()).length;
  for await (const t of store.metadata.scanTagTargets()) await visit(markOf(t.repository), t.digest);
  for (const repo of marks.values()) {
    for (const digest of repo.revisions.keys()) {
      if (options.keepUntagged || !store.guard.idle(digest, cutoff)) await visit(repo, digest);
      else if ((created.get(`${repo.repository}@${digest}`) ?? 0) >= cutoff) await visit(repo, digest);
    }
    await keepReferrers(repo);
  }
  for await (const l of store.metadata.scanLinks()) {
    const holders = links.get(l.digest);
    if (holders) holders.push(l.repository);
    else links.set(l.digest, [l.repository]);
  }

  // ---- sweep untagged manifests ----
  for (const repo of marks.values()) {
    // Referrers last: one whose subject survives (a concurrent push) is then kept, not orphaned.
    const doomed = [...repo.revisions.values()].filter((m) => !repo.kept.has(m.digest)).sort((a, b) => Number(!!a.subject) - Number(!!b.subject));
    for (const meta of doomed) {
      if (meta.subject && repo.kept.has(meta.subject)) {
        await visit(repo, meta.digest);
        continue;
      }
      const gone = options.dryRun
        ? store.guard.idle(meta.digest, cutoff)
        : await store.guard.deleteIfIdle(meta.digest, cutoff, async () => {
            await store.deleteManifest(repo.repository, meta.digest);
          });
      if (gone) {
        report.manifests.deleted += 1;
        if (report.manifests.deletedList.length < LISTED) report.manifests.deletedList.push({ repository: repo.repository, digest: meta.digest });
      } else {
        await visit(repo, meta.digest);
        await keepReferrers(repo);
      }
    }
    report.manifests.kept += repo.kept.size;
  }

  // ---- sweep blobs (recorded, then content no record names) ----
  const blobs = async function* () {
    yield* store.listBlobs();
    yield* store.listUnrecordedBlobs();
  };
  for await (const blob of blobs()) {
    if (marked.has(blob.digest)) {
      report.blobs.kept += 1;
      report.blobs.bytesKept += blob.size;
      continue;
    }
    const gone =
      blob.modified.getTime() < cutoff &&
      (options.dryRun
        ? store.guard.idle(blob.digest, cutoff)
        : await store.guard.deleteIfIdle(blob.digest, cutoff, async () => {
            await store.deleteBlob(blob.digest);
            for (const repository of links.get(blob.digest) ?? []) await store.unlinkBlob(repository, blob.digest);
          }));
    if (!gone) {
      report.blobs.recent += 1;
      report.blobs.bytesKept += blob.size;
      continue;
    }
    report.blobs.deleted += 1;
    report.blobs.bytesFreed += blob.size;
    if (report.blobs.deletedList.length < LISTED) report.blobs.deletedList.push(blob.digest);
  }

  if (options.uploadMaxAgeMs !== undefined) {
    const olderThan = new Date(started - options.uploadMaxAgeMs);
    report.uploadsRemoved = options.dryRun ? (await store.listUploads()).filter((u) => u.startedAt < olderThan).length : await store.purgeUploads(olderThan);
  }
  if (!options.dryRun) store.guard.prune(cutoff);
  const finished = now();
  report.finishedAt = new Date(finished).toISOString();
  report.durationMs = finished - started;
  return report;
}
