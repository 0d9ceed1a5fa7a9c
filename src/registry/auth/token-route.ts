// The Docker token endpoint: `GET /token` (Basic credentials, repeated `scope`) and the OAuth2
// `POST /token` containerd prefers (`grant_type=password` or `refresh_token`). The token grants
// the requested scope intersected with what the policy allows, never more.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AuditSink } from '../../audit/audit-log.js';
import type { Config } from '../../config/config.js';
import { databaseAnswer } from '../../database/answer.js';
import { RegistryError } from '../errors.js';
import { ANONYMOUS, type Principal } from './access.js';
import { AuthFailure, parseBasic, principalId, type Authenticator } from './authenticate.js';
import { isRepositoryName } from '../names.js';
import type { Policy } from './policy.js';
import { parseScopes, requestedActions } from './scope.js';
import { TokenError, type AccessEntry } from './tokens.js';

export interface TokenRouteOptions {
  config: Config;
  policy: Policy;
  authn: Authenticator;
  /** Logins with a password, both outcomes, go to the audit trail. */
  audit?: AuditSink;
}

interface Grant { principal: Principal; refresh: boolean }

class TokenRequestError extends Error {
  constructor(readonly status: number, readonly code: 'UNAUTHORIZED' | 'TOOMANYREQUESTS' | 'UNSUPPORTED', message: string, readonly retryAfterMs = 0) {
    super(message);
  }
}

function all(value: unknown): string[] {
  if (value === undefined) return [];
  return (Array.isArray(value) ? value : [value]).filter((v): v is string => typeof v === 'string');
}

export async function tokenRoutes(app: FastifyInstance, opts: TokenRouteOptions): Promise<void> {
  const { config, policy, authn } = opts;

  // Only this plugin parses forms: the registry routes never see this parser.
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 64 * 1024 }, (_req, body, done) => {
    done(null, new URLSearchParams(body as string));
  });

  function grantedAccess(principal: Principal, scopes: string[]): AccessEntry[] {
    const access: AccessEntry[] = [];
    for (const scope of parseScopes(scopes)) {
      if (scope.type === 'registry' && scope.name === 'catalog') {
        // The catalog is filtered per principal by the routes; the scope only has to exist.
        if (principal.kind !== 'anonymous') access.push({ type: 'registry', name: 'catalog', actions: ['*'] });
        continue;
      }
      if (scope.type !== 'repository' || !isRepositoryName(scope.name)) continue;
      const actions = policy.allowed(principal, scope.name, requestedActions(scope.actions));
      if (actions.length) access.push({ type: 'repository', name: scope.name, actions });
    }
    return access;
  }

  async function fromPassword(req: FastifyRequest, username: string, password: string): Promise<Grant> {
    try {
      const principal = await authn.password(req.ip, username, password);
      opts.audit?.({ actor: username, action: 'login', target: username, outcome: 'ok', client: req.ip });
      return { principal, refresh: principal.kind === 'user' };
    } catch (err) {
      if (!(err instanceof AuthFailure)) throw err;
      opts.audit?.({ actor: username, action: 'login', target: username, outcome: 'failed', client: req.ip, detail: { reason: err.reason } });
      req.log.info({ client: req.ip, reason: err.detail }, 'token request refused');
      if (err.reason === 'limited') throw new TokenRequestError(429, 'TOOMANYREQUESTS', 'too many failed logins, try later', err.retryAfterMs);
      if (err.reason === 'busy') throw new TokenRequestError(429, 'TOOMANYREQUESTS', 'too many logins at once, try later', err.retryAfterMs);
      throw new TokenRequestError(401, 'UNAUTHORIZED', 'bad credentials');
    }
  }

  async function fromRefreshToken(req: FastifyRequest, token: string): Promise<Grant> {
    try {
      const verified = await authn.tokens.verify(token, 'refresh');
      const user = verified.subject === undefined ? undefined : authn.user(verified.subject);
      if (!user || verified.claims.pwv !== authn.passwordVersion(user)) throw new TokenError('refresh token no longer valid');
      const principal = authn.principalFor(user.name) as Principal;
      return { principal, refresh: true };
    } catch (err) {
      if (!(err instanceof TokenError)) throw err;
      req.log.info({ client: req.ip, reason: err.message }, 'token request refused');
      throw new TokenRequestError(401, 'UNAUTHORIZED', 'invalid refresh token');
    }
  }

  async function respond(req: FastifyRequest, reply: FastifyReply, grant: Grant, scopes: string[], service: string | undefined, offline: boolean): Promise<void> {
    if (service !== undefined && service !== config.auth.service) throw new TokenRequestError(400, 'UNSUPPORTED', `unknown service "${service.slice(0, 100)}"`);
    const access = grantedAccess(grant.principal, scopes);
    if (grant.principal.kind === 'anonymous' && !access.length && !config.auth.anonymous) {
      throw new TokenRequestError(401, 'UNAUTHORIZED', 'authentication required');
    }
    const subject = grant.principal.kind === 'anonymous' ? undefined : principalId(grant.principal);
    const issued = await authn.tokens.issueAccess(subject, access);
    const body: Record<string, unknown> = {
      token: issued.token,
      access_token: issued.token,
      expires_in: Math.round((issued.expiresAt.getTime() - issued.issuedAt.getTime()) / 1000),
      issued_at: issued.issuedAt.toISOString(),
      scope: access.map((a) => `${a.type}:${a.name}:${a.actions.join(',')}`).join(' '),
    };
    if (offline && grant.refresh && grant.principal.kind === 'user') {
      const user = authn.user(grant.principal.name);
      if (user) body.refresh_token = (await authn.tokens.issueRefresh(user.name, { pwv: authn.passwordVersion(user) })).token;
    }
    req.log.debug({ principal: subject ?? '$anonymous', granted: body.scope }, 'token issued');
    void reply.header('Cache-Control', 'no-store').send(body);
  }

  function fail(reply: FastifyReply, err: unknown): void {
    const unavailable = databaseAnswer(err, reply.log);
    if (unavailable) {
      void reply.code(unavailable.status).headers({ ...unavailable.headers, 'Cache-Control': 'no-store' }).send(unavailable.body());
      return;
    }
    if (!(err instanceof TokenRequestError)) throw err;
    const headers: Record<string, string> = { 'Cache-Control': 'no-store' };
    if (err.status === 401) headers['WWW-Authenticate'] = `Basic realm="${config.auth.service}"`;
    if (err.status === 429) headers['Retry-After'] = String(Math.ceil(err.retryAfterMs / 1000));
    const body = new RegistryError(err.code, err.message, undefined, { status: err.status }).body();
    void reply.code(err.status).headers(headers).send(body);
  }

  app.get('/token', async (req, reply) => {
    const query = req.query as Record<string, unknown>;
    try {
      const header = req.headers.authorization;
      let grant: Grant = { principal: ANONYMOUS, refresh: false };
      if (header) {
        const basic = header.toLowerCase().startsWith('basic ') ? parseBasic(header.slice(6).trim()) : undefined;
        if (!basic) throw new TokenRequestError(401, 'UNAUTHORIZED', 'token requests take Basic credentials');
        grant = await fromPassword(req, basic.username, basic.password);
      }
      const service = all(query.service)[0];
      await respond(req, reply, grant, all(query.scope), service, all(query.offline_token)[0] === 'true');
    } catch (err) {
      fail(reply, err);
    }
  });

  app.post('/token', async (req, reply) => {
    const form = req.body instanceof URLSearchParams ? req.body : new URLSearchParams();
    try {
      const grantType = form.get('grant_type');
      let grant: Grant;
      if (grantType === 'password') grant = await fromPassword(req, form.get('username') ?? '', form.get('password') ?? '');
      else if (grantType === 'refresh_token') grant = await fromRefreshToken(req, form.get('refresh_token') ?? '');
      else throw new TokenRequestError(400, 'UNSUPPORTED', 'grant_type must be password or refresh_token');
      await respond(req, reply, grant, form.getAll('scope'), form.get('service') ?? undefined, form.get('access_type') === 'offline');
    } catch (err) {
      fail(reply, err);
    }
  });
}
