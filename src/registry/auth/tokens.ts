// Signed tokens (JWT, ES256, key id in the header): short-lived registry access tokens in the
// Docker token format, refresh tokens for the OAuth2 flow containerd uses, and long-lived
// namespace tokens that the pull-secret controller puts into Kubernetes Secrets.
import { randomUUID } from 'node:crypto';
import { SignJWT, jwtVerify, type CryptoKey, type JWTHeaderParameters, type JWTPayload } from 'jose';
import { ALGORITHM, type KeyRing } from './keys.js';

export type TokenUse = 'access' | 'refresh' | 'namespace';

/** One entry of the Docker token's `access` claim. */
export interface AccessEntry { type: string; name: string; actions: string[] }

export interface TokenSettings {
  issuer: string;
  /** The audience: the registry's service name, as in the WWW-Authenticate challenge. */
  service: string;
  accessTTLMs: number;
  refreshTTLMs: number;
  namespaceTTLMs: number;
}

export interface IssuedToken { token: string; expiresAt: Date; issuedAt: Date; keyId: string }

export interface VerifiedToken {
  subject: string | undefined;
  access: AccessEntry[];
  claims: JWTPayload;
}

export class TokenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenError';
  }
}

function isAccessEntry(value: unknown): value is AccessEntry {
  const v = value as AccessEntry;
  return typeof v === 'object' && v !== null && typeof v.type === 'string' && typeof v.name === 'string'
    && Array.isArray(v.actions) && v.actions.every((a) => typeof a === 'string');
}

export class TokenService {
  constructor(private readonly keys: KeyRing, readonly settings: TokenSettings, private readonly now: () => number = Date.now) {}

  /** The id of the key new tokens are signed with (the controller re-mints when it changes). */
  readonly currentKeyId = (): string => this.keys.current().kid;

  /** A long-lived token for principal `namespace:<namespace>`. */
  readonly mintNamespaceToken = async (namespace: string, ttlMs = this.settings.namespaceTTLMs): Promise<IssuedToken> =>
    this.sign('namespace', `namespace:${namespace}`, ttlMs, {});

  issueAccess(subject: string | undefined, access: AccessEntry[]): Promise<IssuedToken> {
    return this.sign('access', subject, this.settings.accessTTLMs, { access });
  }

  issueRefresh(subject: string, extra: Record<string, string>): Promise<IssuedToken> {
    return this.sign('refresh', subject, this.settings.refreshTTLMs, extra);
  }

  private async sign(use: TokenUse, subject: string | undefined, ttlMs: number, claims: Record<string, unknown>): Promise<IssuedToken> {
    const { kid, privateKey } = this.keys.current();
    const issuedAt = Math.floor(this.now() / 1000);
    const expiresAt = issuedAt + Math.max(1, Math.floor(ttlMs / 1000));
    const jwt = new SignJWT({ ...claims, use })
      .setProtectedHeader({ alg: ALGORITHM, kid, typ: 'JWT' })
      .setIssuer(this.settings.issuer)
      .setAudience(this.settings.service)
      .setIssuedAt(issuedAt)
      .setNotBefore(issuedAt)
      .setExpirationTime(expiresAt)
      .setJti(randomUUID());
    if (subject !== undefined) jwt.setSubject(subject);
    return { token: await jwt.sign(privateKey), expiresAt: new Date(expiresAt * 1000), issuedAt: new Date(issuedAt * 1000), keyId: kid };
  }

  /**
   * Verifies signature (ES256 only, key by id, retired keys refused), issuer, audience,
   * time window and the token's use. Throws TokenError with a reason safe to log.
   */
  async verify(token: string, use: TokenUse): Promise<VerifiedToken> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, (header: JWTHeaderParameters) => this.keyFor(header), {
        algorithms: [ALGORITHM],
        issuer: this.settings.issuer,
        audience: this.settings.service,
        requiredClaims: ['exp', 'iat'],
        currentDate: new Date(this.now()),
        clockTolerance: 10,
      }));
    } catch (err) {
      throw new TokenError(`invalid token: ${(err as { code?: string }).code ?? (err as Error).message}`);
    }
    if (payload.use !== use) throw new TokenError(`invalid token: a ${String(payload.use)} token used as ${use} token`);
    const access = payload.access === undefined ? [] : payload.access;
    if (!Array.isArray(access) || !access.every(isAccessEntry)) throw new TokenError('invalid token: malformed access claim');
    return { subject: payload.sub, access, claims: payload };
  }

  private async keyFor(header: JWTHeaderParameters): Promise<CryptoKey> {
    if (typeof header.kid !== 'string') throw new TokenError('no key id');
    let key = this.keys.publicKey(header.kid);
    if (!key) {
      await this.keys.reloadIfStale();
      key = this.keys.publicKey(header.kid);
    }
    if (!key) throw new TokenError('unknown or retired key');
    return key;
  }
}
