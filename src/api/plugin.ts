// The JSON admin/developer API (registered under /api/v1), for the CLI and the web UI. Every call
// authenticates through the same Access as the Distribution API and is allowed exactly what that
// principal may do there: listings show only what it may pull, deletions need `delete` on every
// repository they touch, and GC, storage of other namespaces and upstream health are for admins.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AuditLog } from '../audit/audit-log.js';
import type { Config } from '../config/config.js';
import { parseDuration } from '../config/units.js';
import { databaseAnswer } from '../database/answer.js';
import { openAccess, type Access, type Principal } from '../registry/auth/access.js';
import { parseDigest } from '../registry/digest.js';
import { RegistryError } from '../registry/errors.js';
import { GcError } from '../registry/gc/collector.js';
import { GcBusyError, type GcScheduler } from '../registry/gc/scheduler.js';
import { isRepositoryName, isTag, namespaceOf } from '../registry/names.js';
import type { Store } from '../registry/storage/store.js';
import { Inventory } from './inventory.js';
import { prefersTsv, repositoriesJson, repositoriesTsv, TSV_TYPE } from './repository-listing.js';
import { usageHistory } from './usage-sampler.js';

/** The largest page of repositories one call returns. */
const MAX_PAGE = 10_000;

export interface UpstreamHealth {
  prefix: string;
  url: string;
  up: boolean;
  /** Mirror reads served without asking upstream, as a fraction of all mirror reads (undefined before any). */
  hitRate?: number;
  hits: number;
  misses: number;
  servedFromCacheBytes?: number;
  fetchedUpstreamBytes?: number;
  /** Moving average of the time to an upstream answer's headers (ms), and the last one. */
  latencyMs?: number;
  lastLatencyMs?: number;
  lastError?: { message: string; at: string };
}

export interface ApiPluginOptions {
  config: Config;
  store: Store;
  gc: GcScheduler;
  /** The audit trail, for admins (GET /audit). */
  audit?: AuditLog;
  access?: Access;
  /** Upstream health and cache figures, when the pull-through cache provides them. */
  upstreams?: () => Promise<UpstreamHealth[]>;
  /** What the cache budget's eviction removed since this process started. */
  evictions?: () => EvictionStats;
  /** Users and teams (auth enabled), for the admin's read-only list. */
  accounts?: () => { users: { name: string; admin: boolean; teams: string[] }[]; teams: string[] };
}

export interface EvictionStats {
  runs: number;
  images: number;
  bytesFreed: number;
  lastRunAt?: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

function queryOf(req: FastifyRequest): Record<string, string> {
  return (req.query ?? {}) as Record<string, string>;
}

function dryRun(req: FastifyRequest): boolean {
  return queryOf(req).dryRun === 'true';
}

function repositoryParam(req: FastifyRequest, key = 'repository'): string {
  const name = queryOf(req)[key];
  if (typeof name !== 'string' || !isRepositoryName(name)) throw new ApiError(400, 'NAME_INVALID', `query parameter "${key}" must be a repository name`);
  return name;
}

/** The namespaces a principal works in: its own and its teams' (a Kubernetes namespace: its grants). */
function homeNamespaces(config: Config, p: Principal): string[] {
  if (p.kind === 'user') return [p.name, ...p.teams];
  if (p.kind === 'namespace') return [p.name, ...(config.auth.namespaceGrants[p.name] ?? [])];
  return [];
}

export async function apiPlugin(app: FastifyInstance, opts: ApiPluginOptions): Promise<void> {
  const { config, store, gc } = opts;
  const access = opts.access ?? openAccess;
  const authOff = access === openAccess;
  const mirrorNamespaces = new Set(config.upstreams.flatMap((u) => [u.prefix, ...u.aliases]));
  const inventory = () => new Inventory(store, mirrorNamespaces);

  app.setErrorHandler((err: Error & { statusCode?: number }, req, reply) => {
    if (err instanceof ApiError) return reply.code(err.status).send({ error: { code: err.code, message: err.message } });
    if (err instanceof RegistryError) {
      // No WWW-Authenticate here: a browser would answer a challenge with its own login dialog.
      return reply.code(err.status).send({ error: { code: err.code, message: err.message } });
    }
    const database = databaseAnswer(err, req.log);
    if (database) return reply.code(database.status).header('Retry-After', database.headers['Retry-After']).send({ error: { code: database.code, message: database.message } });
    if (err instanceof GcBusyError) return reply.code(409).send({ error: { code: 'GC_RUNNING', message: err.message } });
    if (err instanceof GcError) return reply.code(500).send({ error: { code: 'GC_FAILED', message: err.message } });
    if (err.statusCode && err.statusCode < 500) return reply.code(err.statusCode).send({ error: { code: 'BAD_REQUEST', message: err.message } });
    req.log.error({ err, url: req.url.split('?')[0] }, 'api error');
    return reply.code(500).send({ error: { code: 'UNKNOWN', message: 'internal error' } });
  });

  const who = (req: FastifyRequest) => access.check(req, undefined, []);
  const isAdmin = (p: Principal) => authOff || p.admin;
  const requireAdmin = async (req: FastifyRequest): Promise<Principal> => {
    const p = await who(req);
    if (!isAdmin(p)) throw new ApiError(403, 'DENIED', 'only an admin may do this');
    return p;
  };
  /** Deleting mirrored content is for admins only, as on the Distribution API. */
  const checkMirrorDelete = (p: Principal, repository: string) => {
    if (mirrorNamespaces.has(namespaceOf(repository)) && !isAdmin(p)) throw new ApiError(403, 'DENIED', 'only an admin may delete cached mirror content');
  };
  const visible = async (p: Principal) => (await store.listRepositories()).filter((r) => access.allows(p, r, 'pull'));

  app.get('/me', async (req) => {
    const p = await who(req);
    return { name: p.name, kind: p.kind, admin: isAdmin(p), teams: p.teams, namespaces: homeNamespaces(config, p), authEnabled: !authOff, registryHost: config.registry.publicHost };
  });

  // ?limit=N&after=NAME: a page, with `next` (the name to pass as `after`) while more follow.
  // Accept: text/tab-separated-values (what `layover ls` asks for): the same rows as TSV, and
  // the next page's URL in a Link header. Both written as text straight from the summary rows.
  app.get('/repositories', async (req, reply) => {
    const p = await who(req);
    const query = queryOf(req);
    const ns = query.namespace;
    const after = query.after;
    if (after !== undefined && !isRepositoryName(after)) throw new ApiError(400, 'NAME_INVALID', 'query parameter "after" must be a repository name');
    const limit = query.limit === undefined ? undefined : Number(query.limit);
    if (limit !== undefined && !(Number.isInteger(limit) && limit > 0 && limit <= MAX_PAGE)) throw new ApiError(400, 'LIMIT_INVALID', `query parameter "limit" must be an integer from 1 to ${MAX_PAGE}`);
    const page = await inventory().repositoryPage((r) => access.allows(p, r, 'pull'), { ...(ns === undefined ? {} : { namespace: ns }), ...(after === undefined ? {} : { after }), ...(limit === undefined ? {} : { limit }) });
    const rows = ns === undefined ? page.rows : page.rows.filter((r) => namespaceOf(r.name) === ns);
    const last = page.rows[page.rows.length - 1];
    const next = page.more && last ? last.name : undefined;
    const isMirror = (namespace: string) => mirrorNamespaces.has(namespace);
    reply.header('vary', 'Accept');
    if (prefersTsv(req.headers.accept)) {
      if (next !== undefined) {
        const link = new URLSearchParams({ ...(limit === undefined ? {} : { limit: String(limit) }), ...(ns === undefined ? {} : { namespace: ns }), after: next });
        reply.header('link', `</api/v1/repositories?${link}>; rel="next"`);
      }
      return reply.type(`${TSV_TYPE}; charset=utf-8`).send(repositoriesTsv(rows, isMirror));
    }
    return reply.type('application/json; charset=utf-8').send(repositoriesJson(rows, isMirror, next));
  });

  app.get('/repository', async (req) => {
    const name = repositoryParam(req, 'name');
    await access.check(req, name, ['pull']);
    const found = await inventory().repositoryWithTags(name);
    if (!found) throw new ApiError(404, 'NAME_UNKNOWN', `no repository "${name}"`);
    return { ...found.info, tagList: found.tags };
  });

  app.delete('/repository', async (req) => {
    const name = repositoryParam(req, 'name');
    const p = await access.check(req, name, ['delete']);
    checkMirrorDelete(p, name);
    // ?dryRun=true: every check a deletion makes, and what it would take with it; nothing deleted.
    if (dryRun(req)) {
      const tags = await store.listTags(name);
      if (!tags) throw new ApiError(404, 'NAME_UNKNOWN', `no repository "${name}"`);
      return { dryRun: true, deleted: { repository: name, tags } };
    }
    if (!(await store.deleteRepository(name))) throw new ApiError(404, 'NAME_UNKNOWN', `no repository "${name}"`);
    req.log.info({ repository: name, by: p.name }, 'repository deleted');
    return { deleted: { repository: name } };
  });

  app.delete('/tag', async (req) => {
    const name = repositoryParam(req);
    const tag = queryOf(req).tag;
    if (typeof tag !== 'string' || !isTag(tag)) throw new ApiError(400, 'TAG_INVALID', 'query parameter "tag" must be a tag');
    const p = await access.check(req, name, ['delete']);
    checkMirrorDelete(p, name);
    if (!(await store.repositoryExists(name))) throw new ApiError(404, 'NAME_UNKNOWN', `no repository "${name}"`);
    if (!(await store.deleteTag(name, tag))) throw new ApiError(404, 'TAG_UNKNOWN', `no tag "${tag}" in ${name}`);
    req.log.info({ repository: name, tag, by: p.name }, 'tag deleted');
    return { deleted: { repository: name, tag } };
  });

  app.delete('/manifest', async (req) => {
    const name = repositoryParam(req);
    const digest = parseDigest(String(queryOf(req).digest ?? ''))?.digest;
    if (!digest) throw new ApiError(400, 'DIGEST_INVALID', 'query parameter "digest" must be a digest');
    const p = await access.check(req, name, ['delete']);
    checkMirrorDelete(p, name);
    if (!(await store.repositoryExists(name))) throw new ApiError(404, 'NAME_UNKNOWN', `no repository "${name}"`);
    if (!(await store.deleteManifest(name, digest))) throw new ApiError(404, 'MANIFEST_UNKNOWN', `no manifest ${digest} in ${name}`);
    req.log.info({ repository: name, digest, by: p.name }, 'manifest deleted');
    return { deleted: { repository: name, digest } };
  });

  app.delete('/namespace', async (req) => {
    const ns = queryOf(req).name;
    if (typeof ns !== 'string' || !isRepositoryName(ns) || ns.includes('/')) throw new ApiError(400, 'NAME_INVALID', 'query parameter "name" must be a namespace');
    const p = await who(req);
    const repositories = (await store.listRepositories()).filter((r) => namespaceOf(r) === ns);
    if (!repositories.length) {
      // Say "no such namespace" only to someone who could have deleted it: others learn nothing.
      if (!access.allows(p, `${ns}/x`, 'delete')) throw new ApiError(403, 'DENIED', `you may not delete namespace "${ns}"`);
      throw new ApiError(404, 'NAME_UNKNOWN', `no namespace "${ns}"`);
    }
    const refused = repositories.filter((r) => !access.allows(p, r, 'delete'));
    if (refused.length) {
      req.log.info({ principal: p.name, namespace: ns, refused: refused.length }, 'access denied');
      throw new ApiError(403, 'DENIED', `you may not delete namespace "${ns}"`);
    }
    checkMirrorDelete(p, ns);
    if (dryRun(req)) return { dryRun: true, deleted: { namespace: ns, repositories } };
    const deleted = await store.deleteNamespace(ns);
    req.log.info({ namespace: ns, repositories: deleted.length, by: p.name }, 'namespace deleted');
    return { deleted: { namespace: ns, repositories: deleted } };
  });

  app.get('/storage', async (req) => {
    const p = await who(req);
    // An admin's figure is over every repository: no list to pass, the engine aggregates them all.
    const usage = await inventory().storage(isAdmin(p) ? undefined : await visible(p));
    // The whole volume's figure is an admin's business; others see what they can see.
    if (!isAdmin(p)) return { ...usage, storedBytes: undefined, blobs: undefined };
    return usage;
  });

  app.get('/gc', async (req) => {
    await requireAdmin(req);
    return gc.describe();
  });

  app.post('/gc', async (req) => {
    const p = await requireAdmin(req);
    const dry = queryOf(req).dryRun;
    const dryRun = dry !== undefined && dry !== 'false' && dry !== '0';
    const grace = queryOf(req).grace;
    let graceMs: number | undefined;
    if (grace !== undefined) {
      try {
        graceMs = parseDuration(grace);
      } catch (err) {
        throw new ApiError(400, 'GRACE_INVALID', `query parameter "grace": ${(err as Error).message}`);
      }
    }
    req.log.info({ by: p.name, dryRun, graceMs }, 'garbage collection requested');
    return gc.run({ dryRun, graceMs });
  });

  app.get('/cache', async (req) => {
    await requireAdmin(req);
    const { maxBytes, expireAfterMs } = config.cache;
    return {
      ...(maxBytes !== undefined ? { maxBytes } : {}),
      ...(expireAfterMs !== undefined ? { expireAfterMs } : {}),
      evictions: opts.evictions?.() ?? { runs: 0, images: 0, bytesFreed: 0 },
    };
  });

  // Storage and traffic over time (api/usage-sampler.ts); ?since= a duration back from now (default 24h).
  app.get('/usage', async (req) => {
    await requireAdmin(req);
    let backMs = 86_400_000;
    const since = queryOf(req).since;
    if (since !== undefined) {
      try {
        backMs = parseDuration(since);
      } catch (err) {
        throw new ApiError(400, 'SINCE_INVALID', `query parameter "since": ${(err as Error).message}`);
      }
    }
    const intervalMs = config.usage.sampleIntervalMs;
    return { intervalMs, keepMs: config.usage.keepMs, samples: await usageHistory(store.metadata, Date.now() - backMs, intervalMs) };
  });

  app.get('/users', async (req) => {
    await requireAdmin(req);
    return { users: (opts.accounts?.().users ?? []).map((u) => ({ name: u.name, admin: u.admin, teams: u.teams })).sort((a, b) => a.name.localeCompare(b.name)) };
  });

  app.get('/teams', async (req) => {
    await requireAdmin(req);
    const accounts = opts.accounts?.();
    const teams = (accounts?.teams ?? []).map((name) => ({ name, members: (accounts?.users ?? []).filter((u) => u.teams.includes(name)).map((u) => u.name).sort() }));
    return { teams };
  });

  // The manifests that refer to one (signatures, SBOMs, attestations), labelled by kind.
  app.get('/referrers', async (req) => {
    const name = repositoryParam(req);
    const digest = parseDigest(String(queryOf(req).digest ?? ''))?.digest;
    if (!digest) throw new ApiError(400, 'DIGEST_INVALID', 'query parameter "digest" must be a digest');
    await access.check(req, name, ['pull']);
    if (!(await store.repositoryExists(name))) throw new ApiError(404, 'NAME_UNKNOWN', `no repository "${name}"`);
    return { referrers: await inventory().referrers(name, digest) };
  });

  // The audit trail, newest first: ?limit= (1-1000, default 100), ?before=ID (the next page), ?action=.
  app.get('/audit', async (req) => {
    await requireAdmin(req);
    const q = queryOf(req);
    const limit = q.limit === undefined ? 100 : Number(q.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new ApiError(400, 'LIMIT_INVALID', 'query parameter "limit" must be an integer from 1 to 1000');
    const before = q.before === undefined ? undefined : Number(q.before);
    if (before !== undefined && (!Number.isSafeInteger(before) || before < 1)) throw new ApiError(400, 'BEFORE_INVALID', 'query parameter "before" must be an entry id');
    if (q.action !== undefined && !/^[a-z][a-z.-]{0,39}$/.test(q.action)) throw new ApiError(400, 'ACTION_INVALID', 'query parameter "action" must be an action such as push, delete, login or user');
    if (!opts.audit) return { events: [] };
    const events = await opts.audit.list({ limit, ...(before !== undefined ? { before } : {}), ...(q.action !== undefined ? { action: q.action } : {}) });
    return { events: events.map((e) => ({ ...e, at: new Date(e.at).toISOString() })) };
  });

  app.get('/upstreams', async (req) => {
    await requireAdmin(req);
    const health = opts.upstreams ? await opts.upstreams() : [];
    return { available: opts.upstreams !== undefined, upstreams: health };
  });

  app.setNotFoundHandler((_req: FastifyRequest, reply: FastifyReply) => reply.code(404).send({ error: { code: 'NOT_FOUND', message: 'unknown API endpoint' } }));
}
