// `layover user add|passwd|rm|list|hash`: manage the users file.
import { parseArgs } from 'node:util';
import { addUser, checkRemoval, namespaceRepositories, removeAccount, setPassword } from '../registry/auth/accounts.js';
import { hashPassword, randomPassword } from '../registry/auth/password.js';
import { UsageError } from './args.js';
import { COMMON_OPTIONS, accountsFrom, confirmRemoval, openStorage, out } from './accounts-cli.js';
import { passwordFromStdin, readNewPassword } from './password-input.js';

export const USER_HELP = `layover user <add|passwd|rm|list|hash> [options]

  add NAME [--admin] [--team T]...   create a user (namespace NAME/); the password is read
                                     from --password-stdin or the terminal, else generated
                                     and printed once
  passwd NAME                        set a new password (same sources)
  rm NAME [--yes]                    remove the user AND its namespace (all repositories
                                     and tags under NAME/); shows what goes, --yes does it
  list                               users, admin flag and teams
  hash                               print a scrypt hash of the password on stdin, for
                                     auth.users[].passwordHash in the configuration

Options:
  -c, --config FILE    configuration (else $LAYOVER_CONFIG, else embedded defaults)
      --file FILE      users file to edit (default: the database when database.url
                       is set, else auth.usersFile)
      --password-stdin read the password from stdin
  -y, --yes            confirm removal`;

export async function user(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: { ...COMMON_OPTIONS, admin: { type: 'boolean' }, team: { type: 'string', multiple: true }, 'password-stdin': { type: 'boolean' } },
  });
  const [sub, name, ...extra] = positionals;
  if (extra.length) throw new UsageError(`unexpected arguments: ${extra.join(' ')}`);
  if (sub === 'hash') {
    out(await hashPassword(await passwordFromStdin()));
    return;
  }
  const session = await accountsFrom(values);
  const { config, accounts } = session;
  try {
    if (sub === 'list') {
      const doc = await accounts.store.read();
      for (const u of config.auth.users) out(`${u.name}\t${u.admin ? 'admin' : '-'}\t${(u.teams ?? []).join(',') || '-'}\t(configuration)`);
      for (const u of doc.users) out(`${u.name}\t${u.admin ? 'admin' : '-'}\t${(u.teams ?? []).join(',') || '-'}`);
      return;
    }
    if (!name) throw new UsageError(`usage: layover user ${sub ?? '<add|passwd|rm|list|hash>'} NAME`);
    switch (sub) {
      case 'add':
      case 'passwd': {
        let password = await readNewPassword(values['password-stdin'] ?? false);
        const generated = password === undefined;
        password ??= randomPassword();
        if (sub === 'add') await addUser(accounts, name, password, { admin: values.admin, teams: values.team });
        else await setPassword(accounts, name, password);
        out(sub === 'add' ? `user "${name}" added to ${accounts.store.location}` : `password of "${name}" changed`);
        if (generated) out(`password (shown once): ${password}`);
        return;
      }
      case 'rm': {
        await checkRemoval(accounts, 'user', name);
        const storage = await openStorage(config, session.database);
        if (!confirmRemoval('user', name, await namespaceRepositories(storage, name), values.yes)) return;
        const deleted = await removeAccount(accounts, 'user', name, storage);
        out(`user "${name}" removed; ${deleted.length} repositories deleted (garbage collection reclaims their blobs)`);
        return;
      }
      default:
        throw new UsageError(`unknown subcommand "${sub}"\n\n${USER_HELP}`);
    }
  } finally {
    await session.close();
  }
}
