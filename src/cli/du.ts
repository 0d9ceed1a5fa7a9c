// `layover du`: storage by namespace, mirrored (cache) versus pushed.
import type { StorageUsage } from '../api/inventory.js';
import { parseArgs, UsageError } from './args.js';
import { CLIENT_HELP, CLIENT_OPTIONS, humanBytes, LayoverClient, print, printJson, table } from './client.js';

export const DU_HELP = `layover du [options]

Storage by namespace (the ones you may pull; admins: all), mirrored versus pushed. A blob
shared by two namespaces counts in both; "on disk" counts every stored blob once, including
what garbage collection has not reclaimed yet.

Options:
${CLIENT_HELP}`;

export async function du(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, strict: true, options: { ...CLIENT_OPTIONS } });
  if (positionals.length) throw new UsageError('usage: layover du');
  const client = await LayoverClient.from(values);
  const usage = await client.call<StorageUsage>('GET', 'storage');
  if (values.json) return printJson(usage);
  const rows = usage.namespaces.map((n) => [n.namespace, n.kind, String(n.repositories), humanBytes(n.bytes), String(n.bytes)]);
  if (rows.length) print(table(['NAMESPACE', 'KIND', 'REPOS', 'SIZE', 'BYTES'], rows, [2, 3, 4]));
  else print('no repositories');
  print('');
  print(`pushed:   ${humanBytes(usage.pushedBytes)}`);
  print(`mirrored: ${humanBytes(usage.mirrorBytes)}`);
  if (usage.storedBytes !== undefined) print(`on disk:  ${humanBytes(usage.storedBytes)} in ${usage.blobs ?? 0} blobs`);
}
