// Accounts on a real spawned `layover serve`: the first-start admin, users and teams managed
// with the CLI while the server runs (users file reload), removal deleting namespaces, and
// `layover login` writing credentials that skopeo then uses.
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnLayover, type SpawnedLayover } from '../helpers/layover.js';
import { makeOciImage, type OciImage } from '../helpers/oci-layout.js';
import { skopeo, skopeoCopy, skopeoInspect, type Creds } from '../helpers/skopeo.js';
import { makeTempDir, type TempDir } from '../helpers/temp-dir.js';
import { requireTool, runTool, ToolError } from '../helpers/run-tool.js';
import { waitFor } from '../helpers/wait-for.js';

const BIN = path.resolve(import.meta.dirname, '../../bin/layover.js');
const DENIED = /unauthorized|denied|forbidden|authentication required/i;

let layover: SpawnedLayover;
let tmp: TempDir;
let admin: Creds;
let img: OciImage;

function cli(args: string[], stdin?: string, env: NodeJS.ProcessEnv = {}) {
  return runTool('node', [BIN, ...args, '--config', layover.configFile], { env: { ...process.env, LAYOVER_CONFIG: undefined, ...env }, input: stdin, timeoutMs: 60_000 });
}

async function refused(op: Promise<unknown>): Promise<boolean> {
  try {
    await op;
    return false;
  } catch (err) {
    if (err instanceof ToolError && DENIED.test(err.stderr)) return true;
    throw err;
  }
}

beforeAll(async () => {
  requireTool('skopeo');
  tmp = makeTempDir('layover-auth-accounts-');
  img = await makeOciImage(path.join(tmp.path, 'layout'), { layers: [900], seed: 'accounts', tag: 'x' });
  // No users anywhere: the first start must create the admin.
  layover = await spawnLayover({ auth: { enabled: true } });
}, 120_000);

afterAll(async () => {
  await layover?.close();
  tmp?.cleanup();
});

describe('accounts on a running layover', () => {
  it('creates the first admin, prints its password once, keeps it in a 0600 file', async () => {
    const file = path.join(layover.root, '_auth', 'admin-password');
    const password = readFileSync(file, 'utf8').trim();
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const output = layover.log();
    expect(output.split(password).length - 1).toBe(1);
    // the printed notice is not a log record: no JSON line holds it
    expect(output.split('\n').filter((l) => l.startsWith('{') && l.includes(password))).toEqual([]);
    admin = { user: 'admin', password };
    await skopeoCopy(img.ref, `docker://${layover.host}/admin/base:1`, { destCreds: admin });
  });

  it('serves users and teams added with the CLI without a restart, and removes their namespaces', async () => {
    await cli(['user', 'add', 'dave', '--password-stdin'], 'dave-pw-1\n');
    const dave: Creds = { user: 'dave', password: 'dave-pw-1' };
    await waitFor(async () => !(await refused(skopeoCopy(img.ref, `docker://${layover.host}/dave/app:1`, { destCreds: dave }))), 15_000, 300);
    await cli(['team', 'add', 'qa']);
    expect(await refused(skopeoCopy(img.ref, `docker://${layover.host}/qa/tool:1`, { destCreds: dave }))).toBe(true);
    await cli(['team', 'add-member', 'qa', 'dave']);
    await waitFor(async () => !(await refused(skopeoCopy(img.ref, `docker://${layover.host}/qa/tool:1`, { destCreds: dave }))), 15_000, 300);
    await skopeoCopy(img.ref, `docker://${layover.host}/dave/other:2`, { destCreds: dave });

    // Without --yes: says what would go, changes nothing.
    const dry = await cli(['user', 'rm', 'dave']);
    expect(dry.stdout).toContain('dave/app');
    expect(dry.stdout).toContain('dave/other');
    expect(dry.stdout).toContain('--yes');
    await skopeoInspect(`docker://${layover.host}/dave/app:1`, { creds: dave });

    const done = await cli(['user', 'rm', 'dave', '--yes']);
    expect(done.stdout).toMatch(/2 repositories deleted/);
    await waitFor(async () => refused(skopeoInspect(`docker://${layover.host}/qa/tool:1`, { creds: dave })), 15_000, 300);
    await expect(skopeoInspect(`docker://${layover.host}/dave/app:1`, { creds: admin })).rejects.toThrow(/manifest unknown|not found|name unknown/i);
    // the team's namespace stays until the team goes
    await skopeoInspect(`docker://${layover.host}/qa/tool:1`, { creds: admin });
    const team = await cli(['team', 'rm', 'qa', '--yes']);
    expect(team.stdout).toContain('qa/tool');
    await expect(skopeoInspect(`docker://${layover.host}/qa/tool:1`, { creds: admin })).rejects.toThrow(/manifest unknown|not found|name unknown/i);
    await skopeoInspect(`docker://${layover.host}/admin/base:1`, { creds: admin });
  }, 180_000);

  it('refuses to remove the last admin and names that clash with namespaces', async () => {
    await expect(cli(['user', 'rm', 'admin', '--yes'])).rejects.toThrow(/last admin/);
    await expect(cli(['user', 'add', 'admin'], undefined)).rejects.toThrow(/already a user/);
    await expect(cli(['user', 'add', 'Bad/Name'])).rejects.toThrow(/not a valid user name/);
    await expect(cli(['user', 'add', 'namespace'])).rejects.toThrow(/not a valid user name/);
  });

  it('`layover login` stores credentials that skopeo uses as a docker config', async () => {
    const dockerConfig = path.join(tmp.path, 'docker');
    await expect(cli(['login', layover.host, '-u', 'admin', '--password-stdin'], 'wrong\n', { DOCKER_CONFIG: dockerConfig })).rejects.toThrow(/bad username or password/);
    const ok = await cli(['login', layover.host, '-u', 'admin', '--password-stdin'], `${admin.password}\n`, { DOCKER_CONFIG: dockerConfig });
    expect(ok.stdout).toContain('Login Succeeded');
    const file = path.join(dockerConfig, 'config.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const stored = JSON.parse(readFileSync(file, 'utf8')) as { auths: Record<string, { auth: string }> };
    expect(Buffer.from(stored.auths[layover.host]!.auth, 'base64').toString()).toBe(`admin:${admin.password}`);
    const out = await skopeo(['inspect', '--raw', '--tls-verify=false', '--authfile', file, `docker://${layover.host}/admin/base:1`]);
    expect(JSON.parse(out).layers).toHaveLength(1);
  });

  it('revokes namespace tokens by rotating the signing key', async () => {
    const minted = (await cli(['token', 'namespace', 'shop'])).stdout.trim();
    await skopeoCopy(img.ref, `docker://${layover.host}/shop/web:1`, { destCreds: admin });
    const shop: Creds = { user: 'namespace:shop', password: minted };
    await skopeoInspect(`docker://${layover.host}/shop/web:1`, { creds: shop });
    await cli(['token', 'rotate', '--grace', '0']);
    await waitFor(async () => refused(skopeoInspect(`docker://${layover.host}/shop/web:1`, { creds: shop })), 15_000, 300);
    const fresh = (await cli(['token', 'namespace', 'shop'])).stdout.trim();
    await skopeoInspect(`docker://${layover.host}/shop/web:1`, { creds: { user: 'namespace:shop', password: fresh } });
  }, 120_000);
});
