// Runs garbage collection every `gc.interval` and on demand, one run at a time, and remembers
// what the last runs did for the API, the CLI and the UI.
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
  constructor() {
    super('garbage collection is already running');
    this.name = 'GcBusyError';
  }
}

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
      .catch(() => undefined) // recorded in lastError and logged by run()
      .finally(() => {
        if (this.timer) this.schedule();
      });
  }

  /** One run now; throws GcBusyError while another is in progress. */
  async run(options: { dryRun: boolean; /** This run only: instead of gc.grace (an admin's `layover gc --grace`). */ graceMs?: number }): Promise<GcReport> {
    if (this.running) throw new GcBusyError();
    const run = collectGarbage(this.store, {
      dryRun: options.dryRun,
      keepUntagged: this.config.gc.keepUntagged,
      graceMs: options.graceMs ?? this.config.gc.graceMs,
      uploadMaxAgeMs: this.config.registry.uploadMaxAgeMs,
    });
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
