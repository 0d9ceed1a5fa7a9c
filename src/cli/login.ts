// `layover login [HOST]`: checks a user's credentials against the registry and writes them to
// the docker credentials file, as `docker login` would, for docker, podman, skopeo and crane.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseArgs, UsageError } from './args.js';
import { readPassword } from './password-input.js';

export const LOGIN_HELP = `layover login [HOST] [options]

Checks the credentials against https://HOST/v2/ (http:// for localhost and loopback
addresses, or with --plain-http) and stores them in the docker credentials file
($DOCKER_CONFIG/config.json, else ~/.docker/config.json). HOST defaults to the
configuration's registry.publicHost.

Options:
  -u, --username NAME   user name (default: $USER)
      --password-stdin  read the password from stdin (else asked on the terminal)
      --plain-http      talk HTTP to a non-loopback HOST
      --no-verify       store without checking against the registry
  -c, --config FILE     configuration (else $LAYOVER_CONFIG, else embedded defaults)`;

export function isLoopbackHost(host: string): boolean {
  const name = host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return name === 'localhost' || name === '::1' || /^127\.\d+\.\d+\.\d+$/.test(name);
}

export function dockerConfigFile(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(env.DOCKER_CONFIG ?? path.join(homedir(), '.docker'), 'config.json');
}

/** Adds `host`'s credentials to the docker config file, keeping everything else in it. */
export async function storeDockerCredentials(file: string, host: string, username: string, password: string): Promise<{ credsStore?: string }> {
  let doc: Record<string, unknown> = {};
  try {
    doc = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new UsageError(`${file}: ${(err as Error).message}`);
  }
  const auths = (typeof doc.auths === 'object' && doc.auths !== null ? doc.auths : {}) as Record<string, unknown>;
  auths[host] = { auth: Buffer.from(`${username}:${password}`).toString('base64') };
  doc.auths = auths;
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(tmp, `${JSON.stringify(doc, null, '\t')}\n`, { mode: 0o600 });
  await rename(tmp, file);
  return { credsStore: typeof doc.credsStore === 'string' ? doc.credsStore : undefined };
}

async function verify(base: string, username: string, password: string): Promise<void> {
  let res: Response;
  try {
    res = await fetch(`${base}/v2/`, { headers: { authorization: `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}` } });
  } catch (err) {
    throw new Error(`cannot reach ${base}: ${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message}`);
  }
  await res.body?.cancel();
  if (res.status === 401) throw new Error('login failed: bad username or password');
  if (res.status === 429) throw new Error('login refused: too many failed attempts, try again later');
  if (res.status !== 200) throw new Error(`login failed: ${base}/v2/ answered ${res.status}`);
}

export async function login(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      config: { type: 'string', short: 'c' },
      username: { type: 'string', short: 'u' },
      'password-stdin': { type: 'boolean' },
      'plain-http': { type: 'boolean' },
      'no-verify': { type: 'boolean' },
    },
  });
  if (positionals.length > 1) throw new UsageError('usage: layover login [HOST]');
  // Imported here: the configuration's schema library takes a while to load, and the commands
  // that share this module's helpers (ls, rm, gc, du) never read a configuration.
  const host = positionals[0] ?? (await (await import('../config/load.js')).loadConfig(values.config ?? process.env.LAYOVER_CONFIG)).registry.publicHost;
  const username = values.username ?? process.env.USER;
  if (!username) throw new UsageError('--username is required');
  const password = await readPassword(values['password-stdin'] ?? false);
  const scheme = values['plain-http'] || isLoopbackHost(host) ? 'http' : 'https';
  if (!values['no-verify']) await verify(`${scheme}://${host}`, username, password);
  const file = dockerConfigFile();
  const { credsStore } = await storeDockerCredentials(file, host, username, password);
  process.stdout.write(`Login Succeeded: ${username}@${host}, credentials stored in ${file}\n`);
  if (credsStore) process.stderr.write(`note: ${file} names credsStore "${credsStore}"; docker will look there first\n`);
}
