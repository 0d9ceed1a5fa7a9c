// The users the registry knows: the configuration's `auth.users` plus the stored accounts (the
// users file, or PostgreSQL: accounts-store.ts), re-read whenever they change (a mounted Secret is
// updated in place by the kubelet; another replica or the CLI edits the database).
import type { Config } from '../../config/config.js';
import type { AccountsStore } from './accounts-store.js';
import type { UsersDocument } from './users-file.js';

export interface UserRecord {
  name: string;
  admin: boolean;
  teams: string[];
  /** scrypt hash; undefined only for a plain configuration password (tests). */
  passwordHash?: string;
  password?: string;
  source: 'config' | 'file';
}

export class UserStore {
  private users = new Map<string, UserRecord>();
  private fileTeams = new Set<string>();
  constructor(private readonly configUsers: Config['auth']['users'], readonly store: AccountsStore) {
    this.apply({ users: [], teams: [] });
  }

  /** Reads the stored accounts; when they are invalid or unreachable the previous users stay in force and it throws. */
  async load(): Promise<void> {
    this.apply(await this.store.read());
  }

  private apply(doc: UsersDocument): void {
    const users = new Map<string, UserRecord>();
    for (const u of doc.users) users.set(u.name, { name: u.name, admin: u.admin ?? false, teams: u.teams ?? [], passwordHash: u.passwordHash, source: 'file' });
    // The configuration wins over the file: it is what the operator deployed.
    for (const u of this.configUsers) {
      users.set(u.name, { name: u.name, admin: u.admin ?? false, teams: u.teams ?? [], passwordHash: u.passwordHash, password: u.password, source: 'config' });
    }
    this.users = users;
    this.fileTeams = new Set(doc.teams);
  }

  get(name: string): UserRecord | undefined {
    return this.users.get(name);
  }

  get size(): number {
    return this.users.size;
  }

  list(): UserRecord[] {
    return [...this.users.values()];
  }

  teams(): string[] {
    const all = new Set(this.fileTeams);
    for (const u of this.users.values()) for (const t of u.teams) all.add(t);
    return [...all].sort();
  }

  /** Reloads on every change the store sees (polled once a second by default). */
  watch(onReload: (err?: Error) => void, intervalMs = 1000): void {
    this.store.watch(async () => {
      try {
        await this.load();
      } catch (err) {
        onReload(err as Error);
        // A store that polls tries the reload again at its next tick.
        throw err;
      }
      onReload();
    }, intervalMs);
  }

  close(): void {
    this.store.close();
  }
}
