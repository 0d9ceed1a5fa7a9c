// Which replica downloads a cold blob from an upstream: the one that takes the lease named for
// (upstream source, digest) in the shared database. Its holder id starts with the URL the other
// replicas reach it at, so a replica that finds the lease taken knows whom to stream from.
// Coordination is an optimisation, never a condition of a pull: a database that does not answer
// makes a replica download alone (as a single process would), and so does a lease whose holder
// turned out unreachable.
import type { Leases } from '../../database/leases.js';
import type { Logger } from '../../log.js';
import type { Digest } from '../digest.js';

/** A lease outlives its holder by at most this long; a live holder renews it every third of it. */
export const PULL_LEASE_TTL_MS = 30_000;

/** Lead: we download (and hold the lease until `release`). Follow: `peer` downloads; stream from it. */
export type PullClaim = { kind: 'lead'; release(): void } | { kind: 'follow'; peer: string };

/** The holder id for a replica reachable at `advertiseUrl`: the URL, a space, a unique process id. */
export function pullHolderId(advertiseUrl: string, processId: string): string {
  return `${advertiseUrl} ${processId}`;
}

/** The URL in a holder id; undefined for an id that names none (a lease some other code took). */
export function peerOf(holder: string): string | undefined {
  const url = holder.split(' ', 1)[0] ?? '';
  return /^https?:\/\/[^\s/]+$/.test(url) ? url : undefined;
}

export class PullLeases {
  constructor(
    private readonly leases: Leases,
    private readonly log?: Logger,
    private readonly ttlMs = PULL_LEASE_TTL_MS,
  ) {}

  /** This replica's own URL, from its holder id. */
  get self(): string | undefined {
    return peerOf(this.leases.holder);
  }

  /**
   * Takes the lease for a download of `digest` from `source`, or names the replica that holds it.
   * `avoid` is a peer that just failed us: its lease is not followed again (we download alone).
   */
  async claim(source: string, digest: Digest, avoid?: string): Promise<PullClaim> {
    const key = `pull:${source}:${digest}`;
    try {
      const lease = await this.leases.acquire(key, this.ttlMs);
      if (lease) return { kind: 'lead', release: this.hold(key) };
      const holder = await this.leases.current(key);
      // Released between the two queries: try once more rather than download without it.
      if (!holder) {
        const again = await this.leases.acquire(key, this.ttlMs);
        if (again) return { kind: 'lead', release: this.hold(key) };
      }
      const peer = holder && peerOf(holder.holder);
      if (peer && peer !== avoid && peer !== this.self) return { kind: 'follow', peer };
      this.log?.info({ digest, holder: peer ?? 'unknown' }, 'blob lease held by a replica we cannot follow: downloading it here too');
    } catch (err) {
      this.log?.warn({ digest, reason: (err as Error).message }, 'blob lease not available (database): downloading without it');
    }
    return { kind: 'lead', release: () => undefined };
  }

  /** Renews the lease until the returned function is called, which releases it. */
  private hold(key: string): () => void {
    let done = false;
    const timer = setInterval(() => {
      this.leases.renew(key, this.ttlMs).then((held) => {
        // Lost (the database was out of reach longer than the lease): the download goes on; at
        // worst another replica downloads the same blob as well.
        if (!held && !done) this.log?.warn({ key }, 'blob lease lost while downloading');
      }, (err: unknown) => this.log?.warn({ key, reason: (err as Error).message }, 'blob lease not renewed'));
    }, Math.max(1_000, Math.floor(this.ttlMs / 3)));
    timer.unref();
    return () => {
      if (done) return;
      done = true;
      clearInterval(timer);
      this.leases.release(key).catch((err: unknown) => this.log?.warn({ key, reason: (err as Error).message }, 'blob lease not released: it expires by itself'));
    };
  }
}
