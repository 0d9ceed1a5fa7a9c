// Where users and teams are kept: the users file (embedded default; a mounted Secret or what
// `layover user`/`layover team` write) or PostgreSQL when database.url is set, so that every
// replica and the CLI see the same accounts (accounts-postgres.ts). Both hold a UsersDocument.
import { unwatchFile, watchFile } from 'node:fs';
import { readUsersFile, writeUsersFile, type UsersDocument } from './users-file.js';

export interface AccountsStore {
  /** For messages: the file, or the database URL without its password. */
  readonly location: string;
  read(): Promise<UsersDocument>;
  /**
   * Read-modify-write: `change` edits the document, which is then validated and stored. Atomic
   * against other editors of a database; a file is rewritten atomically (last writer wins).
   */
  edit(change: (doc: UsersDocument) => void | Promise<void>): Promise<UsersDocument>;
  /** Calls `onChange` (at most every `intervalMs`) once the stored accounts may have changed. */
  watch(onChange: () => void | Promise<void>, intervalMs?: number): void;
  close(): void;
}

export class FileAccountsStore implements AccountsStore {
  private listener: (() => void) | undefined;

  constructor(readonly file: string) {}

  get location(): string {
    return this.file;
  }

  read(): Promise<UsersDocument> {
    return readUsersFile(this.file);
  }

  async edit(change: (doc: UsersDocument) => void | Promise<void>): Promise<UsersDocument> {
    const doc = await readUsersFile(this.file);
    await change(doc);
    await writeUsersFile(this.file, doc);
    return doc;
  }

  /** Polls the file's stat; a Secret's symlink swap is seen like an edit. */
  watch(onChange: () => void | Promise<void>, intervalMs = 1000): void {
    if (this.listener) return;
    // The callback reports its own failures; the next edit of the file tries again.
    this.listener = () => void Promise.resolve().then(onChange).catch(() => undefined);
    watchFile(this.file, { interval: intervalMs, persistent: false }, this.listener);
  }

  close(): void {
    if (this.listener) unwatchFile(this.file, this.listener);
    this.listener = undefined;
  }
}
