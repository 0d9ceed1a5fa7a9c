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

  succeeded(): void {
    this.failures = 0;
    this.downUntil = 0;
    this.probing = false;
  }

  failed(): void {
    this.failures += 1;
    this.probing = false;
    if (this.failures >= this.opts.downAfterFailures) this.downUntil = this.now() + this.opts.downForMs;
  }
}
