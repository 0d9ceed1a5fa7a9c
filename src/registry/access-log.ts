// The access log and the audit entries that follow from answers. One structured line per request:
// at `info` for those that change state (any method but GET/HEAD) or move a blob or manifest, at
// `debug` for the rest (probes, listings, /metrics, the web page). A line names the principal,
// method, templated route, repository, reference (tag or digest), status, bytes and duration;
// never a header or the query string, so credentials (Authorization, tokens, passwords in a
// form, `?token=`) cannot reach it. Successful pushes and deletes are also audited here, where
// the principal and the outcome are both known.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { actorOf, type AuditEntry, type AuditSink } from '../audit/audit-log.js';
import type { Logger } from '../log.js';
import { principalOf } from './auth/principal-note.js';
import { routeOf } from './metrics.js';
import { parseEndpoint, type Endpoint } from './routes/path.js';

const CLIP = 256;

export interface AccessLogOptions {
  /** log.access: false leaves only the debug lines (and the audit trail). */
  enabled: boolean;
  audit?: AuditSink;
}

/** The route as a bounded label: the Distribution endpoint's kind, or the matched route's template. */
export function templatedRoute(req: FastifyRequest, path: string): string {
  if (path.startsWith('/v2')) return routeOf(path);
  return req.routeOptions.url ?? 'unmatched';
}

function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

function numberHeader(value: unknown): number | undefined {
  const n = Number(value);
  return value !== undefined && value !== '' && Number.isFinite(n) ? n : undefined;
}

interface Target {
  repository?: string;
  reference?: string;
}

function targetOf(endpoint: Endpoint | undefined): Target {
  if (!endpoint || !('name' in endpoint)) return {};
  const repository = endpoint.name.slice(0, CLIP);
  if (endpoint.kind === 'manifest') return { repository, reference: endpoint.reference.slice(0, CLIP) };
  if (endpoint.kind === 'blob' || endpoint.kind === 'referrers') return { repository, reference: endpoint.digest.slice(0, CLIP) };
  return { repository };
}

function at(repository: string, reference: string): string {
  return reference.includes(':') ? `${repository}@${reference}` : `${repository}:${reference}`;
}

/** The audit entry a successful Distribution write or an API deletion stands for, if any. */
function auditOf(req: FastifyRequest, reply: FastifyReply, path: string, endpoint: Endpoint | undefined): AuditEntry | undefined {
  const actor = actorOf(principalOf(req));
  const client = req.ip;
  const status = reply.statusCode;
  if (endpoint?.kind === 'manifest' && req.method === 'PUT' && status === 201) {
    const digest = String(reply.getHeader('docker-content-digest') ?? '');
    const tags = new URL(req.url, 'http://x').searchParams.getAll('tag').slice(0, 20);
    return { actor, client, action: 'push', target: at(endpoint.name, endpoint.reference), outcome: 'ok', detail: { digest, ...(tags.length ? { tags } : {}) } };
  }
  if ((endpoint?.kind === 'manifest' || endpoint?.kind === 'blob') && req.method === 'DELETE' && status === 202) {
    const reference = endpoint.kind === 'manifest' ? endpoint.reference : endpoint.digest;
    return { actor, client, action: 'delete', target: at(endpoint.name, reference), outcome: 'ok', detail: { kind: endpoint.kind } };
  }
  if (req.method === 'DELETE' && status === 200 && path.startsWith('/api/v1/')) {
    const query = req.query as Record<string, string | undefined>;
    if (query.dryRun === 'true') return undefined;
    const kind = path.slice('/api/v1/'.length);
    const target = kind === 'repository' || kind === 'namespace' ? query.name : kind === 'tag' ? `${query.repository}:${query.tag}` : kind === 'manifest' ? `${query.repository}@${query.digest}` : undefined;
    if (target === undefined) return undefined;
    return { actor, client, action: 'delete', target, outcome: 'ok', detail: { kind } };
  }
  return undefined;
}

/** Registers the hook on the root instance, so that it sees the routes of every plugin. */
export function registerAccessLog(app: FastifyInstance, options: AccessLogOptions): void {
  app.addHook('onResponse', async (req, reply) => {
    const path = pathOf(req.url);
    const endpoint = path.startsWith('/v2/') ? parseEndpoint(path.slice('/v2/'.length)) : undefined;
    const moves = (endpoint?.kind === 'blob' || endpoint?.kind === 'manifest') && (req.method === 'GET' || req.method === 'HEAD');
    const important = options.enabled && (moves || (req.method !== 'GET' && req.method !== 'HEAD'));
    const entry = options.audit && reply.statusCode < 300 ? auditOf(req, reply, path, endpoint) : undefined;
    if (entry) options.audit?.(entry);
    if (!important && !(req.log as unknown as Logger).isLevelEnabled('debug')) return;
    const principal = principalOf(req);
    const line = {
      user: principal && principal.kind !== 'anonymous' ? actorOf(principal) : undefined,
      client: req.ip,
      method: req.method,
      route: templatedRoute(req, path),
      ...targetOf(endpoint),
      status: reply.statusCode,
      bytesIn: numberHeader(req.headers['content-length']),
      bytesOut: numberHeader(reply.getHeader('content-length')),
      durationMs: Math.round(reply.elapsedTime * 10) / 10,
    };
    if (important) req.log.info({ access: line }, 'request');
    else req.log.debug({ access: line }, 'request');
  });
}
