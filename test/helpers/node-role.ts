// layover's node role (src/node/) on 127.0.0.1 in front of a registry URL: in-process for tests,
// or as its own `layover serve` process (compiled like the image, for RSS measurements).
import { createWriteStream, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { stringify } from 'yaml';
import { lineLogger } from '../../src/node/line-logger.js';
import { startNode } from '../../src/node/server.js';
import { startChild } from './child-process.js';
import { freePort } from './free-port.js';
import { IMAGE_ENV, IMAGE_NODE_FLAGS, compiledEntry } from './layover.js';
import { makeTempDir } from './temp-dir.js';
import { waitForHttp } from './wait-for.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface NodeRoleHandle {
  url: string;
  /** `127.0.0.1:PORT`, for references such as `docker://HOST/repo:tag`. */
  host: string;
  port: number;
  log(): string;
  close(): Promise<void>;
}

export interface SpawnedNodeRole extends NodeRoleHandle {
  pid: number;
}

/** The configuration `layover serve` gets for the node role alone, as the DaemonSet's ConfigMap. */
export function nodeRaw(registryUrl: string, port: number): Record<string, unknown> {
  return { registry: { enabled: false }, node: { enabled: true, listen: `127.0.0.1:${port}`, registry: registryUrl }, log: { level: 'info' } };
}

export async function startNodeRole(registryUrl: string): Promise<NodeRoleHandle> {
  const tmp = makeTempDir('layover-node-');
  const logFile = path.join(tmp.path, 'node.log');
  const logStream = createWriteStream(logFile, { flags: 'a' });
  const node = await startNode({ host: '127.0.0.1', port: 0, registry: registryUrl }, { logger: lineLogger('info', logStream) });
  return {
    url: node.url,
    host: `127.0.0.1:${node.port}`,
    port: node.port,
    log: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
    async close() {
      await node.close();
      await new Promise<void>((resolve) => logStream.end(resolve));
      tmp.cleanup();
    },
  };
}

/**
 * `layover node`, as the DaemonSet runs it (or `layover serve` with only the node role enabled,
 * `viaServe`); `compiled` runs dist/ with the image's node flags, or `nodeFlags` instead (the
 * DaemonSet's command).
 */
export async function spawnNodeRole(registryUrl: string, opts: { compiled?: boolean; nodeFlags?: string[]; viaServe?: boolean } = {}): Promise<SpawnedNodeRole> {
  const tmp = makeTempDir('layover-node-');
  const port = await freePort();
  const configFile = path.join(tmp.path, 'node.yaml');
  writeFileSync(configFile, stringify(nodeRaw(registryUrl, port)));
  const logFile = path.join(tmp.path, 'node.log');
  // The DaemonSet's command replaces the image's entry point, flags included.
  const flags = opts.nodeFlags ?? (opts.compiled ? IMAGE_NODE_FLAGS : []);
  const entry = [...flags, opts.compiled ? await compiledEntry() : path.join(REPO_ROOT, 'bin', 'layover.js')];
  const command = opts.viaServe ? ['serve', '--config', configFile] : ['node', '--listen', `127.0.0.1:${port}`, '--registry', registryUrl];
  const child = startChild(process.execPath, [...entry, ...command], {
    stdoutFile: logFile,
    cwd: tmp.path,
    env: { ...process.env, LAYOVER_CONFIG: undefined, NODE_OPTIONS: undefined, ...(opts.compiled ? IMAGE_ENV : {}) },
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitForHttp(`${url}/healthz`, 30_000, () => child.alive());
  } catch (err) {
    await child.stop('SIGKILL');
    const log = readFileSync(logFile, 'utf8');
    tmp.cleanup();
    throw new Error(`the node role did not start: ${(err as Error).message}\n${log.slice(-3000)}`);
  }
  return {
    url,
    host: `127.0.0.1:${port}`,
    port,
    pid: child.pid,
    log: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
    async close() {
      await child.stop('SIGTERM', 5_000);
      tmp.cleanup();
    },
  };
}
