// The node role (src/node/) between real clients and a real listening layover with auth on and
// a docker-registry upstream mirrored: skopeo pushes and pulls through it byte for byte,
// containerd's CRI plugin (what kubelet calls) pulls pushed and mirrored images through it on
// 127.0.0.1 with a namespace pull secret's credentials, and its readiness follows the registry.
// The registry's `registry.url` is the in-cluster Service name, unreachable here: every token
// realm a client follows must therefore have been rewritten to the node address.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PASSWORDS, TEST_USERS } from '../fixtures/auth/config.js';
import { startContainerd, type Containerd } from '../helpers/containerd.js';
import { criImageService, type CriImageService } from '../helpers/cri.js';
import { startDockerRegistry, type DockerRegistry } from '../helpers/docker-registry.js';
import { spawnLayover, startLayover, type InProcessLayover } from '../helpers/layover.js';
import { spawnNodeRole, startNodeRole, type NodeRoleHandle } from '../helpers/node-role.js';
import { makeOciImage, type OciImage } from '../helpers/oci-layout.js';
import { computeDigest, randomBlob } from '../helpers/oci-content.js';
import { socketExchange } from '../helpers/raw-http.js';
import { getBytes, uploadBlob } from '../helpers/registry-client.js';
import { runTool, ToolError } from '../helpers/run-tool.js';
import { skopeoCopy, skopeoInspect } from '../helpers/skopeo.js';
import { makeTempDir, type TempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait-for.js';

const SERVICE_URL = 'http://layover-registry.layover.svc:5000';
const ADMIN = { user: 'admin', password: PASSWORDS.admin };

let tmp: TempDir;
let upstream: DockerRegistry;
let registry: InProcessLayover;
let node: NodeRoleHandle;
let pushed: OciImage;
let mirrored: OciImage;
let pullSecret: { user: string; password: string };

const BIN = path.resolve(import.meta.dirname, '../../bin/layover.js');

async function runLayover(args: string[]): Promise<{ code: number; stderr: string }> {
  try {
    const { stderr } = await runTool('node', [BIN, ...args], { timeoutMs: 30_000 });
    return { code: 0, stderr };
  } catch (err) {
    if (!(err instanceof ToolError)) throw err;
    return { code: Number(err.code), stderr: err.stderr };
  }
}

const blob = (dir: string, digest: string) => readFile(path.join(dir, 'blobs', 'sha256', digest.replace('sha256:', '')));

beforeAll(async () => {
  tmp = makeTempDir('layover-node-test-');
  upstream = await startDockerRegistry();
  registry = await startLayover({
    registry: { url: SERVICE_URL },
    upstreams: [{ prefix: 'docker.io', url: upstream.url }],
    auth: { enabled: true, users: TEST_USERS },
  });
  node = await startNodeRole(registry.url);
  pushed = await makeOciImage(path.join(tmp.path, 'pushed'), { layers: [3 * 2 ** 20, 200_000], seed: 'node-1301', tag: 'v1' });
  mirrored = await makeOciImage(path.join(tmp.path, 'mirrored'), { layers: [2 * 2 ** 20], seed: 'node-1302', tag: '1' });
  await skopeoCopy(mirrored.ref, `docker://${upstream.host}/library/mirrored:1`);
  // As the controller writes it into the namespace's pull secret.
  pullSecret = { user: 'namespace:shop', password: (await registry.app.auth!.mintNamespaceToken('shop')).token };
}, 120_000);

afterAll(async () => {
  await node?.close();
  await registry?.close();
  await upstream?.close();
  tmp?.cleanup();
});

describe('the node role in front of the registry', () => {
  it('sends clients to a token realm on the node address, whatever origin the registry names', async () => {
    const direct = await fetch(`${registry.url}/v2/`);
    expect(direct.headers.get('www-authenticate')).toContain(`realm="${SERVICE_URL}/token"`);
    const through = await fetch(`${node.url}/v2/`);
    expect(through.status).toBe(401);
    expect(through.headers.get('www-authenticate')).toContain(`realm="${node.url}/token"`);
    const token = await fetch(`${node.url}/token?service=layover&scope=repository:shop/app:pull`, {
      headers: { authorization: `Basic ${Buffer.from(`${pullSecret.user}:${pullSecret.password}`).toString('base64')}` },
    });
    expect(token.status).toBe(200);
  });

  it('skopeo pushes and pulls through it, byte for byte (manifest and every blob)', async () => {
    await skopeoCopy(pushed.ref, `docker://${node.host}/shop/app:v1`, { destCreds: ADMIN });
    const raw = await skopeoInspect(`docker://${node.host}/shop/app:v1`, { raw: true, creds: pullSecret });
    expect(raw.equals(pushed.manifest.bytes)).toBe(true);
    const out = path.join(tmp.path, 'pulled');
    await skopeoCopy(`docker://${node.host}/shop/app:v1`, `oci:${out}:v1`, { srcCreds: pullSecret });
    for (const layer of pushed.layers) expect((await blob(out, layer.digest)).equals(await blob(pushed.dir, layer.digest)), layer.digest).toBe(true);
    expect((await blob(out, pushed.config.digest)).equals(pushed.config.bytes)).toBe(true);
  }, 120_000);

  it('concurrent large GETs come through intact (digest of every body)', async () => {
    const blobs = [0, 1, 2, 3].map((i) => randomBlob(12 * 2 ** 20 + i * 4099, `node-slab-${i}`));
    for (const b of blobs) await uploadBlob(registry.url, 'shop/big', b.digest, b.bytes, ADMIN);
    const bodies = await Promise.all([...blobs, ...blobs].map((b) => getBytes(`${node.url}/v2/shop/big/blobs/${b.digest}`, { auth: pullSecret })));
    expect(bodies.map((r) => [r.status, computeDigest(r.body)])).toEqual([...blobs, ...blobs].map((b) => [200, b.digest]));
  }, 120_000);

  it('`layover node` runs it alone with only Node\'s own modules loaded, as the DaemonSet does', async () => {
    const spawned = await spawnNodeRole(registry.url);
    try {
      expect((await fetch(`${spawned.url}/readyz`)).status).toBe(200);
      const res = await fetch(`${spawned.url}/v2/`);
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toContain(`realm="${spawned.url}/token"`);
      // pino's line shape, so one log pipeline reads every role.
      const line = spawned.log().split('\n').find((l) => l.includes('layover node role listening'));
      expect(JSON.parse(line ?? '{}')).toMatchObject({ level: 30, msg: 'layover node role listening', registry: new URL(registry.url).origin });
    } finally {
      await spawned.close();
    }
  }, 60_000);

  it('`layover serve` runs it too, from a configuration with only node.enabled', async () => {
    const spawned = await spawnNodeRole(registry.url, { viaServe: true });
    try {
      const res = await fetch(`${spawned.url}/v2/`);
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toContain(`realm="${spawned.url}/token"`);
    } finally {
      await spawned.close();
    }
  }, 60_000);

  it('`layover node` refuses bad arguments in one line with exit code 2', async () => {
    for (const [args, message] of [
      [['--listen', '127.0.0.1:30080'], /NodePort range/],
      [['--registry', 'https://registry.example'], /plain HTTP/],
      [['--listen', 'nonsense'], /host:port/],
      [['--bogus'], /^layover node: unknown option --bogus; see 'layover node --help'$/m],
      [['--listen'], /^layover node: option --listen needs a value/],
    ] as const) {
      const result = await runLayover(['node', ...args]);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr).toMatch(message);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
    }
  }, 60_000);

  it('a client that hangs up mid-blob frees the registry side; a registry that dies mid-blob cuts the client off, never a short 200', async () => {
    const big = randomBlob(64 * 2 ** 20, 'node-hangup');
    await uploadBlob(registry.url, 'shop/hangup', big.digest, big.bytes, ADMIN);
    const url = `${node.url}/v2/shop/hangup/blobs/${big.digest}`;
    const auth = `Basic ${Buffer.from(`${pullSecret.user}:${pullSecret.password}`).toString('base64')}`;
    const token = await fetch(`${node.url}/token?service=layover&scope=repository:shop/hangup:pull`, { headers: { authorization: auth } });
    const bearer = `Bearer ${((await token.json()) as { token: string }).token}`;
    // Hang up after the first bytes, several times: the node role keeps answering afterwards.
    for (let i = 0; i < 3; i++) {
      const abort = new AbortController();
      const res = await fetch(url, { headers: { authorization: bearer }, signal: abort.signal });
      expect(res.status).toBe(200);
      const reader = res.body!.getReader();
      await reader.read();
      abort.abort();
      await reader.cancel().catch(() => undefined);
    }
    const whole = await getBytes(url, { auth: pullSecret });
    expect(computeDigest(whole.body)).toBe(big.digest);

    const dying = await spawnLayover({}, { logLevel: 'warn' });
    const front = await startNodeRole(dying.url);
    try {
      const blobBytes = randomBlob(96 * 2 ** 20, 'node-dying');
      await uploadBlob(dying.url, 'x/dying', blobBytes.digest, blobBytes.bytes);
      const res = await fetch(`${front.url}/v2/x/dying/blobs/${blobBytes.digest}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-length')).toBe(String(blobBytes.bytes.length));
      const reader = res.body!.getReader();
      await reader.read();
      await dying.kill('SIGKILL');
      let received = 0;
      const drained = (async () => {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return 'ended';
          received += value.length;
        }
      })();
      // The body must fail (a cut connection), never end cleanly short of Content-Length.
      await expect(drained).rejects.toThrow();
      expect(received).toBeLessThan(blobBytes.bytes.length);
    } finally {
      await front.close();
      await dying.close();
    }
  }, 120_000);

  it('answers 502 in the registry error format when the registry is unreachable, and never forwards an absolute target', async () => {
    const orphan = await startNodeRole('http://127.0.0.1:9');
    try {
      const res = await fetch(`${orphan.url}/v2/`);
      expect(res.status).toBe(502);
      expect(await res.json()).toMatchObject({ errors: [{ code: 'UNAVAILABLE' }] });
      // A client that takes the node role for a forward proxy gets 400, not a request elsewhere.
      const absolute = await socketExchange(node.url, `GET http://example.com/v2/ HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n`);
      expect(absolute.status).toBe(400);
    } finally {
      await orphan.close();
    }
  });
});

describe('containerd\'s CRI plugin pulls through the node role on 127.0.0.1', () => {
  let containerd: Containerd;
  let cri: CriImageService;
  beforeAll(async () => {
    containerd = await startContainerd({ cri: true });
    cri = criImageService(containerd.address);
  }, 60_000);
  afterAll(async () => {
    cri?.close();
    await containerd?.close();
  });

  it('a pushed image, with the namespace pull secret\'s credentials (plain HTTP on loopback, no configuration)', async () => {
    await skopeoCopy(pushed.ref, `docker://${node.host}/shop/app:cri`, { destCreds: ADMIN });
    const ref = `${node.host}/shop/app:cri`;
    const id = await cri.pullImage(ref, { username: pullSecret.user, password: pullSecret.password });
    expect(id).toBe(pushed.config.digest);
    const status = await cri.imageStatus(ref);
    expect(status?.repoDigests).toContain(`${node.host}/shop/app@${pushed.manifest.digest}`);
  }, 120_000);

  it('a mirrored image from the docker.io upstream', async () => {
    const ref = `${node.host}/docker.io/library/mirrored:1`;
    const id = await cri.pullImage(ref, { username: pullSecret.user, password: pullSecret.password });
    expect(id).toBe(mirrored.config.digest);
    expect((await cri.imageStatus(ref))?.repoDigests).toContain(`${node.host}/docker.io/library/mirrored@${mirrored.manifest.digest}`);
  }, 120_000);

  it('without credentials the pull is refused (auth is on all the way through)', async () => {
    await expect(cri.pullImage(`${node.host}/shop/app:v1`)).rejects.toThrow(/401|unauthorized|authoriz/i);
  }, 60_000);
});

describe('readiness follows the registry', () => {
  it('fails when the registry is killed and recovers when it restarts, without restarting the node role', async () => {
    const spawned = await spawnLayover({}, { logLevel: 'warn' });
    const probe = await startNodeRole(spawned.url);
    const status = async (p: string) => (await fetch(`${probe.url}${p}`)).status;
    try {
      expect(await status('/readyz')).toBe(200);
      await spawned.kill('SIGKILL');
      await waitFor(async () => (await status('/readyz')) === 503, 10_000, 100);
      expect(await status('/healthz')).toBe(200);
      expect(await status('/v2/')).toBe(502);
      await spawned.restart();
      await waitFor(async () => (await status('/readyz')) === 200, 10_000, 100);
      expect(await status('/v2/')).toBe(200);
    } finally {
      await probe.close();
      await spawned.close();
    }
  }, 90_000);
});
