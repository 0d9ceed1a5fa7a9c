// A real listening layover for integration tests and benchmarks: in-process (fast, for most
// tests) or as a child process `node bin/layover.js serve` (for kill -9 and memory figures).
import { createWriteStream, existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import type { FastifyInstance } from 'fastify';
import { stringify } from 'yaml';
import { buildApp } from '../../src/app.js';
import type { Config } from '../../src/config/config.js';
import { resolveConfig } from '../../src/config/resolve.js';
import type { RawConfig } from '../../src/config/schema.js';
import { createLogger } from '../../src/log.js';
import { startChild, type Child } from './child-process.js';
import { createDatabaseAt } from './postgres.js';
import { Database } from '../../src/database/database.js';
import { databaseUrl } from '../../src/database/url.js';
import { ComposedStore } from '../../src/registry/storage/composed-store.js';
import { EmbeddedStore } from '../../src/registry/storage/embedded.js';
import { createS3Client } from '../../src/registry/storage/content/s3-client.js';
import { openS3Store } from '../../src/registry/storage/open-store.js';
import { openSharedStore } from '../../src/registry/storage/shared.js';
import { runTool } from './run-tool.js';
import { removeSuitePrefix, suiteS3For } from './s3-suite.js';
import { freePort } from './free-port.js';
import { makeTempDir } from './temp-dir.js';
import { waitFor, waitForHttp, waitForHttps } from './wait-for.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** How the container image runs node (Dockerfile ENTRYPOINT and ENV; test/unit/deploy-image.test.ts holds them equal). */
export const IMAGE_NODE_FLAGS = ['--max-semi-space-size=4', '--single-threaded-gc', '--no-wasm-dynamic-tiering', '--no-wasm-tier-up'];
export const IMAGE_ENV: Record<string, string> = { MALLOC_TRIM_THRESHOLD_: '131072', MALLOC_MMAP_THRESHOLD_: '262144', MALLOC_ARENA_MAX: '1' };

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface LayoverOptions {
  /** Reuse this storage root (e.g. a second layover over the same data); a fresh one otherwise. */
  root?: string;
  /** Log level for the log file (default `info`); logs never go to the test output. */
  logLevel?: LogLevel;
  /** spawnLayover only: run the compiled dist/ as the container image does (benchmarks), not src/ through tsx. */
  compiled?: boolean;
  /** A PostgreSQL URL (test/helpers/postgres.ts) for `database.url`: metadata and accounts go there. */
  database?: string;
  /** spawnLayover only: how long to wait for it to answer (default 30 s; a first start that imports a large old data directory takes longer). */
  startTimeoutMs?: number;
  /** spawnLayover only: extra node flags, e.g. `--cpu-prof` for a benchmark's profile. */
  nodeArgs?: string[];
  /** Blob content in this S3 bucket (storage.driver: s3); the keys go to files, as from a mounted Secret. */
  s3?: S3Target;
}

/** An S3 bucket for layover's blob content, e.g. `{ ...rgw, bucket: await rgw.createBucket() }` (ceph-rgw.ts). */
export interface S3Target {
  endpoint: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
  region?: string;
  prefix?: string;
  redirect?: boolean;
}

function s3Target(root: string, opts: LayoverOptions, dir: string): RawConfig | undefined {
  const target = s3For(root, opts);
  return target && s3Raw(target, dir);
}

/** The caller's bucket, or the suite's (LAYOVER_TEST_STORAGE=s3, s3-suite.ts) with a prefix per root. */
function s3For(root: string, opts: LayoverOptions): S3Target | undefined {
  return opts.s3 ?? suiteS3For(root);
}

/** storage.driver s3 settings for `target`, its keys written to files in `dir`. */
function s3Raw(target: S3Target, dir: string): RawConfig {
  const accessKeyIdFile = path.join(dir, 's3-access-key-id');
  const secretAccessKeyFile = path.join(dir, 's3-secret-access-key');
  writeFileSync(accessKeyIdFile, target.accessKeyId, { mode: 0o600 });
  writeFileSync(secretAccessKeyFile, target.secretAccessKey, { mode: 0o600 });
  return {
    storage: {
      driver: 's3',
      s3: {
        endpoint: target.endpoint,
        region: target.region ?? 'us-east-1',
        bucket: target.bucket,
        prefix: target.prefix ?? '',
        accessKeyIdFile,
        secretAccessKeyFile,
        forcePathStyle: true,
        redirect: target.redirect ?? false,
      },
    },
  };
}

export interface RunningLayover {
  url: string;
  /** `127.0.0.1:PORT`, for references such as `docker://HOST/repo:tag`. */
  host: string;
  port: number;
  root: string;
  /** The temporary directory that holds the root (unless given), configuration and logs. */
  dir: string;
  config: Config;
  logFile: string;
  log(): string;
}

export interface InProcessLayover extends RunningLayover {
  app: FastifyInstance;
  close(): Promise<void>;
}

export interface SpawnedLayover extends RunningLayover {
  pid: number;
  configFile: string;
  alive(): boolean;
  /** Sends `signal` and waits for the process to exit (SIGKILL for crash tests). */
  kill(signal?: NodeJS.Signals): Promise<number | string>;
  /** Starts the process again on the same configuration, root and port; waits until it answers. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

type Mapping = Record<string, unknown>;

function isMapping(v: unknown): v is Mapping {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Deep merge of mappings; arrays and scalars of `over` replace those of `base`. */
export function mergeRaw(base: Mapping, over: Mapping): Mapping {
  const out: Mapping = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const prev = out[key];
    out[key] = isMapping(prev) && isMapping(value) ? mergeRaw(prev, value) : value;
  }
  return out;
}

/**
 * The test defaults under the caller's configuration: loopback on a free port, a fresh storage
 * root, auth off. What the caller sets wins (a test may turn auth on).
 */
function testRaw(raw: RawConfig, root: string, port: number, logLevel: string, database?: string, s3?: RawConfig): RawConfig {
  const defaults = { registry: { listen: `127.0.0.1:${port}` }, storage: { root }, auth: { enabled: false }, log: { level: logLevel }, ...(database ? { database: { url: database } } : {}) };
  return mergeRaw(mergeRaw(defaults, (s3 ?? {}) as Mapping), raw as Mapping) as RawConfig;
}

const databaseOfRoot = new Map<string, Promise<string>>();

/**
 * The database a layover on `root` uses: the caller's, or, when the suite runs on the
 * shared-metadata configuration (LAYOVER_TEST_METADATA=postgres, see postgres-suite.ts), a fresh
 * database on the run's PostgreSQL; a second layover on the same root gets the same database.
 * Undefined: the embedded metadata.
 */
function databaseFor(root: string, opts: LayoverOptions): Promise<string | undefined> {
  if (opts.database || process.env.LAYOVER_TEST_METADATA !== 'postgres') return Promise.resolve(opts.database);
  const admin = process.env.LAYOVER_TEST_POSTGRES_ADMIN;
  if (!admin) return Promise.reject(new Error('LAYOVER_TEST_METADATA=postgres needs the globalSetup test/helpers/postgres-suite.ts (vitest.config.ts)'));
  let url = databaseOfRoot.get(root);
  if (!url) {
    url = createDatabaseAt(admin, `suite_${process.pid}_${databaseOfRoot.size + 1}`);
    databaseOfRoot.set(root, url);
  }
  return url;
}

/**
 * A store on the same data as a running layover, for tests that seed or inspect storage directly:
 * the embedded store on its root, or, when it uses a database, the shared store on root and
 * database (with its own pool, closed by `close()`).
 */
export async function openStoreOf(layover: Pick<RunningLayover, 'root' | 'config'>): Promise<ComposedStore> {
  const db = layover.config.database;
  const { driver, s3 } = layover.config.storage;
  const bucket = driver === 's3' ? s3 : undefined;
  if (!db) return bucket ? openS3Store(layover.root, bucket) : new EmbeddedStore(layover.root).init();
  const database = new Database(await databaseUrl(db), { maxConnections: 4 });
  const store = await openSharedStore(layover.root, database, undefined, bucket);
  return Object.assign(store, {
    async close() {
      await ComposedStore.prototype.close.call(store);
      await database.close();
    },
  });
}

let sdkLoaded: Promise<void> | undefined;

/** A HEAD of an object that does not exist, in the layover's bucket, with the driver's own client. */
async function lookUpMissingObject(config: Config): Promise<void> {
  const s3 = config.storage.s3!;
  const client = createS3Client(s3);
  try {
    await client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: `${s3.prefix}_warm-up/none` })).catch((err: unknown) => {
      if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode !== 404) throw err;
    });
  } finally {
    client.destroy();
  }
}

let compiledBuild: Promise<string> | undefined;

/** Compiles src/ into dist/ once per process and returns the entry the container image runs. */
export function compiledEntry(): Promise<string> {
  compiledBuild ??= runTool(process.execPath, [path.join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], { cwd: REPO_ROOT, timeoutMs: 300_000 })
    .then(() => path.join(REPO_ROOT, 'dist', 'cli', 'main.js'));
  return compiledBuild;
}

function isAddressInUse(err: unknown): boolean {
  return (err as NodeJS.ErrnoException).code === 'EADDRINUSE';
}

/**
 * Builds the app in-process and listens on 127.0.0.1. The port is chosen before the
 * configuration is resolved so that `config.registry.publicHost` names the real port.
 */
export async function startLayover(raw: RawConfig = {}, opts: LayoverOptions = {}): Promise<InProcessLayover> {
  const tmp = makeTempDir('layover-inproc-');
  const root = opts.root ?? path.join(tmp.path, 'data');
  const logFile = path.join(tmp.path, 'layover.log');
  const logStream = createWriteStream(logFile, { flags: 'a' });
  const fail = async (err: unknown): Promise<never> => {
    await new Promise<void>((resolve) => logStream.end(resolve));
    tmp.cleanup();
    throw err;
  };
  for (let attempt = 0; ; attempt++) {
    const port = raw.registry?.listen ? undefined : await freePort();
    let config: Config;
    let app: FastifyInstance;
    try {
      config = resolveConfig(testRaw(raw, root, port ?? 0, opts.logLevel ?? 'info', await databaseFor(root, opts), s3Target(root, opts, tmp.path)), { baseDir: tmp.path });
      app = await buildApp(config, { logger: createLogger(config.log.level, logStream) });
    } catch (err) {
      return fail(err);
    }
    try {
      await app.listen({ host: config.registry.host, port: config.registry.port });
    } catch (err) {
      await app.close();
      if (isAddressInUse(err) && port !== undefined && attempt < 5) continue;
      return fail(err);
    }
    // On the suite's bucket, traffic comes once /readyz passes, as a kubelet sends it to a Pod.
    // The first object lookup in a test worker also loads the rest of the S3 SDK (over a second
    // under load, once per process): paid here, so a test timing an upstream deadline times that alone.
    if (!opts.s3 && config.storage.driver === 's3') {
      try {
        await waitFor(async () => (await app.inject({ method: 'GET', url: '/readyz' })).statusCode === 200, 30_000, 100);
        sdkLoaded ??= lookUpMissingObject(config);
        await sdkLoaded;
      } catch (err) {
        await app.close();
        return fail(err);
      }
    }
    const address = app.server.address();
    const actualPort = typeof address === 'object' && address ? address.port : config.registry.port;
    const scheme = config.registry.tls ? 'https' : 'http';
    return {
      url: `${scheme}://127.0.0.1:${actualPort}`,
      host: `127.0.0.1:${actualPort}`,
      port: actualPort,
      root,
      dir: tmp.path,
      config,
      logFile,
      log: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
      app,
      async close() {
        await app.close();
        await new Promise<void>((resolve) => logStream.end(resolve));
        tmp.cleanup();
        if (!opts.root) await removeSuitePrefix(root);
      },
    };
  }
}

/** Runs `node bin/layover.js serve --config <tmp yaml>` and waits until `/v2/` answers. */
export async function spawnLayover(raw: RawConfig = {}, opts: LayoverOptions = {}): Promise<SpawnedLayover> {
  const tmp = makeTempDir('layover-spawned-');
  const root = opts.root ?? path.join(tmp.path, 'data');
  const port = await freePort();
  let effective: RawConfig;
  try {
    effective = testRaw(raw, root, port, opts.logLevel ?? 'info', await databaseFor(root, opts), s3Target(root, opts, tmp.path));
  } catch (err) {
    tmp.cleanup();
    throw err;
  }
  let config: Config;
  try {
    // Resolving here reports a bad configuration as an error in the test, not as a silent exit.
    config = resolveConfig(effective, { baseDir: tmp.path });
  } catch (err) {
    tmp.cleanup();
    throw err;
  }
  const configFile = path.join(tmp.path, 'layover.yaml');
  writeFileSync(configFile, stringify(effective), { mode: 0o600 });
  const logFile = path.join(tmp.path, 'layover.log');
  const scheme = config.registry.tls ? 'https' : 'http';
  const url = `${scheme}://127.0.0.1:${config.registry.port}`;

  // Compiled mode runs as the container image does: its V8 flag and malloc settings (see Dockerfile).
  const entry = [...(opts.nodeArgs ?? []), ...(opts.compiled ? [...IMAGE_NODE_FLAGS, await compiledEntry()] : [path.join(REPO_ROOT, 'bin', 'layover.js')])];
  let child: Child;
  const launch = async () => {
    child = startChild(process.execPath, [...entry, 'serve', '--config', configFile], {
      stdoutFile: logFile,
      cwd: tmp.path,
      env: { ...process.env, LAYOVER_CONFIG: undefined, NODE_OPTIONS: undefined, ...(opts.compiled ? IMAGE_ENV : {}) },
    });
    try {
      // A made-up certificate (registry.tls in a test) is not what readiness is about.
      const waitUntil = config.registry.tls ? waitForHttps : waitForHttp;
      await waitUntil(`${url}/v2/`, opts.startTimeoutMs ?? 30_000, () => child.alive());
    } catch (err) {
      await child.stop('SIGKILL');
      throw new Error(`layover did not start: ${(err as Error).message}\n${readFileSync(logFile, 'utf8').slice(-3000)}`);
    }
  };
  try {
    await launch();
  } catch (err) {
    tmp.cleanup();
    throw err;
  }

  const handle: SpawnedLayover = {
    url,
    host: `127.0.0.1:${config.registry.port}`,
    port: config.registry.port,
    root,
    dir: tmp.path,
    config,
    configFile,
    logFile,
    get pid() {
      return child.pid;
    },
    alive: () => child.alive(),
    log: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
    kill: (signal = 'SIGTERM') => child.stop(signal),
    async restart() {
      if (child.alive()) await child.stop('SIGTERM');
      await launch();
    },
    async close() {
      await child.stop('SIGTERM');
      tmp.cleanup();
      if (!opts.root) await removeSuitePrefix(root);
    },
  };
  return handle;
}
