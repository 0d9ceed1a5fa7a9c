// What `layover user` and `layover team` share: the accounts (users file, or the database when
// database.url is set) and the storage they act on.
import path from 'node:path';
import { auditFromCli } from '../audit/cli-audit.js';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/config.js';
import type { Database } from '../database/database.js';
import { FileAccountsStore } from '../registry/auth/accounts-store.js';
import { accountsOf, checkRemoval, namespaceRepositories, removeAccount, type Accounts, type NamespaceStorage } from '../registry/auth/accounts.js';
import { accountsStore } from '../registry/auth/auth.js';
import { openStore } from '../registry/storage/open-store.js';

export const COMMON_OPTIONS = {
  config: { type: 'string', short: 'c' },
  file: { type: 'string' },
  yes: { type: 'boolean', short: 'y' },
} as const;

export interface AccountsSession {
  config: Config;
  accounts: Accounts;
  /** Set when the accounts are in the database: the registry's metadata is there too. */
  database?: Database;
  /** Closes the database connections, if any: call when the command is done. */
  close(): Promise<void>;
}

/** `--file` names a users file to edit; else the configuration's database, else its auth.usersFile. */
export async function accountsFrom(values: { config?: string; file?: string }): Promise<AccountsSession> {
  const config = await loadConfig(values.config ?? process.env.LAYOVER_CONFIG);
  let database: Database | undefined;
  if (!values.file && config.database) database = await (await import('../database/open.js')).openDatabase(config.database, { waitMs: 0, applicationName: 'layover-cli' });
  const store = values.file ? new FileAccountsStore(path.resolve(values.file)) : accountsStore(config, database);
  return { config, accounts: accountsOf(config, store), database, close: async () => database?.close() };
}

/** The registry's storage whose namespaces `rm` deletes: the shared one with a database, else the embedded one. */
export function openStorage(config: Config, database?: Database): Promise<NamespaceStorage> {
  return openStore(config, database);
}

export function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

/**
 * `user rm` and `team rm`: removing an account deletes its namespace, so it first says which
 * repositories go, and changes nothing without --yes.
 */
export async function removeWithNamespace(session: AccountsSession, kind: 'user' | 'team', name: string, yes: boolean | undefined): Promise<void> {
  await checkRemoval(session.accounts, kind, name);
  const storage = await openStorage(session.config, session.database);
  if (!confirmRemoval(kind, name, await namespaceRepositories(storage, name), yes)) return;
  const deleted = await removeAccount(session.accounts, kind, name, storage);
  await auditFromCli(session.config, session.database, { action: `${kind}.rm`, target: name, outcome: 'ok', detail: { repositoriesDeleted: deleted.length } });
  out(`${kind} "${name}" removed; ${deleted.length} repositories deleted (garbage collection reclaims their blobs)`);
}

/** Prints what removing `name` deletes; true when --yes says to go ahead. */
function confirmRemoval(kind: 'user' | 'team', name: string, repositories: string[], yes: boolean | undefined): boolean {
  out(`Removing ${kind} "${name}" deletes its namespace "${name}/" with ${repositories.length} ${repositories.length === 1 ? 'repository' : 'repositories'}${repositories.length ? ':' : '.'}`);
  for (const r of repositories) out(`  ${r}`);
  if (!yes) {
    out('Nothing was changed. Run again with --yes to remove it.');
    return false;
  }
  return true;
}
