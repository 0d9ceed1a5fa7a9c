// The `layover` command: dispatches to one module per subcommand.
import { ConfigError } from '../config/resolve.js';
import { UsageError } from './args.js';
import { SERVE_HELP, serve } from './serve.js';
import { LOGIN_HELP, login } from './login.js';
import { TEAM_HELP, team } from './team.js';
import { TOKEN_HELP, token } from './token.js';
import { USER_HELP, user } from './user.js';
import { DU_HELP, du } from './du.js';
import { GC_HELP, gc } from './gc.js';
import { LS_HELP, ls } from './ls.js';
import { RM_HELP, rm } from './rm.js';

type Command = { summary: string; help: string; run: (argv: string[]) => Promise<void> };

const COMMANDS: Record<string, Command> = {
  serve: { summary: 'run the registry (and webhook/controller when configured)', help: SERVE_HELP, run: serve },
  user: { summary: 'add, remove or change registry users (users file)', help: USER_HELP, run: user },
  team: { summary: 'add or remove teams and their members', help: TEAM_HELP, run: team },
  token: { summary: 'mint namespace tokens; rotate signing keys', help: TOKEN_HELP, run: token },
  login: { summary: 'store registry credentials in ~/.docker/config.json', help: LOGIN_HELP, run: login },
  ls: { summary: 'list repositories with sizes, or a repository\'s tags', help: LS_HELP, run: ls },
  rm: { summary: 'delete a tag, manifest, repository or namespace', help: RM_HELP, run: rm },
  gc: { summary: 'run garbage collection now (--dry-run: only report)', help: GC_HELP, run: gc },
  du: { summary: 'storage by namespace, mirrored vs pushed', help: DU_HELP, run: du },
};

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return `layover: a Kubernetes-native image mirror\n\nUsage: layover <command> [options]\n\nCommands:\n${lines.join('\n')}\n\nRun 'layover <command> --help' for a command's options.`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${usage()}\n`);
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`layover: unknown command "${name}"\n\n${usage()}\n`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`${command.help}\n`);
    return 0;
  }
  try {
    await command.run(rest);
    return 0;
  } catch (err) {
    if (err instanceof ConfigError || err instanceof UsageError) {
      process.stderr.write(`layover ${name}: ${err.message}\n`);
      return 2;
    }
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' || code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
      process.stderr.write(`layover ${name}: ${(err as Error).message}\n`);
      return 2;
    }
    process.stderr.write(`layover ${name}: ${(err as Error).message}\n`);
    return 1;
  }
}

const code = await main(process.argv.slice(2));
// serve keeps running on its own; a serve that failed part-way may hold listeners open, so exit.
if (code !== 0) process.exit(code);
