// The content source of one mirrored upstream: a local hit is a plain local read (no network for
// digests, nor for tags within their TTL); a miss is fetched from the upstream, verified, stored
// under the local name and streamed to the client meanwhile. Concurrent misses for the same
// thing share one upstream fetch.
import { LRUCache } from 'lru-cache';
import type { UpstreamConfig } from '../../config/config.js';
import type { Logger } from '../../log.js';
import { digestOf, parseDigest, type Digest } from '../digest.js';
import { RegistryError } from '../errors.js';
import { MANIFEST_MEDIA_TYPES, parseManifest } from '../manifest.js';
import { cacheHits, cacheMisses, coalescedRequests, upstreamBytes, upstreamErrors } from '../metrics.js';
import { LocalContent, parseReference, storeManifest, type BlobHit, type ContentSource, type ManifestHit } from '../service.js';
import type { Store } from '../storage/store.js';
import { BlobDownload } from './blob-download.js';
import { UpstreamHealth } from './health.js';
import { discard, type UpstreamBody, UpstreamAuthError, UpstreamClient, UpstreamUnreachable, type UpstreamResponse } from './upstream-client.js';
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
}

function header(res: UpstreamResponse, name: string): string | undefined {
  const value = res.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

async function readLimited(body: UpstreamBody, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      total += chunk.length;
      if (total > limit) {
        discard(body);
        throw new RegistryError('MANIFEST_INVALID', `upstream manifest exceeds ${limit} bytes`, undefined, { status: 502 });
      }
      chunks.push(chunk);
    }
  } catch (err) {
    if (err instanceof RegistryError) throw err;
    // The upstream broke its answer off (fewer bytes than its Content-Length, a reset, a timeout):
    // a bad gateway, not an error of ours.
    throw new RegistryError('UNAVAILABLE', 'upstream manifest answer broke off', { reason: (err as Error).message }, { status: 502 });
  }
  return Buffer.concat(chunks, total);
}

export class PullThroughSource implements ContentSource {
  private readonly upstream: UpstreamConfig;
  private readonly store: Store;
  private readonly client: UpstreamClient;
  readonly health: UpstreamHealth;
  private readonly local: LocalContent;
  private readonly log: Logger | undefined;
  private readonly now: () => number;
  private readonly blobs = new Map<string, Promise<BlobDownload | undefined>>();
  private readonly manifests = new Map<string, Promise<ManifestHit | undefined>>();
  // lru-cache allocates room for `max` entries up front, and every full collection scans it: an
  // entry evicted early costs only a HEAD upstream (or an extra pull record), so keep them modest.
  /** When each `repo:tag` was last confirmed against the upstream. */
  private readonly tagCheckedAt = new LRUCache<string, number>({ max: 10_000 });
  private readonly pullRecordedAt = new LRUCache<string, number>({ max: 10_000 });
  /** Reads served locally and reads that needed the upstream, for the admin API. */
  readonly counts = { hits: 0, misses: 0 };

  constructor(private readonly opts: PullThroughOptions) {
    this.client = opts.client;
    this.upstream = opts.client.upstream;
    this.store = opts.store;
    this.health = opts.health;
    this.local = new LocalContent(opts.store);
    this.log = opts.logger;
    this.now = opts.now ?? Date.now;
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

  async getBlob(repository: string, digest: Digest, withBody: boolean): Promise<BlobHit | undefined> {
    const hit = await this.local.getBlob(repository, digest);
    if (hit) {
      this.hit('blob');
      return hit;
    }
    const key = `${repository}@${digest}`;
    let pending = this.blobs.get(key);
    // A HEAD (clients probe before they pull, or only probe) must not cost a whole download.
    if (!pending && !withBody) return this.statRemoteBlob(repository, digest);
    if (pending) coalescedRequests.inc({ upstream: this.label, kind: 'blob' });
    else {
      this.miss('blob');
      pending = this.startBlob(repository, digest);
      this.blobs.set(key, pending);
      const forget = () => {
        if (this.blobs.get(key) === pending) this.blobs.delete(key);
      };
      pending.then((download) => (download ? download.settled.then(forget) : forget()), forget);
    }
    const download = await pending;
    if (!download) {
      // Already in the store for another repository, and the upstream confirmed this one has it.
      return this.local.getBlob(repository, digest);
    }
    // Between the download's end and its removal from `blobs`, a client can still get hold of
    // it: once released it has no file handle any more, and the committed blob is read instead.
    const stored = async (): Promise<BlobHit> => {
      if (download.error) throw download.error;
      const hit = await this.local.getBlob(repository, digest);
      if (!hit) throw new RegistryError('BLOB_UNKNOWN', undefined, { digest });
      return hit;
    };
    return {
      stat: { digest, size: download.size },
      open: async (range) => (download.released ? (await stored()).open(range) : download.open(range)),
      send: async (response, start, end) => {
        if (!download.released) return download.send(response, start, end);
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
    return {
      stat: { digest, size },
      open: async () => {
        throw new RegistryError('BLOB_UNKNOWN', 'only the size of this blob was asked for', { digest });
      },
    };
  }

  /** Resolves with the running download, or undefined when the blob is now local; 404 throws BLOB_UNKNOWN. */
  private async startBlob(repository: string, digest: Digest): Promise<BlobDownload | undefined> {
    const remote = this.remote(repository);
    if (await this.store.statBlob(digest)) {
      // The bytes are here (another repository has them), but whether this upstream repository
      // has that digest is the upstream's to say: a HEAD, never a second copy.
      const res = await this.call('HEAD', `/v2/${remote}/blobs/${digest}`, remote);
      discard(res.body);
      if (res.status !== 200) this.failure(res.status, 'blob', digest);
      await this.store.linkBlob(repository, digest);
      return undefined;
    }
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
    const writer = await this.store.openBlobWriter({ digest, size });
    const download = await BlobDownload.start(res.body, size, writer, {
      onBytes: (n) => upstreamBytes.inc({ upstream: this.label }, n),
      onCommitted: async () => this.store.linkBlob(repository, digest),
    });
    void download.settled.then(() => {
      const error = download.error;
      if (!error) return;
      if (error instanceof RegistryError) {
        upstreamErrors.inc({ upstream: this.label, reason: 'digest' });
        this.log?.warn({ upstream: this.label, repository, digest, code: error.code }, 'upstream blob failed verification: nothing cached');
      } else {
        upstreamErrors.inc({ upstream: this.label, reason: 'network' });
        this.health.failed();
        this.log?.warn({ upstream: this.label, repository, digest, reason: error.message }, 'upstream blob download broke off: nothing cached');
      }
    });
    return download;
  }

  // ---- manifests ----

  async getManifest(repository: string, reference: string, withBody: boolean): Promise<ManifestHit | undefined> {
    const ref = parseReference(reference);
    if (ref.digest) {
      const hit = await this.local.getManifest(repository, reference, withBody);
      if (hit) {
        this.hit('manifest');
        this.recordPull(repository, hit.meta.digest);
        return hit;
      }
      return this.coalesce(repository, reference, () => this.fetchManifest(repository, reference));
    }
    const tagKey = `${repository}:${ref.tag}`;
    const cached = await this.store.resolveTag(repository, ref.tag);
    if (cached) {
      const checked = this.tagCheckedAt.get(tagKey);
      if (checked !== undefined && this.now() - checked < this.upstream.tagTTLMs) {
        const hit = await this.local.getManifest(repository, cached, withBody);
        if (hit) {
          this.hit('manifest');
          this.recordPull(repository, hit.meta.digest);
          return hit;
        }
      }
      return this.coalesce(repository, reference, () => this.revalidate(repository, ref.tag, cached, withBody));
    }
    return this.coalesce(repository, reference, () => this.fetchManifest(repository, reference));
  }

  private async coalesce(repository: string, reference: string, work: () => Promise<ManifestHit | undefined>): Promise<ManifestHit | undefined> {
    const key = `${repository}:${reference}`;
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
      if (err instanceof RegistryError && (err.status >= 500 || err.status === 429 || err.status === 401 || err.status === 403)) return stale(err.status === 503 ? 'is unreachable' : `answered ${err.status}`);
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
    const res = await this.call('GET', `/v2/${remote}/manifests/${reference}`, remote, { accept: ACCEPT });
    if (res.status !== 200) {
      discard(res.body);
      this.failure(res.status, 'manifest', reference);
    }
    const bytes = await readLimited(res.body, this.opts.maxManifestBytes);
    upstreamBytes.inc({ upstream: this.label }, bytes.length);
    const ref = parseReference(reference);
    const claimed = ref.digest ?? header(res, 'docker-content-digest');
    const algorithm = (claimed ? parseDigest(claimed)?.algorithm : undefined) ?? 'sha256';
    const digest = digestOf(bytes, algorithm);
    if (claimed !== undefined && claimed !== digest) {
      upstreamErrors.inc({ upstream: this.label, reason: 'digest' });
      this.log?.warn({ upstream: this.label, repository, reference, expected: claimed, actual: digest }, 'upstream manifest failed verification: nothing cached');
      throw new RegistryError('DIGEST_INVALID', `upstream ${this.label} sent a manifest that does not match its digest`, { expected: claimed, actual: digest }, { status: 502 });
    }
    const info = parseManifest(bytes, header(res, 'content-type'));
    // Stored byte for byte; the store verifies the digest again before the bytes become visible.
    const meta = await storeManifest(this.store, repository, bytes, digest, info);
    if (ref.tag) {
      await this.store.setTag(repository, ref.tag, digest);
      this.tagCheckedAt.set(`${repository}:${ref.tag}`, this.now());
    }
    this.recordPull(repository, digest, true);
    return { meta, bytes };
  }

  // ---- upstream exchange ----

  /** One upstream request behind the circuit breaker; unreachable or 5xx counts against the upstream. */
  private async call(method: 'GET' | 'HEAD', path: string, remote: string, headers: Record<string, string> = {}): Promise<UpstreamResponse> {
    if (!this.health.allow()) {
      upstreamErrors.inc({ upstream: this.label, reason: 'down' });
      const seconds = Math.ceil(this.health.retryInMs() / 1000);
      throw new RegistryError('UNAVAILABLE', `upstream ${this.label} is down after repeated failures; retrying in ${seconds}s`, { upstream: this.label }, { headers: { 'Retry-After': String(Math.max(1, seconds)) } });
    }
    let res: UpstreamResponse;
    try {
      res = await this.client.request(method, path, remote, headers);
    } catch (err) {
      if (err instanceof UpstreamAuthError) {
        this.health.succeeded();
        this.log?.warn({ upstream: this.label, reason: err.message }, 'upstream authentication failed');
        throw new RegistryError('DENIED', `upstream ${this.label} refused our credentials`, { upstream: this.label });
      }
      if (err instanceof UpstreamUnreachable) {
        this.health.failed();
        upstreamErrors.inc({ upstream: this.label, reason: 'network' });
        this.log?.warn({ upstream: this.label, reason: err.reason }, 'upstream unreachable');
        // A certificate we do not trust is the operator's to fix: say so (the code is no secret).
        const why = err.tls ? `: ${err.reason}; set ca or insecure for it` : '';
        throw new RegistryError('UNAVAILABLE', `upstream ${this.label} is unreachable${why}`, { upstream: this.label });
      }
      throw err;
    }
    if (res.status >= 500) this.health.failed();
    else this.health.succeeded();
    return res;
  }

  private hit(kind: 'blob' | 'manifest'): void {
    this.counts.hits += 1;
    cacheHits.inc({ upstream: this.label, kind });
  }

  private miss(kind: 'blob' | 'manifest'): void {
    this.counts.misses += 1;
    cacheMisses.inc({ upstream: this.label, kind });
  }

  private countStatus(status: number): void {
    upstreamErrors.inc({ upstream: this.label, reason: status === 429 ? 'status_429' : 'status_5xx' });
  }

  /** Maps an upstream status other than 200 to the client's error. */
  private failure(status: number, kind: 'blob' | 'manifest', what: string): never {
    if (status === 404) throw new RegistryError(kind === 'blob' ? 'BLOB_UNKNOWN' : 'MANIFEST_UNKNOWN', undefined, kind === 'blob' ? { digest: what } : { reference: what });
    if (status === 429) {
      this.countStatus(status);
      throw new RegistryError('TOOMANYREQUESTS', `upstream ${this.label} is rate limiting`);
    }
    if (status === 401 || status === 403) throw new RegistryError('DENIED', `upstream ${this.label} denied access`, { upstream: this.label });
    if (status >= 500) this.countStatus(status);
    throw new RegistryError('UNAVAILABLE', `upstream ${this.label} answered ${status}`, { upstream: this.label });
  }

  private recordPull(repository: string, digest: Digest, force = false): void {
    const key = `${repository}@${digest}`;
    const last = this.pullRecordedAt.get(key);
    const now = this.now();
    if (!force && last !== undefined && now - last < PULL_RECORD_EVERY_MS) return;
    this.pullRecordedAt.set(key, now);
    this.store.recordPull(repository, digest, new Date(now)).catch((err: unknown) => this.log?.warn({ err, repository }, 'could not record a pull'));
  }
}
