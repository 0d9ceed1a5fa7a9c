// The YAML configuration's shape, as a JSON schema (typebox), so every bad key or value is
// reported with its path before anything starts. Durations and sizes stay strings here and
// are turned into numbers by resolve.ts.
import Type, { type Static } from 'typebox';

const Duration = Type.Union([Type.String(), Type.Number()], { description: 'e.g. 30s, 10m, 48h' });
const Size = Type.Union([Type.String(), Type.Number()], { description: 'e.g. 512MiB, 10GiB' });
const Tls = Type.Object({ cert: Type.String(), key: Type.String() }, { additionalProperties: false });
const strict = { additionalProperties: false } as const;

/** Limits on one upstream's exchanges in time (see README, "Mirroring upstream registries"). */
export const UpstreamTimeoutsSchema = Type.Object({
  /** The whole token exchange. */
  token: Type.Optional(Duration),
  /** A whole manifest fetch (or tag revalidation), headers and body. */
  manifest: Type.Optional(Duration),
  /** Until a blob's response headers arrive (its body is then held to blobMinRate). */
  blobHeaders: Type.Optional(Duration),
  /** Bytes per second a blob body must average over blobRateWindow; 0 turns the check off. */
  blobMinRate: Type.Optional(Size),
  blobRateWindow: Type.Optional(Duration),
}, strict);

export const UpstreamSchema = Type.Object({
  prefix: Type.String({ minLength: 1 }),
  url: Type.String({ pattern: '^https?://' }),
  /** Extra first path components or hosts that also select this upstream (containerd `?ns=`). */
  aliases: Type.Optional(Type.Array(Type.String())),
  username: Type.Optional(Type.String()),
  password: Type.Optional(Type.String()),
  passwordFile: Type.Optional(Type.String()),
  credentialHelper: Type.Optional(Type.String()),
  credentialTTL: Type.Optional(Duration),
  ca: Type.Optional(Type.String()),
  insecure: Type.Optional(Type.Boolean()),
  tagTTL: Type.Optional(Duration),
  timeouts: Type.Optional(UpstreamTimeoutsSchema),
  /** The longest a Retry-After from this upstream is obeyed (a 429 or 503 holds misses off until then). */
  maxRetryAfter: Type.Optional(Duration),
  /** The largest blob taken from this upstream (a declared length above it is refused); default: no limit but the free space. */
  maxBlobSize: Type.Optional(Size),
  /** Who may push into this mirror namespace; default nobody (pull-only). */
  pushable: Type.Optional(Type.Boolean()),
}, strict);

export const UserSchema = Type.Object({
  name: Type.String({ minLength: 1 }),
  passwordHash: Type.Optional(Type.String()),
  password: Type.Optional(Type.String()),
  admin: Type.Optional(Type.Boolean()),
  teams: Type.Optional(Type.Array(Type.String())),
}, strict);

export const RuleSchema = Type.Object({
  repositories: Type.Union([Type.String(), Type.Array(Type.String())]),
  principals: Type.Union([Type.String(), Type.Array(Type.String())]),
  actions: Type.Array(Type.Union([Type.Literal('pull'), Type.Literal('push'), Type.Literal('delete'), Type.Literal('*')])),
  effect: Type.Optional(Type.Union([Type.Literal('allow'), Type.Literal('deny')])),
}, strict);

export const ConfigSchema = Type.Object({
  registry: Type.Optional(Type.Object({
    /** false: this process runs only the webhook and/or controller roles. */
    enabled: Type.Optional(Type.Boolean()),
    listen: Type.Optional(Type.String()),
    tls: Type.Optional(Tls),
    publicHost: Type.Optional(Type.String()),
    /** Public base URL of this registry (token realm, Location headers behind a proxy). */
    url: Type.Optional(Type.String()),
    maxManifestSize: Type.Optional(Size),
    chunkMinLength: Type.Optional(Size),
    uploadMaxAge: Type.Optional(Duration),
    /** An upload session that received nothing for this long is abandoned and removed (default 1h, at least 1s). */
    uploadIdleTimeout: Type.Optional(Duration),
    /**
     * Accept pushed manifests whose blobs or child manifests are absent (sparse images and
     * indexes, allowed by distribution-spec when a registry opts in); default false.
     */
    sparseManifests: Type.Optional(Type.Boolean()),
    /** How often pull times of pushed images are written, batched (default 30s). */
    pullRecordInterval: Type.Optional(Duration),
  }, strict)),
  storage: Type.Optional(Type.Object({
    /** Where blob content goes: `filesystem` (under root, the default) or `s3` (storage.s3). */
    driver: Type.Optional(Type.Union([Type.Literal('filesystem'), Type.Literal('s3')])),
    root: Type.Optional(Type.String()),
    /** An S3-compatible object store for blob content (AWS S3, Ceph RGW, MinIO, GCS interoperability). */
    s3: Type.Optional(Type.Object({
      /** http(s) URL of the S3 API; default: AWS's endpoint for the region. */
      endpoint: Type.Optional(Type.String()),
      region: Type.Optional(Type.String()),
      bucket: Type.Optional(Type.String()),
      /** Key prefix inside the bucket (path segments, e.g. `layover/`). */
      prefix: Type.Optional(Type.String()),
      /** Files holding the access key id and secret (a mounted Secret); default: the SDK's standard chain (AWS_* env, profile, IRSA). */
      accessKeyIdFile: Type.Optional(Type.String()),
      secretAccessKeyFile: Type.Optional(Type.String()),
      /** Path-style bucket addressing (RGW, MinIO); default true when an endpoint is set. */
      forcePathStyle: Type.Optional(Type.Boolean()),
      /** Answer blob GETs with a 307 to a presigned URL of the object store (clients must reach it). */
      redirect: Type.Optional(Type.Boolean()),
      /** How long a presigned URL stays valid (default 5m). */
      redirectTTL: Type.Optional(Duration),
    }, strict)),
  }, strict)),
  /**
   * PostgreSQL for metadata and coordination (users, teams, signing keys, GC lock, leases), shared
   * by every replica; unset: the embedded stores under storage.root. Migrations run at start-up.
   */
  database: Type.Optional(Type.Object({
    /** postgres://user:password@host:5432/db (libpq URL; ?sslmode= works). */
    url: Type.Optional(Type.String({ minLength: 1 })),
    /** A file holding the URL (a mounted Secret), read at start-up. */
    urlFile: Type.Optional(Type.String({ minLength: 1 })),
    /** Connections per process (default 10). */
    maxConnections: Type.Optional(Type.Integer({ minimum: 1 })),
    /** How long a request waits for a connection before it fails with 503 (default 5s). */
    connectTimeout: Type.Optional(Duration),
  }, strict)),
  /** How replicas that share `database` reach each other (used only when database is set). */
  cluster: Type.Optional(Type.Object({
    /**
     * The base URL other replicas reach this one at, named in the lease of a blob it downloads so
     * that they stream it from here (default: http(s)://$POD_IP:<registry port>, else the listen address).
     */
    advertiseUrl: Type.Optional(Type.String({ minLength: 1 })),
  }, strict)),
  upstreams: Type.Optional(Type.Array(UpstreamSchema)),
  cache: Type.Optional(Type.Object({
    maxSize: Type.Optional(Size),
    expireAfter: Type.Optional(Duration),
    downAfterFailures: Type.Optional(Type.Integer({ minimum: 1 })),
    downFor: Type.Optional(Duration),
  }, strict)),
  auth: Type.Optional(Type.Object({
    enabled: Type.Optional(Type.Boolean()),
    anonymous: Type.Optional(Type.Boolean()),
    users: Type.Optional(Type.Array(UserSchema)),
    usersFile: Type.Optional(Type.String()),
    keysDir: Type.Optional(Type.String()),
    service: Type.Optional(Type.String()),
    issuer: Type.Optional(Type.String()),
    tokenTTL: Type.Optional(Duration),
    /** How long a refresh token (POST /token with access_type=offline) stays valid. */
    refreshTokenTTL: Type.Optional(Duration),
    /** Failed password checks before a client address, or a user name at one client address, is locked for one window. */
    rateLimit: Type.Optional(Type.Object({
      perUser: Type.Optional(Type.Integer({ minimum: 1 })),
      perClient: Type.Optional(Type.Integer({ minimum: 1 })),
      window: Type.Optional(Duration),
    }, strict)),
    /**
     * scrypt password checks running at once, and waiting beyond those; more get 429. They share
     * libuv's threadpool with file I/O, so unbounded hashing would starve blob reads.
     */
    passwordChecks: Type.Optional(Type.Object({
      concurrency: Type.Optional(Type.Integer({ minimum: 1 })),
      queue: Type.Optional(Type.Integer({ minimum: 0 })),
    }, strict)),
    rules: Type.Optional(Type.Array(RuleSchema)),
    /** Kubernetes namespace → extra registry namespaces it may pull. */
    namespaceGrants: Type.Optional(Type.Record(Type.String(), Type.Array(Type.String()))),
  }, strict)),
  webhook: Type.Optional(Type.Object({
    enabled: Type.Optional(Type.Boolean()),
    listen: Type.Optional(Type.String()),
    tls: Type.Optional(Tls),
    namespaceLabel: Type.Optional(Type.String()),
    optOutLabel: Type.Optional(Type.String()),
    pullSecretName: Type.Optional(Type.String()),
    originalImagesAnnotation: Type.Optional(Type.String()),
    ownNamespace: Type.Optional(Type.String()),
    serviceName: Type.Optional(Type.String()),
    healthURL: Type.Optional(Type.String()),
    selfSigned: Type.Optional(Type.Boolean()),
    webhookConfigName: Type.Optional(Type.String()),
    /** The webhook's own Service (its certificate's DNS names in selfSigned mode). */
    webhookServiceName: Type.Optional(Type.String()),
    /** Where selfSigned mode keeps its certificate. */
    certSecretName: Type.Optional(Type.String()),
    /**
     * What Pods' images are rewritten to: `node`, the node role's loopback address (node.listen);
     * `nodePort`, localhost:<the registry Service's NodePort> (or registry.publicHost).
     */
    rewriteTarget: Type.Optional(Type.Union([Type.Literal('node'), Type.Literal('nodePort')])),
    /** Read the public host from the registry Service's NodePort (default: when registry.publicHost is not set). */
    publicHostFromService: Type.Optional(Type.Boolean()),
    /**
     * How long one review may wait for the registry to confirm that the images it would rewrite
     * resolve (default 2s; kube-apiserver gives the webhook 5s). Unconfirmed images keep their
     * original reference, with a warning.
     */
    resolveTimeout: Type.Optional(Duration),
    /** Prefetch an admitted Pod's rewritten images into the registry (default true). */
    prefetch: Type.Optional(Type.Boolean()),
  }, strict)),
  /**
   * The node-local entry point (a DaemonSet on the host network): listens on the node's loopback
   * and forwards to the registry Service, so nodes reach the mirror whatever kube-proxy does. The
   * webhook and the controller read `listen` (the address images are rewritten to) and
   * `daemonSet` (whose ready Pods say the node path works) in `webhook.rewriteTarget: node` mode.
   */
  node: Type.Optional(Type.Object({
    /** Run the node role in this process. */
    enabled: Type.Optional(Type.Boolean()),
    /** Loopback host:port, outside the NodePort range (30000-32767); default 127.0.0.1:5005. */
    listen: Type.Optional(Type.String()),
    /** The registry Service's URL the node role forwards to. */
    registry: Type.Optional(Type.String({ pattern: '^https?://' })),
    /** The node role's DaemonSet, and the namespace it runs in (one that allows host networking). */
    daemonSet: Type.Optional(Type.String()),
    namespace: Type.Optional(Type.String()),
  }, strict)),
  controller: Type.Optional(Type.Object({
    enabled: Type.Optional(Type.Boolean()),
    resync: Type.Optional(Duration),
    tokenTTL: Type.Optional(Duration),
  }, strict)),
  gc: Type.Optional(Type.Object({
    interval: Type.Optional(Duration),
    keepUntagged: Type.Optional(Type.Boolean()),
    grace: Type.Optional(Duration),
    /** How many past runs are kept for the API and the web page (default 20). */
    history: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
  }, strict)),
  audit: Type.Optional(Type.Object({
    /** Audit entries older than this are removed (default 90d). */
    retention: Type.Optional(Duration),
  }, strict)),
  /** The web page's charts over time: how often storage and traffic are sampled, and for how long kept. */
  usage: Type.Optional(Type.Object({
    sampleInterval: Type.Optional(Duration),
    keep: Type.Optional(Duration),
  }, strict)),
  log: Type.Optional(Type.Object({
    /** One line per request that changes state or moves a blob or manifest, at info (default true). */
    access: Type.Optional(Type.Boolean()),
    level: Type.Optional(Type.Union([
      Type.Literal('fatal'), Type.Literal('error'), Type.Literal('warn'), Type.Literal('info'),
      Type.Literal('debug'), Type.Literal('trace'), Type.Literal('silent'),
    ])),
  }, strict)),
}, strict);

export type RawConfig = Static<typeof ConfigSchema>;
export type RawUpstream = Static<typeof UpstreamSchema>;
export type RawUser = Static<typeof UserSchema>;
export type RawRule = Static<typeof RuleSchema>;
