// `layover audit [--action A] [--limit N] [--before ID] [--json]`: the running layover's audit trail (admins).
import type { AuditRecord } from '../registry/storage/metadata/types.js';
import { parseArgs, UsageError } from './args.js';
import { CLIENT_HELP, CLIENT_OPTIONS, LayoverClient, print, printJson, table } from './client.js';

export const AUDIT_HELP = `layover audit [--action A] [--limit N] [--before ID] [options]

Shows the audit trail of the running layover, newest first (admins only): pushes, deletes,
logins (successful and failed), changes of users, teams and signing keys. Entries are kept for
audit.retention (default 90d).

Options:
      --action A        only this action (push, delete, login, user, team, key, or a
                        sub-action such as user.add)
      --limit N         at most N entries (1-1000, default 50)
      --before ID       entries older than entry ID (the next page)
${CLIENT_HELP}`;

type Event = Omit<AuditRecord, 'at'> & { at: string };

export async function audit(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, strict: true, options: { ...CLIENT_OPTIONS, action: { type: 'string' }, limit: { type: 'string' }, before: { type: 'string' } } });
  if (positionals.length) throw new UsageError(`unexpected arguments: ${positionals.join(' ')}`, true);
  const limit = values.limit ?? '50';
  if (!/^\d{1,4}$/.test(limit) || Number(limit) < 1 || Number(limit) > 1000) throw new UsageError('--limit: a number from 1 to 1000');
  if (values.before !== undefined && !/^\d{1,15}$/.test(values.before)) throw new UsageError('--before: an entry id');
  if (values.action !== undefined && !/^[a-z][a-z.-]{0,39}$/.test(values.action)) throw new UsageError('--action: an action such as push, delete, login or user');
  const client = await LayoverClient.from(values);
  const answer = await client.call<{ events: Event[] }>('GET', 'audit', {
    limit,
    ...(values.before !== undefined ? { before: values.before } : {}),
    ...(values.action !== undefined ? { action: values.action } : {}),
  });
  if (values.json) return printJson(answer);
  if (!answer.events.length) return print('no audit entries');
  print(
    table(
      ['ID', 'TIME', 'ACTOR', 'ACTION', 'TARGET', 'OUTCOME', 'CLIENT'],
      answer.events.map((e) => [String(e.id), e.at.replace(/\.\d+Z$/, 'Z'), e.actor, e.action, e.target, e.outcome, e.client ?? '-']),
    ),
  );
}
