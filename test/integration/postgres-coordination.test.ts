// What replicas share through PostgreSQL, piece by piece against a real server: migrations that
// run once when several processes start together, the database URL kept out of messages, leases,
// the cluster lock, accounts and signing keys seen by every process, and a database that goes
// away and comes back without crashing anything.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config/resolve.js';
import { withTryAdvisoryLock } from '../../src/database/advisory-lock.js';
import { COORDINATION } from '../../src/database/coordination-schema.js';
import { Database, DatabaseUnavailableError } from '../../src/database/database.js';
import { Leases } from '../../src/database/leases.js';
import { openDatabase, TRACKS } from '../../src/database/open.js';
import { redactUrl } from '../../src/database/url.js';
import { PostgresAccountsStore } from '../../src/registry/auth/accounts-postgres.js';
import { accountsOf, addTeam, addUser, addMember } from '../../src/registry/auth/accounts.js';
import { KeyRing } from '../../src/registry/auth/keys.js';
import { PostgresKeyStorage } from '../../src/registry/auth/keys-postgres.js';
import { TokenService } from '../../src/registry/auth/tokens.js';
import { UserStore } from '../../src/registry/auth/users.js';
import { startPostgres, type Postgres } from '../helpers/postgres.js';
import { makeTempDir, type TempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait-for.js';

let pg: Postgres;
let tmp: TempDir;
const opened: Database[] = [];

const DB_CONFIG = { maxConnections: 4, connectTimeoutMs: 2_000 };
async function open(url = pg.url): Promise<Database> {
  const db = await openDatabase({ url, ...DB_CONFIG }, { waitMs: 0 });
  opened.push(db);
  return db;
}

beforeAll(async () => {
  pg = await startPostgres();
  tmp = makeTempDir('layover-pg-coord-');
});

afterAll(async () => {
  await Promise.all(opened.map((db) => db.close()));
  await pg?.close();
  tmp?.cleanup();
});

describe('migrations', () => {
  it('run once when three processes start at once, and not again', async () => {
    const url = await pg.createDatabase('migrate_once');
    const ran: number[] = [];
    const dbs = await Promise.all([0, 1, 2].map(async () => {
      const db = new Database(url, DB_CONFIG);
      opened.push(db);
      const { migrate } = await import('../../src/database/migrate.js');
      ran.push(await migrate(db, TRACKS));
      return db;
    }));
    expect(ran.reduce((a, b) => a + b, 0)).toBe(TRACKS.reduce((n, t) => n + t.migrations.length, 0));
    const [row] = await dbs[0]!.query<{ version: number }>('SELECT version FROM coordination_schema_version');
    expect(row!.version).toBe(COORDINATION.migrations.at(-1)!.version);
    expect(await dbs[0]!.query('SELECT count(*)::int AS n FROM coordination_schema_version')).toEqual([{ n: 1 }]);
    // Reopening finds nothing to do.
    const { migrate } = await import('../../src/database/migrate.js');
    expect(await migrate(dbs[1]!, TRACKS)).toBe(0);
  });
});

describe('configuration', () => {
  it('takes database.url or database.urlFile, and never repeats the URL in a message', async () => {
    const secret = 'pa55-w0rd-never-logged';
    const withPassword = pg.url.replace('postgres://layover@', `postgres://layover:${secret}@`);
    expect(redactUrl(withPassword)).not.toContain(secret);
    expect(redactUrl(`${pg.url}?password=${secret}`)).not.toContain(secret);
    expect(redactUrl(withPassword)).toContain(':***@127.0.0.1');

    expect(() => resolveConfig({ database: { url: `mysql://u:${secret}@h/db` } })).toThrow(/database\.url: not a postgres/);
    try {
      resolveConfig({ database: { url: `mysql://u:${secret}@h/db` } });
    } catch (err) {
      expect((err as Error).message).not.toContain(secret);
    }
    expect(() => resolveConfig({ database: { url: pg.url, urlFile: '/x' } })).toThrow(/url or urlFile, not both/);
    expect(() => resolveConfig({ database: {} })).toThrow(/needs url or urlFile/);

    const file = path.join(tmp.path, 'database-url');
    writeFileSync(file, `${pg.url}\n`, { mode: 0o600 });
    const config = resolveConfig({ database: { urlFile: 'database-url' } }, { baseDir: tmp.path });
    expect(config.database).toMatchObject({ urlFile: file, maxConnections: 10, connectTimeoutMs: 5_000 });
    const db = await openDatabase(config.database!, { waitMs: 0 });
    opened.push(db);
    expect(await db.query('SELECT current_user AS who')).toEqual([{ who: 'layover' }]);

    writeFileSync(file, `mysql://u:${secret}@h/db\n`);
    const bad = openDatabase(config.database!, { waitMs: 0 });
    await expect(bad).rejects.toThrow(/does not hold a postgres/);
    await expect(bad).rejects.not.toThrow(new RegExp(secret));
  });
});

describe('leases', () => {
  it('have one holder at a time; renew only while held; release or expiry frees them', async () => {
    const db = await open();
    const a = new Leases(db, 'replica-a');
    const b = new Leases(db, 'replica-b');
    const key = 'blob:sha256:aaaa';
    const got = await a.acquire(key, 30_000);
    expect(got).toMatchObject({ key, holder: 'replica-a' });
    expect(await b.acquire(key, 30_000)).toBeUndefined();
    expect(await b.renew(key, 30_000)).toBe(false);
    expect(await b.release(key)).toBe(false);
    expect(await a.renew(key, 60_000)).toBe(true);
    expect((await a.current(key))!.expires).toBeGreaterThan(got!.expires);
    // Acquiring one's own lease again renews it.
    expect(await a.acquire(key, 30_000)).toMatchObject({ holder: 'replica-a' });
    expect(await a.release(key)).toBe(true);
    expect(await a.current(key)).toBeUndefined();
    expect(await b.acquire(key, 300)).toMatchObject({ holder: 'replica-b' });

    // Expiry by the database's clock: the old holder can no longer renew, a new one takes over.
    await new Promise((r) => setTimeout(r, 400));
    expect(await b.current(key)).toBeUndefined();
    expect(await a.acquire(key, 30_000)).toMatchObject({ holder: 'replica-a' });
    expect(await b.renew(key, 30_000)).toBe(false);
  });

  it('are taken by exactly one of many concurrent acquirers', async () => {
    const db = await open();
    const contenders = Array.from({ length: 12 }, (_, i) => new Leases(db, `replica-${i}`));
    const results = await Promise.all(contenders.map((l) => l.acquire('blob:sha256:race', 30_000)));
    expect(results.filter((r) => r !== undefined)).toHaveLength(1);
  });
});

describe('cluster lock', () => {
  it('lets one of two sessions in; the other is told so at once; a finished holder frees it', async () => {
    const [one, two] = [await open(), await open()];
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const first = withTryAdvisoryLock(one, '42', async () => {
      await held;
      return 'first';
    });
    await waitFor(async () => (await one.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objid = 42")).at(0)!.n === 1);
    expect(await withTryAdvisoryLock(two, '42', async () => 'second')).toEqual({ acquired: false });
    release();
    expect(await first).toEqual({ acquired: true, value: 'first' });
    expect(await withTryAdvisoryLock(two, '42', async () => 'second')).toEqual({ acquired: true, value: 'second' });
  });
});

describe('accounts in the database', () => {
  it('lose no edit when two processes edit at once, and reach the other process by themselves', async () => {
    const config = resolveConfig({ storage: { root: tmp.path } });
    const [db1, db2] = [await open(), await open()];
    const one = accountsOf(config, new PostgresAccountsStore(db1));
    const two = accountsOf(config, new PostgresAccountsStore(db2));
    await addTeam(one, 'dev');
    const watcher = new UserStore([], new PostgresAccountsStore(db2));
    await watcher.load();
    const reloads: (string | undefined)[] = [];
    watcher.watch((err) => reloads.push(err?.message), 100);
    try {
      // Interleaved read-modify-writes from two pools: each under the advisory lock.
      await Promise.all(Array.from({ length: 8 }, (_, i) => addUser(i % 2 ? one : two, `user${i}`, `password-${i}`)));
      await addMember(two, 'dev', 'user3');
      const doc = await one.store.read();
      expect(doc.users.map((u) => u.name).sort()).toEqual(Array.from({ length: 8 }, (_, i) => `user${i}`));
      expect(doc.users.find((u) => u.name === 'user3')?.teams).toEqual(['dev']);
      expect(doc.teams).toEqual(['dev']);
      await waitFor(() => watcher.get('user3')?.teams.includes('dev'), 5_000);
      expect(watcher.size).toBe(8);
      expect(reloads.every((r) => r === undefined)).toBe(true);
      await expect(addUser(one, 'user1', 'again')).rejects.toThrow(/already a user/);
      await expect(addUser(one, 'dev', 'x')).rejects.toThrow(/already a team/);
    } finally {
      watcher.close();
    }
  });
});

describe('signing keys in the database', () => {
  it('are shared: a token minted by one process verifies in the other; a rotation with no grace revokes it there', async () => {
    const url = await pg.createDatabase('keys_shared');
    const [first, second] = [await open(url), await open(url)];
    const settings = { issuer: 'layover', service: 'layover', accessTTLMs: 300_000, refreshTTLMs: 86_400_000, namespaceTTLMs: 86_400_000 };
    // Two processes starting at once on an empty table agree on one first key.
    const [ring1, ring2] = await Promise.all([KeyRing.openStorage(new PostgresKeyStorage(first, 100)), KeyRing.openStorage(new PostgresKeyStorage(second, 100))]);
    try {
      expect(ring1.current().kid).toBe(ring2.current().kid);
      expect(await first.query('SELECT count(*)::int AS n FROM signing_keys')).toEqual([{ n: 1 }]);
      const errors: Error[] = [];
      ring2.watch((err) => errors.push(err));
      const [t1, t2] = [new TokenService(ring1, settings), new TokenService(ring2, settings)];
      const token = (await t1.mintNamespaceToken('shop')).token;
      expect((await t2.verify(token, 'namespace')).subject).toBe('namespace:shop');

      // A key made by process 1 signs a token that process 2 verifies at once (unknown kid: reload).
      const kid = await ring1.rotate(3_600_000);
      const fresh = (await t1.mintNamespaceToken('shop')).token;
      await new Promise((r) => setTimeout(r, 1_100)); // reloadIfStale looks at most once a second
      expect((await t2.verify(fresh, 'namespace')).subject).toBe('namespace:shop');
      expect(ring2.current().kid).toBe(kid);

      // Revocation reaches process 2 through the change counter, without any token asking.
      await ring1.rotate(0);
      await waitFor(() => ring2.list().length === 1, 5_000);
      await expect(t2.verify(fresh, 'namespace')).rejects.toThrow(/invalid token/);
      expect(errors).toEqual([]);
    } finally {
      ring1.close();
      ring2.close();
    }
  });
});

describe('an unreachable database', () => {
  it('fails queries with DatabaseUnavailableError, crashes nothing, and is used again once back', async () => {
    const db = await open();
    // Idle connections in the pool when the server goes: their errors must not reach the process.
    await Promise.all([1, 2, 3].map(() => db.query('SELECT pg_sleep(0.05)')));
    // Settled into a value at once: the rejection arrives while the server stops.
    const holder = db
      .withClient(async (client) => {
        await client.query('SELECT 1');
        await new Promise((r) => setTimeout(r, 1_500));
        return client.query('SELECT 1');
      })
      .then(() => 'no error', (err: unknown) => err);
    await pg.stop();
    expect(await holder).toBeInstanceOf(DatabaseUnavailableError);
    const started = Date.now();
    await expect(db.query('SELECT 1')).rejects.toBeInstanceOf(DatabaseUnavailableError);
    await expect(db.transaction(async (tx) => tx.query('SELECT 1'))).rejects.toBeInstanceOf(DatabaseUnavailableError);
    expect(Date.now() - started).toBeLessThan(DB_CONFIG.connectTimeoutMs * 2 + 2_000);
    await expect(db.ping()).rejects.toThrow(/database is unreachable \(ECONNREFUSED\)/);

    await pg.start();
    await waitFor(async () => (await db.query<{ one: number }>('SELECT 1 AS one'))[0]!.one === 1, 10_000);
    // A query error is still a query error, not "unavailable".
    await expect(db.query('SELECT * FROM no_such_table')).rejects.toThrow(/does not exist/);
    await expect(db.query('SELECT * FROM no_such_table')).rejects.not.toBeInstanceOf(DatabaseUnavailableError);
  });
});
