// Several `layover serve` processes on ONE S3 bucket (a Ceph RGW started here) and ONE PostgreSQL
// database: the scale-out deployment of issue 14, with each replica on its own local root (as Pods
// with their own emptyDir), so nothing is shared but the bucket and the database.
import type { RawConfig } from '../../src/config/schema.js';
import { startCephRgw, type CephRgw } from './ceph-rgw.js';
import { spawnLayover, type LogLevel, type SpawnedLayover } from './layover.js';
import { startPostgres, type Postgres } from './postgres.js';

export interface ReplicaSet {
  replicas: SpawnedLayover[];
  rgw: CephRgw;
  postgres: Postgres;
  bucket: string;
  /** Key prefix inside the bucket that every replica uses. */
  prefix: string;
  /** Stops every replica, then PostgreSQL and the gateway. */
  close(): Promise<void>;
}

export interface ReplicaSetOptions {
  count?: number;
  /** Configuration every replica gets (e.g. auth users, gc interval). */
  raw?: RawConfig;
  prefix?: string;
  logLevel?: LogLevel;
}

export async function startReplicaSet(opts: ReplicaSetOptions = {}): Promise<ReplicaSet> {
  const [rgw, postgres] = await Promise.all([startCephRgw(), startPostgres()]);
  const started: SpawnedLayover[] = [];
  const close = async () => {
    await Promise.all(started.map((r) => r.close()));
    await Promise.all([postgres.close(), rgw.close()]);
  };
  try {
    const bucket = await rgw.createBucket('replicas');
    const prefix = opts.prefix ?? 'reg/';
    const s3 = { ...rgw, bucket, prefix };
    // The first replica runs the migrations alone; the others then start together (starting all
    // at once also works, replicas-postgres.test.ts proves it, but costs compile time at once).
    const count = opts.count ?? 3;
    const spawn = () => spawnLayover(opts.raw ?? {}, { s3, database: postgres.url, logLevel: opts.logLevel, startTimeoutMs: 90_000 }).then((r) => {
      started.push(r);
      return r;
    });
    const first = await spawn();
    const rest = await Promise.all(Array.from({ length: count - 1 }, spawn));
    return { replicas: [first, ...rest], rgw, postgres, bucket, prefix, close };
  } catch (err) {
    await close();
    throw err;
  }
}
