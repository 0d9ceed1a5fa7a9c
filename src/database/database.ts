// One PostgreSQL connection pool per process (`pg`), shared by the metadata store, accounts,
// signing keys, GC's lock and leases. Every query is parameterised. A lost or refused connection
// surfaces as DatabaseUnavailableError (the routes answer 503 UNAVAILABLE); the pool opens fresh
// connections by itself once the server is back, so nothing here has to reconnect.
import pg from 'pg';
import type { Logger } from '../log.js';
import { DatabaseUnavailableError, describeFailure, isConnectionFailure } from './errors.js';
import { redactUrl } from './url.js';

export { DatabaseUnavailableError, isConnectionFailure, isDatabaseUnavailable } from './errors.js';

/** What a query runs on: the pool, or one connection inside a transaction. */
export interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, params?: unknown[]): Promise<R[]>;
}

/** Connection failures become DatabaseUnavailableError; anything else is rethrown as it is. */
function classify(err: unknown): never {
  if (isConnectionFailure(err)) throw new DatabaseUnavailableError(err);
  throw err;
}

// BIGINT (int8) columns hold milliseconds and byte counts, far below 2^53: numbers, not strings.
// Set per pool, so that no other user of `pg` in the process is affected.
const INT8_OID = 20;
const types = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === INT8_OID && format !== 'binary') return (value: string) => Number(value);
    return pg.types.getTypeParser(oid, format);
  },
} as pg.CustomTypesConfig;

export interface DatabaseOptions {
  maxConnections?: number;
  /** How long a query waits for a connection (then DatabaseUnavailableError). */
  connectTimeoutMs?: number;
  logger?: Pick<Logger, 'warn' | 'debug'>;
  applicationName?: string;
}

export class Database implements Queryable {
  private readonly pool: pg.Pool;
  /** The URL without its password, for messages and logs. */
  readonly location: string;
  private closed = false;

  constructor(url: string, options: DatabaseOptions = {}) {
    this.location = redactUrl(url);
    const log = options.logger;
    this.pool = new pg.Pool({
      connectionString: url,
      max: options.maxConnections ?? 10,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 5_000,
      idleTimeoutMillis: 30_000,
      keepAlive: true,
      application_name: options.applicationName ?? 'layover',
      types,
    });
    // An idle connection cut by a server restart or a failover emits 'error' on the pool; with no
    // listener that would crash the process. The pool has already dropped the connection.
    this.pool.on('error', (err) => log?.warn({ problem: describeFailure(err) }, 'database connection lost; the next query opens a new one'));
    // A connection checked out (a transaction, a held advisory lock) has no pool listener while
    // it is out: give every connection one for its whole life, so no 'error' event goes unheard.
    this.pool.on('connect', (client) => {
      client.on('error', (err) => log?.debug({ problem: describeFailure(err) }, 'database connection error'));
    });
  }

  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, params: unknown[] = []): Promise<R[]> {
    try {
      return (await this.pool.query<R>(text, params)).rows;
    } catch (err) {
      return classify(err);
    }
  }

  /** Runs `fn` on one connection of its own (session state: advisory locks, LISTEN). */
  async withClient<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      return classify(err);
    }
    let broken: Error | undefined;
    try {
      return await fn(client);
    } catch (err) {
      // A connection that failed mid-way may be in any state: it is destroyed, not reused.
      if (isConnectionFailure(err)) broken = err as Error;
      return classify(err);
    } finally {
      client.release(broken ?? false);
    }
  }

  /**
   * Runs `fn` in one transaction (READ COMMITTED), committed when it resolves and rolled back
   * when it throws. `fn` may run its statements only through the Queryable it is given.
   */
  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.withClient(async (client) => {
      const tx: Queryable = {
        query: async <R extends pg.QueryResultRow>(text: string, params: unknown[] = []) => (await client.query<R>(text, params)).rows,
      };
      await client.query('BEGIN');
      try {
        const result = await fn(tx);
        await client.query('COMMIT');
        return result;
      } catch (err) {
        if (!isConnectionFailure(err)) await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
    });
  }

  /** One round trip: readiness checks call it. */
  async ping(): Promise<void> {
    await this.query('SELECT 1');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}
