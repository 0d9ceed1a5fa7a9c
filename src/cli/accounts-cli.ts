// What `layover user` and `layover team` share: the users file and storage they act on.
import path from 'node:path';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/config.js';
import { accountsOf, type Accounts, type NamespaceStorage } from '../registry/auth/accounts.js';
import { openStore } from '../registry/storage/open-store.js';

export const COMMON_OPTIONS = {
  config: { type: 'string', short: 'c' },
  file: { type: 'string' },
  yes: { type: 'boolean', short: 'y' },
} as const;

export async function accountsFrom(values: { config?: string; file?: string }): Promise<{ config: Config; accounts: Accounts }> {
  const config = await loadConfig(values.config ?? process.env.LAYOVER_CONFIG);
  return { config, accounts: accountsOf(config, values.file ? path.resolve(values.file) : undefined) };
}

export function openStorage(config: Config): Promise<NamespaceStorage> {
  return openStore(config);
}

export function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** Prints what removing `name` deletes; true when --yes says to go ahead. */
export function confirmRemoval(kind: 'user' | 'team', name: string, repositories: string[], yes: boolean | undefined): boolean {
  out(`Removing ${kind} "${name}" deletes its namespace "${name}/" with ${repositories.length} ${repositories.length === 1 ? 'repository' : 'repositories'}${repositories.length ? ':' : '.'}`);
  for (const r of repositories) out(`  ${r}`);
  if (!yes) {
    out('Nothing was changed. Run again with --yes to remove it.');
    return false;
  }
  return true;
}
