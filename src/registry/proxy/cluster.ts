// Assembles cold-pull coordination for replicas that share a database (imported only then): the
// blob leases (cluster-lease.ts), the client that follows another replica's download
// (cluster-follow.ts) and the route that lets others follow ours (cluster-route.ts).
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../../config/config.js';
import type { Database } from '../../database/database.js';
import { Leases, processHolderId } from '../../database/leases.js';
import type { Logger } from '../../log.js';
import type { TokenService } from '../auth/tokens.js';
import { PEER_ACCESS, PeerFollower } from './cluster-follow.js';
import { PullLeases, pullHolderId } from './cluster-lease.js';
import { peerPullRoutes } from './cluster-route.js';
import { certificateFingerprint, pinnedPeerConnector } from './cluster-tls.js';
import type { Mirrors } from './mirrors.js';

export interface ClusterPulls {
  leases: PullLeases;
  follower: PeerFollower;
  /** Registers the route other replicas follow this one's downloads through. */
  routes(app: FastifyInstance, mirrors: Mirrors): Promise<void>;
  close(): Promise<void>;
}

export function clusterPulls(config: Config, database: Database, tokens: TokenService | undefined, log: Logger): ClusterPulls {
  const advertiseUrl = config.cluster?.advertiseUrl;
  if (!advertiseUrl) throw new Error('cluster.advertiseUrl is not set');
  const leases = new PullLeases(new Leases(database, pullHolderId(advertiseUrl, processHolderId())), log);
  // The slowest upstream sets the waits: a holder answers once its upstream sent the headers.
  const timeouts = config.upstreams.map((u) => u.timeouts);
  const headersTimeoutMs = Math.max(10_000, ...timeouts.map((t) => t.blobHeadersMs)) + 5_000;
  // Silence this long on a peer's stream means it froze (a killed one closes at once); the holder's
  // commit of a large blob to the object store is a silent stretch too.
  const bodyTimeoutMs = Math.max(120_000, ...timeouts.map((t) => t.blobRateWindowMs * 4));
  const mintToken = tokens && (async () => (await tokens.issueAccess(`replica:${advertiseUrl}`, [PEER_ACCESS])).token);
  // With TLS, a peer is trusted when it presents this replica's own certificate (cluster-tls.ts).
  const tls = config.registry.tls;
  const connect = tls && pinnedPeerConnector(certificateFingerprint(readFileSync(tls.cert, 'utf8')), 3_000);
  const follower = new PeerFollower({ mintToken, headersTimeoutMs, bodyTimeoutMs, connect, log });
  log.info({ advertiseUrl }, 'cold pulls coordinated with the other replicas');
  return {
    leases,
    follower,
    routes: async (app, mirrors) => {
      await app.register(peerPullRoutes, { sourceById: (id) => mirrors.sourceById(id), tokens });
    },
    close: () => follower.close(),
  };
}
