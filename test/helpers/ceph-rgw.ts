// A real S3 endpoint for the tests: a one-node Ceph cluster (one monitor, one OSD on memstore, so
// nothing touches a disk but the monitor's small store) with Ceph's S3 gateway on loopback, all
// from Debian's packages and all inside one temp dir. Starts in about 10–15 s; share one per test
// file and give each test its own bucket (`createBucket()`).
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { startChild, type Child } from './child-process.js';
import { freePort } from './free-port.js';
import { requireTool, runTool } from './run-tool.js';
import { makeTempDir } from './temp-dir.js';
import { StopWaiting, waitFor } from './wait-for.js';

export interface CephRgwOptions {
  /** The OSD's memstore capacity (RAM it may use for objects). Default 4 GiB. */
  memoryBytes?: number;
}

export interface CephRgw {
  /** http://127.0.0.1:PORT, the S3 endpoint (path-style buckets). */
  endpoint: string;
  port: number;
  region: 'us-east-1';
  accessKeyId: string;
  secretAccessKey: string;
  /** The cluster's temp dir (ceph.conf, logs, monitor store). */
  dir: string;
  /** The daemons' pids: monitor, OSD, gateway. */
  pids: number[];
  /** An S3 client for this endpoint with the test user's keys. */
  client(): S3Client;
  /** Creates a fresh bucket with a unique name (prefix kept) and returns its name. */
  createBucket(prefix?: string): Promise<string>;
  /** Stops the S3 gateway (radosgw) only: the cluster and its objects stay; connections are refused. */
  stopGateway(): Promise<void>;
  /** Starts the gateway again on the same port and waits until it answers. */
  startGateway(): Promise<void>;
  /** The log of one daemon ('mon' | 'osd' | 'rgw'), for diagnosing a failing test. */
  log(daemon: 'mon' | 'osd' | 'rgw'): string;
  close(): Promise<void>;
}

const ACCESS_KEY = 'LAYOVERTESTACCESSKEY';
const SECRET_KEY = 'layover-test-secret-key-0123456789abcdef';
const DEBIAN_PACKAGE = { 'ceph-mon': 'ceph-mon', 'ceph-osd': 'ceph-osd', radosgw: 'radosgw', 'radosgw-admin': 'radosgw', ceph: 'ceph-common', monmaptool: 'ceph-common' } as const;

export async function startCephRgw(opts: CephRgwOptions = {}): Promise<CephRgw> {
  for (const [tool, pkg] of Object.entries(DEBIAN_PACKAGE)) requireTool(tool, pkg);
  const setpriv = requireTool('setpriv', 'util-linux');
  const tmp = makeTempDir('layover-ceph-');
  const dir = tmp.path;
  const [monPort, rgwPort] = await Promise.all([freePort(), freePort()]);
  const fsid = randomUUID();
  const conf = path.join(dir, 'ceph.conf');
  for (const sub of ['run', 'log', 'mon/mon.a', 'osd/osd.0', 'rgw']) mkdirSync(path.join(dir, sub), { recursive: true });
  writeFileSync(conf, cephConf({ dir, fsid, monPort, rgwPort, memoryBytes: opts.memoryBytes ?? 4 * 2 ** 30 }));

  // Every tool reads only this cluster's ceph.conf, never /etc/ceph, and cannot reach another.
  const env = { ...process.env, CEPH_CONF: conf };
  const run = (tool: string, args: string[], timeoutMs = 30_000) => runTool(tool, ['--conf', conf, ...args], { env, timeoutMs });
  const logOf = (name: string) => path.join(dir, 'log', `${name}.log`);
  const children: Child[] = [];
  // Foreground daemons (-f) owned by the test process. A test worker can end without running its
  // exit handlers, so the kernel also kills each daemon when its parent goes (setpriv execs it:
  // the child's pid is the daemon's).
  const start = (tool: string, args: string[], name: string): Child => {
    const child = startChild(setpriv, ['--pdeathsig', 'KILL', '--', requireTool(tool), '--conf', conf, '-f', ...args], { stdoutFile: path.join(dir, 'log', `${name}.out`), env });
    children.push(child);
    return child;
  };
  const stopAll = async () => {
    // The gateway first, then the OSD, then the monitor: each stops within ~2 s on SIGTERM.
    for (const child of [...children].reverse()) await child.stop('SIGTERM', 5_000);
  };
  const alive = (child: Child, name: string) => () => {
    if (!child.alive()) throw new StopWaiting(`${name} exited`);
  };
  let gateway: Child | undefined;
  const startGateway = async () => {
    if (gateway?.alive()) return;
    gateway = start('radosgw', ['-n', 'client.rgw.a'], 'client.rgw.a');
    const rgwAlive = alive(gateway, 'radosgw');
    await waitFor(async () => {
      rgwAlive();
      const res = await fetch(`http://127.0.0.1:${rgwPort}/`, { signal: AbortSignal.timeout(2_000) });
      await res.arrayBuffer();
      return true;
    }, 60_000, 200);
  };

  try {
    await run('monmaptool', ['--create', '--fsid', fsid, '--addv', 'a', `v2:127.0.0.1:${monPort}`, path.join(dir, 'monmap')]);
    await run('ceph-mon', ['--mkfs', '-i', 'a', '--monmap', path.join(dir, 'monmap')]);
    const mon = start('ceph-mon', ['-i', 'a'], 'mon.a');
    const monAlive = alive(mon, 'ceph-mon');
    // `ceph osd create` allocates id 0 and waits for the monitor to form its quorum of one.
    await waitFor(async () => {
      monAlive();
      const { stdout } = await run('ceph', ['--connect-timeout', '5', 'osd', 'create', fsidOfOsd(fsid)], 10_000);
      return stdout.trim() === '0';
    }, 30_000, 200);
    await run('ceph-osd', ['-i', '0', '--mkfs', '--osd-uuid', fsidOfOsd(fsid)]);
    const osd = start('ceph-osd', ['-i', '0'], 'osd.0');
    const osdAlive = alive(osd, 'ceph-osd');
    await waitFor(async () => {
      osdAlive();
      const { stdout } = await run('ceph', ['--connect-timeout', '5', 'osd', 'stat', '--format', 'json'], 10_000);
      return (JSON.parse(stdout) as { num_up_osds: number }).num_up_osds === 1;
    }, 30_000, 200);

    await Promise.all([
      // The user can be created while the gateway starts: both only need the OSD.
      run('radosgw-admin', ['-n', 'client.admin', 'user', 'create', '--uid', 'layover-test', '--display-name', 'layover test',
        '--access-key', ACCESS_KEY, '--secret-key', SECRET_KEY], 60_000),
      startGateway(),
    ]);
  } catch (err) {
    await stopAll();
    const tail = ['mon.a', 'osd.0', 'client.rgw.a'].map((n) => `--- ${n}\n${readTail(logOf(n))}`).join('\n');
    tmp.cleanup();
    throw new Error(`Ceph RGW did not start: ${(err as Error).message}\n${tail}`, { cause: err });
  }

  const endpoint = `http://127.0.0.1:${rgwPort}`;
  const clients: S3Client[] = [];
  const client = () => {
    const c = new S3Client({
      endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY },
    });
    clients.push(c);
    return c;
  };
  let admin: S3Client | undefined;
  let closed: Promise<void> | undefined;
  return {
    endpoint,
    port: rgwPort,
    region: 'us-east-1',
    accessKeyId: ACCESS_KEY,
    secretAccessKey: SECRET_KEY,
    dir,
    get pids() {
      return children.map((c) => c.pid);
    },
    client,
    async createBucket(prefix = 'layover-test') {
      admin ??= client();
      const name = `${prefix}-${randomUUID().slice(0, 8)}`.toLowerCase();
      await admin.send(new CreateBucketCommand({ Bucket: name }));
      return name;
    },
    async stopGateway() {
      const child = gateway;
      if (!child) return;
      await child.stop('SIGTERM', 5_000);
      children.splice(children.indexOf(child), 1);
    },
    startGateway,
    log: (daemon) => readTail(logOf({ mon: 'mon.a', osd: 'osd.0', rgw: 'client.rgw.a' }[daemon]), 1_000_000),
    close() {
      closed ??= (async () => {
        for (const c of clients) c.destroy();
        await stopAll();
        tmp.cleanup();
      })();
      return closed;
    },
  };
}

function cephConf(c: { dir: string; fsid: string; monPort: number; rgwPort: number; memoryBytes: number }): string {
  const d = c.dir;
  return `[global]
fsid = ${c.fsid}
mon host = v2:127.0.0.1:${c.monPort}
mon initial members = a
public network = 127.0.0.0/8
# No cephx: a throwaway cluster on loopback. Without auth, msgr2's "secure" mode cannot be
# negotiated (clients fail with -13), so every messenger mode is crc.
auth cluster required = none
auth service required = none
auth client required = none
auth supported = none
ms mon client mode = crc
ms mon service mode = crc
ms mon cluster mode = crc
ms client mode = crc
ms cluster mode = crc
ms service mode = crc
# One OSD holding objects in RAM: pools of size 1, and CRUSH places replicas across OSDs, not hosts.
osd objectstore = memstore
memstore device bytes = ${c.memoryBytes}
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
# Everything the daemons write stays in this directory.
run dir = ${d}/run
admin socket = ${d}/run/$name.asok
pid file = ${d}/run/$name.pid
log file = ${d}/log/$name.log
mon data = ${d}/mon/$name
osd data = ${d}/osd/$name
keyring = /dev/null
crash dir = ${d}/crash
mon data avail warn = 1
mon data avail crit = 0

[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:${c.rgwPort}
rgw data = ${d}/rgw
# Tests delete what they write; the gateway's own GC should not lag behind for hours.
rgw gc obj min wait = 5
rgw gc processor period = 10
`;
}

/** A stable OSD uuid derived from the cluster's fsid (ceph-osd --mkfs and `osd create` must agree). */
function fsidOfOsd(fsid: string): string {
  return `${fsid.slice(0, 24)}000000000000`;
}

function readTail(file: string, bytes = 2_000): string {
  try {
    return readFileSync(file, 'utf8').slice(-bytes);
  } catch {
    return '(no log)';
  }
}
