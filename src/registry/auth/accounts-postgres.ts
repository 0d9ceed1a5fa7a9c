// Users and teams in PostgreSQL (tables in database/coordination-schema.ts), for replicas that
// must all know the same accounts. An edit runs in one transaction under an advisory lock, so two
// CLIs or replicas editing at once serialise instead of losing one change; its change counter
// tells the other replicas to reload within a poll interval.
import { bumpChange, changeVersion, watchChanges } from '../../database/changes.js';
import type { Database, Queryable } from '../../database/database.js';
import { LOCK } from '../../database/locks.js';
import type { AccountsStore } from './accounts-store.js';
import { validate, type UsersDocument } from './users-file.js';

async function readDocument(db: Queryable): Promise<UsersDocument> {
  const users = await db.query<{ name: string; password_hash: string; admin: boolean }>('SELECT name, password_hash, admin FROM auth_users ORDER BY name');
  const teams = await db.query<{ name: string }>('SELECT name FROM auth_teams ORDER BY name');
  const members = await db.query<{ team: string; user_name: string }>('SELECT team, user_name FROM auth_members ORDER BY team');
  const teamsOf = new Map<string, string[]>();
  for (const m of members) teamsOf.set(m.user_name, [...(teamsOf.get(m.user_name) ?? []), m.team]);
  return {
    users: users.map((u) => ({ name: u.name, passwordHash: u.password_hash, admin: u.admin, teams: teamsOf.get(u.name) ?? [] })),
    teams: teams.map((t) => t.name),
  };
}

async function writeDocument(tx: Queryable, doc: UsersDocument): Promise<void> {
  const teams = [...new Set([...doc.teams, ...doc.users.flatMap((u) => u.teams ?? [])])];
  const members = doc.users.flatMap((u) => (u.teams ?? []).map((team) => [team, u.name] as const));
  // Accounts are few (people and teams, not images): replacing them all keeps this obviously right.
  await tx.query('DELETE FROM auth_members');
  await tx.query('DELETE FROM auth_users');
  await tx.query('DELETE FROM auth_teams');
  await tx.query('INSERT INTO auth_teams (name) SELECT unnest($1::text[])', [teams]);
  await tx.query(
    'INSERT INTO auth_users (name, password_hash, admin) SELECT * FROM unnest($1::text[], $2::text[], $3::boolean[])',
    [doc.users.map((u) => u.name), doc.users.map((u) => u.passwordHash), doc.users.map((u) => u.admin ?? false)],
  );
  await tx.query('INSERT INTO auth_members (team, user_name) SELECT * FROM unnest($1::text[], $2::text[])', [members.map((m) => m[0]), members.map((m) => m[1])]);
  await bumpChange(tx, 'accounts');
}

export class PostgresAccountsStore implements AccountsStore {
  private stopWatching: (() => void) | undefined;
  /** The change counter read just before the last read(): a change after it is reloaded. */
  private readVersion: number | undefined;

  constructor(private readonly db: Database) {}

  get location(): string {
    return `the database ${this.db.location}`;
  }

  async read(): Promise<UsersDocument> {
    const version = await changeVersion(this.db, 'accounts');
    const doc = await readDocument(this.db);
    this.readVersion = version;
    return doc;
  }

  edit(change: (doc: UsersDocument) => void | Promise<void>): Promise<UsersDocument> {
    return this.db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1::bigint)', [LOCK.accounts]);
      const doc = await readDocument(tx);
      await change(doc);
      const checked = validate(this.location, doc);
      await writeDocument(tx, checked);
      return checked;
    });
  }

  watch(onChange: () => void | Promise<void>, intervalMs = 1000): void {
    if (this.stopWatching) return;
    this.stopWatching = watchChanges(this.db, 'accounts', async () => onChange(), { intervalMs, since: this.readVersion });
  }

  close(): void {
    this.stopWatching?.();
    this.stopWatching = undefined;
  }
}
