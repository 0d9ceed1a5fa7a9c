// `layover serve`: the registry (and, when configured, webhook and controller) in one process.
import { parseArgs } from 'node:util';
import { buildApp } from '../app.js';
import { loadConfig } from '../config/load.js';
import { createLogger } from '../log.js';

export const SERVE_HELP = `layover serve [--config FILE]

Runs the registry on the configuration in FILE (or $LAYOVER_CONFIG), or on the embedded
defaults: plain HTTP on 127.0.0.1:5000, storage in ./data.`;

export async function serve(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string', short: 'c' } }, strict: true });
  const bootLog = createLogger('info');
  const config = await loadConfig(values.config ?? process.env.LAYOVER_CONFIG, (msg) => bootLog.warn(msg));
  const logger = createLogger(config.log.level);
  const app = await buildApp(config, { logger });
  const address = await app.listen({ host: config.registry.host, port: config.registry.port });
  logger.info({ address, storage: config.storage.root, config: config.source ?? '(embedded defaults)' }, 'layover registry listening');

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    await app.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}
