// PostgreSQL-only tables for what replicas must share beyond the registry's metadata (that schema
// is storage/metadata/schema.ts, shared with SQLite): users and teams, token signing keys,
// change counters that replicas poll to reload them, and leases. The embedded (single-process)
// default keeps users and keys in files and needs no leases. Append migrations; never edit one.
import type { MigrationTrack } from './migrate.js';

export const COORDINATION: MigrationTrack = {
  table: 'coordination_schema_version',
  migrations: [
    {
      version: 1,
      statements: [
        `CREATE TABLE auth_users (
          name TEXT COLLATE "C" PRIMARY KEY,
          password_hash TEXT NOT NULL,
          admin BOOLEAN NOT NULL DEFAULT false
        )`,
        // Every team, with or without members (a team outlives its last member).
        'CREATE TABLE auth_teams (name TEXT COLLATE "C" PRIMARY KEY)',
        `CREATE TABLE auth_members (
          team TEXT COLLATE "C" NOT NULL REFERENCES auth_teams (name) ON DELETE CASCADE,
          user_name TEXT COLLATE "C" NOT NULL REFERENCES auth_users (name) ON DELETE CASCADE,
          PRIMARY KEY (team, user_name)
        )`,
        // ES256 private keys as JWK (auth/keys.ts). retire_at: verifies until then, never signs.
        `CREATE TABLE signing_keys (
          kid TEXT PRIMARY KEY,
          created_at BIGINT NOT NULL,
          retire_at BIGINT,
          private_jwk TEXT NOT NULL
        )`,
        // Bumped in the transaction of every change of a kind ('accounts', 'signing_keys'):
        // replicas poll these numbers and reload what changed.
        `CREATE TABLE change_counters (
          name TEXT PRIMARY KEY,
          version BIGINT NOT NULL
        )`,
        // Leases (database/leases.ts): who does a piece of work until when, e.g. which replica
        // downloads a blob from upstream. `expires` in milliseconds since the epoch.
        `CREATE TABLE leases (
          key TEXT PRIMARY KEY,
          holder TEXT NOT NULL,
          expires BIGINT NOT NULL
        )`,
        // Blobs garbage collection deleted, and when (database clock): a writer that finds a blob
        // it checked a moment ago gone, with a fresh tombstone, refuses (database/sweep.ts).
        `CREATE TABLE gc_tombstones (
          digest TEXT PRIMARY KEY,
          deleted_at BIGINT NOT NULL
        )`,
      ],
    },
  ],
};
