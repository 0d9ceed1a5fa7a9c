// What makes garbage collection safe while pushes and pulls go on.
//
// Every store operation through which a writer learns that a digest exists, or creates a
// reference to it (statBlob, blobLinked, statManifest, linkBlob, setTag, putManifest, and the
// commit of an upload), first calls `use(digest)`. That records when the digest was last used
// and waits for any deletion of it already under way. The collector deletes a blob or a
// manifest revision only through `deleteIfIdle(digest, cutoff, …)`, which refuses when the
// digest was used at or after `cutoff = markStart - window`.
//
// Why no reference can be lost. Take a reference R to digest D written at time tw by a writer
// whose last existence check (a `use`) of D was at tc, with tw - tc < window: the check and the
// write are a few local filesystem calls apart, while window >= 2 s (see collector.ts). Suppose
// the collector deletes D, deciding at td (synchronously: no await between the test and the
// registration of the deletion).
//  - tc < td: the decision saw lastUse(D) >= tc and still deleted, so tc < cutoff = markStart -
//    window, hence tw < tc + window < markStart: R was on disk before marking began, marking
//    read it, D was marked and never a candidate. Contradiction.
//  - tc >= td: the writer's `use` found the deletion registered and waited for it to finish, so
//    its existence check then saw D absent and it refused (MANIFEST_BLOB_UNKNOWN, BLOB_UNKNOWN)
//    or, for an upload being committed, wrote D anew. No dangling reference either way.
// Freshly written blobs are additionally protected by their mtime (the same cutoff), which also
// covers anything a writer did without going through these methods (the mirror's cache fill).
// The guard is per process: with several replicas on one storage, run GC in one of them only.
export class ReferenceGuard {
  private readonly lastUse = new Map<string, number>();
  private readonly deleting = new Map<string, Promise<void>>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Records a use of `digest` and waits until no deletion of it is in flight. */
  async use(digest: string): Promise<void> {
    this.lastUse.set(digest, this.now());
    const pending = this.deleting.get(digest);
    if (pending) await pending;
  }

  /** True when `digest` was not used at or after `cutoff` and no deletion of it is running. */
  idle(digest: string, cutoff: number): boolean {
    const last = this.lastUse.get(digest);
    return (last === undefined || last < cutoff) && !this.deleting.has(digest);
  }

  /**
   * Runs `remove` unless the digest is in use (see the file comment); uses arriving while it
   * runs wait for it. Returns whether it ran.
   */
  async deleteIfIdle(digest: string, cutoff: number, remove: () => Promise<void>): Promise<boolean> {
    if (!this.idle(digest, cutoff)) return false;
    const running = remove();
    const settled = running.then(
      () => undefined,
      () => undefined,
    );
    this.deleting.set(digest, settled);
    try {
      await running;
    } finally {
      this.deleting.delete(digest);
    }
    return true;
  }

  /** Forgets uses older than `before`; the collector calls it once a run is over. */
  prune(before: number): void {
    for (const [digest, at] of this.lastUse) if (at < before) this.lastUse.delete(digest);
  }

  get size(): number {
    return this.lastUse.size;
  }
}
