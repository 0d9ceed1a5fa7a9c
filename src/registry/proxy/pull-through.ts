// The content source of one mirrored upstream: a local hit is a plain local read (no network for
// digests, nor for tags within their TTL); a miss is fetched from the upstream, verified, stored
// under the local name and streamed to the client meanwhile. Concurrent misses for the same
// thing share one upstream fetch.
import { LRUCache } from 'lru-cache';
import type { UpstreamConfig } from '../../config/config.js';
import type { Logger } from '../../log.js';
import { BodyTooLarge, readBounded } from '../body.js';
import { digestOf, parseDigest, type Digest } from '../digest.js';
import { RegistryError } from '../errors.js';
import { MANIFEST_MEDIA_TYPES, parseManifest, type ManifestInfo } from '../manifest.js';
import { cacheHits, cacheMisses, coalescedRequests, upstreamBytes, upstreamErrors, upstreamRefused, upstreamLatency } from '../metrics.js';
import { LocalContent, parseReference, storeManifest, type BlobHit, type ContentSource, type ManifestHit } from '../service.js';
import { isStorageFull, logStorageFull, StorageError, storageAnswer, storageFullError } from '../storage/errors.js';
import type { Store } from '../storage/store.js';
import { BlobDownload } from './blob-download.js';
import type { PeerFollower } from './cluster-follow.js';
import type { PullLeases } from './cluster-lease.js';
import { Deadline, UpstreamTimeout, watchRate } from './deadline.js';
import { ExpectedSizes } from './expected-sizes.js';
import { UpstreamHealth } from './health.js';
import { RateLimitGate, type Hold } from './retry-after.js';
import { sourceId } from './source-id.js';
import { discard, upstreamFailure, UpstreamAuthError, UpstreamBadAnswer, UpstreamClient, UpstreamRateLimited, UpstreamUnreachable, type UpstreamResponse } from './upstream-client.js';
import { upstreamPath } from './upstream-names.js';

const ACCEPT = MANIFEST_MEDIA_TYPES.join(', ');
/** A pull is recorded on disk at most this often per manifest (the budget needs minutes, not milliseconds). */
const PULL_RECORD_EVERY_MS = 60_000;

export interface PullThroughOptions {
  store: Store;
  client: UpstreamClient;
  health: UpstreamHealth;
  maxManifestBytes: number;
  logger?: Logger;
  now?: () => number;
  /** Replicas on one database: one of them downloads a cold blob, the others stream it from that one. */
  cluster?: { leases: PullLeases; follower: PeerFollower };
}

/** Another replica holds the lease for this blob and downloads it: stream from `peer`. */
interface AtPeer { peer: string }
type Started = BlobDownload | AtPeer | undefined;

/** Why a cached tag is served unrevalidated, from the error its revalidation met. */
function staleReason(status: number): string {
  if (status === 504) return 'did not answer in time';
  if (status === 503) return 'is unreachable';
  if (status === 429) return 'is rate limiting';
  return `answered ${status}`;
}

/** Distribution has no code for a gateway timeout: UNAVAILABLE, with the status that says it. */
function gatewayTimeout(err: UpstreamTimeout): RegistryError {
  return new RegistryError('UNAVAILABLE', err.message, { upstream: err.upstream }, { status: 504 });
}

function header(res: UpstreamResponse, name: string): string | undefined {
  const value = res.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

export class PullThroughSource implements ContentSource {
  private readonly upstream: UpstreamConfig;
  private readonly store: Store;
  private readonly client: UpstreamClient;
  readonly health: UpstreamHealth;
  /** Set by the upstream's 429s (and 503s with Retry-After): until when it is left alone. */
  private readonly gate: RateLimitGate;
  private readonly local: LocalContent;
  private readonly log: Logger | undefined;
  private readonly now: () => number;
  /** This upstream's id in the store's provenance markers (and in blob leases). */
  private readonly source: string;
  private readonly blobs = new Map<string, Promise<Started>>();
  /** Downloads running here by digest, whichever repository started them: what other replicas follow. */
  private readonly downloads = new Map<Digest, { repository: string; started: Promise<Started> }>();
  /** Downloads whose body rate is watched already (a joined one is watched once). */
  private readonly watched = new WeakSet<BlobDownload>();
  private readonly manifests = new Map<string, Promise<ManifestHit | undefined>>();
  // lru-cache allocates room for `max` entries up front, and every full collection scans it: an
  // entry evicted early costs only a HEAD upstream (or an extra pull record), so keep them modest.
  /** When each `repo:tag` was last confirmed against the upstream. */
  private readonly tagCheckedAt = new LRUCache<string, number>({ max: 10_000 });
  /** Blob sizes from the manifests fetched or served for each repository. */
  private readonly expectedSizes = new ExpectedSizes();
  private readonly pullRecordedAt = new LRUCache<string, number>({ max: 10_000 });
  /** Reads served locally and reads that needed the upstream, and their bytes, for the admin API and the web page's traffic chart. */
  readonly counts = { hits: 0, misses: 0, servedFromCacheBytes: 0, fetchedUpstreamBytes: 0 };

  constructor(private readonly opts: PullThroughOptions) {
    this.client = opts.client;
    this.upstream = opts.client.upstream;
    this.store = opts.store;
    this.health = opts.health;
    this.local = new LocalContent(opts.store);
    this.log = opts.logger;
    this.now = opts.now ?? Date.now;
    this.gate = new RateLimitGate({ maxMs: this.upstream.maxRetryAfterMs, now: this.now });
    this.source = sourceId(this.upstream);
  }

  get sourceId(): string {
    return this.source;
  }

  private get label(): string {
    return this.upstream.prefix;
  }

  private remote(repository: string): string {
    const path = upstreamPath(this.upstream, repository);
    if (!path) throw new RegistryError('NAME_UNKNOWN', 'a mirror repository needs a path after the mirror prefix', { name: repository });
    return path;
  }

  // ---- blobs ----

  async getBlob(repository: string, digest: Digest, withBody: boolean, _signal?: AbortSignal, avoidPeer?: string): Promise<BlobHit | undefined> {
    const hit = await this.local.getBlob(repository, digest);
    if (hit) {
      this.hit('blob');
      if (withBody) this.counts.servedFromCacheBytes += hit.stat.size;
      return hit;
    }
    const key = `${repository}@${digest}`;
    let pending = this.blobs.get(key);
    // A HEAD (clients probe before they pull, or only probe) must not cost a whole download.
    if (!pending && !withBody) return this.statRemoteBlob(repository, digest);
    if (pending) coalescedRequests.inc({ upstream: this.label, kind: 'blob' });
    else {
      this.miss('blob');
      const started = this.startBlob(repository, digest, avoidPeer);
      pending = started;
      void started.then((download) => download instanceof BlobDownload && !this.watched.has(download) && this.watchBody(download), () => undefined);
      this.blobs.set(key, started);
      const running = { repository, started };
      if (!this.downloads.has(digest)) this.downloads.set(digest, running);
      const forget = () => {
        if (this.blobs.get(key) === started) this.blobs.delete(key);
        if (this.downloads.get(digest) === running) this.downloads.delete(digest);
      };
      started.then((download) => (download instanceof BlobDownload ? download.settled.then(forget) : forget()), forget);
    }
    const download = await pending;
    if (download && !(download instanceof BlobDownload)) {
      // Every client here gets its own stream from the peer (the peer serves them all from its one download).
      const followed = await this.followPeer(download.peer, repository, digest);
      return followed ?? this.getBlob(repository, digest, withBody, _signal, download.peer);
    }
    if (!download) {
      // Delivered by this upstream before, for another repository, and it confirmed this one has it.
      return this.local.getBlob(repository, digest);
    }
    // Between the download's end and its removal from `blobs`, a client can still get hold of
    // it: once released it has no file handle any more, and the committed blob is read instead.
    const stored = async (): Promise<BlobHit> => {
      if (download.error) throw this.downloadError(download.error);
      const hit = await this.local.getBlob(repository, digest);
      if (!hit) throw new RegistryError('BLOB_UNKNOWN', undefined, { digest });
      return hit;
    };
    return {
      stat: { digest, size: download.size },
      // A client only needs verified bytes: its last byte goes as soon as the digest checks out,
      // and the commit (publish, metadata) finishes behind it.
      open: async (range) => (download.released ? (await stored()).open(range) : download.open(range, 'verified')),
      send: async (response, start, end) => {
        // send() throws only while nothing was sent: the client can still be told why.
        if (!download.released) return download.send(response, start, end, 'verified').catch((err: unknown) => Promise.reject(this.downloadError(err)));
        const hit = await stored();
        if (!hit.send) throw new Error('a stored blob without send()');
        return hit.send(response, start, end);
      },
    };
  }

  /** A HEAD for a blob that is not here: answered from the upstream's HEAD; nothing is fetched or stored. */
  private async statRemoteBlob(repository: string, digest: Digest): Promise<BlobHit> {
    this.miss('blob');
    const remote = this.remote(repository);
    const res = await this.call('HEAD', `/v2/${remote}/blobs/${digest}`, remote);
    discard(res.body);
    if (res.status !== 200) this.failure(res.status, 'blob', digest);
    const claimed = header(res, 'docker-content-digest');
    if (claimed !== undefined && claimed !== digest) {
      upstreamErrors.inc({ upstream: this.label, reason: 'digest' });
      throw new RegistryError('DIGEST_INVALID', `upstream ${this.label} answered for another digest`, { expected: digest, actual: claimed.slice(0, 200) }, { status: 502 });
    }
    const size = Number(header(res, 'content-length'));
    if (!Number.isSafeInteger(size) || size < 0) throw new RegistryError('BLOB_UNKNOWN', 'upstream answered HEAD without a length', { digest }, { status: 502 });
    const refused = this.sizeRefused(repository, digest, size);
    if (refused) throw refused;
    return {
      stat: { digest, size },
      open: async () => {
        throw new RegistryError('BLOB_UNKNOWN', 'only the size of this blob was asked for', { digest });
      },
    };
  }

  /**
   * Resolves with the running download, with the peer replica that downloads it (cluster), or
   * undefined when the blob is now local; 404 throws BLOB_UNKNOWN.
   */
  private async startBlob(repository: string, digest: Digest, avoidPeer?: string): Promise<Started> {
    this.remote(repository);
    if ((await this.store.statBlob(digest)) && (await this.store.blobFromSource(digest, this.source))) {
      // This upstream delivered these bytes before (for another of its repositories): whether
      // this repository has them is the upstream's to say, a HEAD, no second copy. Bytes that
      // came any other way (a push, another upstream) are never handed out on an upstream's
      // word: an upstream that says yes to every digest would read anyone's private blobs.
      await this.confirmUpstreamHas(repository, digest);
      await this.store.linkBlob(repository, digest);
      return undefined;
    }
    const cluster = this.opts.cluster;
    if (!cluster) return this.download(repository, digest);
    // The lease is this replica's whichever repository asks: a download running here for another
    // one is joined (once the upstream confirms this repository has the blob), not repeated.
    // (An entry for this repository is this very call's own: never awaited here.)
    const running = this.downloads.get(digest);
    const joined = running && running.repository !== repository ? await this.downloadForPeer(repository, digest) : undefined;
    if (joined) return joined;
    const claim = await cluster.leases.claim(this.source, digest, avoidPeer);
    if (claim.kind === 'follow') return { peer: claim.peer };
    try {
      const download = await this.download(repository, digest);
      void download.settled.then(claim.release);
      return download;
    } catch (err) {
      claim.release();
      throw err;
    }
  }

  /** A HEAD upstream: whether `repository` there has `digest` (BLOB_UNKNOWN, DENIED... when not). */
  private async confirmUpstreamHas(repository: string, digest: Digest): Promise<void> {
    const remote = this.remote(repository);
    const res = await this.call('HEAD', `/v2/${remote}/blobs/${digest}`, remote);
    discard(res.body);
    if (res.status !== 200) this.failure(res.status, 'blob', digest);
  }

  /**
   * A client's stream of a blob that `peer` downloads; undefined when the peer does not serve it
   * (unreachable, finished, or failed), and the caller tries again without it.
   */
  private async followPeer(peer: string, repository: string, digest: Digest): Promise<BlobHit | undefined> {
    const follower = this.opts.cluster?.follower;
    if (!follower) return undefined;
    const hit = await follower.follow(peer, this.source, repository, digest, {
      refuse: (size) => this.sizeRefused(repository, digest, size),
      // The whole blob came through: the peer committed it to the shared store (its last byte
      // waits for that), and its verdict covered this repository: linked here too.
      completed: () => this.store.linkBlob(repository, digest).catch((err: unknown) => {
        this.log?.warn({ repository, digest, reason: (err as Error).message }, 'blob streamed from a peer replica not linked here');
      }),
    });
    if (hit) coalescedRequests.inc({ upstream: this.label, kind: 'blob' });
    else this.log?.info({ upstream: this.label, digest, peer }, 'the replica downloading a blob did not serve it: pulling it here');
    return hit;
  }

  /**
   * The download another replica follows (cluster-route.ts): the one running here for `digest`,
   * whichever repository started it. For another repository, the upstream must first confirm
   * (a HEAD) that that repository has the blob too, as for a blob already cached.
   */
  async downloadForPeer(repository: string, digest: Digest): Promise<BlobDownload | undefined> {
    const running = this.downloads.get(digest);
    if (!running) return undefined;
    const download = await running.started.catch(() => undefined);
    if (!(download instanceof BlobDownload) || download.released || download.error) return undefined;
    if (running.repository !== repository) await this.confirmUpstreamHas(repository, digest);
    return download;
  }

  /** Fetches the blob from the upstream into the store, streaming it to clients meanwhile. */
  private async download(repository: string, digest: Digest): Promise<BlobDownload> {
    const remote = this.remote(repository);
    const res = await this.call('GET', `/v2/${remote}/blobs/${digest}`, remote);
    if (res.status !== 200) {
      discard(res.body);
      this.failure(res.status, 'blob', digest);
    }
    const size = Number(header(res, 'content-length'));
    if (!Number.isSafeInteger(size) || size < 0) {
      discard(res.body);
      throw new RegistryError('BLOB_UNKNOWN', 'upstream sent a blob without a length', { digest }, { status: 502 });
    }
    // Refused on the declared length, before a byte is written: the body is cut, not read.
    const refused = this.sizeRefused(repository, digest, size) ?? (await this.spaceRefused(size));
    if (refused) {
      discard(res.body);
      throw refused;
    }
    const writer = await this.store.openBlobWriter({ digest, size });
    let committed: () => void = () => undefined;
    const commitDone = new Promise<void>((resolve) => (committed = resolve));
    const download = await BlobDownload.start(res.body, size, writer, {
      // Clients get their last byte on the verdict: what they do next with the blob waits for the commit.
      onVerified: () => this.store.commitBehind(digest, commitDone),
      onBytes: (n) => {
        upstreamBytes.inc({ upstream: this.label }, n);
        this.counts.fetchedUpstreamBytes += n;
      },
      onCommitted: async () => {
        await this.store.recordBlobSource(digest, this.source);
        await this.store.linkBlob(repository, digest);
      },
    });
    void download.settled.then(() => {
      committed();
      const error = download.error;
      if (!error) return;
      // Our own disk failing (full) says nothing about the upstream: no breaker, no upstream error.
      if (error instanceof StorageError) return this.storageFailed(error, { repository, digest });
      if (error instanceof RegistryError) {
        upstreamErrors.inc({ upstream: this.label, reason: 'digest' });
        this.log?.warn({ upstream: this.label, repository, digest, code: error.code }, 'upstream blob failed verification: nothing cached');
      } else if (error instanceof UpstreamTimeout) {
        // Counted and logged as every other upstream timeout (the rate watch aborted it).
        this.timedOut(error);
      } else {
        upstreamErrors.inc({ upstream: this.label, reason: 'network' });
        this.health.failed(`blob download broke off: ${error.message}`);
        this.log?.warn({ upstream: this.label, repository, digest, reason: error.message }, 'upstream blob download broke off: nothing cached');
      }
    });
    return download;
  }

  /**
   * Gives up on a blob body that arrives slower than the upstream's minimum rate: the download
   * fails, its file is dropped, and every client of it is told (504) or cut off at once.
   */
  private watchBody(download: BlobDownload): void {
    this.watched.add(download);
    const t = this.upstream.timeouts;
    const rate = { bytesPerSecond: t.blobMinBytesPerSecond, windowMs: t.blobRateWindowMs };
    const stop = watchRate(() => download.bytesReceived, rate, () => {
      download.abort(new UpstreamTimeout(this.label, `blob body below ${rate.bytesPerSecond} bytes/s over ${rate.windowMs / 1000}s`));
    });
    void download.settled.then(stop);
  }

  /**
   * What a client is told of a download that failed before it was sent anything (counted and
   * logged once, where it failed). The client asked for nothing wrong: a verification failure
   * is the upstream's (502), as is a body that broke off; a body too slow is a timeout (504).
   */
  private downloadError(err: unknown): Error {
    // Our own storage failing is told as such (507 when full), never blamed on the upstream.
    if (err instanceof StorageError) return storageAnswer(err) ?? err;
    if (err instanceof RegistryError) return err.status >= 500 ? err : new RegistryError(err.code, err.message, err.detail, { status: 502 });
    if (err instanceof UpstreamTimeout) return gatewayTimeout(err);
    return new RegistryError('UNAVAILABLE', `the download from upstream ${this.label} failed`, { upstream: this.label }, { status: 502 });
  }

  /**
   * Why a declared blob length is refused: not the size this repository's manifest gives the
   * blob (the upstream lies; the bytes could never verify), or above the upstream's maxBlobSize.
   */
  private sizeRefused(repository: string, digest: Digest, declared: number): RegistryError | undefined {
    const expected = this.expectedSizes.get(repository, digest);
    const max = this.upstream.maxBlobBytes;
    let why: string | undefined;
    if (expected !== undefined && declared !== expected) why = `declared ${declared} bytes for a blob its manifest gives as ${expected}`;
    else if (max !== undefined && declared > max) why = `declared ${declared} bytes for a blob, above its maxBlobSize of ${max}`;
    if (!why) return undefined;
    upstreamErrors.inc({ upstream: this.label, reason: 'size' });
    this.log?.warn({ upstream: this.label, repository, digest, declared, expected, max }, 'upstream blob refused on its declared size: nothing fetched');
    return new RegistryError('SIZE_INVALID', `upstream ${this.label} ${why}`, { digest }, { status: 502 });
  }

  /** 507 when a blob of `declared` bytes cannot fit in the storage's free space. */
  private async spaceRefused(declared: number): Promise<RegistryError | undefined> {
    const free = await this.store.freeBytes();
    if (free === undefined || declared <= free) return undefined;
    const error = storageFullError(`the blob's ${declared} bytes do not fit in the ${free} bytes free`);
    logStorageFull(this.log, this.store.root, error);
    return error;
  }

  // ---- manifests ----

  async getManifest(repository: string, reference: string, withBody: boolean): Promise<ManifestHit | undefined> {
    const hit = await this.findManifest(repository, reference, withBody);
    // Whatever a client is given, its blobs will be asked for next: their sizes are known now.
    if (hit?.bytes) this.expectedSizes.learn(repository, hit.meta.digest, hit.bytes);
    return hit;
  }

  private async findManifest(repository: string, reference: string, withBody: boolean): Promise<ManifestHit | undefined> {
    const ref = parseReference(reference);
    if (ref.digest) {
      const hit = await this.local.getManifest(repository, reference, withBody);
      if (hit) {
        this.hit('manifest');
        this.counts.servedFromCacheBytes += hit.bytes?.length ?? 0;
        this.recordPull(repository, hit.meta.digest);
        return hit;
      }
      return this.coalesce(repository, reference, withBody, () => this.fetchManifest(repository, reference));
    }
    const tagKey = `${repository}:${ref.tag}`;
    const cached = await this.store.resolveTag(repository, ref.tag);
    if (cached) {
      const checked = this.tagCheckedAt.get(tagKey);
      if (checked !== undefined && this.now() - checked < this.upstream.tagTTLMs) {
        const hit = await this.local.getManifest(repository, cached, withBody);
        if (hit) {
          this.hit('manifest');
          this.counts.servedFromCacheBytes += hit.bytes?.length ?? 0;
          this.recordPull(repository, hit.meta.digest);
          return hit;
        }
      }
      return this.coalesce(repository, reference, withBody, () => this.revalidate(repository, ref.tag, cached, withBody));
    }
    return this.coalesce(repository, reference, withBody, () => this.fetchManifest(repository, reference));
  }

  /**
   * Joins a running fetch of the same manifest. HEADs and GETs never share one: a revalidation a
   * HEAD started answers from local metadata without the bytes, and a GET must not get that.
   */
  private async coalesce(repository: string, reference: string, withBody: boolean, work: () => Promise<ManifestHit | undefined>): Promise<ManifestHit | undefined> {
    const key = `${withBody ? 'GET' : 'HEAD'} ${repository}:${reference}`;
    const pending = this.manifests.get(key);
    if (pending) {
      coalescedRequests.inc({ upstream: this.label, kind: 'manifest' });
      return pending;
    }
    this.miss('manifest');
    const started = work().finally(() => this.manifests.delete(key));
    this.manifests.set(key, started);
    return started;
  }

  /** A cached tag past its TTL: a HEAD upstream decides; when the upstream cannot answer, the cached one is served with a Warning. */
  private async revalidate(repository: string, tag: string, cached: Digest, withBody: boolean): Promise<ManifestHit | undefined> {
    const remote = this.remote(repository);
    const stale = async (why: string): Promise<ManifestHit | undefined> => {
      const hit = await this.local.getManifest(repository, cached, true);
      if (!hit) throw new RegistryError('UNAVAILABLE', `upstream ${this.label} is unavailable (${why}) and the cached manifest is gone`);
      this.recordPull(repository, hit.meta.digest);
      this.log?.info({ upstream: this.label, repository, tag, why }, 'serving a cached tag unrevalidated');
      return { ...hit, warning: `110 layover "Response is stale: upstream ${this.label} ${why}"` };
    };
    let res: UpstreamResponse;
    try {
      res = await this.call('HEAD', `/v2/${remote}/manifests/${tag}`, remote, { accept: ACCEPT });
    } catch (err) {
      if (err instanceof RegistryError && (err.status >= 500 || err.status === 429 || err.status === 401 || err.status === 403)) return stale(staleReason(err.status));
      throw err;
    }
    discard(res.body);
    if (res.status === 404) {
      // The upstream no longer has the tag: neither do we.
      await this.store.deleteTag(repository, tag);
      this.tagCheckedAt.delete(`${repository}:${tag}`);
      return undefined;
    }
    if (res.status === 429 || res.status >= 500) {
      this.countStatus(res.status);
      return stale(`answered ${res.status}`);
    }
    if (res.status === 401 || res.status === 403) return stale(`answered ${res.status}`);
    const current = header(res, 'docker-content-digest');
    if (res.status === 200 && current === cached) {
      this.tagCheckedAt.set(`${repository}:${tag}`, this.now());
      const hit = await this.local.getManifest(repository, cached, withBody);
      if (hit) {
        this.recordPull(repository, hit.meta.digest);
        return hit;
      }
    }
    return this.fetchManifest(repository, tag);
  }

  private async fetchManifest(repository: string, reference: string): Promise<ManifestHit | undefined> {
    const remote = this.remote(repository);
    // One deadline for headers and body: a manifest trickled a byte at a time is not waited for.
    const deadline = this.deadline('manifest');
    let res: UpstreamResponse;
    let bytes: Buffer;
    try {
      res = await this.call('GET', `/v2/${remote}/manifests/${reference}`, remote, { accept: ACCEPT }, deadline);
      if (res.status !== 200) {
        discard(res.body);
        this.failure(res.status, 'manifest', reference);
      }
      bytes = await this.readManifest(res, deadline);
    } finally {
      deadline.clear();
    }
    upstreamBytes.inc({ upstream: this.label }, bytes.length);
    this.counts.fetchedUpstreamBytes += bytes.length;
    const ref = parseReference(reference);
    const claimed = ref.digest ?? header(res, 'docker-content-digest');
    const algorithm = (claimed ? parseDigest(claimed)?.algorithm : undefined) ?? 'sha256';
    const digest = digestOf(bytes, algorithm);
    if (claimed !== undefined && claimed !== digest) {
      upstreamErrors.inc({ upstream: this.label, reason: 'digest' });
      this.log?.warn({ upstream: this.label, repository, reference, expected: claimed, actual: digest }, 'upstream manifest failed verification: nothing cached');
      throw new RegistryError('DIGEST_INVALID', `upstream ${this.label} sent a manifest that does not match its digest`, { expected: claimed, actual: digest }, { status: 502 });
    }
    let info: ManifestInfo;
    try {
      info = parseManifest(bytes, header(res, 'content-type'));
    } catch (err) {
      // The client asked for nothing wrong: an upstream answering something that is no manifest is a bad gateway.
      if (!(err instanceof RegistryError)) throw err;
      upstreamErrors.inc({ upstream: this.label, reason: 'bad_answer' });
      this.log?.warn({ upstream: this.label, repository, reference, code: err.code }, 'upstream sent an invalid manifest: nothing cached');
      throw new RegistryError(err.code, `upstream ${this.label} sent an invalid manifest: ${err.message}`, err.detail, { status: 502 });
    }
    // Stored byte for byte; the store verifies the digest again before the bytes become visible.
    const meta = await storeManifest(this.store, repository, bytes, digest, info);
    if (ref.tag) {
      await this.store.setTag(repository, ref.tag, digest);
      this.tagCheckedAt.set(`${repository}:${ref.tag}`, this.now());
    }
    this.recordPull(repository, digest, true);
    return { meta, bytes };
  }

  /** The manifest body, at most maxManifestBytes (a larger declared length is refused unread). */
  private async readManifest(res: UpstreamResponse, deadline: Deadline): Promise<Buffer> {
    const limit = this.opts.maxManifestBytes;
    try {
      return await readBounded(res.body, res.headers['content-length'], limit);
    } catch (err) {
      if (err instanceof BodyTooLarge) throw new RegistryError('MANIFEST_INVALID', `upstream manifest exceeds ${limit} bytes`, undefined, { status: 502 });
      // Out of time (ours or undici's): 504; cut off (a reset, a close): 502.
      const failure = deadline.expired ? deadline.error : upstreamFailure(this.label, err, 'manifest body');
      if (failure instanceof UpstreamTimeout) throw this.timedOut(failure);
      this.health.failed(`broke off while sending a manifest: ${failure.reason}`);
      upstreamErrors.inc({ upstream: this.label, reason: 'network' });
      this.log?.warn({ upstream: this.label, reason: failure.reason }, 'upstream broke off while sending a manifest');
      throw new RegistryError('UNAVAILABLE', `upstream ${this.label} broke off while sending the manifest`, { upstream: this.label }, { status: 502 });
    }
  }

  // ---- upstream exchange ----

  /** A deadline for a whole manifest exchange, or for the wait for a blob's response headers. */
  private deadline(kind: 'manifest' | 'blob'): Deadline {
    const t = this.upstream.timeouts;
    const ms = kind === 'manifest' ? t.manifestMs : t.blobHeadersMs;
    return new Deadline(ms, new UpstreamTimeout(this.label, `${kind === 'manifest' ? 'manifest' : 'blob headers'} within ${ms / 1000}s`));
  }

  /**
   * One upstream request behind the rate-limit hold and the circuit breaker, within `deadline`
   * (by default one for its kind, over once the headers are in). Unreachable, out of time or 5xx
   * counts against the upstream; a 429 (or 503 with Retry-After) holds it off for a while.
   */
  private async call(method: 'GET' | 'HEAD', path: string, remote: string, headers: Record<string, string> = {}, deadline?: Deadline): Promise<UpstreamResponse> {
    const hold = this.gate.current();
    if (hold) {
      upstreamRefused.inc({ upstream: this.label, reason: 'rate_limited' });
      throw this.heldOff(hold);
    }
    if (!this.health.allow()) {
      upstreamErrors.inc({ upstream: this.label, reason: 'down' });
      const seconds = Math.ceil(this.health.retryInMs() / 1000);
      throw new RegistryError('UNAVAILABLE', `upstream ${this.label} is down after repeated failures; retrying in ${seconds}s`, { upstream: this.label }, { headers: { 'Retry-After': String(Math.max(1, seconds)) } });
    }
    const limit = deadline ?? this.deadline(path.includes('/manifests/') ? 'manifest' : 'blob');
    let res: UpstreamResponse;
    const startedAt = performance.now();
    try {
      res = await this.client.request(method, path, remote, headers, limit.signal);
      const tookMs = performance.now() - startedAt;
      this.health.answered(tookMs);
      upstreamLatency.observe({ upstream: this.label, kind: path.includes('/manifests/') ? 'manifest' : 'blob' }, tookMs / 1000);
    } catch (err) {
      throw this.exchangeError(limit.expired ? limit.error : err);
    } finally {
      // Our own deadline covers the headers only; the caller's runs on through the body.
      if (limit !== deadline) limit.clear();
    }
    if (res.status === 429) upstreamErrors.inc({ upstream: this.label, reason: 'rate_limited' });
    this.gate.note(res.status, header(res, 'retry-after'));
    if (res.status >= 500) this.health.failed(`answered ${res.status}`);
    else this.health.succeeded();
    return res;
  }

  /** The client's error for an exchange that failed before its answer's headers came. */
  private exchangeError(err: unknown): unknown {
    if (err instanceof UpstreamAuthError) {
      this.health.succeeded();
      this.log?.warn({ upstream: this.label, reason: err.message }, 'upstream authentication failed');
      return new RegistryError('DENIED', `upstream ${this.label} refused our credentials`, { upstream: this.label });
    }
    if (err instanceof UpstreamRateLimited) {
      // From the token endpoint or /v2/: held off just the same.
      if (err.status === 429) upstreamErrors.inc({ upstream: this.label, reason: 'rate_limited' });
      else this.countStatus(err.status);
      const hold = this.gate.note(err.status, err.retryAfter);
      return hold ? this.heldOff(hold) : new RegistryError('UNAVAILABLE', err.message, { upstream: this.label });
    }
    if (err instanceof UpstreamTimeout) return this.timedOut(err);
    if (err instanceof UpstreamBadAnswer) {
      this.health.failed(err.message);
      upstreamErrors.inc({ upstream: this.label, reason: 'bad_answer' });
      this.log?.warn({ upstream: this.label, reason: err.reason }, 'upstream sent an unusable answer');
      return new RegistryError('UNAVAILABLE', err.message, { upstream: this.label }, { status: 502 });
    }
    if (err instanceof UpstreamUnreachable) {
      this.health.failed(`unreachable: ${err.reason}`);
      upstreamErrors.inc({ upstream: this.label, reason: 'network' });
      this.log?.warn({ upstream: this.label, reason: err.reason }, 'upstream unreachable');
      // A certificate we do not trust is the operator's to fix: say so (the code is no secret).
      const why = err.tls ? `: ${err.reason}; set ca or insecure for it` : '';
      return new RegistryError('UNAVAILABLE', `upstream ${this.label} is unreachable${why}`, { upstream: this.label });
    }
    return err;
  }

  /** An exchange out of time: a gateway timeout for the client, a failure of the upstream. */
  private timedOut(err: UpstreamTimeout): RegistryError {
    this.health.failed(`no answer in time (${err.what})`);
    upstreamErrors.inc({ upstream: this.label, reason: 'timeout' });
    this.log?.warn({ upstream: this.label, what: err.what }, 'upstream did not answer in time');
    return gatewayTimeout(err);
  }

  /** A miss refused while the upstream asked to be left alone, with the time still to wait. */
  private heldOff(hold: Hold): RegistryError {
    const message = `upstream ${this.label} asked to be left alone (${hold.status}); retry in ${hold.seconds}s`;
    return new RegistryError(hold.status === 429 ? 'TOOMANYREQUESTS' : 'UNAVAILABLE', message, { upstream: this.label }, { status: hold.status, headers: { 'Retry-After': String(hold.seconds) } });
  }

  private hit(kind: 'blob' | 'manifest'): void {
    this.counts.hits += 1;
    cacheHits.inc({ upstream: this.label, kind });
  }

  private miss(kind: 'blob' | 'manifest'): void {
    this.counts.misses += 1;
    cacheMisses.inc({ upstream: this.label, kind });
  }

  /** Counts a 5xx answer (429s are counted as rate_limited by call()). */
  private countStatus(status: number): void {
    if (status >= 500) upstreamErrors.inc({ upstream: this.label, reason: 'status_5xx' });
  }

  /** Maps an upstream status other than 200 to the client's error. */
  private failure(status: number, kind: 'blob' | 'manifest', what: string): never {
    if (status === 404) throw new RegistryError(kind === 'blob' ? 'BLOB_UNKNOWN' : 'MANIFEST_UNKNOWN', undefined, kind === 'blob' ? { digest: what } : { reference: what });
    if (status === 401 || status === 403) throw new RegistryError('DENIED', `upstream ${this.label} denied access`, { upstream: this.label });
    this.countStatus(status);
    // call() has noted the hold a 429 (or a 503 with Retry-After) asks for: the client is told how long it lasts.
    const hold = status === 429 || status === 503 ? this.gate.current() : undefined;
    if (hold) throw this.heldOff(hold);
    if (status === 429) throw new RegistryError('TOOMANYREQUESTS', `upstream ${this.label} is rate limiting`);
    throw new RegistryError('UNAVAILABLE', `upstream ${this.label} answered ${status}`, { upstream: this.label });
  }

  private recordPull(repository: string, digest: Digest, force = false): void {
    const key = `${repository}@${digest}`;
    const last = this.pullRecordedAt.get(key);
    const now = this.now();
    if (!force && last !== undefined && now - last < PULL_RECORD_EVERY_MS) return;
    this.pullRecordedAt.set(key, now);
    this.store.recordPull(repository, digest, new Date(now)).catch((err: unknown) => {
      if (isStorageFull(err)) logStorageFull(this.log, this.store.root, err);
      else this.log?.warn({ err, repository }, 'could not record a pull');
    });
  }

  /** A cache fill that our storage could not take. */
  private storageFailed(error: StorageError, where: { repository: string; digest: Digest }): void {
    if (isStorageFull(error)) logStorageFull(this.log, this.store.root, error);
    else this.log?.error({ upstream: this.label, ...where, code: error.code, err: error.cause }, 'storage failed during a cache fill: nothing cached');
  }
}
