// The ReferenceGuard of a replica whose metadata is in PostgreSQL: the in-process checks as
// before, plus the database's locked re-check for what other replicas did (database/sweep.ts).
import { runSweep, StillReferencedError } from '../../database/sweep.js';
import { ReferenceGuard } from './guard.js';

export class ClusterReferenceGuard extends ReferenceGuard {
  constructor(now?: () => number, private readonly purgeTombstones?: (before: number) => Promise<void>) {
    super(now);
  }

  override async deleteIfIdle(digest: string, cutoff: number, remove: () => Promise<void>): Promise<boolean> {
    try {
      return await super.deleteIfIdle(digest, cutoff, () => runSweep(cutoff, remove));
    } catch (err) {
      if (err instanceof StillReferencedError) return false;
      throw err;
    }
  }

  /** At the end of a run: tombstones only matter for a minute; a day-old one is clutter. */
  override prune(before: number): void {
    super.prune(before);
    void this.purgeTombstones?.(before - 86_400_000).catch(() => undefined);
  }
}
