// `layover team add|rm|add-member|rm-member|list`: teams in the users file.
import { parseArgs } from 'node:util';
import { addMember, addTeam, checkRemoval, namespaceRepositories, removeAccount, removeMember } from '../registry/auth/accounts.js';
import { UsageError } from './args.js';
import { COMMON_OPTIONS, accountsFrom, confirmRemoval, openStorage, out } from './accounts-cli.js';

export const TEAM_HELP = `layover team <add|rm|add-member|rm-member|list> [options]

  add TEAM                  create a team (its members may push to TEAM/)
  rm TEAM [--yes]           remove the team AND its namespace (all repositories under
                            TEAM/); shows what goes, --yes does it
  add-member TEAM USER      add USER to TEAM
  rm-member TEAM USER       remove USER from TEAM
  list                      teams and their members

Options:
  -c, --config FILE    configuration (else $LAYOVER_CONFIG, else embedded defaults)
      --file FILE      users file to edit (default: the database when database.url
                       is set, else auth.usersFile)
  -y, --yes            confirm removal`;

export async function team(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, strict: true, options: COMMON_OPTIONS });
  const [sub, name, member, ...extra] = positionals;
  if (extra.length) throw new UsageError(`unexpected arguments: ${extra.join(' ')}`);
  const session = await accountsFrom(values);
  const { config, accounts } = session;
  try {
    if (sub === 'list') {
      const doc = await accounts.store.read();
      const users = [...config.auth.users, ...doc.users];
      const teams = new Set([...doc.teams, ...users.flatMap((u) => u.teams ?? [])]);
      for (const t of [...teams].sort()) out(`${t}\t${users.filter((u) => u.teams?.includes(t)).map((u) => u.name).join(',') || '-'}`);
      return;
    }
    if (!name) throw new UsageError(`usage: layover team ${sub ?? '<add|rm|add-member|rm-member|list>'} TEAM`);
    switch (sub) {
      case 'add':
        await addTeam(accounts, name);
        out(`team "${name}" added`);
        return;
      case 'add-member':
      case 'rm-member':
        if (!member) throw new UsageError(`usage: layover team ${sub} TEAM USER`);
        await (sub === 'add-member' ? addMember : removeMember)(accounts, name, member);
        out(sub === 'add-member' ? `"${member}" added to team "${name}"` : `"${member}" removed from team "${name}"`);
        return;
      case 'rm': {
        await checkRemoval(accounts, 'team', name);
        const storage = await openStorage(config, session.database);
        if (!confirmRemoval('team', name, await namespaceRepositories(storage, name), values.yes)) return;
        const deleted = await removeAccount(accounts, 'team', name, storage);
        out(`team "${name}" removed; ${deleted.length} repositories deleted (garbage collection reclaims their blobs)`);
        return;
      }
      default:
        throw new UsageError(`unknown subcommand "${sub}"\n\n${TEAM_HELP}`);
    }
  } finally {
    await session.close();
  }
}
