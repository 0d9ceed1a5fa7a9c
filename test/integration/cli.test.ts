// `layover ls | rm | gc | du` as a user runs them (node bin/layover.js, i.e. `npx layover`), against
// a real `layover serve` with auth on: output, --json, the three ways to give credentials, and
// errors as one line with a non-zero exit (no such repository, no permission, bad password).
// Deleting a namespace and collecting garbage shows in `du`.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PASSWORDS } from '../fixtures/auth/config.js';
import { spawnLayover, type SpawnedLayover } from '../helpers/layover.js';
import { buildManifest, imageConfig, randomBlob } from '../helpers/oci-content.js';
import { pushContent, type Auth } from '../helpers/registry-client.js';
import { runTool, ToolError } from '../helpers/run-tool.js';
import { makeTempDir, type TempDir } from '../helpers/temp-dir.js';

const BIN = path.resolve(import.meta.dirname, '../../bin/layover.js');
const admin: Auth = { user: 'admin', password: PASSWORDS.admin };
const alice: Auth = { user: 'alice', password: PASSWORDS.alice };
const bob: Auth = { user: 'bob', password: PASSWORDS.bob };
let layover: SpawnedLayover;
let tmp: TempDir;

interface Outcome { code: number; stdout: string; stderr: string }

/** Runs the CLI with a clean environment (no stored credentials unless the test writes them). */
async function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Outcome> {
  const base: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: tmp.path, DOCKER_CONFIG: path.join(tmp.path, 'no-docker'), LAYOVER_URL: layover.url };
  try {
    const { stdout, stderr } = await runTool('node', [BIN, ...args], { env: { ...base, ...env }, timeoutMs: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    if (!(err instanceof ToolError)) throw err;
    return { code: Number(err.code), stdout: err.stdout, stderr: err.stderr };
  }
}

const as = (a: Auth) => ['--user', `${a.user}:${a.password}`];

function expectOneLineError(o: Outcome, pattern: RegExp): void {
  expect(o.code).not.toBe(0);
  expect(o.stderr.trim().split('\n')).toHaveLength(1);
  expect(o.stderr).toMatch(pattern);
}

async function push(repo: string, tag: string, auth: Auth, size = 20_000) {
  const layer = randomBlob(size, `${repo}:${tag}`);
  const config = imageConfig([layer.digest]);
  const manifest = buildManifest({ config, layers: [layer] });
  await pushContent(layover.url, repo, tag, [config, layer], manifest, auth);
  return { manifest, bytes: manifest.size + config.size + layer.size };
}

beforeAll(async () => {
  tmp = makeTempDir('layover-cli-');
  layover = await spawnLayover({
    auth: {
      enabled: true,
      users: [
        { name: 'admin', password: PASSWORDS.admin, admin: true },
        { name: 'alice', password: PASSWORDS.alice, teams: ['dev'] },
        { name: 'bob', password: PASSWORDS.bob },
      ],
    },
    gc: { grace: '0s' },
  });
  await push('alice/app', 'v1', alice);
  await push('alice/app', 'v2', alice);
  await push('bob/tool', 'v1', bob);
}, 120_000);

afterAll(async () => {
  await layover?.close();
  tmp?.cleanup();
});

describe('layover ls / rm / gc / du', { timeout: 180_000 }, () => {
  it('ls lists the repositories the user may pull, with sizes; ls REPO its tags', async () => {
    const list = await cli(['ls', ...as(alice)]);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^REPOSITORY\s+TAGS\s+SIZE\s+PUSHED/);
    expect(list.stdout).toMatch(/alice\/app\s+2\s+\d+\.\d KiB/);
    expect(list.stdout).not.toContain('bob/tool');

    const tags = await cli(['ls', 'alice/app', ...as(alice)]);
    expect(tags.stdout).toMatch(/^TAG\s+DIGEST\s+SIZE\s+PLATFORMS\s+PUSHED\s+PULLED/);
    expect(tags.stdout).toMatch(/v1\s+sha256:[0-9a-f]{64}\s+[\d.]+ KiB\s+linux\/amd64/);

    const json = JSON.parse((await cli(['ls', 'alice/app', '--json', ...as(alice)])).stdout) as { tagList: { tag: string }[] };
    expect(json.tagList.map((t) => t.tag)).toEqual(['v1', 'v2']);
  });

  it('takes credentials from --user, from LAYOVER_USER/LAYOVER_PASSWORD, or from what layover login stored', async () => {
    const env = await cli(['ls', '--json'], { LAYOVER_USER: 'bob', LAYOVER_PASSWORD: PASSWORDS.bob });
    expect((JSON.parse(env.stdout) as { repositories: { name: string }[] }).repositories.map((r) => r.name)).toEqual(['bob/tool']);

    const dockerDir = path.join(tmp.path, 'docker');
    mkdirSync(dockerDir, { recursive: true });
    // `layover login localhost:PORT` stores the host it was given; the CLI finds it for 127.0.0.1 too.
    writeFileSync(path.join(dockerDir, 'config.json'), JSON.stringify({ auths: { [`localhost:${layover.port}`]: { auth: Buffer.from(`alice:${PASSWORDS.alice}`).toString('base64') } } }));
    const stored = await cli(['ls', '--json'], { DOCKER_CONFIG: dockerDir });
    expect(stored.code).toBe(0);
    expect((JSON.parse(stored.stdout) as { repositories: { name: string }[] }).repositories.map((r) => r.name)).toEqual(['alice/app']);

    const url = await cli(['ls', '--url', 'http://127.0.0.1:1', ...as(alice)]);
    expectOneLineError(url, /cannot reach layover at http:\/\/127\.0\.0\.1:1/);
  });

  it('fails with one clear line: no credentials, bad password, no such repository, no permission, bad usage', async () => {
    expectOneLineError(await cli(['ls']), /^layover ls: authentication required/);
    expectOneLineError(await cli(['ls', '--user', 'alice:wrong']), /^layover ls: authentication failed: bad user name or password/);
    expectOneLineError(await cli(['ls', 'alice/nothing', ...as(alice)]), /^layover ls: no repository "alice\/nothing"/);
    expectOneLineError(await cli(['ls', 'bob/tool', ...as(alice)]), /^layover ls: permission denied/);
    expectOneLineError(await cli(['rm', 'bob/tool:v1', ...as(alice)]), /^layover rm: permission denied/);
    expectOneLineError(await cli(['rm', 'alice/app:nope', ...as(alice)]), /^layover rm: no tag "nope" in alice\/app/);
    expectOneLineError(await cli(['gc', ...as(alice)]), /^layover gc: permission denied: only an admin/);
    const usage = await cli(['rm', ...as(alice)]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/^layover rm: usage: layover rm/);
  });

  it('rm REPO:TAG deletes the tag; rm REPO@DIGEST the manifest', async () => {
    const rm = await cli(['rm', 'alice/app:v1', ...as(alice)]);
    expect(rm.code).toBe(0);
    expect(rm.stdout.trim()).toBe('deleted tag alice/app:v1');
    const tags = JSON.parse((await cli(['ls', 'alice/app', '--json', ...as(alice)])).stdout) as { tagList: { tag: string; digest: string }[] };
    expect(tags.tagList.map((t) => t.tag)).toEqual(['v2']);
    const byDigest = await cli(['rm', `alice/app@${tags.tagList[0]!.digest}`, ...as(alice)]);
    expect(byDigest.stdout.trim()).toBe(`deleted manifest alice/app@${tags.tagList[0]!.digest}`);
    expect((await cli(['ls', 'alice/app', ...as(alice)])).stdout.trim()).toBe('alice/app: no tags');
  });

  it('rm --namespace removes all its repositories; gc reclaims the bytes and du shows it', async () => {
    const one = await push('dev/one', 'v1', alice, 300_000);
    const two = await push('dev/two', 'v1', alice, 200_000);
    await cli(['rm', 'alice/app', '--yes', ...as(alice)]); // leftovers of the previous test: an empty repository
    await new Promise((r) => setTimeout(r, 2100)); // past the GC guard's minimum window
    await cli(['gc', ...as(admin)]); // a clean slate, so that what follows is only dev's bytes
    const before = JSON.parse((await cli(['du', '--json', ...as(admin)])).stdout) as { namespaces: { namespace: string; bytes: number }[]; storedBytes: number };
    const dev = before.namespaces.find((n) => n.namespace === 'dev');
    expect(dev?.bytes).toBe(one.bytes + two.bytes);
    const table = await cli(['du', ...as(admin)]);
    expect(table.stdout).toMatch(/^NAMESPACE\s+KIND\s+REPOS\s+SIZE\s+BYTES/);
    expect(table.stdout).toMatch(new RegExp(`dev\\s+pushed\\s+2\\s+[\\d.]+ KiB\\s+${one.bytes + two.bytes}`));

    expectOneLineError(await cli(['rm', '--namespace', 'dev', '--yes', ...as(bob)]), /permission denied/);
    const rm = await cli(['rm', '--namespace', 'dev', '--yes', ...as(alice)]);
    expect(rm.stdout.trim()).toBe('deleted namespace dev: 2 repositories (dev/one, dev/two)');
    expect((await cli(['ls', '--json', ...as(admin)])).stdout).not.toContain('dev/');

    await new Promise((r) => setTimeout(r, 2100));
    const dry = await cli(['gc', '--dry-run', ...as(admin)]);
    expect(dry.stdout).toContain(`would free`);
    expect(dry.stdout).toContain(`(${one.bytes + two.bytes} bytes)`);
    const run = JSON.parse((await cli(['gc', '--json', ...as(admin)])).stdout) as { blobs: { bytesFreed: number; deleted: number } };
    expect(run.blobs.bytesFreed).toBe(one.bytes + two.bytes);
    expect(run.blobs.deleted).toBe(6);
    const after = JSON.parse((await cli(['du', '--json', ...as(admin)])).stdout) as { namespaces: { namespace: string }[]; storedBytes: number };
    expect(after.namespaces.map((n) => n.namespace)).not.toContain('dev');
    expect(before.storedBytes - after.storedBytes).toBe(one.bytes + two.bytes);

    const status = await cli(['gc', '--status', ...as(admin)]);
    expect(status.stdout).toMatch(/^schedule:\s+every 48 h/);
    expect(status.stdout).toMatch(/last run: .* freed [\d.]+ KiB \(6 blobs/);
  });
});
