// /healthz and /readyz for the kubelet's probes. The Distribution base endpoint cannot serve
// them: with auth on it answers 401, which a probe counts as a failure. Neither route needs
// credentials, and neither says anything a client could not learn from /v2/.
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';

export interface HealthOptions {
  /** The storage root: the registry is ready only while it can write there. */
  storageRoot: string;
}

export async function healthPlugin(app: FastifyInstance, options: HealthOptions): Promise<void> {
  // Liveness: the event loop answers. Nothing more, so a full disk never restarts the Pod.
  app.get('/healthz', async () => ({ status: 'ok' }));
  // Readiness: a registry that cannot write its storage (volume gone read-only) takes no traffic.
  app.get('/readyz', async (_req, reply) => {
    try {
      await access(options.storageRoot, constants.W_OK);
      return { status: 'ok' };
    } catch {
      return reply.code(503).send({ status: 'storage not writable' });
    }
  });
}
