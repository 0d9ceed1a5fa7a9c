// The `layover` command: dispatches to one module per subcommand.
// Each command's module is imported only when it runs: `layover node` must not load the
// registry's configuration loader, logger or HTTP stack (its process stays under 48 MiB), and
// every command starts faster for not loading the others.
import { ConfigError } from '../config/errors.js';
import { NodeSettingsError } from '../node/settings.js';
import { UsageError } from './args.js';

type Loaded = { help: string; run: (argv: string[]) => Promise<void> };
type Command = { summary: string; load: () => Promise<Loaded> };

const COMMANDS: Record<string, Command> = {
  serve: { summary: 'run the registry (and webhook/controller/node when configured)', load: async () => { const m = await import('./serve.js'); return { help: m.SERVE_HELP, run: m.serve }; } },
  node: { summary: 'run the node-local entry point alone (the node DaemonSet)', load: async () => { const m = await import('./node.js'); return { help: m.NODE_HELP, run: m.node }; } },
  user: { summary: 'add, remove, list or change registry users (users file)', load: async () => { const m = await import('./user.js'); return { help: m.USER_HELP, run: m.user }; } },
  team: { summary: 'add, remove or list teams and their members', load: async () => { const m = await import('./team.js'); return { help: m.TEAM_HELP, run: m.team }; } },
  token: { summary: 'mint namespace tokens; rotate signing keys', load: async () => { const m = await import('./token.js'); return { help: m.TOKEN_HELP, run: m.token }; } },
  login: { summary: 'store registry credentials in ~/.docker/config.json', load: async () => { const m = await import('./login.js'); return { help: m.LOGIN_HELP, run: m.login }; } },
  ls: { summary: 'list repositories with sizes, or a repository\'s tags', load: async () => { const m = await import('./ls.js'); return { help: m.LS_HELP, run: m.ls }; } },
  rm: { summary: 'delete a tag, manifest, repository or namespace', load: async () => { const m = await import('./rm.js'); return { help: m.RM_HELP, run: m.rm }; } },
  gc: { summary: 'run garbage collection now (--dry-run: only report)', load: async () => { const m = await import('./gc.js'); return { help: m.GC_HELP, run: m.gc }; } },
  audit: { summary: 'show the audit trail: pushes, deletes, logins, account and key changes', load: async () => { const m = await import('./audit.js'); return { help: m.AUDIT_HELP, run: m.audit }; } },
  du: { summary: 'storage by namespace, mirrored vs pushed', load: async () => { const m = await import('./du.js'); return { help: m.DU_HELP, run: m.du }; } },
};

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return `layover: a Kubernetes-native image mirror\n\nUsage: layover <command> [options]\n\nCommands:\n${lines.join('\n')}\n\nRun 'layover <command> --help' for a command's options.`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    // No command at all is a usage mistake (exit 2), but the usage is what the user wants to see.
    (name ? process.stdout : process.stderr).write(`${usage()}\n`);
    return name ? 0 : 2;
  }
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!command) {
    process.stderr.write(`layover: unknown command "${name.slice(0, 80)}"; run 'layover --help' for the list\n`);
    return 2;
  }
  try {
    const loaded = await command.load();
    if (rest.includes('--help') || rest.includes('-h')) {
      process.stdout.write(`${loaded.help}\n`);
      return 0;
    }
    await loaded.run(rest);
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`layover ${name}: ${err.message}${err.showHelp ? `; see 'layover ${name} --help'` : ''}\n`);
      return 2;
    }
    // A configuration's message lists each bad key on its own line.
    if (err instanceof ConfigError || err instanceof NodeSettingsError) {
      process.stderr.write(`layover ${name}: ${err.message}\n`);
      return 2;
    }
    process.stderr.write(`layover ${name}: ${(err as Error).message}\n`);
    return 1;
  }
}

const code = await main(process.argv.slice(2));
// serve keeps running on its own; a serve that failed part-way may hold listeners open, so exit.
if (code !== 0) process.exit(code);
