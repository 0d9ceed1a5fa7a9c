// Turns credentials into a principal: user passwords (scrypt, constant-time, rate-limited),
// namespace tokens presented as Basic credentials, and bearer access tokens. Only password
// checks are rate-limited: signed tokens cannot be guessed, so their checks are neither counted
// nor refused (a pull secret must work from an address where someone guesses passwords).
// scrypt checks wait their turn in a bounded queue, so that a login flood cannot take libuv's
// threadpool from storage; cached successes skip it, keeping Basic on every request cheap.
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { ANONYMOUS, type Principal } from './access.js';
import { QueueFull, type BoundedQueue } from '../../bounded-queue.js';
import { isKubernetesNamespace } from './names.js';
import { dummyHash, plainPasswordMatches, verifyPassword } from './password.js';
import type { LoginLimiter } from './rate-limit.js';
import { TokenError, type AccessEntry, type TokenService } from './tokens.js';
import type { UserRecord, UserStore } from './users.js';

/** invalid: wrong credentials; limited: locked out after failures; busy: too many password checks waiting. */
export type FailureReason = 'invalid' | 'limited' | 'busy';

/** A slot frees with every scrypt (0.1–0.2 s): a second lets several go by without inviting an instant retry storm. */
const BUSY_RETRY_MS = 1000;

export class AuthFailure extends Error {
  constructor(readonly reason: FailureReason, readonly detail: string, readonly retryAfterMs = 0) {
    super(detail);
    this.name = 'AuthFailure';
  }
}

export const NAMESPACE_PREFIX = 'namespace:';

export function principalId(p: Principal): string {
  if (p.kind === 'namespace') return `${NAMESPACE_PREFIX}${p.name}`;
  return p.kind === 'anonymous' ? '$anonymous' : p.name;
}

export function namespacePrincipal(name: string): Principal {
  return { kind: 'namespace', name, admin: false, teams: [] };
}

function userPrincipal(u: UserRecord): Principal {
  return { kind: 'user', name: u.name, admin: u.admin, teams: [...u.teams] };
}

/** Splits a Basic header's payload; undefined when it is not `user:password`. */
export function parseBasic(header: string): { username: string; password: string } | undefined {
  const decoded = Buffer.from(header, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return undefined;
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

export class Authenticator {
  /** Successful scrypt checks, keyed by a per-process HMAC, so Basic on every request stays cheap. */
  private readonly verified = new LRUCache<string, true>({ max: 1000, ttl: 5 * 60_000 });
  private readonly cacheKey = randomBytes(32);

  constructor(
    private readonly users: UserStore,
    readonly tokens: TokenService,
    private readonly limiter: LoginLimiter,
    private readonly hashing: BoundedQueue,
  ) {}

  /** Changes when the user's password does, so refresh tokens die with the old password. */
  passwordVersion(user: UserRecord): string {
    return createHash('sha256').update(user.passwordHash ?? `plain:${user.password ?? ''}`).digest('base64url').slice(0, 16);
  }

  /**
   * Username and password as sent in Basic auth or a token request. `namespace:N` with a
   * namespace token as password is also accepted split after `namespace` (as docker,
   * containerd and kubelet split `auth` at the first colon).
   */
  async password(client: string, username: string, password: string): Promise<Principal> {
    const joined = `${username}:${password}`;
    if (joined.startsWith(NAMESPACE_PREFIX)) return this.namespaceToken(joined.slice(NAMESPACE_PREFIX.length));
    this.refuseIfLocked(client, username);
    const user = this.users.get(username);
    const ok = await this.checkPassword(client, username, user, password);
    if (!ok || !user) {
      this.limiter.fail(client, username);
      throw new AuthFailure('invalid', 'bad username or password');
    }
    this.limiter.succeed(client, username);
    return userPrincipal(user);
  }

  private async namespaceToken(rest: string): Promise<Principal> {
    const colon = rest.indexOf(':');
    const namespace = colon === -1 ? '' : rest.slice(0, colon);
    const token = rest.slice(colon + 1);
    try {
      if (!isKubernetesNamespace(namespace)) throw new TokenError('not a namespace name');
      const verified = await this.tokens.verify(token, 'namespace');
      if (verified.subject !== `${NAMESPACE_PREFIX}${namespace}`) throw new TokenError('token is for another namespace');
    } catch (err) {
      throw new AuthFailure('invalid', err instanceof TokenError ? err.message : 'invalid namespace token');
    }
    return namespacePrincipal(namespace);
  }

  private refuseIfLocked(client: string, username: string): void {
    const retry = this.limiter.retryAfter(client, username);
    if (retry > 0) throw new AuthFailure('limited', 'too many failed logins', retry);
  }

  /** An unknown user is checked against a dummy hash, through the same queue, so its timing equals a real check's. */
  private async checkPassword(client: string, username: string, user: UserRecord | undefined, password: string): Promise<boolean> {
    if (user && user.passwordHash === undefined) return user.password !== undefined && plainPasswordMatches(password, user.password);
    const stored = user?.passwordHash;
    const key = stored === undefined ? undefined
      : createHmac('sha256', this.cacheKey).update(username).update('\0').update(password).update('\0').update(stored).digest('base64');
    if (key !== undefined && this.verified.has(key)) return true;
    const ok = await this.scrypt(client, username, async () => verifyPassword(password, stored ?? await dummyHash()));
    if (ok && key !== undefined) this.verified.set(key, true);
    return ok;
  }

  private async scrypt(client: string, username: string, check: () => Promise<boolean>): Promise<boolean> {
    try {
      return await this.hashing.run(async () => {
        // Failures ahead in the queue may have locked this address meanwhile: refuse without hashing.
        this.refuseIfLocked(client, username);
        return check();
      });
    } catch (err) {
      if (err instanceof QueueFull) throw new AuthFailure('busy', 'too many password checks waiting', BUSY_RETRY_MS);
      throw err;
    }
  }

  /** The principal a token subject names now: undefined when that user no longer exists. */
  principalFor(subject: string | undefined): Principal | undefined {
    if (subject === undefined) return ANONYMOUS;
    if (subject.startsWith(NAMESPACE_PREFIX)) {
      const name = subject.slice(NAMESPACE_PREFIX.length);
      return isKubernetesNamespace(name) ? namespacePrincipal(name) : undefined;
    }
    const user = this.users.get(subject);
    return user && userPrincipal(user);
  }

  user(name: string): UserRecord | undefined {
    return this.users.get(name);
  }

  async bearer(token: string): Promise<{ principal: Principal; access: AccessEntry[] }> {
    let verified;
    try {
      verified = await this.tokens.verify(token, 'access');
    } catch (err) {
      throw new AuthFailure('invalid', err instanceof TokenError ? err.message : 'invalid token');
    }
    const principal = this.principalFor(verified.subject);
    if (!principal) throw new AuthFailure('invalid', 'token subject no longer exists');
    return { principal, access: verified.access };
  }
}
