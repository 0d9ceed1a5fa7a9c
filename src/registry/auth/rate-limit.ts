// Failed-login limiting, per client address and per user name. Once a key has too many
// failures inside the window it is locked for one window: during the lock even the right
// password is refused, so guessing gains nothing; afterwards it works again.
import { LRUCache } from 'lru-cache';

export interface LoginLimits { perUser: number; perClient: number; windowMs: number }

interface Counter { failures: number; windowStart: number; lockedUntil: number }

export class LoginLimiter {
  private readonly counters: LRUCache<string, Counter>;

  constructor(private readonly limits: LoginLimits, private readonly now: () => number = Date.now) {
    // Bounded: an attacker cycling names or addresses cannot grow memory without limit.
    this.counters = new LRUCache({ max: 50_000 });
  }

  /** Milliseconds until `client` / `user` may try again; 0 when not locked. */
  retryAfter(client: string, user: string | undefined): number {
    const now = this.now();
    const keys = [`c:${client}`, ...(user === undefined ? [] : [`u:${user}`])];
    return Math.max(0, ...keys.map((k) => (this.counters.get(k)?.lockedUntil ?? 0) - now));
  }

  fail(client: string, user: string | undefined): void {
    this.bump(`c:${client}`, this.limits.perClient);
    if (user !== undefined) this.bump(`u:${user}`, this.limits.perUser);
  }

  /** A success clears the user's count, never the client's (one good account must not unlock guessing at others). */
  succeed(user: string): void {
    this.counters.delete(`u:${user}`);
  }

  private bump(key: string, limit: number): void {
    const now = this.now();
    let counter = this.counters.get(key);
    if (!counter || now - counter.windowStart >= this.limits.windowMs) counter = { failures: 0, windowStart: now, lockedUntil: 0 };
    counter.failures++;
    if (counter.failures >= limit) {
      counter.lockedUntil = now + this.limits.windowMs;
      counter.failures = 0;
      counter.windowStart = counter.lockedUntil;
    }
    this.counters.set(key, counter);
  }
}
