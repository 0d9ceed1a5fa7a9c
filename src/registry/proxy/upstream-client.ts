// The HTTP client for one upstream registry: its own connection pool and TLS settings (system
// CAs, a custom CA file, or no verification), the Docker token flow with tokens reused until they
// expire, Basic where the upstream asks for it, and redirects followed without handing the
// upstream's Authorization to another host.
import { readFileSync } from 'node:fs';
import { Agent, request, type Dispatcher } from 'undici';
import type { UpstreamConfig } from '../../config/config.js';
import { BodyTooLarge, readBounded } from '../body.js';
import { parseChallenges, type Challenge } from './challenge.js';
import { basicHeader, credentialSource, type CredentialSource } from './credentials.js';
import { abortable, Deadline, UpstreamTimeout } from './deadline.js';
import { slabConnector } from './slab-connector.js';
import { TokenCache } from './token-cache.js';

/** An error body, or a redirect's, is read this far at most (to keep the connection)... */
const DISCARD_MAX_BYTES = 64 * 1024;
/** ...and for this long at most: a trickled one is not worth a connection for a minute. */
const DISCARD_MAX_MS = 5_000;

/** Drops a response body we do not need; a body cut short must not surface as an unhandled error. */
export function discard(body: UpstreamBody): void {
  // dump() reads a small remainder (keeping the connection reusable) and destroys a large one.
  body.dump({ limit: DISCARD_MAX_BYTES, signal: AbortSignal.timeout(DISCARD_MAX_MS) }).catch(() => undefined);
}

export type UpstreamBody = Dispatcher.ResponseData['body'];

export type Headers = Record<string, string | string[] | undefined>;

export interface UpstreamResponse {
  status: number;
  headers: Headers;
  /** Must be consumed or discarded by the caller. */
  body: UpstreamBody;
}

/**
 * The upstream could not be reached, or broke off; `reason` is for logs and metrics. `tls` marks
 * a certificate we do not trust, a configuration matter worth telling the client.
 */
export class UpstreamUnreachable extends Error {
  constructor(readonly upstream: string, readonly reason: string, readonly tls = false) {
    super(`upstream ${upstream} is unreachable: ${reason}`);
    this.name = 'UpstreamUnreachable';
  }
}

/** The upstream sent something unusable (a token answer of megabytes, not JSON): a 502 for the client. */
export class UpstreamBadAnswer extends Error {
  constructor(readonly upstream: string, readonly reason: string) {
    super(`upstream ${upstream}: ${reason}`);
    this.name = 'UpstreamBadAnswer';
  }
}

/** The upstream answered 429 (or 503 with Retry-After) outside a request we return, e.g. for a token. */
export class UpstreamRateLimited extends Error {
  constructor(readonly upstream: string, readonly status: number, readonly retryAfter: string | undefined, where: string) {
    super(`upstream ${upstream}: ${where} answered ${status}`);
    this.name = 'UpstreamRateLimited';
  }
}

/** The upstream refused our credentials (or has none for us). */
export class UpstreamAuthError extends Error {
  constructor(readonly upstream: string, message: string) {
    super(`upstream ${upstream}: ${message}`);
    this.name = 'UpstreamAuthError';
  }
}

type AuthScheme = { kind: 'none' } | { kind: 'basic' } | { kind: 'bearer'; realm: string; service?: string };

const MAX_REDIRECTS = 5;
const DEFAULT_TOKEN_SECONDS = 60;
/**
 * Renew a token this long before it expires, so a request never carries one that lapses in
 * flight; for short-lived tokens a fifth of their life, or they would never be reused at all.
 */
const TOKEN_MARGIN_MS = 10_000;
/** A token answer larger than this is refused: real ones are a few KiB (GCR's with many scopes, tens). */
export const TOKEN_MAX_BYTES = 256 * 1024;
/** All cached tokens of one upstream together. */
const TOKEN_CACHE_BYTES = 8 * 2 ** 20;

export interface UpstreamClientOptions {
  credentials?: CredentialSource;
  now?: () => number;
}

function first(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function errorReason(err: unknown): string {
  const e = err as { code?: string; name?: string; message?: string; cause?: { code?: string } };
  return e.cause?.code ?? e.code ?? e.name ?? 'error';
}

/** OpenSSL's verification codes and Node's own TLS ones (hostname mismatch, handshake). */
const TLS_CODE = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|^ERR_TLS_|^ERR_SSL_/;
/** undici's own per-exchange timeouts: a gateway timeout for the client, like our deadlines. */
const TIMEOUT_CODE = /^UND_ERR_(?:HEADERS|BODY|CONNECT)_TIMEOUT$/;

/** What a failed exchange (or a body cut off) was: out of time, or unreachable (a certificate, a reset...). */
export function upstreamFailure(upstream: string, err: unknown, context?: string): UpstreamUnreachable | UpstreamTimeout {
  const code = errorReason(err);
  const where = context ? `${context}: ` : '';
  if (TIMEOUT_CODE.test(code)) return new UpstreamTimeout(upstream, `${where}${code}`);
  if (TLS_CODE.test(code)) return new UpstreamUnreachable(upstream, `${where}TLS certificate not trusted (${code})`, true);
  return new UpstreamUnreachable(upstream, `${where}${code}`);
}

export class UpstreamClient {
  readonly base: URL;
  private readonly agent: Agent;
  /** For redirect targets on other hosts (a CDN): system CAs, never the upstream's credentials. */
  private readonly foreignAgent: Agent;
  private readonly credentials: CredentialSource;
  private readonly now: () => number;
  private scheme: AuthScheme | undefined;
  private discovering: Promise<AuthScheme> | undefined;
  private readonly tokens = new TokenCache(TOKEN_CACHE_BYTES);
  private readonly tokenRequests = new Map<string, Promise<string>>();

  constructor(readonly upstream: UpstreamConfig, opts: UpstreamClientOptions = {}) {
    this.base = new URL(upstream.url);
    const connect = {
      timeout: 10_000,
      rejectUnauthorized: !upstream.insecure,
      ...(upstream.ca ? { ca: readFileSync(upstream.ca) } : {}),
    };
    // The configured deadlines (deadline.ts) bound each exchange; undici's per-exchange headers
    // timeout is only a backstop, so it must not cut one short of a longer configured deadline.
    const t = upstream.timeouts;
    const headersTimeout = Math.max(30_000, t.tokenMs, t.manifestMs, t.blobHeadersMs) + 1_000;
    const timeouts = { headersTimeout, bodyTimeout: 60_000, keepAliveTimeout: 30_000 };
    this.agent = new Agent({ connect: slabConnector(connect), ...timeouts });
    this.foreignAgent = new Agent({ connect: slabConnector({ timeout: 10_000, rejectUnauthorized: !upstream.insecure }), ...timeouts });
    this.credentials = opts.credentials ?? credentialSource(upstream);
    this.now = opts.now ?? Date.now;
  }

  get name(): string {
    return this.upstream.prefix;
  }

  /**
   * A request for `path` (under the upstream URL) on behalf of `repository` (the upstream's
   * repository name, for the token scope). Statuses are the caller's to interpret, except that a
   * 401 is answered once with fresh credentials.
   */
  async request(method: 'GET' | 'HEAD', path: string, repository: string, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<UpstreamResponse> {
    const scheme = await this.authScheme(signal);
    const scope = `repository:${repository}:pull`;
    let authorization = await this.authorization(scheme, scope, signal);
    let res = await this.send(method, path, { ...headers, ...(authorization ? { authorization } : {}) }, signal);
    if (res.status !== 401) return res;

    // Expired token, rotated credentials, or an upstream that changed its mind: learn again, once.
    const challenge = this.pick(parseChallenges(res.headers['www-authenticate']));
    discard(res.body);
    if (!challenge) throw new UpstreamAuthError(this.name, 'answered 401 without a usable challenge');
    this.scheme = this.schemeOf(challenge);
    this.tokens.delete(scope);
    this.credentials.invalidate();
    authorization = await this.authorization(this.scheme, challenge.params.scope && this.scheme.kind === 'bearer' ? challenge.params.scope : scope, signal, true);
    res = await this.send(method, path, { ...headers, ...(authorization ? { authorization } : {}) }, signal);
    return res;
  }

  async close(): Promise<void> {
    await Promise.all([this.agent.close(), this.foreignAgent.close()]);
  }

  private pick(challenges: Challenge[]): Challenge | undefined {
    return challenges.find((c) => c.scheme === 'bearer' && c.params.realm) ?? challenges.find((c) => c.scheme === 'basic');
  }

  private schemeOf(challenge: Challenge | undefined): AuthScheme {
    if (!challenge) return { kind: 'none' };
    if (challenge.scheme === 'bearer') {
      const realm = challenge.params.realm as string;
      if (!/^https?:\/\//i.test(realm)) throw new UpstreamAuthError(this.name, 'token realm is not an http(s) URL');
      return { kind: 'bearer', realm, service: challenge.params.service };
    }
    return { kind: 'basic' };
  }

  /** What `/v2/` asks for, learnt once (and again after a 401). */
  private async authScheme(signal?: AbortSignal): Promise<AuthScheme> {
    if (this.scheme) return this.scheme;
    this.discovering ??= (async () => {
      const res = await this.send('GET', '/v2/', {}, signal);
      discard(res.body);
      if (res.status === 401) {
        const challenge = this.pick(parseChallenges(res.headers['www-authenticate']));
        if (!challenge) throw new UpstreamAuthError(this.name, '/v2/ answered 401 without a usable challenge');
        return this.schemeOf(challenge);
      }
      if (res.status === 429 || (res.status === 503 && res.headers['retry-after'] !== undefined)) {
        throw new UpstreamRateLimited(this.name, res.status, first(res.headers['retry-after']), '/v2/');
      }
      if (res.status >= 500) throw new UpstreamUnreachable(this.name, `/v2/ answered ${res.status}`);
      return { kind: 'none' } as AuthScheme;
    })().finally(() => (this.discovering = undefined));
    this.scheme = await this.discovering;
    return this.scheme;
  }

  private async authorization(scheme: AuthScheme, scope: string, signal?: AbortSignal, fresh = false): Promise<string | undefined> {
    if (scheme.kind === 'none') return undefined;
    if (scheme.kind === 'basic') {
      const creds = await this.credentials.get();
      if (!creds) throw new UpstreamAuthError(this.name, 'asks for Basic credentials and none are configured');
      return basicHeader(creds);
    }
    const cached = this.tokens.get(scope);
    if (cached && !fresh && cached.until > this.now()) return `Bearer ${cached.token}`;
    let pending = this.tokenRequests.get(scope);
    if (!pending) {
      // Shared by every request for the scope meanwhile, so bounded by its own deadline only.
      pending = this.fetchToken(scheme, scope).finally(() => this.tokenRequests.delete(scope));
      this.tokenRequests.set(scope, pending);
    }
    return `Bearer ${await abortable(pending, signal)}`;
  }

  private async fetchToken(scheme: Extract<AuthScheme, { kind: 'bearer' }>, scope: string): Promise<string> {
    const deadline = new Deadline(this.upstream.timeouts.tokenMs, new UpstreamTimeout(this.name, 'token endpoint'));
    try {
      return await this.exchangeToken(scheme, scope, deadline);
    } catch (err) {
      if (deadline.expired) throw deadline.error;
      throw err;
    } finally {
      deadline.clear();
    }
  }

  private async exchangeToken(scheme: Extract<AuthScheme, { kind: 'bearer' }>, scope: string, deadline: Deadline): Promise<string> {
    const url = new URL(scheme.realm);
    if (scheme.service) url.searchParams.set('service', scheme.service);
    url.searchParams.set('scope', scope);
    const creds = await this.credentials.get();
    const headers: Record<string, string> = { 'user-agent': 'layover', ...(creds ? { authorization: basicHeader(creds) } : {}) };
    const agent = url.origin === this.base.origin ? this.agent : this.foreignAgent;
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, { method: 'GET', headers, dispatcher: agent, signal: deadline.signal });
    } catch (err) {
      throw upstreamFailure(this.name, err, 'token endpoint');
    }
    if (res.statusCode !== 200) {
      discard(res.body);
      const retryAfter = first(res.headers['retry-after']);
      if (res.statusCode === 429 || (res.statusCode === 503 && retryAfter !== undefined)) throw new UpstreamRateLimited(this.name, res.statusCode, retryAfter, 'token endpoint');
      if (res.statusCode >= 500) throw new UpstreamUnreachable(this.name, `token endpoint answered ${res.statusCode}`);
      throw new UpstreamAuthError(this.name, `token endpoint refused the credentials (${res.statusCode})`);
    }
    let text: Buffer;
    try {
      text = await readBounded(res.body, res.headers['content-length'], TOKEN_MAX_BYTES);
    } catch (err) {
      if (err instanceof BodyTooLarge) throw new UpstreamBadAnswer(this.name, `token endpoint answered more than ${TOKEN_MAX_BYTES / 1024} KiB`);
      throw upstreamFailure(this.name, err, 'token endpoint');
    }
    let body: { token?: unknown; access_token?: unknown; expires_in?: unknown; issued_at?: unknown };
    try {
      body = JSON.parse(text.toString('utf8')) as typeof body;
    } catch {
      throw new UpstreamBadAnswer(this.name, 'token endpoint answered something other than JSON');
    }
    if (typeof body !== 'object' || body === null) throw new UpstreamBadAnswer(this.name, 'token endpoint answered something other than a JSON object');
    const token = typeof body.token === 'string' ? body.token : typeof body.access_token === 'string' ? body.access_token : undefined;
    if (!token) throw new UpstreamAuthError(this.name, 'token endpoint answered without a token');
    const seconds = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : DEFAULT_TOKEN_SECONDS;
    const issued = typeof body.issued_at === 'string' ? Date.parse(body.issued_at) : NaN;
    const start = Number.isFinite(issued) ? Math.min(issued, this.now()) : this.now();
    const lifetime = seconds * 1000;
    this.tokens.set(scope, { token, until: start + lifetime - Math.min(TOKEN_MARGIN_MS, lifetime / 5) });
    return token;
  }

  /** One exchange, following redirects; Authorization only ever goes to the upstream's own origin. */
  private async send(method: 'GET' | 'HEAD', path: string, headers: Record<string, string>, signal?: AbortSignal): Promise<UpstreamResponse> {
    let url = new URL(this.base.pathname.replace(/\/$/, '') + path, this.base);
    let sendHeaders: Record<string, string> = { 'user-agent': 'layover', ...headers };
    for (let hop = 0; ; hop++) {
      const sameOrigin = url.origin === this.base.origin;
      let res: Dispatcher.ResponseData;
      try {
        res = await request(url, { method, headers: sendHeaders, dispatcher: sameOrigin ? this.agent : this.foreignAgent, signal });
      } catch (err) {
        if (signal?.aborted) throw err;
        throw upstreamFailure(this.name, err);
      }
      const location = first(res.headers.location);
      if ([301, 302, 303, 307, 308].includes(res.statusCode) && location) {
        discard(res.body);
        if (hop >= MAX_REDIRECTS) throw new UpstreamUnreachable(this.name, 'too many redirects');
        const next = new URL(location, url);
        if (next.protocol !== 'https:' && next.protocol !== 'http:') throw new UpstreamUnreachable(this.name, 'redirect to a non-HTTP URL');
        if (next.origin !== this.base.origin) {
          const { authorization: _dropped, ...rest } = sendHeaders;
          void _dropped;
          sendHeaders = rest;
        }
        url = next;
        continue;
      }
      return { status: res.statusCode, headers: res.headers as Headers, body: res.body };
    }
  }
}
