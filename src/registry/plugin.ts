// The Distribution API as a fastify plugin.
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config/config.js';
import { RegistryError } from './errors.js';

export async function registryPlugin(app: FastifyInstance, opts: { config: Config }): Promise<void> {
  void opts;
  app.setErrorHandler((err, _req, reply) => {
    const error = err instanceof RegistryError ? err : new RegistryError('UNKNOWN');
    if (!(err instanceof RegistryError)) app.log.error({ err }, 'unhandled error');
    void reply.code(error.status).headers(error.headers).type('application/json').send(error.body());
  });
  app.get('/v2/', async (_req, reply) => {
    void reply.header('Docker-Distribution-API-Version', 'registry/2.0').type('application/json').send('{}');
  });
}
