// The README's quickstart, word for word: the block after the `<!-- quickstart: -->` marker is
// extracted from README.md and each line run in order by /bin/sh against a fresh `layover serve`
// on its embedded defaults, as `npm start` runs it. The only substitutions: the port (5000 may be
// taken on this machine: a free one, in the commands and in a one-key configuration), `npx
// layover` runs bin/layover.js directly (what npx resolves it to), and ctr finds the test's own
// containerd through CONTAINERD_ADDRESS (and its native snapshotter through CONTAINERD_SNAPSHOTTER). Also: the README's example configuration stops naming
// the files it lacks, creating nothing, and starts once they exist.
import { existsSync, readFileSync, symlinkSync, writeFileSync, copyFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startChild, type Child } from '../helpers/child-process.js';
import { SNAPSHOTTER, startContainerd, type Containerd } from '../helpers/containerd.js';
import { freePort } from '../helpers/free-port.js';
import { requireTool, runTool, ToolError } from '../helpers/run-tool.js';
import { makeTempDir, type TempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait-for.js';

const REPO = path.resolve(import.meta.dirname, '../..');
const BIN = path.join(REPO, 'bin', 'layover.js');
const README = readFileSync(path.join(REPO, 'README.md'), 'utf8');

/** The lines of the ```sh block after the quickstart marker (comment lines and blanks dropped). */
function quickstartLines(): string[] {
  const marker = README.indexOf('<!-- quickstart:');
  if (marker === -1) throw new Error('README.md has no <!-- quickstart: --> marker');
  const block = /```sh\n([\s\S]*?)```/.exec(README.slice(marker));
  if (!block) throw new Error('no ```sh block after the quickstart marker');
  return (block[1] as string).split('\n').filter((l) => l.trim() !== '' && !l.trim().startsWith('#'));
}

/** The README's example configuration: the yaml block with registry, storage and upstreams. */
function exampleConfig(): string {
  const blocks = [...README.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1] as string);
  const found = blocks.find((b) => /^registry:/m.test(b) && /^storage:/m.test(b) && /^upstreams:/m.test(b));
  if (!found) throw new Error('README.md has no example configuration');
  return found;
}

interface Ran { line: string; code: number; stdout: string; stderr: string }

let tmp: TempDir;
let containerd: Containerd;
const servers: Child[] = [];

beforeAll(async () => {
  for (const tool of ['skopeo', 'ctr', 'tar', 'gzip', 'sha256sum']) requireTool(tool);
  tmp = makeTempDir('layover-quickstart-');
  containerd = await startContainerd();
}, 120_000);

afterAll(async () => {
  for (const s of servers) await s.stop();
  await containerd?.close();
  tmp?.cleanup();
});

/** Starts `layover serve` in `cwd` (its ./data there) and waits until /v2/ answers. */
async function serve(cwd: string, config: string, port: number): Promise<Child> {
  const env: NodeJS.ProcessEnv = { ...process.env, LAYOVER_CONFIG: undefined, KUBERNETES_SERVICE_HOST: undefined, KUBECONFIG: undefined };
  const child = startChild(process.execPath, [BIN, 'serve', '--config', config], { stdoutFile: path.join(cwd, 'serve.log'), env, cwd });
  servers.push(child);
  await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/v2/`).then((r) => r.status).catch(() => 0)) === 401, 60_000, 250);
  return child;
}

describe('the README', () => {
  it('quickstart runs word for word against a fresh layover', async () => {
    const cwd = path.join(tmp.path, 'quickstart');
    await runTool('mkdir', ['-p', cwd]);
    symlinkSync(path.join(REPO, 'docs'), path.join(cwd, 'docs'));
    const port = await freePort();
    // `npm start` with the embedded defaults, but for the port.
    writeFileSync(path.join(cwd, 'port.yaml'), `registry: { listen: "127.0.0.1:${port}" }\n`);
    await serve(cwd, path.join(cwd, 'port.yaml'), port);
    expect(existsSync(path.join(cwd, 'data', '_auth', 'admin-password'))).toBe(true);

    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: cwd,
      DOCKER_CONFIG: path.join(cwd, '.docker'),
      LAYOVER_URL: `http://127.0.0.1:${port}`,
      CONTAINERD_ADDRESS: containerd.address,
      CONTAINERD_NAMESPACE: 'quickstart',
      // The test's containerd has only the native snapshotter (no overlay mounts in a test).
      CONTAINERD_SNAPSHOTTER: SNAPSHOTTER,
    };
    const npx = `npx() { if [ "$1" = layover ]; then shift; node '${BIN}' "$@"; else command npx "$@"; fi; }`;
    const ran: Ran[] = [];
    for (const original of quickstartLines()) {
      const line = original.replaceAll('127.0.0.1:5000', `127.0.0.1:${port}`);
      // GC keeps what was used in its last 2 s whatever the grace (the guard's window, gc/guard.ts):
      // a person typing the quickstart never meets it, lines run back to back by a script can.
      if (/ layover gc /.test(line)) await new Promise((resolve) => setTimeout(resolve, 2_500));
      try {
        const { stdout, stderr } = await runTool('sh', ['-ec', `${npx}\n${line}`], { cwd, env, timeoutMs: 120_000 });
        ran.push({ line: original, code: 0, stdout, stderr });
      } catch (err) {
        if (!(err instanceof ToolError)) throw err;
        throw new Error(`README quickstart line failed (exit ${err.code}): ${original}\n${err.stderr || err.stdout}`);
      }
    }
    const out = (pattern: RegExp) => {
      const found = ran.find((r) => pattern.test(r.line));
      if (!found) throw new Error(`no quickstart line matches ${pattern}`);
      return found.stdout;
    };
    // What each step should have shown.
    expect(out(/login/)).toMatch(/^Login Succeeded: admin@127\.0\.0\.1:\d+/);
    const [adminList, bobList] = ran.filter((r) => /^npx layover ls/.test(r.line)).map((r) => r.stdout);
    expect(adminList).toMatch(/^REPOSITORY\s+TAGS\s+SIZE\s+PUSHED/);
    expect(adminList).toMatch(/\nalice\/app\s+1\s/);
    expect(adminList).toMatch(/\nweb\/site\s+1\s/);
    expect(bobList).toMatch(/\nweb\/site\s+1\s/);
    expect(bobList).not.toContain('alice/app');
    expect(out(/ layover rm /).trim()).toBe('deleted repository alice/app');
    // The image alice pushed was pulled by containerd, and gc then freed its three blobs.
    const images = await runTool('ctr', ['--address', containerd.address, '--namespace', 'quickstart', 'images', 'ls', '-q']);
    expect(images.stdout.trim()).toBe(`127.0.0.1:${port}/alice/app:1`);
    expect(out(/ layover gc /)).toMatch(/^garbage collection: freed [\d.]+ (B|KiB) \(\d+ bytes\)/);
    expect(out(/ layover gc /)).toMatch(/blobs:\s+3 deleted/);
    expect(out(/ layover du/)).toMatch(/\nweb\s+pushed\s+1\s/);
    expect(out(/ layover du/)).not.toMatch(/\nalice\s/);
  }, 600_000);

  it('example configuration stops naming the files it lacks, creating nothing, and starts once they exist', async () => {
    const cwd = path.join(tmp.path, 'example');
    await runTool('mkdir', ['-p', cwd]);
    const port = await freePort();
    const files = { ghcr: path.join(cwd, 'ghcr-token'), ca: path.join(cwd, 'internal-ca.pem'), root: path.join(cwd, 'var-lib-layover') };
    const yaml = exampleConfig()
      .replace('0.0.0.0:5000', `127.0.0.1:${port}`)
      .replace('/var/lib/layover', files.root)
      .replace('/run/secrets/ghcr', files.ghcr)
      .replace('/etc/ssl/internal-ca.pem', files.ca);
    const config = path.join(cwd, 'layover.yaml');
    writeFileSync(config, yaml);
    const env = { PATH: process.env.PATH, HOME: cwd };
    let refused: ToolError | undefined;
    try {
      await runTool('node', [BIN, 'serve', '--config', config], { cwd, env, timeoutMs: 60_000 });
    } catch (err) {
      if (err instanceof ToolError) refused = err;
      else throw err;
    }
    expect(refused?.code).toBe(2);
    expect(refused?.stderr).toContain(`upstreams.1.passwordFile: ${files.ghcr} does not exist`);
    expect(refused?.stderr).toContain(`upstreams.3.ca: ${files.ca} does not exist`);
    expect(existsSync(files.root)).toBe(false);

    writeFileSync(files.ghcr, 'a-token\n');
    copyFileSync('/etc/ssl/certs/ca-certificates.crt', files.ca);
    const child = await serve(cwd, config, port);
    expect(child.alive()).toBe(true);
    expect(existsSync(path.join(files.root, '_auth', 'admin-password'))).toBe(true);
  }, 180_000);
});
