// An upstream's request to be left alone: after a 429 (or a 503 carrying Retry-After) no request
// goes to that upstream until the time it named, so a burst of client misses does not turn into
// a burst of upstream requests that only prolong the limit. Hits are unaffected (they never ask
// the upstream); misses are refused locally with the same status and the time still to wait.

/** Without a Retry-After, a 429 still holds the upstream off this long: enough to absorb a burst. */
export const DEFAULT_HOLD_MS = 10_000;

/**
 * Milliseconds to wait from `now` as a Retry-After header says: delta-seconds or an HTTP-date
 * (RFC 9110 §10.2.3). Undefined when absent or unreadable; a date in the past is 0.
 */
export function parseRetryAfter(value: string | undefined, now: number): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // Date.parse also accepts forms no server sends (e.g. "1"); an HTTP-date names a weekday or month.
  if (!/[a-z]{3}/i.test(text)) return undefined;
  const at = Date.parse(text);
  return Number.isFinite(at) ? Math.max(0, at - now) : undefined;
}

export interface Hold {
  status: 429 | 503;
  /** Whole seconds left, at least 1: what the client's Retry-After says. */
  seconds: number;
}

export class RateLimitGate {
  private until = 0;
  private status: 429 | 503 = 429;

  constructor(private readonly opts: { maxMs: number; now?: () => number }) {}

  private now(): number {
    return this.opts.now?.() ?? Date.now();
  }

  /**
   * Learns from an upstream status: a 429 (with or without Retry-After) or a 503 with one holds
   * the upstream off, capped at `maxMs` (a Retry-After of a day is not obeyed for a day).
   * Returns the hold, or undefined when the answer asked for none.
   */
  note(status: number, retryAfter: string | undefined): Hold | undefined {
    if (status !== 429 && status !== 503) return undefined;
    const now = this.now();
    const asked = parseRetryAfter(retryAfter, now);
    if (asked === undefined && status === 503) return undefined;
    const wait = Math.min(asked ?? DEFAULT_HOLD_MS, this.opts.maxMs);
    this.until = Math.max(this.until, now + wait);
    this.status = status;
    return this.current() ?? { status, seconds: 1 };
  }

  /** The hold in force now, if any. */
  current(): Hold | undefined {
    const left = this.until - this.now();
    if (left <= 0) return undefined;
    return { status: this.status, seconds: Math.max(1, Math.ceil(left / 1000)) };
  }
}
