// Turns a configuration document that fits the schema (schema-check.ts) into the Config every
// module reads: defaults filled in, durations and sizes parsed, paths made absolute, and the
// rules a schema cannot state checked. It loads no schema library, so `layover serve` can check
// the schema in a worker thread and keep its own process small.
import path from 'node:path';
import { hostname } from 'node:os';
import type { RawConfig } from './schema.js';
import type { Config, S3Config } from './config.js';
import { parseDuration, parseListen, parseSize } from './units.js';
import { ConfigError } from './errors.js';
import { isPostgresUrl } from '../database/url.js';

export interface ResolveOptions {
  source?: string;
  baseDir?: string;
  warn?: (msg: string) => void;
}

/** Keys of the documented shape whose role is not built yet: accepted, with a warning. */
const NOT_YET_BUILT: string[] = [];

/** Throws the top-level problem a schema check cannot report (not a mapping at all). */
export function asRawConfig(input: unknown, source?: string): RawConfig {
  const raw = (input ?? {}) as RawConfig;
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(['(top level): must be a mapping'], source);
  return raw;
}

/** `raw` after the schema check found `schemaProblems` (thrown when there are any). */
export function resolveValues(raw: RawConfig, schemaProblems: string[], options: ResolveOptions = {}): Config {
  if (schemaProblems.length) throw new ConfigError(schemaProblems, options.source);

  const baseDir = options.baseDir ?? process.cwd();
  const abs = (p: string) => path.resolve(baseDir, p);
  const absOpt = (p: string | undefined) => (p === undefined ? undefined : abs(p));
  const checked: string[] = [];
  function unit<T>(key: string, value: string | number | undefined, fallback: T, parse: (v: string | number) => number): number | T {
    if (value === undefined) return fallback;
    try {
      return parse(value);
    } catch (err) {
      checked.push(`${key}: ${(err as Error).message}`);
      return fallback;
    }
  }
  function listen(key: string, value: string | undefined, fallback: string) {
    try {
      return parseListen(value ?? fallback);
    } catch (err) {
      checked.push(`${key}: ${(err as Error).message}`);
      return { host: '127.0.0.1', port: 0 };
    }
  }

  /** A duration that must be more than zero (a deadline of 0 would fail every request). */
  function positive(key: string, value: string | number | undefined, fallback: number): number {
    const ms = unit(key, value, fallback, parseDuration);
    if (ms <= 0) checked.push(`${key}: must be more than 0`);
    return ms;
  }

  const reg = raw.registry ?? {};
  const regListen = listen('registry.listen', reg.listen, '127.0.0.1:5000');
  const prefixes = new Set<string>();
  const upstreams = (raw.upstreams ?? []).map((u, i) => {
    const key = `upstreams.${i}`;
    if (!/^[a-z0-9]+(?:[._-][a-z0-9]+)*$/.test(u.prefix)) checked.push(`${key}.prefix: "${u.prefix}" is not a valid first path component (lower case, digits, . _ -)`);
    for (const name of [u.prefix, ...(u.aliases ?? [])]) {
      if (prefixes.has(name)) checked.push(`${key}: prefix or alias "${name}" is used twice`);
      prefixes.add(name);
    }
    try { new URL(u.url); } catch { checked.push(`${key}.url: not a URL`); }
    if (u.password !== undefined && u.passwordFile !== undefined) checked.push(`${key}: set password or passwordFile, not both`);
    return {
      prefix: u.prefix,
      url: u.url.replace(/\/+$/, ''),
      aliases: u.aliases ?? [],
      username: u.username,
      password: u.password,
      passwordFile: absOpt(u.passwordFile),
      credentialHelper: u.credentialHelper,
      credentialTTLMs: unit(`${key}.credentialTTL`, u.credentialTTL, 10 * 60_000, parseDuration),
      ca: absOpt(u.ca),
      insecure: u.insecure ?? false,
      tagTTLMs: unit(`${key}.tagTTL`, u.tagTTL, 60_000, parseDuration),
      timeouts: {
        tokenMs: positive(`${key}.timeouts.token`, u.timeouts?.token, 30_000),
        manifestMs: positive(`${key}.timeouts.manifest`, u.timeouts?.manifest, 60_000),
        blobHeadersMs: positive(`${key}.timeouts.blobHeaders`, u.timeouts?.blobHeaders, 60_000),
        blobMinBytesPerSecond: unit(`${key}.timeouts.blobMinRate`, u.timeouts?.blobMinRate, 10 * 1024, parseSize),
        blobRateWindowMs: positive(`${key}.timeouts.blobRateWindow`, u.timeouts?.blobRateWindow, 30_000),
      },
      maxRetryAfterMs: unit(`${key}.maxRetryAfter`, u.maxRetryAfter, 3_600_000, parseDuration),
      maxBlobBytes: unit(`${key}.maxBlobSize`, u.maxBlobSize, undefined, parseSize),
      pushable: u.pushable ?? false,
    };
  });

  const auth = raw.auth ?? {};
  const accountName = /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/;
  for (const [i, user] of (auth.users ?? []).entries()) {
    if (user.password === undefined && user.passwordHash === undefined) checked.push(`auth.users.${i}: needs password or passwordHash`);
    if (!accountName.test(user.name) || user.name === 'namespace') checked.push(`auth.users.${i}.name: "${user.name}" is not a valid user name (a namespace: lower case, digits, . _ -)`);
    if (prefixes.has(user.name)) checked.push(`auth.users.${i}.name: "${user.name}" is a mirror namespace`);
    if (user.passwordHash !== undefined && !/^scrypt\$\d+\$\d+\$\d+\$[\w-]+\$[\w-]+$/.test(user.passwordHash)) checked.push(`auth.users.${i}.passwordHash: not a scrypt hash (make one with \`layover user hash\`)`);
  }
  const principal = /^(?:\$authenticated|\$anonymous|(?:user:|team:)?[a-z0-9]+(?:[._-][a-z0-9]+)*|namespace:[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)$/;
  for (const [i, rule] of (auth.rules ?? []).entries()) {
    for (const p of [rule.principals].flat()) if (!principal.test(p)) checked.push(`auth.rules.${i}.principals: "${p}" is not a user, team:X, namespace:X, $authenticated or $anonymous`);
  }
  const node = raw.node ?? {};
  const nodeListen = listen('node.listen', node.listen, '127.0.0.1:5005');
  // kube-proxy's NodePort rules would intercept a port in the NodePort range on the node's own addresses.
  if (nodeListen.port >= 30000 && nodeListen.port <= 32767) checked.push(`node.listen: port ${nodeListen.port} is in the NodePort range 30000-32767; pick one outside it`);
  const wh = raw.webhook ?? {};
  const whListen = listen('webhook.listen', wh.listen, '0.0.0.0:8443');
  const storageRoot = abs(raw.storage?.root ?? './data');
  const db = raw.database;
  if (db) {
    if (db.url !== undefined && db.urlFile !== undefined) checked.push('database: set url or urlFile, not both');
    else if (db.url === undefined && db.urlFile === undefined) checked.push('database: needs url or urlFile');
    // The message never repeats the URL: it may hold a password.
    if (db.url !== undefined && !isPostgresUrl(db.url)) checked.push('database.url: not a postgres:// or postgresql:// URL');
  }
  const publicHost = reg.publicHost ?? `localhost:${regListen.port}`;

  const config: Config = {
    registry: {
      enabled: reg.enabled ?? true,
      host: regListen.host,
      port: regListen.port,
      tls: reg.tls && { cert: abs(reg.tls.cert), key: abs(reg.tls.key) },
      publicHost,
      url: reg.url?.replace(/\/+$/, ''),
      maxManifestBytes: unit('registry.maxManifestSize', reg.maxManifestSize, 4 * 2 ** 20, parseSize),
      chunkMinLength: unit('registry.chunkMinLength', reg.chunkMinLength, 0, parseSize),
      uploadMaxAgeMs: unit('registry.uploadMaxAge', reg.uploadMaxAge, 24 * 3_600_000, parseDuration),
      uploadIdleTimeoutMs: unit('registry.uploadIdleTimeout', reg.uploadIdleTimeout, 3_600_000, parseDuration),
      sparseManifests: reg.sparseManifests ?? false,
      pullRecordIntervalMs: unit('registry.pullRecordInterval', reg.pullRecordInterval, 30_000, parseDuration),
    },
    storage: { driver: raw.storage?.driver ?? 'filesystem', root: storageRoot, s3: resolveS3(raw.storage, abs, checked, unit) },
    database: db && {
      url: db.url,
      urlFile: absOpt(db.urlFile),
      maxConnections: db.maxConnections ?? 10,
      connectTimeoutMs: positive('database.connectTimeout', db.connectTimeout, 5_000),
    },
    cluster: db && { advertiseUrl: advertiseUrl(raw.cluster?.advertiseUrl, Boolean(reg.tls), regListen, checked) },
    upstreams,
    cache: {
      maxBytes: unit('cache.maxSize', raw.cache?.maxSize, undefined, parseSize),
      expireAfterMs: unit('cache.expireAfter', raw.cache?.expireAfter, undefined, parseDuration),
      downAfterFailures: raw.cache?.downAfterFailures ?? 3,
      downForMs: unit('cache.downFor', raw.cache?.downFor, 30_000, parseDuration),
    },
    auth: {
      enabled: auth.enabled ?? true,
      anonymous: auth.anonymous ?? false,
      users: auth.users ?? [],
      usersFile: abs(auth.usersFile ?? path.join(storageRoot, '_auth', 'users.yaml')),
      keysDir: abs(auth.keysDir ?? path.join(storageRoot, '_keys')),
      service: auth.service ?? 'layover',
      issuer: auth.issuer ?? 'layover',
      tokenTTLMs: unit('auth.tokenTTL', auth.tokenTTL, 5 * 60_000, parseDuration),
      refreshTokenTTLMs: unit('auth.refreshTokenTTL', auth.refreshTokenTTL, 7 * 86_400_000, parseDuration),
      rateLimit: {
        perUser: auth.rateLimit?.perUser ?? 5,
        perClient: auth.rateLimit?.perClient ?? 30,
        windowMs: unit('auth.rateLimit.window', auth.rateLimit?.window, 60_000, parseDuration),
      },
      passwordChecks: {
        concurrency: auth.passwordChecks?.concurrency ?? 1,
        queue: auth.passwordChecks?.queue ?? 16,
      },
      rules: auth.rules ?? [],
      namespaceGrants: auth.namespaceGrants ?? {},
    },
    webhook: {
      enabled: wh.enabled ?? false,
      host: whListen.host,
      port: whListen.port,
      tls: wh.tls && { cert: abs(wh.tls.cert), key: abs(wh.tls.key) },
      namespaceLabel: wh.namespaceLabel ?? 'layover.dev/mirror',
      optOutLabel: wh.optOutLabel ?? 'layover.dev/skip',
      pullSecretName: wh.pullSecretName ?? 'layover-pull',
      originalImagesAnnotation: wh.originalImagesAnnotation ?? 'layover.dev/original-images',
      ownNamespace: wh.ownNamespace ?? 'layover',
      serviceName: wh.serviceName ?? 'layover-registry',
      healthURL: wh.healthURL,
      selfSigned: wh.selfSigned ?? false,
      webhookConfigName: wh.webhookConfigName ?? 'layover',
      webhookServiceName: wh.webhookServiceName ?? 'layover-webhook',
      certSecretName: wh.certSecretName ?? 'layover-webhook-tls',
      rewriteTarget: wh.rewriteTarget ?? 'node',
      publicHostFromService: wh.publicHostFromService ?? raw.registry?.publicHost === undefined,
      resolveTimeoutMs: positive('webhook.resolveTimeout', wh.resolveTimeout, 2_000),
      prefetch: wh.prefetch ?? true,
    },
    node: {
      enabled: node.enabled ?? false,
      host: nodeListen.host,
      port: nodeListen.port,
      registry: node.registry ?? 'http://layover-registry.layover.svc:5000',
      daemonSet: node.daemonSet ?? 'layover-node',
      namespace: node.namespace ?? 'layover-node',
    },
    controller: {
      enabled: raw.controller?.enabled ?? false,
      resyncMs: unit('controller.resync', raw.controller?.resync, 10 * 60_000, parseDuration),
      tokenTTLMs: unit('controller.tokenTTL', raw.controller?.tokenTTL, 30 * 86_400_000, parseDuration),
    },
    gc: {
      intervalMs: unit('gc.interval', raw.gc?.interval, 48 * 3_600_000, parseDuration),
      keepUntagged: raw.gc?.keepUntagged ?? false,
      graceMs: unit('gc.grace', raw.gc?.grace, 10 * 60_000, parseDuration),
      historyRuns: raw.gc?.history ?? 20,
    },
    usage: {
      sampleIntervalMs: positive('usage.sampleInterval', raw.usage?.sampleInterval, 5 * 60_000),
      keepMs: positive('usage.keep', raw.usage?.keep, 14 * 86_400_000),
    },
    audit: { retentionMs: unit('audit.retention', raw.audit?.retention, 90 * 86_400_000, parseDuration) },
    log: { level: raw.log?.level ?? 'info', access: raw.log?.access ?? true },
    source: options.source,
  };
  // A shorter timeout would sweep sessions between a client's chunks.
  if (config.registry.uploadIdleTimeoutMs < 1000) checked.push('registry.uploadIdleTimeout: must be at least 1s');
  if (checked.length) throw new ConfigError(checked, options.source);
  for (const key of NOT_YET_BUILT) {
    if ((raw as Record<string, unknown>)[key] !== undefined) options.warn?.(`configuration section "${key}" is accepted but its role is not built yet`);
  }
  return config;
}

/** The embedded defaults: `layover serve` with no configuration file. */

/** S3 bucket names: 3-63 of lower case, digits, dots and hyphens (what every S3 implementation accepts). */
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
/** A key prefix: path segments of safe characters, each followed by '/'. */
const PREFIX = /^(?:[A-Za-z0-9][A-Za-z0-9._-]*\/)*$/;

function resolveS3(
  storage: RawConfig['storage'],
  abs: (p: string) => string,
  checked: string[],
  unit: (key: string, value: string | number | undefined, fallback: number, parse: (v: string | number) => number) => number,
): S3Config | undefined {
  const s3 = storage?.s3;
  if (storage?.driver !== 's3') {
    if (s3 !== undefined) checked.push('storage.s3: set only with storage.driver: s3');
    return undefined;
  }
  if (!s3) {
    checked.push('storage.s3: required with storage.driver: s3 (at least storage.s3.bucket)');
    return undefined;
  }
  if (s3.bucket === undefined) checked.push('storage.s3.bucket: required with storage.driver: s3');
  else if (!BUCKET.test(s3.bucket) || s3.bucket.includes('..')) checked.push(`storage.s3.bucket: "${s3.bucket}" is not a valid bucket name (3-63 of a-z 0-9 . -)`);
  if (s3.endpoint !== undefined) {
    let url: URL | undefined;
    try { url = new URL(s3.endpoint); } catch { checked.push('storage.s3.endpoint: not a URL'); }
    if (url && url.protocol !== 'http:' && url.protocol !== 'https:') checked.push('storage.s3.endpoint: must be http:// or https://');
    if (url && (url.search || url.hash || url.username)) checked.push('storage.s3.endpoint: only scheme, host, port and path');
  }
  // A prefix is written with or without its trailing slash; either way it names a "directory".
  const prefix = s3.prefix ? s3.prefix.replace(/^\/+/, '').replace(/\/*$/, '/') : '';
  if (prefix === '/' ) { /* only slashes: no prefix */ } else if (!PREFIX.test(prefix)) checked.push(`storage.s3.prefix: "${s3.prefix}" must be path segments of A-Z a-z 0-9 . _ - separated by /`);
  if ((s3.accessKeyIdFile === undefined) !== (s3.secretAccessKeyFile === undefined)) checked.push('storage.s3: set both accessKeyIdFile and secretAccessKeyFile, or neither (the SDK\'s standard credentials)');
  const region = s3.region ?? process.env.AWS_REGION ?? 'us-east-1';
  if (!/^[a-z0-9-]{1,40}$/.test(region)) checked.push(`storage.s3.region: "${region}" is not a region name`);
  const redirectTTLMs = unit('storage.s3.redirectTTL', s3.redirectTTL, 5 * 60_000, parseDuration);
  if (redirectTTLMs < 1_000 || redirectTTLMs > 7 * 86_400_000) checked.push('storage.s3.redirectTTL: must be between 1s and 7 days (the longest a SigV4 presigned URL lives)');
  return {
    endpoint: s3.endpoint?.replace(/\/+$/, ''),
    region,
    bucket: s3.bucket ?? '',
    prefix: prefix === '/' ? '' : prefix,
    accessKeyIdFile: s3.accessKeyIdFile === undefined ? undefined : abs(s3.accessKeyIdFile),
    secretAccessKeyFile: s3.secretAccessKeyFile === undefined ? undefined : abs(s3.secretAccessKeyFile),
    forcePathStyle: s3.forcePathStyle ?? s3.endpoint !== undefined,
    redirect: s3.redirect ?? false,
    redirectTTLMs,
  };
}

/**
 * Where the other replicas reach this one: as configured, else the Pod's own address (POD_IP,
 * from the downward API) or a specific listen address, on the registry's port.
 */
function advertiseUrl(configured: string | undefined, tls: boolean, listen: { host: string; port: number }, checked: string[]): string {
  const scheme = tls ? 'https' : 'http';
  if (configured !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(configured);
    } catch {
      url = undefined;
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.username || url.password || url.search || url.hash) {
      checked.push('cluster.advertiseUrl: not an http(s) URL without credentials, query or fragment');
    }
    return configured.replace(/\/+$/, '');
  }
  const podIp = process.env.POD_IP;
  const wildcard = listen.host === '0.0.0.0' || listen.host === '::' || listen.host === '';
  const host = podIp || (wildcard ? hostname() : listen.host);
  return `${scheme}://${host.includes(':') ? `[${host}]` : host}:${listen.port}`;
}
