// A real containerd with its own root, state, socket and config in a temp directory: the puller
// kubelet uses. Only what `ctr images pull` needs is loaded (no CRI unless asked), and layers are unpacked
// with the `native` snapshotter, which needs no overlay mount.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { startChild } from './child-process.js';
import { requireTool, runTool } from './run-tool.js';
import { makeTempDir } from './temp-dir.js';
import { waitFor } from './wait-for.js';

const CRI_PLUGIN = 'io.containerd.grpc.v1.cri';
const DISABLED_PLUGINS = [
  CRI_PLUGIN,
  'io.containerd.snapshotter.v1.aufs',
  'io.containerd.snapshotter.v1.btrfs',
  'io.containerd.snapshotter.v1.devmapper',
  'io.containerd.snapshotter.v1.zfs',
  'io.containerd.snapshotter.v1.overlayfs',
  'io.containerd.tracing.processor.v1.otlp',
  'io.containerd.internal.v1.tracing',
];

export const SNAPSHOTTER = 'native';
const NAMESPACE = 'layover-test';

export interface PullOptions {
  plainHttp?: boolean;
  user?: { user: string; password: string };
  /** containerd's `hosts.toml` directory (mirror configuration), see `writeHostsToml`. */
  hostsDir?: string;
  platform?: string;
  allPlatforms?: boolean;
}

export interface ImageInfo { ref: string; type: string; digest: string }

export interface UnpackedFile { path: string; size: number }

export interface Containerd {
  address: string;
  root: string;
  pid: number;
  /** `ctr --address SOCKET --namespace layover-test ARGS`: stdout, or an error carrying stderr. */
  ctr(args: string[]): Promise<string>;
  /** `ctr images pull` (fetch, verify every digest, unpack with the native snapshotter). */
  pullWithCtr(ref: string, opts?: PullOptions): Promise<string>;
  images(): Promise<ImageInfo[]>;
  /** Digests of every blob in containerd's content store. */
  contentDigests(): Promise<string[]>;
  /** A blob's bytes from the content store (`ctr content get`). */
  contentGet(digest: string): Promise<Buffer>;
  /** Regular files of every unpacked snapshot, relative to the snapshot's root. */
  unpackedFiles(): UnpackedFile[];
  log(): string;
  close(): Promise<void>;
}

function tomlString(s: string): string {
  return JSON.stringify(s);
}

function walk(dir: string, base: string, out: UnpackedFile[]): void {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) walk(full, base, out);
    else if (entry.isFile()) out.push({ path: path.relative(base, full), size: statSync(full).size });
  }
}

/**
 * The CRI plugin (kubelet's image service) for image pulls only: no cgroups, AppArmor or CNI
 * (it logs that no network config was found and serves images anyway), the native snapshotter.
 */
function criConfig(dir: string): string[] {
  return [
    '[plugins."io.containerd.grpc.v1.cri"]',
    '  disable_cgroup = true',
    '  disable_apparmor = true',
    '  restrict_oom_score_adj = true',
    '  disable_tcp_service = true',
    '  [plugins."io.containerd.grpc.v1.cri".containerd]',
    `    snapshotter = ${tomlString(SNAPSHOTTER)}`,
    '  [plugins."io.containerd.grpc.v1.cri".cni]',
    `    bin_dir = ${tomlString(path.join(dir, 'cni', 'bin'))}`,
    `    conf_dir = ${tomlString(path.join(dir, 'cni', 'conf'))}`,
  ];
}

/** `cri: true` also loads the CRI plugin (see cri.ts for its image service), as on a node. */
export async function startContainerd(opts: { cri?: boolean } = {}): Promise<Containerd> {
  const bin = requireTool('containerd');
  requireTool('ctr');
  const tmp = makeTempDir('layover-containerd-');
  const root = path.join(tmp.path, 'root');
  const state = path.join(tmp.path, 'state');
  const address = path.join(tmp.path, 'containerd.sock');
  await mkdir(root, { recursive: true });
  const config = [
    'version = 2',
    `root = ${tomlString(root)}`,
    `state = ${tomlString(state)}`,
    `disabled_plugins = [${DISABLED_PLUGINS.filter((p) => !(opts.cri && p === CRI_PLUGIN)).map(tomlString).join(', ')}]`,
    '[grpc]',
    `  address = ${tomlString(address)}`,
    '[ttrpc]',
    `  address = ${tomlString(`${address}.ttrpc`)}`,
    '[debug]',
    '  address = ""',
    '[metrics]',
    '  address = ""',
    // Without this the opt plugin creates /opt/containerd on the host.
    '[plugins."io.containerd.internal.v1.opt"]',
    `  path = ${tomlString(path.join(tmp.path, 'opt'))}`,
    ...(opts.cri ? criConfig(tmp.path) : []),
    '',
  ].join('\n');
  const configFile = path.join(tmp.path, 'config.toml');
  writeFileSync(configFile, config);
  const logFile = path.join(tmp.path, 'containerd.log');
  const child = startChild(bin, ['--config', configFile, '--log-level', 'warn'], { stdoutFile: logFile });

  const ctr = async (args: string[]) => (await runTool('ctr', ['--address', address, '--namespace', NAMESPACE, ...args], { timeoutMs: 300_000 })).stdout;
  try {
    await waitFor(async () => {
      if (!child.alive()) throw new Error('containerd exited');
      return existsSync(address) && (await ctr(['version']), true);
    }, 20_000, 100);
  } catch (err) {
    await child.stop('SIGKILL');
    const log = readFileSync(logFile, 'utf8');
    tmp.cleanup();
    throw new Error(`containerd did not start: ${(err as Error).message}\n${log.slice(-2000)}`);
  }

  const snapshotsDir = path.join(root, 'io.containerd.snapshotter.v1.native', 'snapshots');
  return {
    address,
    root,
    pid: child.pid,
    ctr,
    pullWithCtr(ref, opts = {}) {
      return ctr([
        'images', 'pull', '--snapshotter', SNAPSHOTTER,
        ...(opts.plainHttp ? ['--plain-http'] : []),
        ...(opts.user ? ['--user', `${opts.user.user}:${opts.user.password}`] : []),
        ...(opts.hostsDir ? ['--hosts-dir', opts.hostsDir] : []),
        ...(opts.platform ? ['--platform', opts.platform] : []),
        ...(opts.allPlatforms ? ['--all-platforms'] : []),
        ref,
      ]);
    },
    async images() {
      const out = await ctr(['images', 'ls']);
      return out.split('\n').slice(1).filter(Boolean).map((line) => {
        const [ref = '', type = '', digest = ''] = line.split(/\s+/);
        return { ref, type, digest };
      });
    },
    async contentDigests() {
      const out = await ctr(['content', 'ls', '--quiet']);
      return out.split('\n').map((l) => l.trim()).filter(Boolean);
    },
    async contentGet(digest) {
      return new Promise<Buffer>((resolve, reject) => {
        const child = spawn(requireTool('ctr'), ['--address', address, '--namespace', NAMESPACE, 'content', 'get', digest], { stdio: ['ignore', 'pipe', 'pipe'] });
        const out: Buffer[] = [];
        const err: Buffer[] = [];
        child.stdout.on('data', (c: Buffer) => out.push(c));
        child.stderr.on('data', (c: Buffer) => err.push(c));
        child.once('error', reject);
        child.once('close', (code) => (code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`ctr content get ${digest}: ${Buffer.concat(err).toString()}`))));
      });
    },
    unpackedFiles() {
      const out: UnpackedFile[] = [];
      if (!existsSync(snapshotsDir)) return out;
      for (const id of readdirSync(snapshotsDir)) walk(path.join(snapshotsDir, id), path.join(snapshotsDir, id), out);
      return out;
    },
    log: () => readFileSync(logFile, 'utf8'),
    async close() {
      await child.stop('SIGTERM', 5_000);
      tmp.cleanup();
    },
  };
}

/**
 * Writes `<dir>/<registryHost>/hosts.toml` so that pulls of `registryHost/...` go to `mirrorUrl`
 * (containerd then appends `?ns=<registryHost>` to its requests), as on a node mirror.
 * containerd falls back to the `server` when the mirror fails; left to itself that would be the
 * real registryHost on the internet, so it defaults to a closed loopback port.
 */
export async function writeHostsToml(dir: string, registryHost: string, mirrorUrl: string, opts: { server?: string } = {}): Promise<void> {
  const hostDir = path.join(dir, registryHost);
  await mkdir(hostDir, { recursive: true });
  const server = opts.server ?? 'http://127.0.0.1:9';
  writeFileSync(path.join(hostDir, 'hosts.toml'), `server = ${tomlString(server)}\n\n[host.${tomlString(mirrorUrl)}]\n  capabilities = ["pull", "resolve"]\n  skip_verify = true\n`);
}
