// The node role: a DaemonSet on the host network listening on the node's loopback, so that the
// node's containerd reaches the registry at 127.0.0.1:<port> whatever kube-proxy does. It is a
// plain node:http server in front of one undici pool; it loads nothing of the registry.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent } from 'undici';
import type { Config } from '../config/config.js';
import type { Logger } from '../log.js';
import { slabConnector } from '../registry/proxy/slab-connector.js';
import { forwarder } from './forward.js';
import { registryProbe } from './readiness.js';

export interface NodeRole {
  /** `http://127.0.0.1:<port>` */
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Loopback addresses: anything else would expose the registry on the node's network. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

function answerJson(res: ServerResponse, status: number, body: object, method: string | undefined): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(method === 'HEAD' ? undefined : text);
}

export async function startNode(config: Config, options: { logger: Logger }): Promise<NodeRole> {
  const { logger } = options;
  const { host, port } = config.node;
  if (!isLoopback(host)) {
    logger.warn({ listen: `${host}:${port}` }, 'node.listen is not a loopback address: the registry is reachable from the network through this node');
  }
  const registryOrigin = new URL(config.node.registry).origin;
  // Keep-alive connections to the registry, reused across pulls; no body or header deadline
  // shorter than the registry's own (a cold mirror pull may take a while before its first byte).
  // Sockets read into reused slabs (forward.ts gives each chunk back once the client has it).
  const dispatcher = new Agent({ connect: slabConnector({ timeout: 10_000 }), keepAliveTimeout: 60_000, keepAliveMaxTimeout: 600_000, headersTimeout: 300_000, bodyTimeout: 300_000 });
  const ready = registryProbe({ registryOrigin, dispatcher });
  const server = createServer({ requestTimeout: 0, keepAliveTimeout: 75_000 });
  const forward = forwarder({ registryOrigin, nodeHost: `${host}:${port}`, dispatcher, logger });

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = req.url?.split('?')[0];
    // Liveness: the process answers. Readiness: the registry behind it does.
    if (path === '/healthz') return answerJson(res, 200, { status: 'ok' }, req.method);
    if (path === '/readyz') {
      return (await ready()) ? answerJson(res, 200, { status: 'ok' }, req.method) : answerJson(res, 503, { status: 'registry unreachable' }, req.method);
    }
    return forward(req, res);
  };
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch((err: unknown) => {
      logger.error({ err: (err as Error).message }, 'node role: request failed');
      res.destroy();
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  const shown = host.includes(':') ? `[${host}]` : host;
  logger.info({ listen: `${shown}:${bound}`, registry: registryOrigin }, 'layover node role listening');
  return {
    url: `http://${shown}:${bound}`,
    port: bound,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      await dispatcher.close();
    },
  };
}
