// User and team management on the stored accounts (users file or database), as `layover user` /
// `layover team` do it. Removing a user or team also removes its registry namespace: the accounts
// are rewritten first, so access ends before the repositories go; GC later reclaims the blobs.
import type { Config } from '../../config/config.js';
import { FileAccountsStore, type AccountsStore } from './accounts-store.js';
import { isAccountName, namespaceOf } from './names.js';
import { hashPassword } from './password.js';
import type { UsersDocument } from './users-file.js';

/** The part of the storage that account removal needs (the Store offers both). */
export interface NamespaceStorage {
  listRepositories(): Promise<string[]>;
  deleteNamespace(namespace: string): Promise<string[]>;
}

export class AccountError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AccountError';
  }
}

export interface Accounts {
  store: AccountsStore;
  configUsers: Config['auth']['users'];
  mirrorNamespaces: string[];
}

/** `store`: where the accounts are kept (default: the users file auth.usersFile). */
export function accountsOf(config: Config, store: AccountsStore = new FileAccountsStore(config.auth.usersFile)): Accounts {
  return { store, configUsers: config.auth.users, mirrorNamespaces: config.upstreams.flatMap((u) => [u.prefix, ...u.aliases]) };
}

function edit(accounts: Accounts, change: (doc: UsersDocument) => void | Promise<void>): Promise<UsersDocument> {
  return accounts.store.edit(change);
}

function checkNewName(accounts: Accounts, doc: UsersDocument, name: string, kind: 'user' | 'team'): void {
  if (!isAccountName(name)) throw new AccountError(`"${name}" is not a valid ${kind} name: it becomes a namespace, so lower case letters, digits and . _ - only`);
  if (accounts.mirrorNamespaces.includes(name)) throw new AccountError(`"${name}" is a mirror namespace`);
  if (accounts.configUsers.some((u) => u.name === name)) throw new AccountError(`"${name}" is a user in the configuration`);
  if (doc.users.some((u) => u.name === name)) throw new AccountError(`"${name}" is already a user`);
  if (doc.teams.includes(name) || doc.users.some((u) => u.teams?.includes(name)) || accounts.configUsers.some((u) => u.teams?.includes(name))) {
    throw new AccountError(`"${name}" is already a team`);
  }
}

function fileUser(accounts: Accounts, doc: UsersDocument, name: string) {
  const user = doc.users.find((u) => u.name === name);
  if (user) return user;
  if (accounts.configUsers.some((u) => u.name === name)) throw new AccountError(`"${name}" is defined in the configuration file; change it there`);
  throw new AccountError(`no user "${name}"`);
}

function teamExists(doc: UsersDocument, name: string): boolean {
  return doc.teams.includes(name) || doc.users.some((u) => u.teams?.includes(name));
}

/**
 * The checks addUser (or setPassword) makes, without writing: the CLI runs them before it asks
 * for a password, so nobody types one twice to be told the name is taken.
 */
export async function checkUserChange(accounts: Accounts, change: 'add' | 'passwd', name: string, teams: string[] = []): Promise<void> {
  const doc = await accounts.store.read();
  if (change === 'passwd') {
    fileUser(accounts, doc, name);
    return;
  }
  checkNewName(accounts, doc, name, 'user');
  for (const team of teams) if (!teamExists(doc, team)) throw new AccountError(`no team "${team}" (create it with: layover team add ${team})`);
}

export async function addUser(accounts: Accounts, name: string, password: string, options: { admin?: boolean; teams?: string[] } = {}): Promise<void> {
  const passwordHash = await hashPassword(password);
  await edit(accounts, (doc) => {
    checkNewName(accounts, doc, name, 'user');
    for (const team of options.teams ?? []) if (!teamExists(doc, team)) throw new AccountError(`no team "${team}" (create it with: layover team add ${team})`);
    doc.users.push({ name, passwordHash, admin: options.admin ?? false, teams: options.teams ?? [] });
  });
}

export async function setPassword(accounts: Accounts, name: string, password: string): Promise<void> {
  const passwordHash = await hashPassword(password);
  await edit(accounts, (doc) => {
    fileUser(accounts, doc, name).passwordHash = passwordHash;
  });
}

export async function addTeam(accounts: Accounts, name: string): Promise<void> {
  await edit(accounts, (doc) => {
    checkNewName(accounts, doc, name, 'team');
    doc.teams.push(name);
  });
}

export async function addMember(accounts: Accounts, team: string, user: string): Promise<void> {
  await edit(accounts, (doc) => {
    if (!teamExists(doc, team)) throw new AccountError(`no team "${team}"`);
    const u = fileUser(accounts, doc, user);
    if (u.teams?.includes(team)) throw new AccountError(`"${user}" is already in team "${team}"`);
    u.teams = [...(u.teams ?? []), team];
    if (!doc.teams.includes(team)) doc.teams.push(team);
  });
}

export async function removeMember(accounts: Accounts, team: string, user: string): Promise<void> {
  await edit(accounts, (doc) => {
    const u = fileUser(accounts, doc, user);
    if (!u.teams?.includes(team)) throw new AccountError(`"${user}" is not in team "${team}"`);
    u.teams = u.teams.filter((t) => t !== team);
    // The team outlives its last member: its namespace stays until `layover team rm`.
    if (!doc.teams.includes(team)) doc.teams.push(team);
  });
}

/** The repositories that removing `name` would delete (its namespace). */
export async function namespaceRepositories(storage: NamespaceStorage, name: string): Promise<string[]> {
  return (await storage.listRepositories()).filter((r) => namespaceOf(r) === name);
}

/** Checks that `name` can be removed, without changing anything. */
export async function checkRemoval(accounts: Accounts, kind: 'user' | 'team', name: string): Promise<void> {
  const doc = await accounts.store.read();
  if (kind === 'user') {
    const user = fileUser(accounts, doc, name);
    if (user.admin && !doc.users.some((u) => u.admin && u.name !== name) && !accounts.configUsers.some((u) => u.admin)) {
      throw new AccountError(`"${name}" is the last admin`);
    }
    return;
  }
  if (!teamExists(doc, name)) throw new AccountError(`no team "${name}"`);
  const configMembers = accounts.configUsers.filter((u) => u.teams?.includes(name)).map((u) => u.name);
  if (configMembers.length) throw new AccountError(`team "${name}" has members in the configuration file (${configMembers.join(', ')}); remove them there first`);
}

/** Removes the user or team from the file, then deletes its namespace; returns the deleted repositories. */
export async function removeAccount(accounts: Accounts, kind: 'user' | 'team', name: string, storage: NamespaceStorage): Promise<string[]> {
  await checkRemoval(accounts, kind, name);
  await edit(accounts, (doc) => {
    if (kind === 'user') doc.users = doc.users.filter((u) => u.name !== name);
    else {
      doc.teams = doc.teams.filter((t) => t !== name);
      for (const u of doc.users) if (u.teams?.includes(name)) u.teams = u.teams.filter((t) => t !== name);
    }
  });
  return storage.deleteNamespace(name);
}
