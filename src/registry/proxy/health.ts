// Upstream health as a circuit breaker: after `downAfterFailures` consecutive failures the
// upstream is marked down for `downForMs`, and cache misses fail at once instead of waiting on
// it. When the time is up one request is let through (half-open); its outcome decides.
export interface HealthOptions {
  downAfterFailures: number;
  downForMs: number;
  now?: () => number;
}

export class UpstreamHealth {
  private failures = 0;
  private downUntil = 0;
  private probing = false;
  private readonly now: () => number;

  constructor(private readonly opts: HealthOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** May a request go upstream now? While down: no, except one probe once the period is over. */
  allow(): boolean {
    if (this.failures < this.opts.downAfterFailures) return true;
    if (this.now() < this.downUntil || this.probing) return false;
    this.probing = true;
    return true;
  }

  /** Milliseconds until the next probe is allowed (0 when up). */
  retryInMs(): number {
    return this.failures < this.opts.downAfterFailures ? 0 : Math.max(0, this.downUntil - this.now());
  }

  get down(): boolean {
    return this.failures >= this.opts.downAfterFailures;
  }

  /** The last answer's latency (to its headers), and a moving average, for the web page. */
  latency: { lastMs: number; averageMs: number } | undefined;
  /** The last failure's reason and time (ms since the epoch); kept after recovery, as history. */
  lastError: { message: string; at: number } | undefined;

  /** An answer's headers arrived `ms` after the request went out (whatever its status). */
  answered(ms: number): void {
    // An exponential average over roughly the last ten answers: steady, yet follows a change.
    const averageMs = this.latency ? this.latency.averageMs * 0.9 + ms * 0.1 : ms;
    this.latency = { lastMs: ms, averageMs };
  }

  succeeded(): void {
    this.failures = 0;
    this.downUntil = 0;
    this.probing = false;
  }

  failed(reason = 'failed'): void {
    this.lastError = { message: reason, at: this.now() };
    this.failures += 1;
    this.probing = false;
    if (this.failures >= this.opts.downAfterFailures) this.downUntil = this.now() + this.opts.downForMs;
  }
}
