// The Access the Distribution routes call on every request: authenticates (Basic or Bearer),
// then checks the policy, answering 401 with a token challenge or 403 DENIED, and logs denials
// without any credential.
import type { FastifyRequest } from 'fastify';
import type { Action, Config } from '../../config/config.js';
import { RegistryError } from '../errors.js';
import { ANONYMOUS, type Access, type Principal } from './access.js';
import { AuthFailure, parseBasic, principalId, type Authenticator } from './authenticate.js';
import type { Policy } from './policy.js';
import { formatScope, tokenGrants } from './scope.js';

const HOST_HEADER = /^[A-Za-z0-9.-]+(?::\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::\d{1,5})?$/;

/** The base URL clients reach this registry at: configured, else from the Host header. */
export function publicBaseURL(config: Config, req: FastifyRequest): string {
  if (config.registry.url) return config.registry.url;
  const host = req.headers.host;
  const safeHost = host && HOST_HEADER.test(host) ? host : config.registry.publicHost;
  return `${config.registry.tls ? 'https' : 'http'}://${safeHost}`;
}

export function bearerChallenge(config: Config, req: FastifyRequest, scope?: string, error?: string): string {
  const parts = [`realm="${publicBaseURL(config, req)}/token"`, `service="${config.auth.service}"`];
  if (scope) parts.push(`scope="${scope}"`);
  if (error) parts.push(`error="${error}"`);
  return `Bearer ${parts.join(',')}`;
}

export class AccessControl implements Access {
  constructor(
    private readonly config: Config,
    private readonly policy: Policy,
    private readonly authn: Authenticator,
  ) {}

  allows(principal: Principal, repository: string, action: Action): boolean {
    return this.policy.allows(principal, repository, action);
  }

  async check(req: FastifyRequest, repository: string | undefined, actions: Action[]): Promise<Principal> {
    const scope = repository === undefined ? undefined : formatScope(repository, actions);
    const unauthorized = (error?: string, detail?: string) => {
      if (detail) req.log.info({ repository, actions, reason: detail }, 'authentication failed');
      return new RegistryError('UNAUTHORIZED', undefined, undefined, { headers: { 'WWW-Authenticate': bearerChallenge(this.config, req, scope, error) } });
    };
    const header = req.headers.authorization;
    let principal: Principal;
    if (!header) {
      // /v2/ always challenges so that login flows start; repositories may be open to anonymous.
      if (repository !== undefined && actions.length > 0 && actions.every((a) => this.policy.allows(ANONYMOUS, repository, a))) return ANONYMOUS;
      throw unauthorized();
    }
    const space = header.indexOf(' ');
    const scheme = header.slice(0, space).toLowerCase();
    const credentials = header.slice(space + 1).trim();
    try {
      if (scheme === 'basic') {
        const basic = parseBasic(credentials);
        if (!basic) throw new AuthFailure('invalid', 'malformed basic credentials');
        principal = await this.authn.password(req.ip, basic.username, basic.password);
      } else if (scheme === 'bearer') {
        const { principal: p, access } = await this.authn.bearer(credentials);
        principal = p;
        if (repository !== undefined) {
          this.deny(req, principal, repository, actions, unauthorized);
          if (!actions.every((a) => tokenGrants(access, repository, a))) throw unauthorized('insufficient_scope');
        }
        return principal;
      } else {
        throw new AuthFailure('invalid', 'unsupported authorization scheme');
      }
    } catch (err) {
      if (!(err instanceof AuthFailure)) throw err;
      if (err.reason === 'limited' || err.reason === 'busy') {
        req.log.warn({ repository, client: req.ip }, err.reason === 'busy' ? 'login refused: too many password checks waiting' : 'login refused: too many failures');
        throw new RegistryError('TOOMANYREQUESTS', undefined, undefined, { headers: { 'Retry-After': String(Math.ceil(err.retryAfterMs / 1000)) } });
      }
      throw unauthorized(scheme === 'bearer' ? 'invalid_token' : undefined, err.detail);
    }
    if (repository !== undefined) this.deny(req, principal, repository, actions, unauthorized);
    return principal;
  }

  /**
   * Throws DENIED (and logs it) unless the principal may do every action; an anonymous
   * caller is challenged instead, since credentials might grant it.
   */
  private deny(req: FastifyRequest, principal: Principal, repository: string, actions: Action[], unauthorized: () => RegistryError): void {
    const refused = actions.filter((a) => !this.policy.allows(principal, repository, a));
    if (!refused.length) return;
    req.log.info({ principal: principalId(principal), repository, actions: refused }, 'access denied');
    if (principal.kind === 'anonymous') throw unauthorized();
    throw new RegistryError('DENIED', undefined, { repository, actions: refused });
  }
}
