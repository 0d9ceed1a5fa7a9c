// `layover node`: the node role alone, as its DaemonSet runs it. Imports only src/node/ (and
// Node's own modules), so that the process stays small; `layover serve` with `node.enabled`
// runs the same role beside others.
import { lineLogger } from '../node/line-logger.js';
import { startNode } from '../node/server.js';
import { NODE_HELP, NodeSettingsError, nodeArgs } from '../node/settings.js';

export { NODE_HELP };

export async function node(argv: string[]): Promise<void> {
  const { settings, logLevel } = nodeArgs(argv);
  const logger = lineLogger(logLevel);
  const role = await startNode(settings, { logger });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    void role.close().finally(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

export { NodeSettingsError };
