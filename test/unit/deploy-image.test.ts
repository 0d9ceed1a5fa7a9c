// The container image, checked without a Docker engine: every path the Dockerfile copies exists
// and survives .dockerignore (with the matcher testcontainers uses to send the build context),
// the runtime stage agrees with the manifests, and the image's /app layout, rebuilt here from a
// real `tsc` build, starts and serves the probes, the registry and the UI.
import { spawn } from 'node:child_process';
import { cp, mkdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import dockerignoreModule from '@balena/dockerignore';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { REGISTRY_CONFIG, REPO_ROOT, configOf, findObject, render } from '../e2e/manifests.js';
import { freePort } from '../helpers/free-port.js';
import { IMAGE_ENV, IMAGE_NODE_FLAGS } from '../helpers/layover.js';
import { runTool } from '../helpers/run-tool.js';
import { makeTempDir, type TempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait-for.js';

// A CommonJS module whose typings declare an ES default export: the function is the module itself.
const dockerignore = dockerignoreModule as unknown as typeof dockerignoreModule.default;

interface Instruction { stage: number; keyword: string; args: string }

/** The Dockerfile's instructions (continuation lines joined, comments dropped), numbered by stage. */
function instructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  let stage = -1;
  for (const line of text.replace(/\\\n/g, ' ').split('\n')) {
    const match = /^\s*([A-Z]+)\s+(.*)$/.exec(line);
    if (!match || line.trimStart().startsWith('#')) continue;
    const keyword = match[1] as string;
    if (keyword === 'FROM') stage++;
    out.push({ stage, keyword, args: (match[2] as string).trim() });
  }
  return out;
}

const dockerfile = instructions(await readFile(path.join(REPO_ROOT, 'Dockerfile'), 'utf8'));
const ignore = dockerignore({ ignorecase: false }).add((await readFile(path.join(REPO_ROOT, '.dockerignore'), 'utf8')).split('\n'));
const runtimeStage = Math.max(...dockerfile.map((i) => i.stage));
const runtime = dockerfile.filter((i) => i.stage === runtimeStage);
const last = (keyword: string) => runtime.filter((i) => i.keyword === keyword).at(-1)?.args;
const jsonArgs = (keyword: string) => JSON.parse(last(keyword) ?? '[]') as string[];

describe('Dockerfile and .dockerignore', () => {
  it('every COPY from the build context names paths that exist and are sent in the context', async () => {
    const copies = dockerfile.filter((i) => i.keyword === 'COPY' && !i.args.startsWith('--from'));
    expect(copies.length).toBeGreaterThanOrEqual(5);
    for (const copy of copies) {
      const sources = copy.args.split(/\s+/).slice(0, -1);
      for (const source of sources) {
        await expect(stat(path.join(REPO_ROOT, source)), source).resolves.toBeDefined();
        expect(ignore.ignores(source), `${source} is excluded by .dockerignore`).toBe(false);
      }
    }
    // The UI's files are in the context and land where src/ui/plugin.ts looks in dist/.
    const ui = copies.find((c) => c.args.startsWith('src/ui/static '));
    expect(ui?.args.split(/\s+/)[1]).toBe('./dist/ui/static');
    for (const file of ['index.html', 'app.js', 'charts.js', 'style.css', 'favicon.svg']) expect(ignore.ignores(`src/ui/static/${file}`), file).toBe(false);
    // Local state never goes into the context.
    for (const local of ['node_modules/x', 'data/blobs', 'dist/app.js', '.git/config', 'webhook-certs/tls.key']) expect(ignore.ignores(local), local).toBe(true);
  });

  it('the build compiles into the dist/ the runtime copies, and tsconfig puts its output there', async () => {
    const tsconfig = JSON.parse(await readFile(path.join(REPO_ROOT, 'tsconfig.json'), 'utf8')) as { compilerOptions: { outDir: string; rootDir: string } };
    const buildDir = dockerfile.find((i) => i.stage === 0 && i.keyword === 'WORKDIR')?.args;
    expect(runtime.find((i) => i.keyword === 'COPY' && i.args.startsWith('--from='))?.args).toBe(`--from=build ${buildDir}/${tsconfig.compilerOptions.outDir} ./dist`);
    expect(tsconfig.compilerOptions.rootDir).toBe('src');
    expect(dockerfile.some((i) => i.stage === 0 && i.keyword === 'RUN' && i.args === 'npm run build')).toBe(true);
  });

  it('the runtime stage: production dependencies only, a numeric non-root user matching the manifests, the configuration path they mount', async () => {
    expect(runtime.some((i) => i.keyword === 'RUN' && /npm ci --omit=dev/.test(i.args))).toBe(true);
    const [uid, gid] = (last('USER') ?? '').split(':').map(Number);
    const objs = await render('deploy/base');
    const pod = findObject(objs, 'StatefulSet', 'layover-registry') as unknown as { spec: { template: { spec: { securityContext: { runAsUser: number; runAsGroup: number }; containers: Array<{ args: string[] }> } } } };
    expect(uid).toBe(pod.spec.template.spec.securityContext.runAsUser);
    expect(gid).toBe(pod.spec.template.spec.securityContext.runAsGroup);
    expect(uid).toBeGreaterThan(0);
    const workdir = last('WORKDIR');
    // The V8 flag and malloc settings are the ones the benchmarks run with (test/helpers/layover.ts, compiled mode).
    expect(jsonArgs('ENTRYPOINT')).toEqual(['node', ...IMAGE_NODE_FLAGS, `${workdir}/bin/layover.js`]);
    const env = Object.fromEntries(runtime.filter((i) => i.keyword === 'ENV').flatMap((i) => i.args.split(/\s+/).map((kv) => kv.split('=') as [string, string])));
    for (const [name, value] of Object.entries(IMAGE_ENV)) expect(env[name], name).toBe(value);
    expect(jsonArgs('CMD')).toEqual(pod.spec.template.spec.containers[0]?.args);
    const storageRoot = configOf(objs, REGISTRY_CONFIG).storage?.root;
    expect(jsonArgs('VOLUME')).toEqual([storageRoot]);
    expect(last('EXPOSE')?.split(/\s+/).map(Number)).toEqual([5000, 8443]);
  });
});

describe('the image layout, rebuilt from a real build', () => {
  let tmp: TempDir;
  let app: string;
  beforeAll(async () => {
    tmp = makeTempDir('layover-image-');
    app = path.join(tmp.path, 'app');
    await mkdir(app);
    // As the Dockerfile does: compiled dist/, bin/, the UI's static files, package.json; no src/.
    await runTool('npx', ['tsc', '-p', path.join(REPO_ROOT, 'tsconfig.json'), '--outDir', path.join(app, 'dist')], { cwd: REPO_ROOT, timeoutMs: 180_000 });
    await cp(path.join(REPO_ROOT, 'bin'), path.join(app, 'bin'), { recursive: true });
    await cp(path.join(REPO_ROOT, 'src/ui/static'), path.join(app, 'dist/ui/static'), { recursive: true });
    await cp(path.join(REPO_ROOT, 'package.json'), path.join(app, 'package.json'));
    await symlink(path.join(REPO_ROOT, 'node_modules'), path.join(app, 'node_modules'));
  }, 200_000);
  afterAll(() => tmp.cleanup());

  it('starts on the base ConfigMap (on loopback, a temp root, no upstreams) and serves probes, /v2/ and the UI', async () => {
    const port = await freePort();
    const config = { ...configOf(await render('deploy/base'), REGISTRY_CONFIG), registry: { listen: `127.0.0.1:${port}` }, storage: { root: path.join(tmp.path, 'data') }, controller: { enabled: false }, upstreams: [] };
    const configFile = path.join(tmp.path, 'config.yaml');
    await writeFile(configFile, stringify(config));
    const child = spawn(process.execPath, [path.join(app, 'bin/layover.js'), 'serve', '--config', configFile], { cwd: tmp.path, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    try {
      const base = `http://127.0.0.1:${port}`;
      await waitFor(async () => (await fetch(`${base}/healthz`)).ok, 30_000, 200).catch((err: unknown) => {
        throw new Error(`the image layout did not start: ${stderr.slice(-2000)}`, { cause: err });
      });
      expect((await fetch(`${base}/readyz`)).status).toBe(200);
      expect((await fetch(`${base}/v2/`)).status).toBe(401);
      const ui = await fetch(`${base}/ui/`);
      expect(ui.status).toBe(200);
      expect(await ui.text()).toMatch(/<html/i);
      // The charting library comes from the production dependencies, and the favicon is there.
      for (const asset of ['/ui/vendor/uplot.js', '/ui/vendor/uplot.css', '/ui/charts.js', '/favicon.ico']) expect((await fetch(`${base}${asset}`)).status, asset).toBe(200);
      // The first admin was created on the storage root, as the README tells admins to read it.
      await expect(stat(path.join(tmp.path, 'data/_auth/admin-password'))).resolves.toBeDefined();
    } finally {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    }
  });
});
