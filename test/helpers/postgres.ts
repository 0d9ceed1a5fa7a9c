// A private PostgreSQL server (Debian's postgresql package) for one test file: its own cluster in a
// temp dir, listening on a free 127.0.0.1 port (and a unix socket inside the temp dir), trust auth
// on loopback only, a role and database `layover`. Stopped and removed by close(), and killed at
// process exit if a test run dies first.
import { execFile } from 'node:child_process';
import { chownSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { startChild, type Child } from './child-process.js';
import { freePort } from './free-port.js';
import { makeTempDir } from './temp-dir.js';
import { StopWaiting, waitFor } from './wait-for.js';

export interface Postgres {
  /** `postgres://layover@127.0.0.1:PORT/layover` (no password: trust auth on loopback). */
  url: string;
  port: number;
  pid: number;
  /** The temp dir holding the cluster (`data/`), the socket dir (`run/`) and `postgres.log`. */
  dir: string;
  /** Creates another empty database owned by `layover` and returns its URL (one per test, say). */
  createDatabase(name: string): Promise<string>;
  /** Runs SQL as the superuser `postgres` in `database` (default `layover`). */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, params?: unknown[], database?: string): Promise<pg.QueryResult<R>>;
  /** Fast shutdown (open connections are cut); the data stays for start(). */
  stop(): Promise<void>;
  /** Starts the stopped server again on the same port and data. */
  start(): Promise<void>;
  /** stop() then start(): what a PostgreSQL failover or restart looks like to clients. */
  restart(): Promise<void>;
  log(): string;
  /** Stops the server and removes everything it wrote. */
  close(): Promise<void>;
}

const DATABASE = 'layover';
const ROLE = 'layover';

/** The newest installed server's bin dir (Debian puts it under /usr/lib/postgresql/VERSION/bin, off PATH). */
export function postgresBinDir(): string {
  const base = '/usr/lib/postgresql';
  const versions = existsSync(base)
    ? readdirSync(base).filter((v) => existsSync(path.join(base, v, 'bin', 'postgres'))).sort((a, b) => Number(b) - Number(a))
    : [];
  if (!versions.length) throw new Error('PostgreSQL is not installed: apt-get install -y postgresql (test/run.sh installs it)');
  return path.join(base, versions[0]!, 'bin');
}

interface RunAs { uid?: number; gid?: number }

/** postgres refuses to run as root: as root, run its programs as the `postgres` system user. */
function serverUser(): RunAs {
  if (process.getuid?.() !== 0) return {};
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error('running as root needs the postgres system user (created by the postgresql package)');
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

function run(bin: string, args: string[], as: RunAs, cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(bin, args, { ...as, cwd, env: { ...process.env, LC_ALL: 'C.UTF-8', TZ: 'UTC' }, encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${path.basename(bin)} ${args.join(' ')} failed: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

export async function startPostgres(): Promise<Postgres> {
  const bin = postgresBinDir();
  const as = serverUser();
  const tmp = makeTempDir('layover-pg-');
  const data = path.join(tmp.path, 'data');
  const socketDir = path.join(tmp.path, 'run');
  const logFile = path.join(tmp.path, 'postgres.log');
  const port = await freePort();
  let child: Child | undefined;

  const own = () => {
    if (as.uid === undefined) return;
    chownSync(tmp.path, as.uid, as.gid!);
  };
  try {
    own();
    await run(path.join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-sync', '--no-instructions'], as, tmp.path);
    // Trust is acceptable only because nothing but loopback (and the private socket) may connect.
    writeFileSync(path.join(data, 'pg_hba.conf'), [
      'local all all trust',
      'host all all 127.0.0.1/32 trust',
      'host all all ::1/128 trust',
      '',
    ].join('\n'));
    await run('/bin/mkdir', ['-m', '0700', socketDir], as, tmp.path);
  } catch (err) {
    tmp.cleanup();
    throw err;
  }

  const admin = (database = DATABASE) => new pg.Client({ host: socketDir, port, user: 'postgres', database });
  const query = async <R extends pg.QueryResultRow>(text: string, params: unknown[] = [], database = DATABASE) => {
    const client = admin(database);
    await client.connect();
    try {
      return await client.query<R>(text, params);
    } finally {
      await client.end();
    }
  };

  const start = async () => {
    child = startChild(path.join(bin, 'postgres'), [
      '-D', data, '-p', String(port), '-k', socketDir,
      '-c', 'listen_addresses=127.0.0.1',
      // A test cluster: durability is not what is under test, speed on a loaded machine is.
      '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off',
      '-c', 'max_connections=200', '-c', 'shared_buffers=32MB',
      '-c', 'logging_collector=off', '-c', 'log_min_messages=warning',
    ], { stdoutFile: logFile, cwd: tmp.path, env: { ...process.env, LC_ALL: 'C.UTF-8', TZ: 'UTC' }, ...as });
    const started = child;
    try {
      await waitFor(async () => {
        if (!started.alive()) throw new StopWaiting('postgres exited');
        const client = admin('postgres');
        try {
          await client.connect();
          await client.query('SELECT 1');
          return true;
        } finally {
          await client.end().catch(() => undefined);
        }
      }, 30_000, 100);
    } catch (err) {
      await started.stop('SIGKILL');
      throw new Error(`postgres did not start: ${(err as Error).message}\n${readFileSync(logFile, 'utf8').slice(-2000)}`);
    }
  };
  const stop = async () => {
    // SIGINT is PostgreSQL's fast shutdown: clients are disconnected, the cluster is left clean.
    if (child?.alive()) await child.stop('SIGINT', 15_000);
  };

  try {
    await start();
    await query(`CREATE ROLE ${ROLE} LOGIN`, [], 'postgres');
    await query(`CREATE DATABASE ${DATABASE} OWNER ${ROLE}`, [], 'postgres');
  } catch (err) {
    await stop().catch(() => undefined);
    tmp.cleanup();
    throw err;
  }

  const urlOf = (database: string) => `postgres://${ROLE}@127.0.0.1:${port}/${database}`;
  return {
    url: urlOf(DATABASE),
    port,
    get pid() {
      return child!.pid;
    },
    dir: tmp.path,
    async createDatabase(name) {
      if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`not a plain database name: ${name}`);
      await query(`CREATE DATABASE ${name} OWNER ${ROLE}`, [], 'postgres');
      return urlOf(name);
    },
    query,
    stop,
    start,
    async restart() {
      await stop();
      await start();
    },
    log: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
    async close() {
      await stop();
      tmp.cleanup();
    },
  };
}


/**
 * Creates database `name` owned by `layover` on the server whose superuser URL is `adminUrl`
 * (postgres-suite.ts hands one to the test workers); returns the URL the registry uses.
 */
export async function createDatabaseAt(adminUrl: string, name: string): Promise<string> {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`not a plain database name: ${name}`);
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name} OWNER ${ROLE}`);
  } finally {
    await client.end();
  }
  const url = new URL(adminUrl);
  url.username = ROLE;
  url.pathname = `/${name}`;
  return url.toString();
}
