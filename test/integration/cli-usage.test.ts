// The CLI's arguments as a user meets them (node bin/layover.js against a real `layover serve`):
// one clean line and exit 2 for every usage mistake, `--url HOST:PORT`, `--user NAME` with the
// password from a terminal (a real pseudo-terminal, through util-linux's `script`), `user add`
// confirming a typed password or generating one, `rm` of a repository or namespace needing
// --yes and taking --dry-run, and --json plus table headers on the user and team listings.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PASSWORDS } from '../fixtures/auth/config.js';
import { spawnLayover, type SpawnedLayover } from '../helpers/layover.js';
import { buildManifest, imageConfig, randomBlob } from '../helpers/oci-content.js';
import { pushContent, type Auth } from '../helpers/registry-client.js';
import { requireTool, runTool, ToolError } from '../helpers/run-tool.js';
import { makeTempDir, type TempDir } from '../helpers/temp-dir.js';

const BIN = path.resolve(import.meta.dirname, '../../bin/layover.js');
const alice: Auth = { user: 'alice', password: PASSWORDS.alice };
let layover: SpawnedLayover;
let tmp: TempDir;

interface Outcome { code: number; stdout: string; stderr: string }

function env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: tmp.path, DOCKER_CONFIG: path.join(tmp.path, 'no-docker'), LAYOVER_URL: layover.url, ...extra };
}

async function outcome(run: Promise<{ stdout: string; stderr: string }>): Promise<Outcome> {
  try {
    const { stdout, stderr } = await run;
    return { code: 0, stdout, stderr };
  } catch (err) {
    if (!(err instanceof ToolError)) throw err;
    return { code: Number(err.code), stdout: err.stdout, stderr: err.stderr };
  }
}

/** The CLI with stdin a pipe (no terminal). */
const cli = (args: string[], extra: NodeJS.ProcessEnv = {}, input?: string) =>
  outcome(runTool('node', [BIN, ...args], { env: env(extra), timeoutMs: 60_000, input: input ?? '' }));

/** The CLI on a pseudo-terminal, `typed` arriving as keystrokes; stdout and stderr both land in stdout. */
function onTerminal(args: string[], typed: string, extra: NodeJS.ProcessEnv = {}): Promise<Outcome> {
  const command = ['node', BIN, ...args].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ');
  return outcome(runTool('script', ['-qec', command, '/dev/null'], { env: env(extra), timeoutMs: 60_000, input: typed }));
}

function expectUsageError(o: Outcome, pattern: RegExp): void {
  expect(o.code, o.stderr).toBe(2);
  expect(o.stdout).toBe('');
  if (!o.stderr.startsWith('layover: a Kubernetes')) expect(o.stderr.trim().split('\n'), o.stderr).toHaveLength(1);
  expect(o.stderr.trim()).toMatch(pattern);
  expect(o.stderr).not.toMatch(/ERR_PARSE_ARGS|TypeError|at .*\.js:\d+/);
}

async function push(repo: string, tag: string): Promise<void> {
  const layer = randomBlob(3_000, `${repo}:${tag}`);
  const config = imageConfig([layer.digest]);
  await pushContent(layover.url, repo, tag, [config, layer], buildManifest({ config, layers: [layer] }), alice);
}

beforeAll(async () => {
  requireTool('script', 'bsdutils');
  tmp = makeTempDir('layover-cli-usage-');
  layover = await spawnLayover({
    auth: {
      enabled: true,
      users: [
        { name: 'admin', password: PASSWORDS.admin, admin: true },
        { name: 'alice', password: PASSWORDS.alice, teams: ['dev'] },
      ],
    },
  });
  await push('alice/keep', 'v1');
}, 120_000);

afterAll(async () => {
  await layover?.close();
  tmp?.cleanup();
});

describe('usage mistakes: one clean line, exit 2', { timeout: 120_000 }, () => {
  it.each([
    [['ls', '--bogus'], /^layover ls: unknown option --bogus; see 'layover ls --help'$/],
    [['rm', '--url'], /^layover rm: option --url needs a value; see 'layover rm --help'$/],
    [['ls', '--json=yes'], /^layover ls: option --json takes no value/],
    [['gc', 'now'], /^layover gc: usage: layover gc/],
    [['serve', 'extra'], /^layover serve: unexpected argument "extra"/],
    [['user', 'frobnicate', 'x'], /^layover user: unknown subcommand "frobnicate"; see 'layover user --help'$/],
    [['team', 'add-member', 'dev'], /^layover team: usage: layover team add-member TEAM USER/],
    [['team', 'list', 'extra'], /^layover team: unexpected arguments: extra/],
    [['user', '-x'], /^layover user: unknown option -x/],
    [['token', 'mint'], /^layover token: unknown subcommand "mint"/],
    [['gc', '--grace', 'soon'], /^layover gc: --grace: not a duration: "soon"/],
    [['user'], /^layover user: usage: layover user <add\|passwd\|rm\|list\|hash>/],
    [[], /^layover: a Kubernetes-native image mirror/],
    [['frobnicate'], /^layover: unknown command "frobnicate"; run 'layover --help' for the list$/],
    [['ls', '--url', 'http://[nope'], /^layover ls: --url: "http:\/\/\[nope" is not a URL nor a host:port$/],
    [['ls', '--url', 'ftp://127.0.0.1:1'], /must be http:\/\/ or https:\/\//],
  ])('%j', async (args, pattern) => {
    expectUsageError(await cli(args), pattern);
  });

  it('--help still prints the command\'s help on stdout, exit 0', async () => {
    const help = await cli(['rm', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/--dry-run/);
    expect(help.stdout).toMatch(/--yes/);
  });
});

describe('--url and --user', { timeout: 120_000 }, () => {
  it('--url takes a bare host:port (plain HTTP on loopback), as login does', async () => {
    const o = await cli(['ls', '--json', '--url', layover.host, '--user', `alice:${PASSWORDS.alice}`], { LAYOVER_URL: undefined });
    expect(o.code, o.stderr).toBe(0);
    expect((JSON.parse(o.stdout) as { repositories: { name: string }[] }).repositories.map((r) => r.name)).toContain('alice/keep');
    // A non-loopback bare host means HTTPS.
    const remote = await cli(['ls', '--url', '192.0.2.1:1', '--user', 'a:b'], { LAYOVER_URL: undefined });
    expect(remote.code).toBe(1);
    expect(remote.stderr).toMatch(/^layover ls: cannot reach layover at https:\/\/192\.0\.2\.1:1/);
  });

  it('--user NAME asks for the password on a terminal, takes $LAYOVER_PASSWORD, and says what to do without either', async () => {
    const typed = await onTerminal(['ls', '--user', 'alice'], `${PASSWORDS.alice}\r`);
    expect(typed.code, typed.stdout).toBe(0);
    expect(typed.stdout).toContain('Password for alice:');
    expect(typed.stdout).toMatch(/alice\/keep\s+1/);
    const wrong = await onTerminal(['ls', '--user', 'alice'], 'not-it\r');
    expect(wrong.code).toBe(1);
    expect(wrong.stdout).toContain('authentication failed');

    const fromEnv = await cli(['ls', '--user', 'alice'], { LAYOVER_PASSWORD: PASSWORDS.alice });
    expect(fromEnv.code, fromEnv.stderr).toBe(0);
    expectUsageError(await cli(['ls', '--user', 'alice']), /^layover ls: --user alice: no terminal to ask for the password; pass --user alice:PASSWORD or set LAYOVER_PASSWORD$/);
    expectUsageError(await cli(['ls', '--user', ':pw']), /--user needs a user name/);
  });
});

describe('user add and the user and team listings', { timeout: 180_000 }, () => {
  const config = () => ['--config', layover.configFile];

  it('a typed password is asked twice; different answers change nothing', async () => {
    const differ = await onTerminal(['user', 'add', 'carol', ...config()], 'carol-pw-1\rcarol-pw-2\r');
    expect(differ.code).toBe(2);
    expect(differ.stdout).toContain('the passwords differ');
    const same = await onTerminal(['user', 'add', 'carol', ...config()], 'carol-pw-1\rcarol-pw-1\r');
    expect(same.code, same.stdout).toBe(0);
    expect(same.stdout).toMatch(/Password: .*\n?.*Again: /s);
    expect(same.stdout).not.toContain('shown once');
  });

  it('--generate-password makes one up and prints it once; without a terminal or a flag it says which flag', async () => {
    const made = await cli(['user', 'add', 'dave', '--generate-password', ...config()]);
    expect(made.code, made.stderr).toBe(0);
    const password = /password \(shown once\): (\S+)/.exec(made.stdout)?.[1];
    expect(password).toMatch(/^.{16,}$/);
    // It works against the registry (the users file is re-read within a second or so).
    let status = 0;
    for (let i = 0; i < 40 && status !== 200; i++) {
      status = (await fetch(`${layover.url}/v2/`, { headers: { authorization: `Basic ${Buffer.from(`dave:${password}`).toString('base64')}` } })).status;
      if (status !== 200) await new Promise((r) => setTimeout(r, 250));
    }
    expect(status).toBe(200);
    expectUsageError(await cli(['user', 'add', 'erin', ...config()]), /^layover user: no terminal to ask for the password: use --password-stdin or --generate-password$/);
    expectUsageError(await cli(['user', 'add', 'erin', '--generate-password', '--password-stdin', ...config()]), /exclude each other/);
    // A name that is taken is refused before any password is asked for.
    const taken = await onTerminal(['user', 'add', 'dave', ...config()], '');
    expect(taken.code).toBe(1);
    expect(taken.stdout).toContain('"dave" is already a user');
    expect(taken.stdout).not.toContain('Password:');
  });

  it('user list, team list and token keys: tables with headers, or --json', async () => {
    await cli(['team', 'add', 'web', ...config()]);
    await cli(['team', 'add-member', 'web', 'dave', ...config()]);
    // Users added by the CLI live in the users file, or in the shared database when there is one.
    const addedIn = process.env.LAYOVER_TEST_METADATA === 'postgres' ? 'database' : 'users file';
    const users = await cli(['user', 'list', ...config()]);
    expect(users.stdout).toMatch(/^USER\s+ADMIN\s+TEAMS\s+DEFINED IN\n/);
    expect(users.stdout).toMatch(/\nadmin\s+yes\s+-\s+configuration\n/);
    expect(users.stdout).toMatch(new RegExp(`\\ndave\\s+-\\s+web\\s+${addedIn}\\n`));
    const usersJson = JSON.parse((await cli(['user', 'list', '--json', ...config()])).stdout) as { users: { name: string; admin: boolean; teams: string[]; source: string }[] };
    expect(usersJson.users).toContainEqual({ name: 'alice', admin: false, teams: ['dev'], source: 'configuration' });
    expect(usersJson.users).toContainEqual({ name: 'dave', admin: false, teams: ['web'], source: addedIn });

    const teams = await cli(['team', 'list', ...config()]);
    expect(teams.stdout).toMatch(/^TEAM\s+MEMBERS\n/);
    expect(teams.stdout).toMatch(/\nweb\s+dave\n?/);
    const teamsJson = JSON.parse((await cli(['team', 'list', '--json', ...config()])).stdout) as { teams: { name: string; members: string[] }[] };
    expect(teamsJson.teams).toEqual([{ name: 'dev', members: ['alice'] }, { name: 'web', members: ['dave'] }]);

    const keys = await cli(['token', 'keys', ...config()]);
    expect(keys.stdout).toMatch(/^KEY\s+CREATED\s+STATUS\n\S+\s+\d{4}-\d\d-\d\dT\S+\s+current\n/);
    const keysJson = JSON.parse((await cli(['token', 'keys', '--json', ...config()])).stdout) as { keys: { kid: string; current: boolean }[] };
    expect(keysJson.keys.filter((k) => k.current)).toHaveLength(1);
  });
});

describe('rm of a repository or a namespace', { timeout: 180_000 }, () => {
  const as = ['--user', `alice:${PASSWORDS.alice}`];
  const repositories = async () => (JSON.parse((await cli(['ls', '--json', ...as])).stdout) as { repositories: { name: string }[] }).repositories.map((r) => r.name);

  it('rm REPO shows what goes and deletes nothing without --yes; --dry-run deletes nothing even with --yes', async () => {
    await push('alice/gone', 'a');
    await push('alice/gone', 'b');
    const asked = await cli(['rm', 'alice/gone', ...as]);
    expect(asked.code).toBe(0);
    expect(asked.stdout).toContain('repository alice/gone: 2 tags (a, b)');
    expect(asked.stdout).toContain('Run again with --yes');
    const dry = await cli(['rm', 'alice/gone', '--dry-run', '--yes', ...as]);
    expect(dry.stdout).toContain('Would delete repository alice/gone: 2 tags');
    expect(dry.stdout).toContain('Dry run: nothing was deleted.');
    const dryJson = JSON.parse((await cli(['rm', 'alice/gone', '--dry-run', '--json', ...as])).stdout) as unknown;
    expect(dryJson).toEqual({ dryRun: true, deleted: { repository: 'alice/gone', tags: ['a', 'b'] } });
    expect(await repositories()).toContain('alice/gone');
    const done = await cli(['rm', 'alice/gone', '--yes', ...as]);
    expect(done.stdout.trim()).toBe('deleted repository alice/gone');
    expect(await repositories()).not.toContain('alice/gone');
  });

  it('a dry run is checked by the server: no permission and no such repository say so', async () => {
    const denied = await cli(['rm', 'admin/x', '--dry-run', ...as]);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/^layover rm: permission denied/);
    const missing = await cli(['rm', 'alice/nothing', '--dry-run', ...as]);
    expect(missing.stderr).toMatch(/no repository "alice\/nothing"/);
    const tag = await cli(['rm', 'alice/keep:nope', '--dry-run', ...as]);
    expect(tag.stderr).toMatch(/no tag "nope" in alice\/keep/);
    const goodTag = await cli(['rm', 'alice/keep:v1', '--dry-run', ...as]);
    expect(goodTag.stdout.trim()).toBe('would delete tag alice/keep:v1 (dry run: nothing was deleted)');
    expect(await repositories()).toContain('alice/keep');
  });

  it('rm --namespace likewise', async () => {
    await push('dev/one', 'v1');
    await push('dev/two', 'v1');
    const asked = await cli(['rm', '--namespace', 'dev', ...as]);
    expect(asked.stdout).toContain('namespace dev: 2 repositories');
    expect(asked.stdout).toMatch(/\n {2}dev\/one\n {2}dev\/two\n/);
    expect(await repositories()).toEqual(expect.arrayContaining(['dev/one', 'dev/two']));
    expect((await cli(['rm', '--namespace', 'dev', '--dry-run', '-y', ...as])).stdout).toContain('Dry run: nothing was deleted.');
    expect(await repositories()).toEqual(expect.arrayContaining(['dev/one', 'dev/two']));
    const done = await cli(['rm', '--namespace', 'dev', '-y', ...as]);
    expect(done.stdout.trim()).toBe('deleted namespace dev: 2 repositories (dev/one, dev/two)');
    expect((await repositories()).filter((r) => r.startsWith('dev/'))).toEqual([]);
  });
});
