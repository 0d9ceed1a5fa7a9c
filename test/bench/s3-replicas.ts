// Issue 14 benchmark (d): aggregate throughput of 48 concurrent blob GETs spread over 3 layover
// replicas ÷ the same 48 GETs all on 1 replica, on one Ceph RGW bucket and one PostgreSQL, with
// the CPU time each party used during the GETs, which tells where the limit is on this machine.
// Called by test/bench/s3.ts (`--only replicas` runs just this part).
import { readdirSync, readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import path from 'node:path';
import type { CephRgw } from '../helpers/ceph-rgw.js';
import { spawnLayover, type SpawnedLayover } from '../helpers/layover.js';
import { startPostgres } from '../helpers/postgres.js';
import { uploadBlob } from '../helpers/registry-client.js';
import { requireTool } from '../helpers/run-tool.js';
import { median, writeBlobFile } from './measure.js';

const MiB = 2 ** 20;
const CLIENTS = 48;
const BLOBS = 8;
const BLOB_SIZE = 16 * MiB;
export const TICKS_PER_SECOND = 100;

/** utime + stime of `pid` in clock ticks (0 once it is gone). */
export function ticksOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

/** `pid` and its direct children (PostgreSQL's backends are the postmaster's children). */
function withChildren(pid: number): number[] {
  const out = [pid];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Busy CPU ticks of the whole machine (every core), from /proc/stat. */
export function machineBusyTicks(): number {
  const [, ...fields] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/);
  const n = fields.map(Number);
  return n.reduce((a, b) => a + b, 0) - (n[3] ?? 0) - (n[4] ?? 0);
}

/** One curl per URL, all at once, bodies to /dev/null; resolves with the wall seconds once all are done and checked. */
function curlAll(urls: string[], size: number): Promise<number> {
  const curl = requireTool('curl');
  const started = performance.now();
  return Promise.all(urls.map((url) => new Promise<void>((resolve, reject) => {
    const child = spawn(curl, ['-sS', '-o', '/dev/null', '-w', '%{http_code} %{size_download}', url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.once('close', () => (out === `200 ${size}` ? resolve() : reject(new Error(`GET ${url}: ${out}`))));
  }))).then(() => (performance.now() - started) / 1000);
}

export interface ReplicaRound {
  replicas: 1 | 3;
  seconds: number;
  mibPerSecond: number;
  /** CPU seconds used during the round by the layover processes, radosgw, ceph-osd, PostgreSQL, and the whole machine. */
  cpu: { layover: number; radosgw: number; osd: number; postgres: number; machine: number };
}

export interface ReplicaFigures {
  clients: number;
  blobMiB: number;
  one: { mibPerSecond: number; seconds: number };
  three: { mibPerSecond: number; seconds: number };
  ratio: number;
  rounds: ReplicaRound[];
}

export async function benchReplicas(rgw: CephRgw, dir: string, runs: number): Promise<ReplicaFigures> {
  const postgres = await startPostgres();
  const replicas: SpawnedLayover[] = [];
  try {
    const bucket = await rgw.createBucket('bench-replicas');
    const opts = { s3: { ...rgw, bucket }, database: postgres.url, logLevel: 'warn' as const, compiled: true, startTimeoutMs: 120_000 };
    replicas.push(await spawnLayover({}, opts));
    replicas.push(...(await Promise.all([spawnLayover({}, opts), spawnLayover({}, opts)])));
    const digests: string[] = [];
    for (let i = 0; i < BLOBS; i++) {
      const file = path.join(dir, `replica-blob-${i}.bin`);
      const digest = await writeBlobFile(file, `bench-replicas-${i}`, BLOB_SIZE);
      await uploadBlob(replicas[0]!.url, 'bench/replicas', digest, { file });
      digests.push(digest);
    }
    const urls = (count: 1 | 3) => Array.from({ length: CLIENTS }, (_, i) => `${replicas[i % count]!.url}/v2/bench/replicas/blobs/${digests[i % BLOBS]}`);
    const [, osdPid, rgwPid] = rgw.pids;
    const round = async (count: 1 | 3): Promise<ReplicaRound> => {
      const pgPids = withChildren(postgres.pid);
      const pgBefore = pgPids.map(ticksOf);
      const before = { l: replicas.reduce((n, r) => n + ticksOf(r.pid), 0), g: ticksOf(rgwPid!), o: ticksOf(osdPid!), p: 0, m: machineBusyTicks() };
      const seconds = await curlAll(urls(count), BLOB_SIZE);
      // A backend that exited meanwhile reads 0: count only what each one used while alive.
      const pgUsed = pgPids.reduce((n, p, i) => n + Math.max(0, ticksOf(p) - pgBefore[i]!), 0);
      const after = { l: replicas.reduce((n, r) => n + ticksOf(r.pid), 0), g: ticksOf(rgwPid!), o: ticksOf(osdPid!), p: pgUsed, m: machineBusyTicks() };
      const s = (a: number, b: number) => Number(((a - b) / TICKS_PER_SECOND).toFixed(2));
      const result: ReplicaRound = {
        replicas: count,
        seconds,
        mibPerSecond: (CLIENTS * BLOB_SIZE) / MiB / seconds,
        cpu: { layover: s(after.l, before.l), radosgw: s(after.g, before.g), osd: s(after.o, before.o), postgres: s(after.p, before.p), machine: s(after.m, before.m) },
      };
      console.error(`${count} replica(s): 48 GETs of ${BLOB_SIZE / MiB} MiB in ${seconds.toFixed(2)} s = ${result.mibPerSecond.toFixed(0)} MiB/s; CPU s ${JSON.stringify(result.cpu)}`);
      return result;
    };
    await round(3); // warm every replica's connections and JIT
    await round(1);
    const rounds: ReplicaRound[] = [];
    for (let i = 0; i < runs; i++) for (const count of i % 2 ? ([3, 1] as const) : ([1, 3] as const)) rounds.push(await round(count));
    const med = (count: 1 | 3) => {
      const mine = rounds.filter((r) => r.replicas === count);
      return { mibPerSecond: median(mine.map((r) => r.mibPerSecond)), seconds: median(mine.map((r) => r.seconds)) };
    };
    const one = med(1);
    const three = med(3);
    return { clients: CLIENTS, blobMiB: BLOB_SIZE / MiB, one, three, ratio: three.mibPerSecond / one.mibPerSecond, rounds };
  } finally {
    await Promise.all(replicas.map((r) => r.close()));
    await postgres.close();
  }
}
