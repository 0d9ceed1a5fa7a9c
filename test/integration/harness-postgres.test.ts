// Proves the PostgreSQL harness: a private server on loopback that a client reaches as `layover`,
// that survives restart() with its data, refuses connections while stopped, and leaves nothing.
import { existsSync } from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostgres, type Postgres } from '../helpers/postgres.js';

let server: Postgres;

beforeAll(async () => {
  server = await startPostgres();
});

afterAll(async () => {
  await server?.close();
});

async function asLayover<R extends pg.QueryResultRow>(url: string, text: string, params: unknown[] = []): Promise<R[]> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3_000 });
  await client.connect();
  try {
    return (await client.query<R>(text, params)).rows;
  } finally {
    await client.end();
  }
}

describe('PostgreSQL harness', () => {
  it('serves the layover database to the layover role over TCP on 127.0.0.1', async () => {
    expect(server.url).toMatch(/^postgres:\/\/layover@127\.0\.0\.1:\d+\/layover$/);
    const [row] = await asLayover<{ who: string; db: string; addr: string; v: string }>(server.url,
      'SELECT current_user AS who, current_database() AS db, host(inet_server_addr()) AS addr, current_setting(\'server_version_num\') AS v');
    expect(row).toMatchObject({ who: 'layover', db: 'layover', addr: '127.0.0.1' });
    expect(Number(row!.v)).toBeGreaterThanOrEqual(150000);
    // The role is not a superuser: what the registry does must work with a database owner's rights.
    const [role] = (await server.query<{ rolsuper: boolean }>('SELECT rolsuper FROM pg_roles WHERE rolname = $1', ['layover'])).rows;
    expect(role!.rolsuper).toBe(false);
    await asLayover(server.url, 'CREATE TABLE owned (id int PRIMARY KEY)');
  });

  it('creates further databases owned by layover', async () => {
    const url = await server.createDatabase('second_db');
    expect(url).toBe(server.url.replace(/\/layover$/, '/second_db'));
    const [row] = await asLayover<{ db: string }>(url, 'SELECT current_database() AS db');
    expect(row!.db).toBe('second_db');
    await expect(server.createDatabase('bad name; DROP')).rejects.toThrow(/not a plain database name/);
  });

  it('keeps its data across restart() and refuses connections while stopped', async () => {
    await asLayover(server.url, 'CREATE TABLE kept (v text)');
    await asLayover(server.url, 'INSERT INTO kept VALUES ($1)', ['before restart']);
    const held = new pg.Client({ connectionString: server.url });
    const heldError = new Promise<Error>((resolve) => held.on('error', resolve));
    await held.connect();

    await server.stop();
    // A connection open at shutdown is cut, as a failover cuts it.
    expect((await heldError).message).toMatch(/terminat|Connection|shutdown/i);
    await expect(asLayover(server.url, 'SELECT 1')).rejects.toThrow(/ECONNREFUSED/);

    await server.start();
    const rows = await asLayover<{ v: string }>(server.url, 'SELECT v FROM kept');
    expect(rows).toEqual([{ v: 'before restart' }]);
    const pidBefore = server.pid;
    await server.restart();
    expect(server.pid).not.toBe(pidBefore);
    expect(await asLayover<{ v: string }>(server.url, 'SELECT v FROM kept')).toEqual([{ v: 'before restart' }]);
  });

  it('stops its process and removes its directory on close()', async () => {
    const other = await startPostgres();
    const { dir, pid } = other;
    expect(existsSync(dir)).toBe(true);
    await other.close();
    expect(existsSync(dir)).toBe(false);
    expect(() => process.kill(pid, 0)).toThrow();
    await expect(asLayover(other.url, 'SELECT 1')).rejects.toThrow(/ECONNREFUSED/);
  });
});
