// Garbage collection across replicas: the rule that keeps a sweep on one replica from deleting
// what a writer on another is about to reference. The in-process ReferenceGuard (gc/guard.ts)
// only sees its own process; with PostgreSQL the decision is re-made in the database, in the
// transaction that deletes:
//
//  1. A sweep deletes a blob record only in a transaction that first locks the blob's row
//     (FOR UPDATE) and then, in a fresh statement, finds no reference: no manifest revision that
//     references it or whose bytes it is (the run deleted the revisions it did not keep before
//     sweeping blobs, so any such revision was written after the mark, whenever it was stamped),
//     no link created since the run's cutoff (markStart - window), and the record itself older
//     than the cutoff. Else the blob is kept (StillReferencedError) and the run counts it as
//     "recent". The same transaction leaves a tombstone (gc_tombstones: digest, deleted_at).
//     Revision stamps are the writer's clock when the request wrote, which can be seconds before
//     its commit under load: comparing them with the cutoff here lost a config blob whose
//     manifest committed after the mark with a stamp older than the cutoff.
//  2. A writer that references blobs (putManifest) or links one (link) locks the rows of those
//     blobs FOR SHARE in its own transaction first. So either the writer commits first, and the
//     sweep's locked re-check sees the new reference (1) and keeps the blob; or the sweep commits
//     first, and the writer finds the blob gone with a tombstone younger than TOMBSTONE_WINDOW_MS:
//     its existence check, made earlier in the same request, is stale, and it refuses
//     (MANIFEST_BLOB_UNKNOWN / BLOB_UNKNOWN; the client pushes the blob again).
//  3. An untagged manifest revision is deleted only in a transaction that locks its row and finds
//     it not rewritten since the cutoff, no tag pointing at it, and no index or referrer that
//     names it and is either written since the cutoff or tagged (a tagged one was written after
//     the mark, which kept all a tag reaches, however early it was stamped).
//  4. The blob's bytes are deleted inside that transaction, before it commits. Until the commit
//     every replica still sees the record, so a client that wants the blob finds it present and
//     uploads nothing; once the commit makes it missing, the old bytes are already gone and a new
//     upload of the digest stays. (Deleting the bytes after the commit lost a re-pushed config
//     blob under load: the client re-uploaded it between the commit and the byte delete.)
// Times are the replicas' clocks: keep them within gc.grace of each other (NTP does).
// Not covered: a client that uploads a digest without first asking whether it exists, whose bytes
// land between the sweep's row lock and its byte delete.
import { AsyncLocalStorage } from 'node:async_hooks';

/** How long a tombstone makes a reference to a missing blob a refusal rather than a mirror's lazy blob. */
export const TOMBSTONE_WINDOW_MS = 60_000;

const sweeping = new AsyncLocalStorage<{ cutoff: number }>();

/** Runs `remove` as a GC sweep step: metadata deletes inside it apply the rule above. */
export function runSweep<T>(cutoff: number, remove: () => Promise<T>): Promise<T> {
  return sweeping.run({ cutoff }, remove);
}

/** The cutoff of the sweep step this call is part of; undefined outside a sweep. */
export function sweepCutoff(): number | undefined {
  return sweeping.getStore()?.cutoff;
}

/** The locked re-check found a reference written since the mark: nothing was deleted. */
export class StillReferencedError extends Error {
  constructor(digest: string) {
    super(`${digest} was referenced since garbage collection marked it`);
    this.name = 'StillReferencedError';
  }
}
