// Leases: "holder H does the work named `key` until `expires`", e.g. which replica downloads a
// blob from upstream while the others wait for it or stream from it. A building block on the
// `leases` table: acquire takes a free or expired lease (or renews one's own), renew extends it
// only while still held, release gives it up. Times come from the database's clock, never from
// the replicas', so skew between nodes cannot make two holders.
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Queryable } from './database.js';

export interface Lease {
  key: string;
  holder: string;
  /** Milliseconds since the epoch, by the database's clock. */
  expires: number;
}

const NOW_MS = '(extract(epoch from clock_timestamp()) * 1000)::bigint';

/** An id for this process as a lease holder: unique even when a Pod restarts with the same name. */
export function processHolderId(): string {
  return `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
}

export class Leases {
  constructor(private readonly db: Queryable, readonly holder: string = processHolderId()) {}

  /** Takes `key` for `ttlMs` if nobody holds it (or it expired, or we hold it); undefined when another holder has it. */
  async acquire(key: string, ttlMs: number): Promise<Lease | undefined> {
    const rows = await this.db.query<{ holder: string; expires: number }>(
      `INSERT INTO leases (key, holder, expires) VALUES ($1, $2, ${NOW_MS} + $3::bigint)
       ON CONFLICT (key) DO UPDATE SET holder = EXCLUDED.holder, expires = EXCLUDED.expires
         WHERE leases.expires <= ${NOW_MS} OR leases.holder = EXCLUDED.holder
       RETURNING holder, expires`,
      [key, this.holder, Math.ceil(ttlMs)],
    );
    const row = rows[0];
    return row && { key, holder: row.holder, expires: row.expires };
  }

  /** Extends our lease by `ttlMs` from now; false when it expired or another holder took it. */
  async renew(key: string, ttlMs: number): Promise<boolean> {
    const rows = await this.db.query(
      `UPDATE leases SET expires = ${NOW_MS} + $3::bigint WHERE key = $1 AND holder = $2 AND expires > ${NOW_MS} RETURNING key`,
      [key, this.holder, Math.ceil(ttlMs)],
    );
    return rows.length === 1;
  }

  /** Gives our lease up at once; false when we did not hold it. */
  async release(key: string): Promise<boolean> {
    const rows = await this.db.query('DELETE FROM leases WHERE key = $1 AND holder = $2 RETURNING key', [key, this.holder]);
    return rows.length === 1;
  }

  /** Who holds `key` now; undefined when nobody does (or the lease expired). */
  async current(key: string): Promise<Lease | undefined> {
    const rows = await this.db.query<{ holder: string; expires: number }>(`SELECT holder, expires FROM leases WHERE key = $1 AND expires > ${NOW_MS}`, [key]);
    const row = rows[0];
    return row && { key, holder: row.holder, expires: row.expires };
  }

  /** Removes leases expired more than `olderThanMs` ago (expired rows are harmless, only clutter). */
  async purgeExpired(olderThanMs = 60_000): Promise<number> {
    const rows = await this.db.query(`DELETE FROM leases WHERE expires < ${NOW_MS} - $1::bigint RETURNING key`, [olderThanMs]);
    return rows.length;
  }
}
