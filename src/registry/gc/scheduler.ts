// Runs garbage collection every `gc.interval` and on demand, one run at a time, and remembers
// what the last runs did for the API, the CLI and the UI: the last `gc.history` runs that delete
// (and their failures) are kept in the metadata database (table gc_runs), so they survive
// restarts and every replica shows the cluster's runs; dry runs are kept in memory only. With replicas on a shared database, one
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

/** One past run (not a dry run), newest first in GcScheduler.history(). */
export interface GcHistoryEntry {
  id: number;
  finishedAt: string;
  outcome: 'ok' | 'failed';
  /** What the run did and freed (outcome ok). */
  report?: GcReport;
  /** Why it failed (outcome failed). */
  error?: string;
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
    private readonly config: { gc: Omit<Config['gc'], 'historyRuns'> & { historyRuns?: number }; registry: Config['registry'] },
    private readonly log: Pick<Logger, 'info' | 'error' | 'warn'>,
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
        await this.remember(Date.parse(report.finishedAt), 'ok', report);
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
      if (!options.dryRun) await this.remember(Date.now(), 'failed', { message: (err as Error).message });
      throw err;
    } finally {
      this.running = undefined;
    }
  }

  private get keep(): number {
    return this.config.gc.historyRuns ?? 20;
  }

  /** Keeps the run in the history; a failure to do so is logged, never the run's failure. */
  private async remember(finishedAt: number, outcome: 'ok' | 'failed', report: unknown): Promise<void> {
    try {
      await this.store.metadata.recordGcRun({ finishedAt, dryRun: false, outcome, report }, this.keep);
    } catch (err) {
      this.log.warn({ err }, 'could not keep the garbage collection run in its history');
    }
  }

  /** The last `gc.history` runs that delete, newest first. */
  async history(): Promise<GcHistoryEntry[]> {
    return (await this.store.metadata.listGcRuns(this.keep)).map((run) => ({
      id: run.id,
      finishedAt: new Date(run.finishedAt).toISOString(),
      outcome: run.outcome,
      ...(run.outcome === 'ok' ? { report: run.report as GcReport } : { error: String((run.report as { message?: unknown }).message ?? '') }),
    }));
  }

  /** status() with the history; after a restart, lastRun is the newest kept run. */
  async describe(): Promise<GcStatus & { history: GcHistoryEntry[] }> {
    const history = await this.history();
    const status = this.status();
    const lastRun = status.lastRun ?? history.find((h) => h.report)?.report;
    return { ...status, ...(lastRun ? { lastRun } : {}), history };
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
