// First start with no users: create `admin` with a random password, write the password to a
// file only the owner can read, and print it once, so a single-admin setup is usable at once.
import { chmod, mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { AccountsStore } from './accounts-store.js';
import { hashPassword, randomPassword } from './password.js';

export const FIRST_ADMIN = 'admin';

export function adminPasswordFile(storageRoot: string): string {
  return path.join(storageRoot, '_auth', 'admin-password');
}

/**
 * Creates the first admin in `store`; returns where its password was written, or undefined when
 * another process (a replica starting at the same time) created users first.
 */
export async function createFirstAdmin(store: AccountsStore, storageRoot: string): Promise<{ name: string; password: string; passwordFile: string } | undefined> {
  const password = randomPassword();
  const passwordHash = await hashPassword(password);
  const passwordFile = adminPasswordFile(storageRoot);
  // The password is on disk before the user exists, so a crash in between never leaves an admin
  // whose password nobody can know.
  await mkdir(path.dirname(passwordFile), { recursive: true, mode: 0o700 });
  await writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
  // mode applies only when the file is created; an older file keeps its mode otherwise.
  await chmod(passwordFile, 0o600);
  let created = false;
  await store.edit((doc) => {
    if (doc.users.length) return;
    doc.users.push({ name: FIRST_ADMIN, passwordHash, admin: true, teams: [] });
    created = true;
  });
  if (created) return { name: FIRST_ADMIN, password, passwordFile };
  // Another process won: its password stays; ours, unused, goes (unless it was overwritten).
  if ((await readFile(passwordFile, 'utf8').catch(() => '')).trim() === password) await unlink(passwordFile).catch(() => undefined);
  return undefined;
}
