// /healthz and /readyz for the kubelet's probes. The Distribution base endpoint cannot serve
// them: with auth on it answers 401, which a probe counts as a failure. Neither route needs
// credentials, and neither says anything a client could not learn from /v2/.
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';

export interface HealthOptions {
  /** The storage root: the registry is ready only while it can write there. */
  storageRoot: string;
  /** The shared database, when there is one: the registry is ready only while it answers. */
  database?: { ping(): Promise<void> };
  /** How long the database may take to answer a readiness ping (default 2 s). */
  databaseTimeoutMs?: number;
  /** The blob content's store, when it is remote (an S3 bucket): ready only while it answers. */
  content?: { pingContent?(signal: AbortSignal): Promise<void> };
  /** How long the content store may take to answer (default 2 s). */
  contentTimeoutMs?: number;
}

function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('timed out')), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

export async function healthPlugin(app: FastifyInstance, options: HealthOptions): Promise<void> {
  // Liveness: the event loop answers. Nothing more, so a full disk or a database outage never
  // restarts the Pod (restarting would not bring either back).
  app.get('/healthz', async () => ({ status: 'ok' }));
  // Readiness: a registry that cannot write its storage (volume gone read-only) or reach its
  // database or its object store takes no traffic; the Service sends it to the replicas that can.
  app.get('/readyz', async (_req, reply) => {
    try {
      await access(options.storageRoot, constants.W_OK);
    } catch {
      return reply.code(503).send({ status: 'storage not writable' });
    }
    if (options.database) {
      try {
        await within(options.database.ping(), options.databaseTimeoutMs ?? 2_000);
      } catch {
        return reply.code(503).send({ status: 'database unreachable' });
      }
    }
    if (options.content?.pingContent) {
      try {
        await options.content.pingContent(AbortSignal.timeout(options.contentTimeoutMs ?? 2_000));
      } catch {
        return reply.code(503).send({ status: 'object storage unreachable' });
      }
    }
    return { status: 'ok' };
  });
}
