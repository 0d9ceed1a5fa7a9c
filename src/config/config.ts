// The resolved configuration every module receives: defaults filled in, units parsed, paths
// absolute. Modules read only what is here; nothing reads the YAML again.
import type { RawRule, RawUser } from './schema.js';

export type Action = 'pull' | 'push' | 'delete';

export interface TlsFiles { cert: string; key: string }

export interface UpstreamTimeouts {
  tokenMs: number;
  manifestMs: number;
  blobHeadersMs: number;
  /** 0: no minimum. */
  blobMinBytesPerSecond: number;
  blobRateWindowMs: number;
}

export interface UpstreamConfig {
  prefix: string;
  url: string;
  aliases: string[];
  username?: string;
  password?: string;
  passwordFile?: string;
  credentialHelper?: string;
  credentialTTLMs: number;
  ca?: string;
  insecure: boolean;
  tagTTLMs: number;
  timeouts: UpstreamTimeouts;
  maxRetryAfterMs: number;
  /** Blobs declared larger are refused (502) before a byte is written; undefined: only the free space limits. */
  maxBlobBytes?: number;
  pushable: boolean;
}

export interface DatabaseConfig {
  /** The URL itself, or (urlFile) the file to read it from at start-up: see database/url.ts. */
  url?: string;
  urlFile?: string;
  maxConnections: number;
  connectTimeoutMs: number;
}

export interface Config {
  registry: {
    enabled: boolean;
    host: string;
    port: number;
    tls?: TlsFiles;
    publicHost: string;
    url?: string;
    maxManifestBytes: number;
    chunkMinLength: number;
    uploadMaxAgeMs: number;
    /** Idle upload sessions are swept after this long (registry.uploadIdleTimeout). */
    uploadIdleTimeoutMs: number;
    /** Pushed manifests may reference blobs and children that are not here (registry.sparseManifests). */
    sparseManifests: boolean;
    /** Pull times of pushed images are batched in memory and written this often (registry.pullRecordInterval). */
    pullRecordIntervalMs: number;
  };
  storage: { driver: 'filesystem' | 's3'; root: string; s3?: S3Config };
  /** Set: metadata and coordination live in PostgreSQL (database/), shared by replicas. */
  database?: DatabaseConfig;
  /** Set with `database`: the URL the other replicas reach this one at (cluster.advertiseUrl). */
  cluster?: { advertiseUrl: string };
  upstreams: UpstreamConfig[];
  cache: { maxBytes?: number; expireAfterMs?: number; downAfterFailures: number; downForMs: number };
  auth: {
    enabled: boolean;
    anonymous: boolean;
    users: RawUser[];
    /** Default: `<storage.root>/_auth/users.yaml`. */
    usersFile: string;
    keysDir: string;
    service: string;
    issuer: string;
    tokenTTLMs: number;
    refreshTokenTTLMs: number;
    rateLimit: { perUser: number; perClient: number; windowMs: number };
    passwordChecks: { concurrency: number; queue: number };
    rules: RawRule[];
    namespaceGrants: Record<string, string[]>;
  };
  webhook: {
    enabled: boolean;
    host: string;
    port: number;
    tls?: TlsFiles;
    namespaceLabel: string;
    optOutLabel: string;
    pullSecretName: string;
    originalImagesAnnotation: string;
    ownNamespace: string;
    serviceName: string;
    healthURL?: string;
    selfSigned: boolean;
    webhookConfigName: string;
    webhookServiceName: string;
    certSecretName: string;
    rewriteTarget: 'node' | 'nodePort';
    publicHostFromService: boolean;
    /** The whole review's budget for confirming that rewritten images resolve through layover. */
    resolveTimeoutMs: number;
    /** Start pulling an admitted Pod's rewritten images into the registry in the background. */
    prefetch: boolean;
  };
  node: {
    enabled: boolean;
    host: string;
    port: number;
    /** The registry Service's URL that the node role forwards to. */
    registry: string;
    daemonSet: string;
    /** Where the node DaemonSet runs: its own namespace, as host networking needs a Pod Security level the rest does not. */
    namespace: string;
  };
  controller: { enabled: boolean; resyncMs: number; tokenTTLMs: number };
  gc: { intervalMs: number; keepUntagged: boolean; graceMs: number; /** Past runs kept (gc.history). */ historyRuns: number };
  audit: { retentionMs: number };
  /** `access`: the access log (log.access). */
  /** Usage samples for the web page's charts (api/usage-sampler.ts). */
  usage: { sampleIntervalMs: number; keepMs: number };
  log: { level: string; access: boolean };
  /** Where the configuration came from, for messages; undefined for the embedded defaults. */
  source?: string;
}

/** storage.s3, resolved: what the s3 content driver needs (content/s3-client.ts). */
export interface S3Config {
  endpoint?: string;
  region: string;
  bucket: string;
  /** Empty, or path segments ending in '/'. */
  prefix: string;
  accessKeyIdFile?: string;
  secretAccessKeyFile?: string;
  forcePathStyle: boolean;
  redirect: boolean;
  redirectTTLMs: number;
}
