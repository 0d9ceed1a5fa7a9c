// What the node role needs to know, and `layover node`'s arguments for it. Parsed with Node's own
// parseArgs, not the registry's YAML/JSON-schema configuration loader: that loader and its
// dependencies would double what this small process holds (see test/bench/node.ts).
import { isIP } from 'node:net';
import { parseArgs, UsageError } from '../cli/args.js';
import { isNodeLogLevel, type NodeLogLevel } from './line-logger.js';

export interface NodeSettings {
  /** The loopback address to listen on (an IP literal, or `localhost`). */
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  /** The registry Service's URL; only its origin is used. */
  registry: string;
}

export const NODE_DEFAULTS = { listen: '127.0.0.1:5005', registry: 'http://layover-registry.layover.svc:5000' };

export class NodeSettingsError extends Error {}

/** `host:port`, `[v6]:port`; a port in kube-proxy's NodePort range would be intercepted by its rules. */
export function parseListen(value: string, key = '--listen'): { host: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value);
  const host = match?.[1] ?? match?.[2];
  const port = Number(match?.[3]);
  if (!match || host === undefined || port > 65535) throw new NodeSettingsError(`${key}: expected host:port (or [v6]:port), got "${value}"`);
  if (match[1] !== undefined && isIP(host) !== 6) throw new NodeSettingsError(`${key}: "${host}" is not an IPv6 address`);
  if (port >= 30000 && port <= 32767) throw new NodeSettingsError(`${key}: port ${port} is in the NodePort range 30000-32767; pick one outside it`);
  return { host, port };
}

export function parseRegistry(value: string, key = '--registry'): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new NodeSettingsError(`${key}: not a URL: "${value}"`);
  }
  if (url.protocol !== 'http:') throw new NodeSettingsError(`${key}: the node role forwards plain HTTP inside the cluster; got ${url.protocol}//`);
  return url.origin;
}

export const NODE_HELP = `layover node [--listen HOST:PORT] [--registry URL] [--log-level LEVEL]

The node-local entry point (a DaemonSet on the host network): listens on the node's loopback and
forwards every request to the registry, so the node's containerd pulls at 127.0.0.1:PORT
whatever kube-proxy does. Loads nothing of the registry.
  --listen      loopback address, default ${NODE_DEFAULTS.listen} (outside the NodePort range)
  --registry    the registry Service's URL, default ${NODE_DEFAULTS.registry}
  --log-level   debug | info | warn | error | silent, default info
Readiness: GET /readyz (the registry answers); liveness: GET /healthz.`;

export function nodeArgs(argv: string[]): { settings: NodeSettings; logLevel: NodeLogLevel } {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: { listen: { type: 'string' }, registry: { type: 'string' }, 'log-level': { type: 'string' } },
      strict: true,
      allowPositionals: false,
    });
  } catch (err) {
    // The CLI's own wording ("unknown option --bogus"), not Node's; cli/args.ts loads only node:util.
    if (err instanceof UsageError) throw new NodeSettingsError(`${err.message}; see 'layover node --help'`);
    throw new NodeSettingsError((err as Error).message.split('\n')[0] ?? 'bad arguments');
  }
  const { values } = parsed;
  const logLevel = values['log-level'] ?? 'info';
  if (!isNodeLogLevel(logLevel)) throw new NodeSettingsError(`--log-level: one of debug, info, warn, error, silent; got "${logLevel}"`);
  const { host, port } = parseListen(values.listen ?? NODE_DEFAULTS.listen);
  return { settings: { host, port, registry: parseRegistry(values.registry ?? NODE_DEFAULTS.registry) }, logLevel };
}
