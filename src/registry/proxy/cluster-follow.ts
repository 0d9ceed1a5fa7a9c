// A replica that finds another one downloading a blob (cluster-lease.ts) streams it from that
// replica instead of asking the upstream again: the holder serves its running download
// (cluster-route.ts), whose bytes arrive as the upstream sends them and whose last byte comes only
// after the holder verified the digest and committed the blob to the shared store. The follower
// passes the bytes on without keeping them; if the holder's stream breaks, the follower's client
// is cut (never a short 200).
import type { Readable } from 'node:stream';
import { Agent, request, type buildConnector } from 'undici';
import type { Logger } from '../../log.js';
import { StreamSink, type BlobSink } from '../blob-response.js';
import type { Digest } from '../digest.js';
import { RegistryError } from '../errors.js';
import type { BlobHit } from '../service.js';
import type { ByteRange } from '../storage/store.js';

/** The holder's route for one running download (cluster-route.ts). */
export const PEER_PULL_PREFIX = '/_layover/cluster/pulls';
/** The access a follower's token carries, and the holder's route requires. */
export const PEER_ACCESS = { type: 'cluster', name: 'pull-through', actions: ['follow'] };
/** A stream opened for a client that never reads it (its request failed meanwhile) is dropped after this long. */
const UNUSED_STREAM_MS = 30_000;
/** A peer that could not be reached is not asked again for this long. */
const UNREACHABLE_PEER_MS = 10_000;

export function peerPullPath(source: string, digest: Digest, repository: string): string {
  return `${PEER_PULL_PREFIX}/${source}/${digest}?repository=${encodeURIComponent(repository)}`;
}

export interface PeerFollowerOptions {
  /** A short-lived token for the holder's route, when the registry requires authentication. */
  mintToken?: () => Promise<string>;
  /** The holder answers once its upstream did: allow the upstream's own wait for blob headers. */
  headersTimeoutMs: number;
  /** Silence on a stream this long means the holder is gone (or stopped). */
  bodyTimeoutMs: number;
  connectTimeoutMs?: number;
  /** How connections to peers are made and trusted (cluster-tls.ts when the registry serves TLS). */
  connect?: buildConnector.connector;
  log?: Logger;
}

/** An open stream of bytes from the holder; `size` is the whole blob's. */
export interface PeerStream { size: number; body: Readable }

/** Why following a peer failed; `unreachable` peers are not asked again for a while. */
export class PeerUnavailable extends Error {
  constructor(readonly peer: string, readonly reason: string, readonly unreachable: boolean) {
    super(`peer ${peer}: ${reason}`);
    this.name = 'PeerUnavailable';
  }
}

export interface FollowHooks {
  /** Why a blob of the size the peer declares is refused here (the client is told), if it is. */
  refuse(size: number): RegistryError | undefined;
  /** Runs once a whole blob went through, before its end reaches the client (link the repository). */
  completed(): Promise<void>;
}

export class PeerFollower {
  private readonly agent: Agent;
  /** Peers that did not answer lately, and until when they are left alone. */
  private readonly unreachable = new Map<string, number>();

  constructor(private readonly opts: PeerFollowerOptions) {
    this.agent = new Agent({
      connect: opts.connect ?? { timeout: opts.connectTimeoutMs ?? 3_000 },
      headersTimeout: opts.headersTimeoutMs,
      bodyTimeout: opts.bodyTimeoutMs,
    });
  }

  /**
   * A client's hit for a blob that `peer` downloads, its stream already open; undefined when the
   * peer does not serve it (unreachable, finished, failed), and the caller pulls it another way.
   */
  async follow(peer: string, source: string, repository: string, digest: Digest, hooks: FollowHooks): Promise<BlobHit | undefined> {
    const until = this.unreachable.get(peer);
    if (until !== undefined && until > Date.now()) return undefined;
    this.unreachable.delete(peer);
    try {
      const first = await this.open(peer, source, repository, digest);
      const refused = hooks.refuse(first.size);
      if (refused) {
        first.body.on('error', () => undefined);
        first.body.destroy();
        throw refused;
      }
      return followedHit({
        digest,
        first,
        reopen: (range) => this.open(peer, source, repository, digest, range),
        completed: hooks.completed,
      });
    } catch (err) {
      if (!(err instanceof PeerUnavailable)) throw err;
      if (err.unreachable) {
        if (this.unreachable.size > 256) this.unreachable.clear();
        this.unreachable.set(peer, Date.now() + UNREACHABLE_PEER_MS);
      }
      this.opts.log?.info({ peer, digest, reason: err.reason }, 'peer replica did not serve a blob');
      return undefined;
    }
  }

  /** Opens the holder's stream of the blob (or of `range`); throws PeerUnavailable when it does not serve it. */
  async open(peer: string, source: string, repository: string, digest: Digest, range?: ByteRange): Promise<PeerStream> {
    const headers: Record<string, string> = {};
    if (this.opts.mintToken) headers.authorization = `Bearer ${await this.opts.mintToken()}`;
    if (range) headers.range = `bytes=${range.start}-${range.end}`;
    let res;
    try {
      res = await request(`${peer}${peerPullPath(source, digest, repository)}`, { dispatcher: this.agent, headers });
    } catch (err) {
      throw new PeerUnavailable(peer, (err as Error).message, true);
    }
    const expected = range ? 206 : 200;
    const length = Number(res.headers['content-length']);
    const total = range ? Number(/\/(\d+)$/.exec(String(res.headers['content-range'] ?? ''))?.[1]) : length;
    if (res.statusCode !== expected || !Number.isSafeInteger(length) || !Number.isSafeInteger(total)) {
      res.body.on('error', () => undefined);
      res.body.destroy();
      throw new PeerUnavailable(peer, `answered ${res.statusCode}`, false);
    }
    return { size: total, body: res.body };
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}

/**
 * Passes `stream` (exactly `length` bytes) to `sink`. Before the first byte a failure is thrown
 * (the client can still be answered); after it, the client is cut.
 */
async function pump(stream: Readable, length: number, sink: BlobSink, beforeEnd?: () => Promise<void>): Promise<void> {
  let begun = false;
  let got = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      got += chunk.length;
      if (got > length) throw new Error('the holder sent more than it declared');
      if (!begun) {
        begun = true;
        sink.begin();
      }
      await sink.write([chunk]);
    }
    if (got !== length) throw new Error(`the holder's stream ended after ${got} of ${length} bytes`);
    await beforeEnd?.();
    if (!begun) sink.begin();
    sink.end();
  } catch (err) {
    stream.on('error', () => undefined);
    stream.destroy();
    const error = err instanceof Error ? err : new Error(String(err));
    if (!begun) throw new RegistryError('UNAVAILABLE', 'the replica downloading this blob broke off', undefined, { status: 502 });
    sink.abort(error);
  }
}

export interface FollowedBlob {
  digest: Digest;
  /** The stream already opened (of the whole blob). */
  first: PeerStream;
  /** Opens another stream, for a range. */
  reopen(range: ByteRange): Promise<PeerStream>;
  /** Runs once a whole blob went through, before its end reaches the client (link the repository). */
  completed(): Promise<void>;
}

/** A blob hit served from the holder's stream. */
export function followedHit(followed: FollowedBlob): BlobHit {
  const { first, digest } = followed;
  const size = first.size;
  let taken = false;
  const unused = setTimeout(() => {
    if (!taken) first.body.destroy();
  }, UNUSED_STREAM_MS);
  unused.unref();
  const streamFor = async (start: number, end: number): Promise<{ stream: Readable; whole: boolean }> => {
    const whole = start === 0 && end === size - 1;
    if (!taken && whole) {
      taken = true;
      clearTimeout(unused);
      return { stream: first.body, whole };
    }
    if (!taken) {
      taken = true;
      clearTimeout(unused);
      first.body.on('error', () => undefined);
      first.body.destroy();
    }
    try {
      const other = await followed.reopen({ start, end });
      return { stream: other.body, whole };
    } catch (err) {
      if (!(err instanceof PeerUnavailable)) throw err;
      throw new RegistryError('UNAVAILABLE', 'the replica downloading this blob did not serve the range', undefined, { status: 502 });
    }
  };
  const sendTo = async (sink: BlobSink, start: number, end: number) => {
    const { stream, whole } = await streamFor(start, end);
    await pump(stream, end - start + 1, sink, whole ? () => followed.completed() : undefined);
  };
  return {
    stat: { digest, size },
    open: async (range) => {
      const sink = new StreamSink();
      sendTo(sink, range?.start ?? 0, range?.end ?? size - 1).catch((err: unknown) => sink.abort(err instanceof Error ? err : new Error(String(err))));
      return sink.stream;
    },
    send: (response, start, end) => sendTo(response, start, end),
  };
}
