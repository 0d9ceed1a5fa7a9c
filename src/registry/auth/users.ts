// The users the registry knows: the configuration's `auth.users` plus the users file, which is
// re-read whenever it changes (a mounted Secret is updated in place by the kubelet).
import { unwatchFile, watchFile } from 'node:fs';
import type { Config } from '../../config/config.js';
import { readUsersFile, type UsersDocument } from './users-file.js';

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
  private listener: (() => void) | undefined;

  constructor(private readonly configUsers: Config['auth']['users'], readonly file: string) {
    this.apply({ users: [], teams: [] });
  }

  /** Reads the users file; on an invalid file the previous users stay in force and it throws. */
  async load(): Promise<void> {
    this.apply(await readUsersFile(this.file));
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

  /** Polls the file's stat once a second; a Secret's symlink swap is seen like an edit. */
  watch(onReload: (err?: Error) => void, intervalMs = 1000): void {
    if (this.listener) return;
    this.listener = () => {
      this.load().then(() => onReload(), (err: Error) => onReload(err));
    };
    watchFile(this.file, { interval: intervalMs, persistent: false }, this.listener);
  }

  close(): void {
    if (this.listener) unwatchFile(this.file, this.listener);
    this.listener = undefined;
  }
}
