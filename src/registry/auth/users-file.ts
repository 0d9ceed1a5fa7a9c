// The users file: users (scrypt hashes, admin flag, teams) and teams, as YAML. It can be a
// mounted Kubernetes Secret (read-only; the server reloads it) or be managed by
// `layover user` / `layover team`, which rewrite it atomically with mode 0600.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { parse, stringify } from 'yaml';
import { isAccountName } from './names.js';
import { isPasswordHash } from './password.js';

export interface FileUser { name: string; passwordHash: string; admin?: boolean; teams?: string[] }
export interface UsersDocument { users: FileUser[]; teams: string[] }

export class UsersFileError extends Error {
  constructor(file: string, problem: string) {
    super(`${file}: ${problem}`);
    this.name = 'UsersFileError';
  }
}

/** Checks a users document (`where` names its origin in messages); returns it normalised. */
export function validate(file: string, doc: unknown): UsersDocument {
  if (doc === null || doc === undefined) return { users: [], teams: [] };
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new UsersFileError(file, 'must be a mapping with "users" and "teams"');
  const raw = doc as { users?: unknown; teams?: unknown };
  for (const key of Object.keys(raw)) if (key !== 'users' && key !== 'teams') throw new UsersFileError(file, `${key}: unknown key`);
  const users = raw.users ?? [];
  const teams = raw.teams ?? [];
  if (!Array.isArray(users)) throw new UsersFileError(file, 'users: must be a list');
  if (!Array.isArray(teams) || !teams.every((t) => typeof t === 'string' && isAccountName(t))) {
    throw new UsersFileError(file, 'teams: must be a list of valid names');
  }
  const seen = new Set<string>(teams as string[]);
  const out: FileUser[] = users.map((u: unknown, i: number) => {
    const user = u as Partial<FileUser> & Record<string, unknown>;
    const where = `users.${i}`;
    if (typeof user !== 'object' || user === null) throw new UsersFileError(file, `${where}: must be a mapping`);
    for (const key of Object.keys(user)) if (!['name', 'passwordHash', 'admin', 'teams'].includes(key)) throw new UsersFileError(file, `${where}.${key}: unknown key`);
    if (typeof user.name !== 'string' || !isAccountName(user.name)) throw new UsersFileError(file, `${where}.name: not a valid user name`);
    if (seen.has(user.name)) throw new UsersFileError(file, `${where}.name: "${user.name}" is already a user or team`);
    seen.add(user.name);
    if (typeof user.passwordHash !== 'string' || !isPasswordHash(user.passwordHash)) throw new UsersFileError(file, `${where}.passwordHash: not a scrypt hash`);
    if (user.admin !== undefined && typeof user.admin !== 'boolean') throw new UsersFileError(file, `${where}.admin: must be true or false`);
    if (user.teams !== undefined && (!Array.isArray(user.teams) || !user.teams.every((t) => typeof t === 'string' && isAccountName(t)))) {
      throw new UsersFileError(file, `${where}.teams: must be a list of valid names`);
    }
    return { name: user.name, passwordHash: user.passwordHash, admin: user.admin ?? false, teams: user.teams ?? [] };
  });
  return { users: out, teams: teams as string[] };
}

/** The document in `file`; an absent file is an empty document. Throws UsersFileError when invalid. */
export async function readUsersFile(file: string): Promise<UsersDocument> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { users: [], teams: [] };
    throw err;
  }
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err) {
    throw new UsersFileError(file, `not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  return validate(file, doc);
}

export async function writeUsersFile(file: string, doc: UsersDocument): Promise<void> {
  validate(file, doc);
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  const header = '# layover users and teams; managed by `layover user` and `layover team`.\n';
  await writeFile(tmp, header + stringify({ users: doc.users, teams: doc.teams }), { mode: 0o600 });
  await rename(tmp, file);
}
