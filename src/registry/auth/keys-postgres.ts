// Signing keys in PostgreSQL (signing_keys, database/coordination-schema.ts): a token minted by
// one replica verifies on all, and a rotation on any replica (or `layover token rotate`) reaches
// the others within a poll interval through the change counter. An unknown kid also triggers a
// reload at once (KeyRing.reloadIfStale), so a freshly rotated key never fails a token.
import { bumpChange, changeVersion, watchChanges } from '../../database/changes.js';
import type { Database, Queryable } from '../../database/database.js';
import { LOCK } from '../../database/locks.js';
import type { JWK } from 'jose';
import type { KeyStorage, StoredKey } from './keys.js';

interface KeyRow { kid: string; created_at: number; retire_at: number | null; private_jwk: string }

async function readKeys(db: Queryable): Promise<StoredKey[]> {
  const rows = await db.query<KeyRow>('SELECT kid, created_at, retire_at, private_jwk FROM signing_keys ORDER BY created_at, kid');
  return rows.map((r) => ({
    kid: r.kid,
    createdAt: new Date(r.created_at).toISOString(),
    ...(r.retire_at === null ? {} : { retireAt: new Date(r.retire_at).toISOString() }),
    privateJwk: JSON.parse(r.private_jwk) as JWK,
  }));
}

async function insertKeys(tx: Queryable, keys: StoredKey[]): Promise<void> {
  await tx.query(
    'INSERT INTO signing_keys (kid, created_at, retire_at, private_jwk) SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[])',
    [
      keys.map((k) => k.kid),
      keys.map((k) => Date.parse(k.createdAt)),
      keys.map((k) => (k.retireAt === undefined ? null : Date.parse(k.retireAt))),
      keys.map((k) => JSON.stringify(k.privateJwk)),
    ],
  );
}

export class PostgresKeyStorage implements KeyStorage {
  private stopWatching: (() => void) | undefined;
  private readVersion: number | undefined;

  constructor(private readonly db: Database, private readonly intervalMs = 1_000) {}

  get location(): string {
    return `the database ${this.db.location}`;
  }

  async read(): Promise<StoredKey[]> {
    const version = await changeVersion(this.db, 'signing_keys');
    const keys = await readKeys(this.db);
    this.readVersion = version;
    return keys;
  }

  createFirst(key: StoredKey): Promise<void> {
    return this.db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1::bigint)', [LOCK.signingKeys]);
      if ((await tx.query('SELECT 1 FROM signing_keys LIMIT 1')).length) return;
      await insertKeys(tx, [key]);
      await bumpChange(tx, 'signing_keys');
    });
  }

  update(change: (keys: StoredKey[]) => StoredKey[]): Promise<void> {
    return this.db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1::bigint)', [LOCK.signingKeys]);
      const keys = change(await readKeys(tx));
      await tx.query('DELETE FROM signing_keys');
      await insertKeys(tx, keys);
      await bumpChange(tx, 'signing_keys');
    });
  }

  watch(onChange: () => Promise<void>, onError: (err: Error) => void): void {
    if (this.stopWatching) return;
    this.stopWatching = watchChanges(this.db, 'signing_keys', onChange, { intervalMs: this.intervalMs, since: this.readVersion, onError });
  }

  close(): void {
    this.stopWatching?.();
    this.stopWatching = undefined;
  }
}
