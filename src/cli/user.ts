// `layover user add|passwd|rm|list|hash`: manage the users file.
import { addUser, checkUserChange, setPassword } from '../registry/auth/accounts.js';
import { hashPassword, randomPassword } from '../registry/auth/password.js';
import { auditFromCli } from '../audit/cli-audit.js';
import { parseArgs, UsageError } from './args.js';
import { COMMON_OPTIONS, accountsFrom, out, removeWithNamespace } from './accounts-cli.js';
import { printJson, table } from './client.js';
import { passwordFromStdin, readNewPassword } from './password-input.js';

export const USER_HELP = `layover user <add|passwd|rm|list|hash> [options]

  add NAME [--admin] [--team T]...   create a user (namespace NAME/); the password is typed
                                     twice on the terminal, read from --password-stdin, or
                                     made up with --generate-password and printed once
  passwd NAME                        set a new password (same sources)
  rm NAME [--yes]                    remove the user AND its namespace (all repositories
                                     and tags under NAME/); shows what goes, --yes does it
  list [--json]                      users, admin flag and teams
  hash                               print a scrypt hash of the password on stdin, for
                                     auth.users[].passwordHash in the configuration

Options:
  -c, --config FILE        configuration (else $LAYOVER_CONFIG, else embedded defaults)
      --file FILE          users file to edit (default: the database when database.url
                           is set, else auth.usersFile)
      --password-stdin     read the password from stdin
      --generate-password  make up a random password and print it once
  -y, --yes                confirm removal
      --json               list: print JSON`;

const SUBCOMMANDS = ['add', 'passwd', 'rm', 'list', 'hash'] as const;

async function newPassword(values: { 'password-stdin'?: boolean; 'generate-password'?: boolean }): Promise<{ password: string; generated: boolean }> {
  if (values['password-stdin'] && values['generate-password']) throw new UsageError('--password-stdin and --generate-password exclude each other');
  if (values['generate-password']) return { password: randomPassword(), generated: true };
  const typed = await readNewPassword(values['password-stdin'] ?? false);
  if (typed === undefined) throw new UsageError('no terminal to ask for the password: use --password-stdin or --generate-password');
  return { password: typed, generated: false };
}

export async function user(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      ...COMMON_OPTIONS,
      admin: { type: 'boolean' },
      team: { type: 'string', multiple: true },
      'password-stdin': { type: 'boolean' },
      'generate-password': { type: 'boolean' },
      json: { type: 'boolean' },
    },
  });
  const [sub, name, ...extra] = positionals;
  if (sub === undefined) throw new UsageError('usage: layover user <add|passwd|rm|list|hash> ...', true);
  if (!(SUBCOMMANDS as readonly string[]).includes(sub)) throw new UsageError(`unknown subcommand "${sub.slice(0, 80)}"`, true);
  if (extra.length || ((sub === 'list' || sub === 'hash') && name !== undefined)) throw new UsageError(`unexpected arguments: ${[...(sub === 'list' || sub === 'hash' ? [name] : []), ...extra].join(' ')}`, true);
  if (sub === 'hash') {
    out(await hashPassword(await passwordFromStdin()));
    return;
  }
  if (sub !== 'list' && !name) throw new UsageError(`usage: layover user ${sub} NAME`, true);
  const session = await accountsFrom(values);
  const { config, accounts } = session;
  try {
    if (sub === 'list') {
      const doc = await accounts.store.read();
      const source = session.database ? 'database' : 'users file';
      const users = [
        ...config.auth.users.map((u) => ({ name: u.name, admin: u.admin ?? false, teams: u.teams ?? [], source: 'configuration' })),
        ...doc.users.map((u) => ({ name: u.name, admin: u.admin ?? false, teams: u.teams ?? [], source })),
      ];
      if (values.json) return printJson({ users });
      if (!users.length) return out('no users');
      out(table(['USER', 'ADMIN', 'TEAMS', 'DEFINED IN'], users.map((u) => [u.name, u.admin ? 'yes' : '-', u.teams.join(',') || '-', u.source])));
      return;
    }
    const account = name as string;
    switch (sub) {
      case 'add':
      case 'passwd': {
        await checkUserChange(accounts, sub, account, values.team);
        const { password, generated } = await newPassword(values);
        if (sub === 'add') await addUser(accounts, account, password, { admin: values.admin, teams: values.team });
        else await setPassword(accounts, account, password);
        await auditFromCli(config, session.database, { action: `user.${sub}`, target: account, outcome: 'ok', ...(sub === 'add' ? { detail: { admin: values.admin ?? false, teams: values.team ?? [] } } : {}) });
        out(sub === 'add' ? `user "${account}" added to ${accounts.store.location}` : `password of "${account}" changed`);
        if (generated) out(`password (shown once): ${password}`);
        return;
      }
      case 'rm':
        return await removeWithNamespace(session, 'user', account, values.yes);
    }
  } finally {
    await session.close();
  }
}
