// Two `layover serve` processes on one PostgreSQL (and, for these tests, one shared storage
// directory for blob content): what one replica writes or mints, the other serves and accepts;
// accounts and signing keys changed through one replica's configuration reach the other; GC runs
// on one replica at a time; and a PostgreSQL restart makes requests fail cleanly with 503 and
// recover by themselves, with the readiness probe following.
import path from 'node:path';
import pg from 'pg';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnLayover, type SpawnedLayover } from '../helpers/layover.js';
import { buildManifest, imageConfig, randomBlob } from '../helpers/oci-content.js';
import { startPostgres, type Postgres } from '../helpers/postgres.js';
import { basicAuthHeader, getBytes, pushContent, type Auth } from '../helpers/registry-client.js';
import { runTool, ToolError } from '../helpers/run-tool.js';
import { makeTempDir, type TempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait-for.js';

const BIN = path.resolve(import.meta.dirname, '../../bin/layover.js');
const admin: Auth = { user: 'admin', password: 'admin-pw-replicas' };
const DB_PASSWORD = 'db-secret-in-url-71';
let postgres: Postgres;
let shared: TempDir;
let one: SpawnedLayover;
let two: SpawnedLayover;

const raw = () => ({
  // The CLI test polls a login on replica 2 until it has reloaded the accounts; every poll before
  // that is a failed password check, and the default lockout (5) then refused the right password
  // too once the reload landed, whenever the reload took longer than 5 polls (a loaded CI run).
  auth: { enabled: true, users: [{ name: 'admin', password: admin.password, admin: true }], rateLimit: { perUser: 1000, perClient: 1000 } },
  // A scheduled run must not interfere with the GC test's own runs.
  gc: { interval: '48h' },
});

beforeAll(async () => {
  postgres = await startPostgres();
  shared = makeTempDir('layover-replicas-');
  const root = path.join(shared.path, 'data');
  // The test server trusts loopback, so a password in the URL is accepted and ignored: it is here
  // to prove that it never reaches a log line or a message.
  const url = postgres.url.replace('postgres://layover@', `postgres://layover:${DB_PASSWORD}@`);
  // One after the other is not required (migrations take a lock), but starting together is the case to prove.
  // Two processes compiling src/ at once on a loaded machine: give them time.
  const opts = { database: url, root, startTimeoutMs: 90_000 };
  [one, two] = await Promise.all([spawnLayover(raw(), opts), spawnLayover(raw(), opts)]);
});

afterAll(async () => {
  await Promise.all([one?.close(), two?.close()]);
  await postgres?.close();
  shared?.cleanup();
});

interface Outcome { code: number; stdout: string; stderr: string }

async function cli(args: string[], input?: string): Promise<Outcome> {
  try {
    const { stdout, stderr } = await runTool('node', [BIN, ...args], { env: { PATH: process.env.PATH, HOME: shared.path }, input, timeoutMs: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    if (!(err instanceof ToolError)) throw err;
    return { code: Number(err.code), stdout: err.stdout, stderr: err.stderr };
  }
}

async function token(base: string, auth: Auth, scope: string): Promise<string> {
  const res = await request(`${base}/token?service=layover&scope=${encodeURIComponent(scope)}`, { headers: { authorization: basicAuthHeader(auth) } });
  const body = (await res.body.json()) as { token?: string };
  if (res.statusCode !== 200 || !body.token) throw new Error(`token from ${base}: HTTP ${res.statusCode} ${JSON.stringify(body)}`);
  return body.token;
}

async function status(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  const res = await request(url, { headers });
  return { status: res.statusCode, body: await res.body.text(), headers: res.headers };
}

function image(seed: string) {
  const layer = randomBlob(30_000, seed);
  const config = imageConfig([layer.digest]);
  return { blobs: [config, layer], manifest: buildManifest({ config, layers: [layer] }) };
}

describe('two replicas on one PostgreSQL', () => {
  it('serve from one what was pushed through the other, with a token minted by the first', async () => {
    const bearer = await token(one.url, admin, 'repository:admin/app:pull,push');
    const { blobs, manifest } = image('replicas-1');
    // Pushed through replica 1 with Basic credentials.
    await pushContent(one.url, 'admin/app', 'v1', blobs, manifest, admin);
    // Read through replica 2 with replica 1's token.
    const got = await getBytes(`${two.url}/v2/admin/app/manifests/v1`, { headers: { authorization: `Bearer ${bearer}`, accept: manifest.mediaType } });
    expect(got.status).toBe(200);
    expect(got.body.equals(manifest.bytes)).toBe(true);
    const layer = await getBytes(`${two.url}/v2/admin/app/blobs/${blobs[1]!.digest}`, { headers: { authorization: `Bearer ${bearer}` } });
    expect(layer.body.equals(blobs[1]!.bytes)).toBe(true);
    const tags = await status(`${two.url}/v2/admin/app/tags/list`, { authorization: `Bearer ${bearer}` });
    expect(JSON.parse(tags.body)).toEqual({ name: 'admin/app', tags: ['v1'] });
    // A forged token is still refused: replica 2 verifies, it does not merely trust.
    const forged = `${bearer.slice(0, -4)}AAAA`;
    expect((await status(`${two.url}/v2/admin/app/tags/list`, { authorization: `Bearer ${forged}` })).status).toBe(401);
  });

  it('let a user added through replica 1\'s configuration with the CLI log in on replica 2, and a key rotation revoke tokens on both', async () => {
    const dave: Auth = { user: 'dave', password: 'dave-password-9' };
    expect((await status(`${two.url}/v2/`, { authorization: basicAuthHeader(dave) })).status).toBe(401);
    const added = await cli(['user', 'add', 'dave', '--password-stdin', '--config', one.configFile], `${dave.password}\n`);
    expect(added, added.stderr).toMatchObject({ code: 0 });
    expect(added.stdout).toContain('added to the database postgres://layover:***@127.0.0.1');
    expect(added.stdout + added.stderr).not.toContain(DB_PASSWORD);
    // Replica 2 reloads the accounts by itself (change counter, polled every second).
    await waitFor(async () => (await status(`${two.url}/v2/`, { authorization: basicAuthHeader(dave) })).status === 200, 10_000);
    const listed = await cli(['user', 'list', '--config', two.configFile]);
    expect(listed.stdout).toMatch(/^dave\s+-\s+-\s+database$/m);

    const old = await token(one.url, dave, 'repository:dave/tool:pull,push');
    const pushUrl = `${two.url}/v2/dave/tool/blobs/uploads/`;
    const post = await request(pushUrl, { method: 'POST', headers: { authorization: `Bearer ${old}`, 'content-length': '0' } });
    await post.body.dump();
    expect(post.statusCode).toBe(202);

    const rotated = await cli(['token', 'rotate', '--grace', '0', '--config', two.configFile]);
    expect(rotated, rotated.stderr).toMatchObject({ code: 0 });
    // Both replicas drop the old key within seconds; a fresh token from either works on the other.
    for (const replica of [one, two]) {
      await waitFor(async () => (await status(`${replica.url}/v2/dave/tool/tags/list`, { authorization: `Bearer ${old}` })).status === 401, 10_000);
    }
    const fresh = await token(two.url, dave, 'repository:dave/tool:pull');
    expect((await status(`${one.url}/v2/dave/tool/tags/list`, { authorization: `Bearer ${fresh}` })).status).not.toBe(401);
    // Five CLI processes (each compiles src/ through tsx): slow on a loaded machine.
  }, 180_000);

  it('run garbage collection on one replica at a time: a second run elsewhere is skipped and says so', async () => {
    const auth = { authorization: basicAuthHeader(admin) };
    // Hold GC on replica 1 inside its run (after it took the cluster lock) by locking a table it
    // reads, so that the second request certainly arrives while the first runs.
    const blocker = new pg.Client({ connectionString: postgres.url });
    await blocker.connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE repositories, manifests, tags, links, blobs, manifest_refs IN ACCESS EXCLUSIVE MODE');
      const first = request(`${one.url}/api/v1/gc`, { method: 'POST', headers: auth });
      await waitFor(async () => {
        const { rows } = await blocker.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objid = 7413002 AND granted");
        return rows[0]!.n === 1;
      }, 15_000);
      const second = await request(`${two.url}/api/v1/gc`, { method: 'POST', headers: auth });
      const skipped = (await second.body.json()) as { error: { code: string; message: string } };
      expect(second.statusCode).toBe(409);
      expect(skipped.error).toEqual({ code: 'GC_RUNNING', message: 'garbage collection is already running on another replica' });
      await blocker.query('COMMIT');
      const ran = await first;
      const report = (await ran.body.json()) as { dryRun: boolean; repositories: number };
      expect(ran.statusCode).toBe(200);
      expect(report).toMatchObject({ dryRun: false });
      expect(report.repositories).toBeGreaterThanOrEqual(1);
    } finally {
      await blocker.end();
    }
    expect(two.log()).toMatch(/garbage collection skipped/);
    // The lock is free again: replica 2 runs now, and what was pushed survives both runs.
    const again = await request(`${two.url}/api/v1/gc`, { method: 'POST', headers: auth });
    await again.body.dump();
    expect(again.statusCode).toBe(200);
    expect((await status(`${one.url}/v2/admin/app/manifests/v1`, auth)).status).toBe(200);
  });

  it('answer 503 UNAVAILABLE while PostgreSQL is down, fail readiness, and recover by themselves when it is back', async () => {
    const auth = { authorization: basicAuthHeader(admin) };
    const manifestUrl = (r: SpawnedLayover) => `${r.url}/v2/admin/app/manifests/v1`;
    expect((await status(`${one.url}/readyz`)).status).toBe(200);
    await postgres.stop();
    try {
      for (const replica of [one, two]) {
        const down = await status(manifestUrl(replica), auth);
        expect(down.status).toBe(503);
        expect(JSON.parse(down.body)).toEqual({ errors: [{ code: 'UNAVAILABLE', message: 'the registry\'s database is unreachable; try again shortly' }] });
        expect(down.headers['retry-after']).toBe('5');
        expect((await status(`${replica.url}/readyz`)).status).toBe(503);
        // Liveness stays green: restarting the Pod would not bring the database back.
        expect((await status(`${replica.url}/healthz`)).status).toBe(200);
        // A push fails cleanly too, and nothing is half-written.
        const post = await request(`${replica.url}/v2/admin/app/blobs/uploads/`, { method: 'POST', headers: { ...auth, 'content-length': '0' } });
        expect(post.statusCode).toBe(503);
        await post.body.dump();
      }
    } finally {
      await postgres.start();
    }
    for (const replica of [one, two]) {
      await waitFor(async () => (await status(manifestUrl(replica), auth)).status === 200, 20_000);
      await waitFor(async () => (await status(`${replica.url}/readyz`)).status === 200, 10_000);
      expect(replica.alive()).toBe(true);
    }
    // Writes work again through either replica, and the other sees them.
    const { blobs, manifest } = image('after-restart');
    await pushContent(two.url, 'admin/app', 'v2', blobs, manifest, admin);
    const got = await getBytes(`${one.url}/v2/admin/app/manifests/v2`, { auth: admin, headers: { accept: manifest.mediaType } });
    expect(got.body.equals(manifest.bytes)).toBe(true);
    // One error line per outage, not one per request; the database is named, never its password.
    expect(one.log().match(/database unreachable: requests that need it answer 503/g)?.length ?? 0).toBeLessThanOrEqual(2);
    for (const replica of [one, two]) {
      expect(replica.log()).toContain('"metadata":"postgres://layover:***@127.0.0.1');
      expect(replica.log()).not.toContain(DB_PASSWORD);
    }
  });
});
