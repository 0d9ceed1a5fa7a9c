// The Distribution API as a fastify plugin: one wildcard route under /v2/ that parses the path,
// checks access, and hands over to the endpoint's handler.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Action, Config } from '../config/config.js';
import { databaseAnswer } from '../database/answer.js';
import { openAccess, type Access } from './auth/access.js';
import { RegistryError } from './errors.js';
import { assertRepositoryName } from './names.js';
import { deleteBlob, getBlob } from './routes/blobs.js';
import type { Call, RouteContext } from './routes/context.js';
import { catalog, listTags, referrers } from './routes/listing.js';
import { deleteManifest, getManifest, putManifest } from './routes/manifests.js';
import { parseEndpoint, type Endpoint } from './routes/path.js';
import type { PullRecorder } from './pull-recorder.js';
import { cancelUpload, finishUpload, patchUpload, startUpload, uploadStatus } from './routes/uploads.js';
import { RegistryService, type ContentSource } from './service.js';
import { isObjectStoreUnavailable, isStorageFull, logObjectStoreUnavailable, logStorageFull, storageAnswer } from './storage/errors.js';
import type { Store } from './storage/store.js';

export interface MirrorRouter {
  /** The content source for a mirror repository, or undefined when it is not a mirror. */
  sourceFor(repository: string): ContentSource | undefined;
  /** May this repository be pushed into? (mirror namespaces: no, unless configured) */
  pushable(repository: string): boolean;
  /**
   * containerd mirror mode: the local mirror repository for `repository` of the registry named by
   * `?ns=` (e.g. `library/nginx`, `docker.io` → `docker.io/library/nginx`); undefined when no
   * upstream matches, and the request is served as it stands.
   */
  localName?(repository: string, ns: string): string | undefined;
}

export interface RegistryPluginOptions {
  config: Config;
  store: Store;
  access?: Access;
  mirrors?: MirrorRouter;
  pulls?: PullRecorder;
}

type Handler = (ctx: RouteContext, call: Call, endpoint: Endpoint) => Promise<void>;

const METHODS = ['GET', 'HEAD', 'PUT', 'POST', 'PATCH', 'DELETE'] as const;

function actionOf(method: string): Action {
  if (method === 'GET' || method === 'HEAD') return 'pull';
  if (method === 'DELETE') return 'delete';
  return 'push';
}

/** Which handler serves (endpoint kind, method); absent means 405. */
const TABLE: Record<Endpoint['kind'], Partial<Record<(typeof METHODS)[number], Handler>>> = {
  base: {},
  catalog: { GET: (ctx, call) => catalog(ctx, call), HEAD: (ctx, call) => catalog(ctx, call) },
  tags: { GET: (ctx, call, e) => listTags(ctx, call, (e as { name: string }).name) },
  manifest: {
    GET: (ctx, call, e) => getManifest(ctx, call, ...manifestArgs(e)),
    HEAD: (ctx, call, e) => getManifest(ctx, call, ...manifestArgs(e)),
    PUT: (ctx, call, e) => putManifest(ctx, call, ...manifestArgs(e)),
    DELETE: (ctx, call, e) => deleteManifest(ctx, call, ...manifestArgs(e)),
  },
  blob: {
    GET: (ctx, call, e) => getBlob(ctx, call, ...blobArgs(e)),
    HEAD: (ctx, call, e) => getBlob(ctx, call, ...blobArgs(e)),
    DELETE: (ctx, call, e) => deleteBlob(ctx, call, ...blobArgs(e)),
  },
  uploads: { POST: (ctx, call, e) => startUpload(ctx, call, (e as { name: string }).name) },
  upload: {
    GET: (ctx, call, e) => uploadStatus(ctx, call, ...uploadArgs(e)),
    PATCH: (ctx, call, e) => patchUpload(ctx, call, ...uploadArgs(e)),
    PUT: (ctx, call, e) => finishUpload(ctx, call, ...uploadArgs(e)),
    DELETE: (ctx, call, e) => cancelUpload(ctx, call, ...uploadArgs(e)),
  },
  referrers: { GET: (ctx, call, e) => referrers(ctx, call, ...blobArgs(e)) },
};

function manifestArgs(e: Endpoint): [string, string] {
  const m = e as Extract<Endpoint, { kind: 'manifest' }>;
  return [m.name, m.reference];
}
function blobArgs(e: Endpoint): [string, string] {
  const b = e as Extract<Endpoint, { kind: 'blob' | 'referrers' }>;
  return [b.name, b.digest];
}
function uploadArgs(e: Endpoint): [string, string] {
  const u = e as Extract<Endpoint, { kind: 'upload' }>;
  return [u.name, u.id];
}

function sendError(reply: FastifyReply, error: RegistryError): void {
  const body = JSON.stringify(error.body());
  // Here too, not only in the route: errors raised before it (a refused Content-Type, no route) carry it as well.
  reply.code(error.status).headers(error.headers).header('Content-Type', 'application/json; charset=utf-8').header('Docker-Distribution-API-Version', 'registry/2.0');
  // HEAD answers carry the headers only.
  if (reply.request.method === 'HEAD') reply.header('Content-Length', Buffer.byteLength(body)).send();
  else reply.send(body);
}

export async function registryPlugin(app: FastifyInstance, opts: RegistryPluginOptions): Promise<void> {
  const { config, store, mirrors } = opts;
  const access = opts.access ?? openAccess;
  const service = new RegistryService(store, config);
  const ctx: RouteContext = {
    config,
    access,
    service,
    sourceFor: (repository) => mirrors?.sourceFor(repository) ?? service.local,
    isMirror: (repository) => mirrors?.sourceFor(repository) !== undefined,
    ...(opts.pulls ? { pulls: opts.pulls } : {}),
  };

  // Bodies are streamed by the handlers (blobs) or read with a limit (manifests): no parser here.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, _payload, done) => done(null));

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    // Denials by the access check are logged there, with the principal.
    if (err instanceof RegistryError) return sendError(reply, err);
    const database = databaseAnswer(err, req.log);
    if (database) return sendError(reply, database);
    const storage = storageAnswer(err);
    if (storage) {
      // A full disk answers 507 to every write until space is freed: logged once a minute, not per request.
      if (isStorageFull(err)) logStorageFull(req.log, store.root, err);
      else if (isObjectStoreUnavailable(err)) logObjectStoreUnavailable(req.log, store.root, err);
      else req.log.error({ err, method: req.method, url: req.url.split('?')[0] }, 'storage failed');
      return sendError(reply, storage);
    }
    if (err.name === 'AbortError' || err.code === 'ECONNRESET' || err.code === 'ERR_STREAM_PREMATURE_CLOSE') {
      // The client went away mid-transfer: nothing to answer, nothing was committed.
      return sendError(reply, new RegistryError('BLOB_UPLOAD_INVALID', 'request aborted'));
    }
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
      return sendError(reply, new RegistryError('UNSUPPORTED', err.message, undefined, { status: err.statusCode }));
    }
    req.log.error({ err, method: req.method, url: req.url.split('?')[0] }, 'unhandled error');
    return sendError(reply, new RegistryError('UNKNOWN'));
  });

  app.setNotFoundHandler((_req, reply) => sendError(reply, new RegistryError('UNSUPPORTED', 'unknown endpoint', undefined, { status: 404 })));

  // Returns the reply: fastify then knows a streamed body was already handed over (see its docs on
  // async handlers and reply.send).
  const handle = async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    reply.header('Docker-Distribution-API-Version', 'registry/2.0');
    const url = req.url;
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const query = new URLSearchParams(q === -1 ? '' : url.slice(q + 1));
    let endpoint = parseEndpoint(path.slice('/v2/'.length));
    if (!endpoint) throw new RegistryError('UNSUPPORTED', 'unknown endpoint', { path: path.slice(0, 200) }, { status: 404 });
    const ns = query.get('ns');
    if (ns !== null && mirrors?.localName && 'name' in endpoint && (req.method === 'GET' || req.method === 'HEAD')) {
      const local = mirrors.localName(endpoint.name, ns);
      if (local) endpoint = { ...endpoint, name: local };
    }

    if (endpoint.kind === 'base') {
      if (req.method !== 'GET' && req.method !== 'HEAD') throw new RegistryError('UNSUPPORTED', undefined, undefined, { status: 405 });
      await access.check(req, undefined, []);
      return reply.code(200).type('application/json').send('{}');
    }
    const handler = TABLE[endpoint.kind][req.method as (typeof METHODS)[number]];
    if (!handler) throw new RegistryError('UNSUPPORTED', `${req.method} is not supported here`, undefined, { status: 405 });

    if (endpoint.kind === 'catalog') {
      const principal = await access.check(req, undefined, []);
      await handler(ctx, { req, reply, principal, query }, endpoint);
      return reply;
    }
    assertRepositoryName(endpoint.name);
    const action = actionOf(req.method);
    const principal = await access.check(req, endpoint.name, [action]);
    if (action === 'push' && ctx.isMirror(endpoint.name) && !mirrors?.pushable(endpoint.name)) {
      req.log.warn({ principal: principal.name, kind: principal.kind, repository: endpoint.name, action }, 'access denied: mirror is pull-only');
      throw new RegistryError('DENIED', 'this is a mirror of an upstream registry: it cannot be pushed to', { name: endpoint.name });
    }
    if (action === 'delete' && ctx.isMirror(endpoint.name) && !principal.admin && access !== openAccess) {
      req.log.warn({ principal: principal.name, kind: principal.kind, repository: endpoint.name, action }, 'access denied: only admins delete mirror content');
      throw new RegistryError('DENIED', 'only an admin may delete cached mirror content', { name: endpoint.name });
    }
    await handler(ctx, { req, reply, principal, query }, endpoint);
    return reply;
  };

  // Docker Distribution answers the slashless API root with a redirect; some clients probe it.
  app.route({ method: ['GET', 'HEAD'], url: '/v2', handler: (_req, reply) => reply.redirect('/v2/', 301), exposeHeadRoute: false });
  app.route({ method: [...METHODS], url: '/v2/', handler: handle, exposeHeadRoute: false });
  app.route({ method: [...METHODS], url: '/v2/*', handler: handle, exposeHeadRoute: false });

  // Abandoned uploads (a killed client's session keeps its bytes) are swept in the background,
  // every quarter of the idle timeout (every 5 minutes at most, every second at least), so a
  // session goes within 1.25 timeouts of its last chunk. A session receiving chunks is never idle.
  const idleMs = Math.min(config.registry.uploadIdleTimeoutMs, config.registry.uploadMaxAgeMs);
  const sweepEvery = Math.max(1000, Math.min(idleMs / 4, 300_000));
  let sweeping = false;
  const timer = setInterval(() => {
    if (sweeping) return; // a slow sweep of many sessions: never two at once
    sweeping = true;
    service
      .purgeAbandonedUploads()
      .catch((err: unknown) => app.log.warn({ err }, 'upload sweep failed'))
      .finally(() => {
        sweeping = false;
      });
  }, sweepEvery);
  timer.unref();
  app.addHook('onClose', async () => clearInterval(timer));
}
