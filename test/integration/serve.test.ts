// `layover serve` as a user runs it: the roles its configuration enables, and clear refusals.
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Agent, request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { compiledEntry } from '../helpers/layover.js';
import { makeTempDir, type TempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait-for.js';

const BIN = path.resolve('bin/layover.js');
let tmp: TempDir | undefined;
let child: ReturnType<typeof spawn> | undefined;

afterEach(() => {
  child?.kill('SIGKILL');
  child = undefined;
  tmp?.cleanup();
  tmp = undefined;
});

function run(configYaml: string, entry = BIN): { output: () => string; exited: Promise<number | null> } {
  tmp = makeTempDir('layover-serve-');
  const file = path.join(tmp.path, 'config.yaml');
  writeFileSync(file, configYaml);
  let out = '';
  const env = { ...process.env };
  delete env.KUBERNETES_SERVICE_HOST;
  delete env.KUBECONFIG;
  child = spawn(process.execPath, [entry, 'serve', '--config', file], { cwd: tmp.path, env });
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child?.on('exit', (code) => resolve(code)));
  return { output: () => out, exited };
}

describe('layover serve', () => {
  it('runs only the webhook when the registry role is off', async () => {
    const port = await freePort();
    const { output } = run(`registry: { enabled: false, publicHost: "localhost:30500" }\nwebhook: { enabled: true, listen: "127.0.0.1:${port}", selfSigned: true }\n`);
    // tsx's start, the Kubernetes client and an RSA key: ~3 s on a quiet machine, over 20 s on a loaded one.
    await waitFor(() => output().includes('layover webhook listening'), 45_000);
    const dispatcher = new Agent({ connect: { rejectUnauthorized: false } });
    const res = await request(`https://127.0.0.1:${port}/healthz`, { dispatcher });
    expect(res.statusCode).toBe(200);
    await res.body.dump();
    expect(output()).not.toContain('layover registry listening');
    await dispatcher.close();
  }, 60_000);

  it('refuses a controller without the registry and auth in the same process', async () => {
    const { output, exited } = run('registry: { enabled: false }\ncontroller: { enabled: true }\n');
    expect(await exited).toBe(2);
    expect(output()).toMatch(/controller\.enabled: the controller mints tokens with the registry's keys/);
  });

  it('refuses a controller with no cluster to talk to', async () => {
    const port = await freePort();
    const { output, exited } = run(`registry: { listen: "127.0.0.1:${port}" }\nstorage: { root: ./data }\ncontroller: { enabled: true }\n`);
    expect(await exited).toBe(2);
    expect(output()).toMatch(/controller\.enabled: needs access to a Kubernetes API/);
  });

  it('names a bad key and exits 2 without starting anything', async () => {
    const { output, exited } = run('registry: { lisen: "127.0.0.1:0" }\n');
    expect(await exited).toBe(2);
    expect(output()).toContain('registry.lisen: unknown key');
  });

  it('compiled (as the image runs it), checks the schema in a child process and names each bad key', async () => {
    // dist/ runs the check in a child process (examine-apart.ts); the sources run it in-process.
    const entry = await compiledEntry();
    const { output, exited } = run('registry: { lisen: "127.0.0.1:0", maxManifestSize: [1] }\nwebhook: { enabled: "yes" }\n', entry);
    expect(await exited).toBe(2);
    const text = output();
    expect(text).toContain('registry.lisen: unknown key');
    expect(text).toMatch(/registry\.maxManifestSize: /);
    expect(text).toMatch(/webhook\.enabled: /);
  }, 300_000);

  it('checks every file and command the configuration names before creating anything, naming each key', async () => {
    const port = await freePort();
    const { output, exited } = run([
      `registry: { listen: "127.0.0.1:${port}", tls: { cert: ./tls/cert.pem, key: ./tls/key.pem } }`,
      'storage: { root: ./data }',
      'upstreams:',
      '  - { prefix: ghcr.io, url: https://ghcr.io, username: bot, passwordFile: ./secrets/ghcr }',
      '  - { prefix: internal, url: https://registry.internal:8443, ca: ./internal-ca.pem }',
      '  - { prefix: ecr, url: https://ecr.example, credentialHelper: "AWS_REGION=x no-such-helper-cmd --print" }',
      '  - { prefix: quay.io, url: https://quay.io, credentialHelper: "echo AWS:$(aws ecr get-login-password)" }',
      '',
    ].join('\n'));
    expect(await exited).toBe(2);
    const text = output();
    expect(text).toContain('registry.tls.cert: ');
    expect(text).toMatch(/registry\.tls\.key: \S*tls\/key\.pem does not exist/);
    expect(text).toMatch(/upstreams\.0\.passwordFile: \S*secrets\/ghcr does not exist/);
    expect(text).toMatch(/upstreams\.1\.ca: \S*internal-ca\.pem does not exist/);
    expect(text).toContain('upstreams.2.credentialHelper: "no-such-helper-cmd" is not a command on PATH');
    // A helper whose program is there (a shell builtin) passes; what its $(...) runs is its own business.
    expect(text).not.toContain('upstreams.3');
    // Nothing was created: no storage root, no first admin.
    expect(existsSync(path.join(tmp!.path, 'data'))).toBe(false);
  });

  it('a directory where a file is wanted is named too', async () => {
    const port = await freePort();
    const { output, exited } = run(`registry: { listen: "127.0.0.1:${port}" }\nstorage: { root: ./data }\nupstreams: [{ prefix: internal, url: "https://r.example", ca: "." }]\n`);
    expect(await exited).toBe(2);
    expect(output()).toMatch(/upstreams\.0\.ca: \S+ is not a file/);
  });
});
