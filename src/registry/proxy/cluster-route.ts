// The holder's side of a cold pull spread over replicas (cluster-follow.ts): another replica that
// found our lease streams the blob we are downloading from here. Only a download running here is
// served (nothing is started, nothing is read from the store): a follower that gets a 404 looks in
// the shared store or downloads itself. With authentication on, the follower's token is one it
// minted with the signing keys all replicas share (access `cluster:pull-through:follow`, which no
// user can get from /token); without it, anyone may pull anyway.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { TokenService } from '../auth/tokens.js';
import { BlobResponse } from '../blob-response.js';
import { assertDigest } from '../digest.js';
import { RegistryError } from '../errors.js';
import { assertRepositoryName } from '../names.js';
import { parseRange } from '../range.js';
import { PEER_ACCESS, PEER_PULL_PREFIX } from './cluster-follow.js';
import type { PullThroughSource } from './pull-through.js';

export interface PeerPullRouteOptions {
  /** The mirror whose upstream has this source id (source-id.ts). */
  sourceById(id: string): PullThroughSource | undefined;
  /** Set when the registry requires authentication. */
  tokens?: TokenService;
}

function sendError(reply: FastifyReply, error: RegistryError): void {
  reply.code(error.status).headers(error.headers).header('Content-Type', 'application/json; charset=utf-8').send(JSON.stringify(error.body()));
}

async function authorize(req: FastifyRequest, tokens: TokenService): Promise<void> {
  const match = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
  const denied = new RegistryError('UNAUTHORIZED', 'a replica token is required', undefined, { status: 401 });
  if (!match?.[1]) throw denied;
  try {
    const verified = await tokens.verify(match[1], 'access');
    const granted = verified.access.some((e) => e.type === PEER_ACCESS.type && e.name === PEER_ACCESS.name && e.actions.includes('follow'));
    if (!granted) throw denied;
  } catch (err) {
    if (err !== denied) req.log.info({ reason: (err as Error).message }, 'peer pull refused');
    throw denied;
  }
}

export async function peerPullRoutes(app: FastifyInstance, opts: PeerPullRouteOptions): Promise<void> {
  app.get<{ Params: { source: string; digest: string }; Querystring: { repository?: string } }>(`${PEER_PULL_PREFIX}/:source/:digest`, async (req, reply) => {
    try {
      if (opts.tokens) await authorize(req, opts.tokens);
      const { digest } = assertDigest(req.params.digest);
      const repository = assertRepositoryName(req.query.repository ?? '');
      const source = /^[0-9a-f]{32}$/.test(req.params.source) ? opts.sourceById(req.params.source) : undefined;
      const download = await source?.downloadForPeer(repository, digest);
      if (!download) throw new RegistryError('BLOB_UNKNOWN', 'not downloading this blob here', { digest });
      const size = download.size;
      const range = parseRange(req.headers.range, size);
      if (range.kind === 'unsatisfiable') throw new RegistryError('RANGE_INVALID', undefined, { size }, { headers: { 'Content-Range': `bytes */${size}` } });
      const partial = range.kind === 'partial';
      const start = partial ? range.start : 0;
      const end = partial ? range.end : size - 1;
      reply.header('Docker-Content-Digest', digest).header('Content-Type', 'application/octet-stream').header('Content-Length', end - start + 1);
      if (partial) reply.code(206).header('Content-Range', `bytes ${start}-${end}/${size}`);
      // The status line goes with the first bytes: a download that fails before is an error answer.
      await download.send(new BlobResponse(reply), start, end);
      return reply;
    } catch (err) {
      if (reply.sent || reply.raw.headersSent) return;
      if (err instanceof RegistryError) return sendError(reply, err);
      req.log.warn({ reason: (err as Error).message }, 'peer pull failed');
      sendError(reply, new RegistryError('UNAVAILABLE', 'the download failed', undefined, { status: 502 }));
    }
  });
}
