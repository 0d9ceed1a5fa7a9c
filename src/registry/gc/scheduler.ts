// Runs garbage collection every `gc.interval` and on demand, one run at a time, and remembers
// what the last runs did for the API, the CLI and the UI. With replicas on a shared database, one
// run at a time in the whole cluster: a run takes the cluster lock (an advisory lock) or is
// skipped, saying so.
import type { Config } from '../../config/config.js';
import type { Logger } from '../../log.js';
import type { Store } from '../storage/store.js';
import { collectGarbage, type GcReport } from './collector.js';
import { gcFreedBytes, gcLastRun, gcRuns } from './metrics.js';

export interface GcStatus {
  running: boolean;
  intervalMs: number;
  keepUntagged: boolean;
  graceMs: number;
  /** ISO time of the next scheduled run; undefined when the scheduler is stopped. */
  nextRunAt?: string;
  lastRun?: GcReport;
  lastDryRun?: GcReport;
  lastError?: { at: string; message: string };
}

export class GcBusyError extends Error {
  constructor(readonly where: 'here' | 'elsewhere' = 'here') {
    super(where === 'here' ? 'garbage collection is already running' : 'garbage collection is already running on another replica');
    this.name = 'GcBusyError';
  }
}

/**
 * Runs `fn` if no other process of the cluster runs GC; `acquired: false` when one does.
 * (database/advisory-lock.ts with LOCK.gc; absent for a single process.)
 */
export type ClusterLock = <T>(fn: () => Promise<T>) => Promise<{ acquired: true; value: T } | { acquired: false }>;

export class GcScheduler {
  private timer: NodeJS.Timeout | undefined;
  private nextRunAt: number | undefined;
  private running: Promise<GcReport> | undefined;
  private lastRun: GcReport | undefined;
  private lastDryRun: GcReport | undefined;
  private lastError: { at: string; message: string } | undefined;

  constructor(
    private readonly store: Store,
    private readonly config: Pick<Config, 'gc' | 'registry'>,
    private readonly log: Pick<Logger, 'info' | 'error'>,
    private readonly clusterLock?: ClusterLock,
  ) {}

  /** Schedules the periodic runs (the first one `gc.interval` from now). */
  start(): void {
    this.schedule();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.nextRunAt = undefined;
  }

  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    // setTimeout holds at most ~24.8 days; longer intervals are reached in steps.
    const delay = Math.min(this.config.gc.intervalMs, 2 ** 31 - 1);
    this.nextRunAt = Date.now() + this.config.gc.intervalMs;
    this.timer = setTimeout(() => {
      if (this.nextRunAt !== undefined && Date.now() + 1000 < this.nextRunAt) {
        this.timer = setTimeout(() => this.fire(), Math.min(this.nextRunAt - Date.now(), 2 ** 31 - 1));
        this.timer.unref();
        return;
      }
      this.fire();
    }, delay);
    this.timer.unref();
  }

  private fire(): void {
    this.run({ dryRun: false })
      .catch(() => undefined) // a skip or a failure: logged (and a failure recorded) by run()
      .finally(() => {
        if (this.timer) this.schedule();
      });
  }

  /**
   * One run now; throws GcBusyError while another is in progress here or, for a run that
   * deletes, on another replica (a dry run deletes nothing and needs no cluster lock).
   */
  async run(options: { dryRun: boolean; /** This run only: instead of gc.grace (an admin's `layover gc --grace`). */ graceMs?: number }): Promise<GcReport> {
    if (this.running) throw new GcBusyError();
    const collect = () => collectGarbage(this.store, {
      dryRun: options.dryRun,
      keepUntagged: this.config.gc.keepUntagged,
      graceMs: options.graceMs ?? this.config.gc.graceMs,
      uploadMaxAgeMs: this.config.registry.uploadMaxAgeMs,
    });
    const lock = options.dryRun ? undefined : this.clusterLock;
    const run = lock
      ? lock(collect).then((locked) => {
          if (!locked.acquired) throw new GcBusyError('elsewhere');
          return locked.value;
        })
      : collect();
    this.running = run;
    try {
      const report = await run;
      gcRuns.inc({ outcome: 'ok', dry_run: String(options.dryRun) });
      if (options.dryRun) this.lastDryRun = report;
      else {
        this.lastRun = report;
        gcFreedBytes.inc(report.blobs.bytesFreed);
        gcLastRun.set(Date.parse(report.finishedAt) / 1000);
      }
      this.log.info(
        { dryRun: report.dryRun, durationMs: report.durationMs, blobsDeleted: report.blobs.deleted, bytesFreed: report.blobs.bytesFreed, manifestsDeleted: report.manifests.deleted, uploadsRemoved: report.uploadsRemoved },
        'garbage collection finished',
      );
      return report;
    } catch (err) {
      if (err instanceof GcBusyError) {
        this.log.info({ reason: err.message }, 'garbage collection skipped');
        throw err;
      }
      gcRuns.inc({ outcome: 'failed', dry_run: String(options.dryRun) });
      this.lastError = { at: new Date().toISOString(), message: (err as Error).message };
      this.log.error({ problem: (err as Error).message }, 'garbage collection failed');
      throw err;
    } finally {
      this.running = undefined;
    }
  }

  status(): GcStatus {
    return {
      running: this.running !== undefined,
      intervalMs: this.config.gc.intervalMs,
      keepUntagged: this.config.gc.keepUntagged,
      graceMs: this.config.gc.graceMs,
      ...(this.nextRunAt !== undefined ? { nextRunAt: new Date(this.nextRunAt).toISOString() } : {}),
      ...(this.lastRun ? { lastRun: this.lastRun } : {}),
      ...(this.lastDryRun ? { lastDryRun: this.lastDryRun } : {}),
      ...(this.lastError ? { lastError: this.lastError } : {}),
    };
  }
}
