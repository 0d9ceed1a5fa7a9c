// The registry's HTTP application, separate from the process entry so tests build it in-process.
import { readFileSync } from 'node:fs';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import type { Config } from './config/config.js';
import { apiPlugin, type EvictionStats, type UpstreamHealth } from './api/plugin.js';
import { UsageSampler } from './api/usage-sampler.js';
import type { Database } from './database/database.js';
import { withTryAdvisoryLock } from './database/advisory-lock.js';
import { LOCK } from './database/locks.js';
import { createLogger, type Logger } from './log.js';
import { AuditLog } from './audit/audit-log.js';
import { registerAccessLog } from './registry/access-log.js';
import { openAccess, type Access } from './registry/auth/access.js';
import { notingPrincipals } from './registry/auth/principal-note.js';
import { PullRecorder } from './registry/pull-recorder.js';
import { reportStorage } from './registry/storage-metrics.js';
import type { Auth } from './registry/auth/auth.js';
import { scheduleEviction } from './registry/gc/eviction.js';
import { GcScheduler, type ClusterLock } from './registry/gc/scheduler.js';
import { healthPlugin } from './registry/health.js';
import { registerMetrics } from './registry/metrics.js';
import { registryPlugin, type MirrorRouter } from './registry/plugin.js';
import { continueOnFirstRead } from './registry/expect-continue.js';
import { answerClientError, answerConnect, answerExpectation, answerFrameworkError, requireHost } from './registry/request-edge.js';
import { originForm } from './registry/request-target.js';
import { openStore } from './registry/storage/open-store.js';
import type { Store } from './registry/storage/store.js';
import { closeOnUnreadBody } from './registry/unread-body.js';
import { uiPlugin } from './ui/plugin.js';
import { lazySchemaCompilers } from './lazy-schema-compilers.js';

export interface AppOptions {
  logger?: Logger;
  store?: Store;
  access?: Access;
  mirrors?: MirrorRouter;
  /** Upstream health and cache hit rates for the admin API, when the pull-through cache has them. */
  upstreams?: () => Promise<UpstreamHealth[]>;
  /** The shared database (default: opened from `database` in the configuration, when set). */
  database?: Database;
}

/**
 * Builds the app; with `database` configured, the database is opened (and migrated) first and
 * closed with the app, or at once when building fails part-way.
 */
export async function buildApp(config: Config, options: AppOptions = {}): Promise<FastifyInstance> {
  const logger = options.logger ?? createLogger(config.log.level);
  if (options.database || !config.database) return build(config, { ...options, logger });
  // Imported here: `pg` is for replicas that share a database, not for the embedded default.
  const { openDatabase } = await import('./database/open.js');
  const database = await openDatabase(config.database, { logger: logger.child({ module: 'database' }) });
  try {
    const app = await build(config, { ...options, logger, database });
    // Added last, so it runs after every other onClose hook that may still use the database.
    // (fastify runs the root's onClose hooks last-added first: what waits in memory is written here.)
    app.addHook('onClose', async () => {
      await app.flushPending();
      await database.close();
    });
    return app;
  } catch (err) {
    await database.close();
    throw err;
  }
}

async function build(config: Config, options: AppOptions & { logger: Logger }): Promise<FastifyInstance> {
  const { logger, database } = options;
  // node's own Host check answers without a body: requireHost (request-edge.ts) answers instead.
  const https = config.registry.tls
    ? { key: readFileSync(config.registry.tls.key), cert: readFileSync(config.registry.tls.cert), requireHostHeader: false }
    : null;
  const app = Fastify({
    loggerInstance: logger,
    ...(https ? { https } : { http: { requireHostHeader: false } }),
    // Blob bodies are streamed by the routes themselves; fastify never buffers them.
    bodyLimit: config.registry.maxManifestBytes,
    // Per-request access lines would dominate the cost of a blob GET; denials and errors are logged where they happen.
    logController: new LogController({ disableRequestLogging: true }),
    // Repository names contain '/', and clients send long digests; allow long URLs.
    routerOptions: { maxParamLength: 4096, ignoreDuplicateSlashes: false },
    requestTimeout: 0,
    keepAliveTimeout: 75_000,
    // Before routing: the absolute form is served as its path; what the parser or router refuses
    // is a Distribution error, not fastify's own format (request-target.ts, request-edge.ts).
    rewriteUrl: originForm,
    clientErrorHandler: answerClientError,
    frameworkErrors: answerFrameworkError,
    schemaController: { compilersFactory: lazySchemaCompilers() },
  }) as unknown as FastifyInstance;
  // Before any plugin registers, so that they apply to every route.
  closeOnUnreadBody(app);
  app.addHook('onRequest', requireHost);
  app.server.on('connect', answerConnect);
  app.server.on('checkExpectation', answerExpectation);
  continueOnFirstRead(app.server);
  const store = options.store ?? (await openStore(config, database));
  const audit = new AuditLog(store.metadata, config.audit.retentionMs, logger.child({ module: 'audit' }));
  app.decorate('audit', audit);
  // Before any route is registered, so that every request is counted and logged (metrics.ts, access-log.ts).
  registerMetrics(app);
  registerAccessLog(app, { enabled: config.log.access, audit: audit.record });
  const stopStorageMetrics = reportStorage(store.metadata, config.cache.maxBytes, logger.child({ module: 'metrics' }));
  let access = options.access;
  let auth: Auth | undefined;
  if (!access && config.auth.enabled) {
    // Imported when enabled: tokens (jose), the users file (yaml) and the caches are for auth only.
    const { createAuth } = await import('./registry/auth/auth.js');
    const created = await createAuth(config, { logger, database, audit: audit.record });
    auth = created;
    app.decorate('auth', created);
    app.addHook('onClose', async () => created.close());
    await created.routes(app);
    access = created.access;
  }
  // The access log and the audit trail name who asked (auth/principal-note.ts).
  if (access && access !== openAccess) access = notingPrincipals(access);
  // The pull-through cache: one mirror per configured upstream, its cache budget, and /metrics.
  const proxyLog = logger.child({ module: 'proxy' });
  // Replicas on one database download a cold blob once between them. Imported here: the embedded
  // default loads none of it.
  const cluster = options.mirrors || !config.upstreams.length || !database
    ? undefined
    : (await import('./registry/proxy/cluster.js')).clusterPulls(config, database, auth?.tokens, proxyLog);
  // Imported when an upstream is configured: the HTTP client (undici, ~8 MiB resident) is for mirrors only.
  const built = options.mirrors || !config.upstreams.length ? undefined
    : (await import('./registry/proxy/mirrors.js')).buildMirrors(config, store, proxyLog, cluster);
  if (cluster && built) {
    await cluster.routes(app, built);
    app.addHook('onClose', async () => cluster.close());
  }
  const mirrors = options.mirrors ?? built;
  const evictions: EvictionStats = { runs: 0, images: 0, bytesFreed: 0 };
  if (built) {
    const evictionLock = database && (<T>(fn: () => Promise<T>) => withTryAdvisoryLock(database, LOCK.eviction, fn));
    const noteEviction = (report: { bytesBefore: number; bytesAfter: number; evicted: unknown[] }) => {
      evictions.runs += 1;
      evictions.images += report.evicted.length;
      evictions.bytesFreed += Math.max(0, report.bytesBefore - report.bytesAfter);
      evictions.lastRunAt = new Date().toISOString();
    };
    const stopEviction = scheduleEviction(store, (repo) => built.evictable(repo), { maxBytes: config.cache.maxBytes, expireAfterMs: config.cache.expireAfterMs }, 60_000, logger.child({ module: 'eviction' }), evictionLock, noteEviction);
    app.addHook('onClose', async () => {
      stopEviction();
      await built.close();
    });
  }
  const upstreams = options.upstreams ?? (built && (async () => built.status()));
  const pulls = new PullRecorder(store.metadata, config.registry.pullRecordIntervalMs, logger.child({ module: 'pulls' }));
  await app.register(registryPlugin, { config, store, access, mirrors, pulls });
  // With a shared database, one GC run at a time in the whole cluster.
  const clusterLock: ClusterLock | undefined = database && ((fn) => withTryAdvisoryLock(database, LOCK.gc, fn));
  const gc = new GcScheduler(store, config, logger.child({ module: 'gc' }), clusterLock);
  app.decorate('gc', gc);
  if (database) app.decorate('database', database);
  gc.start();
  app.addHook('onClose', async () => gc.stop());
  // Storage and traffic over time for the web page's charts.
  const sampler = new UsageSampler({
    store,
    mirrorNamespaces: new Set(config.upstreams.flatMap((u) => [u.prefix, ...u.aliases])),
    intervalMs: config.usage.sampleIntervalMs,
    keepMs: config.usage.keepMs,
    ...(built ? { traffic: () => built.traffic() } : {}),
    log: logger.child({ module: 'usage' }),
  });
  sampler.start();
  // What waits in memory (pull times, audit entries) is written before the store closes: in the
  // same hook, as fastify runs onClose hooks last-added first (and before the database's, above).
  const flush = async () => {
    stopStorageMetrics();
    await pulls.close();
    await audit.close();
  };
  app.decorate('flushPending', flush);
  // The store opened here is closed here (the database last, after GC and eviction stopped).
  app.addHook('onClose', async () => {
    await sampler.stop();
    await flush();
    if (!options.store) await store.close();
  });
  const users = app.auth?.users;
  const accounts = users && (() => ({ users: users.list(), teams: users.teams() }));
  await app.register(apiPlugin, { prefix: '/api/v1', config, store, gc, audit, access, upstreams, evictions: () => ({ ...evictions }), ...(accounts ? { accounts } : {}) });
  await app.register(healthPlugin, { storageRoot: config.storage.root, database, content: store });
  await app.register(uiPlugin);
  return app;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Present when `auth.enabled`: users, tokens and the controller's namespace-token minting. */
    auth?: Auth;
    /** Garbage collection: scheduled every gc.interval, and on demand. */
    gc: GcScheduler;
    /** The shared PostgreSQL database, when database.url is set (its `location` has no password). */
    database?: Database;
    /** The audit trail (audit/audit-log.ts). */
    audit: AuditLog;
    /** Writes what waits in memory (pull times, audit entries) while the store is still open. */
    flushPending(): Promise<void>;
  }
}
