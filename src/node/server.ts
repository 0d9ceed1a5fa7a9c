// The node role: a DaemonSet on the host network listening on the node's loopback, so that the
// node's containerd reaches the registry at 127.0.0.1:<port> whatever kube-proxy does. A plain
// node:http server in front of raw sockets to the registry; it loads nothing of the registry.
import { Agent, createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { NodeLogger } from './line-logger.js';
import { forwarder } from './forward.js';
import { registryProbe } from './readiness.js';
import type { NodeSettings } from './settings.js';

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

export async function startNode(settings: NodeSettings, options: { logger: NodeLogger }): Promise<NodeRole> {
  const { logger } = options;
  const { host, port } = settings;
  if (!isLoopback(host)) {
    logger.warn({ listen: `${host}:${port}` }, 'the node role\'s listen address is not a loopback address: the registry is reachable from the network through this node');
  }
  const registryOrigin = new URL(settings.registry).origin;
  // Readiness probes reuse a connection; forwarded requests get one each (forward.ts).
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const ready = registryProbe({ registryOrigin, agent });
  const server = createServer({ requestTimeout: 0, keepAliveTimeout: 75_000, noDelay: true });
  const forward = forwarder({ registryOrigin, nodeHost: `${host}:${port}`, logger });

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const path = req.url?.split('?')[0];
    // Liveness: the process answers. Readiness: the registry behind it does.
    if (path === '/healthz') return answerJson(res, 200, { status: 'ok' }, req.method);
    if (path === '/readyz') {
      void ready().then((up) => (up ? answerJson(res, 200, { status: 'ok' }, req.method) : answerJson(res, 503, { status: 'registry unreachable' }, req.method)));
      return;
    }
    try {
      forward(req, res);
    } catch (err) {
      logger.error({ err: (err as Error).message }, 'node role: request failed');
      res.destroy();
    }
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
      agent.destroy();
    },
  };
}
