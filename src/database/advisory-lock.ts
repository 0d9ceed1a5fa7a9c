// Cluster-wide mutual exclusion on a PostgreSQL session advisory lock: held by one connection
// for as long as `fn` runs, released at the end, and released by the server if that connection
// (or the process holding it) dies, so a crashed holder never blocks the others for good.
import type { Database } from './database.js';

export type Locked<T> = { acquired: true; value: T } | { acquired: false };

/** Runs `fn` while holding lock `key`, unless another session holds it (then does nothing). */
export function withTryAdvisoryLock<T>(db: Database, key: string, fn: () => Promise<T>): Promise<Locked<T>> {
  return db.withClient(async (client) => {
    const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS locked', [key]);
    if (!rows[0]?.locked) return { acquired: false };
    try {
      return { acquired: true, value: await fn() };
    } finally {
      // A connection that died took the lock with it; nothing to release then.
      await client.query('SELECT pg_advisory_unlock($1::bigint)', [key]).catch(() => undefined);
    }
  });
}
