// First start with no users: create `admin` with a random password, write the password to a
// file only the owner can read, and print it once, so a single-admin setup is usable at once.
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { hashPassword, randomPassword } from './password.js';
import { readUsersFile, writeUsersFile } from './users-file.js';

export const FIRST_ADMIN = 'admin';

export function adminPasswordFile(storageRoot: string): string {
  return path.join(storageRoot, '_auth', 'admin-password');
}

/** Creates the first admin in `usersFile`; returns where its password was written. */
export async function createFirstAdmin(usersFile: string, storageRoot: string): Promise<{ name: string; password: string; passwordFile: string }> {
  const password = randomPassword();
  const doc = await readUsersFile(usersFile);
  if (doc.users.length) throw new Error(`${usersFile} already has users`);
  const passwordFile = adminPasswordFile(storageRoot);
  await mkdir(path.dirname(passwordFile), { recursive: true, mode: 0o700 });
  await writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
  // mode applies only when the file is created; an older file keeps its mode otherwise.
  await chmod(passwordFile, 0o600);
  await writeUsersFile(usersFile, { users: [{ name: FIRST_ADMIN, passwordHash: await hashPassword(password), admin: true, teams: [] }], teams: doc.teams });
  return { name: FIRST_ADMIN, password, passwordFile };
}
