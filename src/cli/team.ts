// `layover team add|rm|add-member|rm-member|list`: teams in the users file.
import { addMember, addTeam, removeMember } from '../registry/auth/accounts.js';
import { auditFromCli } from '../audit/cli-audit.js';
import { parseArgs, UsageError } from './args.js';
import { COMMON_OPTIONS, accountsFrom, out, removeWithNamespace } from './accounts-cli.js';
import { printJson, table } from './client.js';

export const TEAM_HELP = `layover team <add|rm|add-member|rm-member|list> [options]

  add TEAM                  create a team (its members may push to TEAM/)
  rm TEAM [--yes]           remove the team AND its namespace (all repositories under
                            TEAM/); shows what goes, --yes does it
  add-member TEAM USER      add USER to TEAM
  rm-member TEAM USER       remove USER from TEAM
  list [--json]             teams and their members

Options:
  -c, --config FILE    configuration (else $LAYOVER_CONFIG, else embedded defaults)
      --file FILE      users file to edit (default: the database when database.url
                       is set, else auth.usersFile)
  -y, --yes            confirm removal
      --json           list: print JSON`;

const SUBCOMMANDS = ['add', 'rm', 'add-member', 'rm-member', 'list'] as const;

export async function team(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, strict: true, options: { ...COMMON_OPTIONS, json: { type: 'boolean' } } });
  const [sub, name, member, ...extra] = positionals;
  if (sub === undefined) throw new UsageError('usage: layover team <add|rm|add-member|rm-member|list> ...', true);
  if (!(SUBCOMMANDS as readonly string[]).includes(sub)) throw new UsageError(`unknown subcommand "${sub.slice(0, 80)}"`, true);
  const takes = sub === 'list' ? 0 : sub === 'add-member' || sub === 'rm-member' ? 2 : 1;
  const given = [name, member, ...extra].filter((a) => a !== undefined);
  if (given.length > takes) throw new UsageError(`unexpected arguments: ${given.slice(takes).join(' ')}`, true);
  if (sub !== 'list' && !name) throw new UsageError(`usage: layover team ${sub} TEAM${takes === 2 ? ' USER' : ''}`, true);
  const session = await accountsFrom(values);
  const { config, accounts } = session;
  try {
    if (sub === 'list') {
      const doc = await accounts.store.read();
      const users = [...config.auth.users, ...doc.users];
      const names = new Set([...doc.teams, ...users.flatMap((u) => u.teams ?? [])]);
      const teams = [...names].sort().map((t) => ({ name: t, members: users.filter((u) => u.teams?.includes(t)).map((u) => u.name) }));
      if (values.json) return printJson({ teams });
      if (!teams.length) return out('no teams');
      out(table(['TEAM', 'MEMBERS'], teams.map((t) => [t.name, t.members.join(',') || '-'])));
      return;
    }
    const team = name as string;
    switch (sub) {
      case 'add':
        await addTeam(accounts, team);
        await auditFromCli(config, session.database, { action: 'team.add', target: team, outcome: 'ok' });
        out(`team "${team}" added`);
        return;
      case 'add-member':
      case 'rm-member':
        if (!member) throw new UsageError(`usage: layover team ${sub} TEAM USER`, true);
        await (sub === 'add-member' ? addMember : removeMember)(accounts, team, member);
        await auditFromCli(config, session.database, { action: `team.${sub}`, target: team, outcome: 'ok', detail: { user: member } });
        out(sub === 'add-member' ? `"${member}" added to team "${team}"` : `"${member}" removed from team "${team}"`);
        return;
      case 'rm':
        return await removeWithNamespace(session, 'team', team, values.yes);
    }
  } finally {
    await session.close();
  }
}
