// Failed password checks are limited per client address, and per user name at one client
// address. Once a key has too many failures inside the window it is locked for one window:
// during the lock even the right password is refused, so guessing gains nothing; afterwards it
// works again. The user key includes the address so that guessing at a user's password (the
// admin's, say) from one machine never locks that user out of every other machine.
// Signed tokens are never counted or refused here: they cannot be guessed, and a node's pull
// secret must keep working when someone behind the same SNAT address guesses passwords.
import { isIPv6 } from 'node:net';
import { LRUCache } from 'lru-cache';

export interface LoginLimits { perUser: number; perClient: number; windowMs: number }

interface Counter { failures: number; windowStart: number; lockedUntil: number }

export class LoginLimiter {
  private readonly counters: LRUCache<string, Counter>;

  constructor(private readonly limits: LoginLimits, private readonly now: () => number = Date.now) {
    // Bounded: an attacker cycling names or addresses cannot grow memory without limit.
    this.counters = new LRUCache({ max: 50_000 });
  }

  /** Milliseconds until `user` may try a password from `client` again; 0 when not locked. */
  retryAfter(client: string, user: string): number {
    const now = this.now();
    return Math.max(0, ...[clientKey(client), userKey(client, user)].map((k) => (this.counters.get(k)?.lockedUntil ?? 0) - now));
  }

  fail(client: string, user: string): void {
    this.bump(clientKey(client), this.limits.perClient);
    this.bump(userKey(client, user), this.limits.perUser);
  }

  /** A success clears the user's count, never the client's (one good account must not unlock guessing at others). */
  succeed(client: string, user: string): void {
    this.counters.delete(userKey(client, user));
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

/**
 * The address a client is counted by. An IPv4 client of a dual-stack socket (`::ffff:a.b.c.d`)
 * is its IPv4 address; an IPv6 client is its /64, the smallest block a host is routinely given,
 * so cycling through the addresses of one's own /64 does not buy more guesses.
 */
export function clientAddress(ip: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(ip);
  if (mapped) return mapped[1] as string;
  if (!isIPv6(ip)) return ip;
  const [head = '', tail] = ip.toLowerCase().split('::') as [string, string | undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

const clientKey = (client: string): string => `c:${clientAddress(client)}`;
// JSON keeps (address, name) pairs distinct whatever characters a sent user name holds.
const userKey = (client: string, user: string): string => `u:${JSON.stringify([clientAddress(client), user])}`;
