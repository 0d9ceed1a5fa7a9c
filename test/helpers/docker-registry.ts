// A real CNCF Distribution 2.8 (Debian's docker-registry) on 127.0.0.1 with its own storage:
// a peer to copy to and from, an upstream to mirror, and the speed baseline.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { parseAccessLog, type LoggedRequest } from './access-log.js';
import { startChild } from './child-process.js';
import { freePort } from './free-port.js';
import { htpasswdLine } from './htpasswd.js';
import { requireTool } from './run-tool.js';
import { makeTempDir } from './temp-dir.js';
import { waitForHttp, waitForHttps } from './wait-for.js';

export interface DockerRegistryOptions {
  /** Require HTTP Basic auth with this one user (bcrypt htpasswd). */
  htpasswd?: { user: string; password: string };
  /** docker-registry's own pull-through cache mode, mirroring `remoteurl`. */
  proxy?: { remoteurl: string; username?: string; password?: string };
  /** Log level of the registry's own log (the access log is always written). */
  logLevel?: 'error' | 'warn' | 'info' | 'debug';
  /** Serve HTTPS with this PEM certificate and key (files); `url` is then https://. */
  tls?: { certificate: string; key: string };
  /**
   * Keep blobs in this S3 bucket (its s3 driver, v4 auth, plain HTTP) instead of the filesystem;
   * `redirect` keeps Distribution's default of answering blob GETs with a presigned URL (off here).
   */
  s3?: { endpoint: string; bucket: string; accessKeyId: string; secretAccessKey: string; region?: string; redirect?: boolean };
}

export interface DockerRegistry {
  url: string;
  host: string;
  port: number;
  pid: number;
  /** The registry's storage root (rootdirectory). */
  root: string;
  /** Its configuration file (for `docker-registry garbage-collect`). */
  configFile: string;
  /** Every request served so far, parsed from the access log. */
  accessLog(): LoggedRequest[];
  /** The registry's own log, for diagnosing a failing test. */
  log(): string;
  close(): Promise<void>;
}

export async function startDockerRegistry(opts: DockerRegistryOptions = {}): Promise<DockerRegistry> {
  const bin = requireTool('docker-registry');
  const tmp = makeTempDir('layover-docker-registry-');
  const root = path.join(tmp.path, 'storage');
  const port = await freePort();
  const config: Record<string, unknown> = {
    version: 0.1,
    log: { level: opts.logLevel ?? 'warn', formatter: 'text', accesslog: { disabled: false } },
    storage: {
      ...(opts.s3
        ? {
          s3: {
            regionendpoint: opts.s3.endpoint,
            bucket: opts.s3.bucket,
            accesskey: opts.s3.accessKeyId,
            secretkey: opts.s3.secretAccessKey,
            region: opts.s3.region ?? 'us-east-1',
            secure: false,
            v4auth: true,
          },
          redirect: { disable: !opts.s3.redirect },
        }
        : { filesystem: { rootdirectory: root } }),
      cache: { blobdescriptor: 'inmemory' },
      delete: { enabled: true },
      maintenance: { uploadpurging: { enabled: false } },
    },
    http: {
      addr: `127.0.0.1:${port}`,
      secret: Math.random().toString(36).slice(2),
      headers: { 'X-Content-Type-Options': ['nosniff'] },
      ...(opts.tls ? { tls: { certificate: opts.tls.certificate, key: opts.tls.key } } : {}),
    },
  };
  if (opts.htpasswd) {
    const file = path.join(tmp.path, 'htpasswd');
    writeFileSync(file, `${await htpasswdLine(opts.htpasswd.user, opts.htpasswd.password)}\n`, { mode: 0o600 });
    config.auth = { htpasswd: { realm: 'layover-test', path: file } };
  }
  if (opts.proxy) config.proxy = opts.proxy;
  const configFile = path.join(tmp.path, 'config.yml');
  writeFileSync(configFile, stringify(config), { mode: 0o600 });

  // The access log (gorilla's combined format) goes to stdout, logrus to stderr.
  const accessFile = path.join(tmp.path, 'access.log');
  const logFile = path.join(tmp.path, 'registry.log');
  // Its S3 driver panics on the AWS_CA_BUNDLE this machine sets (and needs none for plain HTTP).
  const env = { ...process.env };
  delete env.AWS_CA_BUNDLE;
  const child = startChild(bin, ['serve', configFile], { stdoutFile: accessFile, stderrFile: logFile, env });
  const url = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  try {
    // Readiness only: whether the test's certificate is trusted is for the test to find out.
    if (opts.tls) await waitForHttps(`${url}/v2/`, 15_000, child.alive);
    else await waitForHttp(`${url}/v2/`, 15_000, child.alive);
  } catch (err) {
    await child.stop('SIGKILL');
    const log = readFileSync(logFile, 'utf8');
    tmp.cleanup();
    throw new Error(`docker-registry did not start: ${(err as Error).message}\n${log.slice(-2000)}`);
  }
  return {
    url,
    host: `127.0.0.1:${port}`,
    port,
    pid: child.pid,
    root,
    configFile,
    accessLog: () => parseAccessLog(readFileSync(accessFile, 'utf8')),
    log: () => readFileSync(logFile, 'utf8'),
    async close() {
      await child.stop('SIGTERM', 3_000);
      tmp.cleanup();
    },
  };
}
