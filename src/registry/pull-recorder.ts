// Pull times of pushed images ("Pulled" in `layover ls` and the API), batched: a pull only notes
// the time in memory, and the notes are written in one statement every
// registry.pullRecordInterval and when the process stops. A pull never waits for a write, and a
// busy tag costs one row update per interval however often it is pulled. (Mirror repositories
// record their own pulls: proxy/pull-through.ts, where the cache budget needs them.)
import type { Logger } from '../log.js';
import type { Digest } from './digest.js';
import type { MetadataStore, PullTime } from './storage/metadata/types.js';

/** Written at once when this many distinct revisions wait, so memory stays bounded. */
const MAX_PENDING = 10_000;

export class PullRecorder {
  private readonly pending = new Map<string, PullTime>();
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly metadata: Pick<MetadataStore, 'recordPulls'>,
    private readonly intervalMs: number,
    private readonly log: Pick<Logger, 'warn'>,
    private readonly now: () => number = Date.now,
  ) {}

  record(repository: string, digest: Digest): void {
    this.pending.set(`${repository}@${digest}`, { repository, digest, at: this.now() });
    if (this.pending.size >= MAX_PENDING) void this.flush();
    // Armed only while something waits: an idle registry has no timer.
    else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.flush();
      }, this.intervalMs);
      this.timer.unref();
    }
  }

  /** Writes what waits; resolves when every write begun so far is done. */
  flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.size) {
      const batch = [...this.pending.values()];
      this.pending.clear();
      this.writing = this.writing.then(() =>
        this.metadata.recordPulls(batch).catch((err: unknown) => this.log.warn({ err, pulls: batch.length }, 'could not record pull times')),
      );
    }
    return this.writing;
  }

  /** The last write, before the store closes. */
  close(): Promise<void> {
    return this.flush();
  }
}
