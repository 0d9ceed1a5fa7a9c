// "What happened, and when", on a real `layover serve` with auth on, on both metadata engines
// (embedded SQLite, PostgreSQL): pull times of pushed images (batched in memory, written at
// shutdown), the access log, the audit trail (pushes, deletes, logins, and the CLI's user, team
// and key changes), GC history, all surviving a restart; and the metrics a scrape shows.
import path from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PASSWORDS } from '../fixtures/auth/config.js';
import { spawnLayover, type SpawnedLayover } from '../helpers/layover.js';
import { buildManifest, imageConfig, randomBlob, type Content } from '../helpers/oci-content.js';
import { startPostgres, type Postgres } from '../helpers/postgres.js';
import { basicAuthHeader, getBytes, pushContent, type Auth } from '../helpers/registry-client.js';
import { runTool, ToolError } from '../helpers/run-tool.js';
import { skopeoInspect } from '../helpers/skopeo.js';
import { makeTempDir, type TempDir } from '../helpers/temp-dir.js';

const BIN = path.resolve(import.meta.dirname, '../../bin/layover.js');
const admin: Auth = { user: 'admin', password: PASSWORDS.admin };
const alice: Auth = { user: 'alice', password: PASSWORDS.alice };

interface AccessLine { user?: string; method: string; route: string; repository?: string; reference?: string; status: number; bytesIn?: number; bytesOut?: number; durationMs: number }
interface LogLine { level: number; msg: string; access?: AccessLine }
interface AuditEntry { id: number; at: string; actor: string; action: string; target: string; outcome: string; client?: string; detail?: Record<string, unknown> }

function logLines(text: string): LogLine[] {
  return text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as LogLine);
}

async function api<T>(layover: SpawnedLayover, method: 'GET' | 'POST' | 'DELETE', pathAndQuery: string, auth: Auth = admin): Promise<{ status: number; body: T }> {
  const res = await request(`${layover.url}/api/v1/${pathAndQuery}`, { method, headers: { authorization: basicAuthHeader(auth) } });
  return { status: res.statusCode, body: (await res.body.json()) as T };
}

for (const engine of ['embedded', 'postgres'] as const) {
  describe(`observability (${engine} metadata)`, { timeout: 240_000 }, () => {
    let layover: SpawnedLayover;
    let pg: Postgres | undefined;
    let tmp: TempDir;
    let manifest: Content;
    let layerBytes: number;
    let layerDigest: string;

    async function cli(args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
      const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: tmp.path, DOCKER_CONFIG: path.join(tmp.path, 'no-docker'), LAYOVER_URL: layover.url };
      try {
        const { stdout, stderr } = await runTool('node', [BIN, ...args], { env, timeoutMs: 60_000, ...(input !== undefined ? { input } : {}) });
        return { code: 0, stdout, stderr };
      } catch (err) {
        if (!(err instanceof ToolError)) throw err;
        return { code: Number(err.code), stdout: err.stdout, stderr: err.stderr };
      }
    }

    async function auditTrail(): Promise<AuditEntry[]> {
      const res = await api<{ events: AuditEntry[] }>(layover, 'GET', 'audit?limit=1000');
      expect(res.status).toBe(200);
      return res.body.events;
    }

    beforeAll(async () => {
      tmp = makeTempDir('layover-observe-');
      pg = engine === 'postgres' ? await startPostgres() : undefined;
      const database = pg ? await pg.createDatabase('observe') : undefined;
      layover = await spawnLayover(
        {
          auth: { enabled: true, users: [{ name: 'admin', password: PASSWORDS.admin, admin: true }, { name: 'alice', password: PASSWORDS.alice }] },
          gc: { grace: '0s', history: 3 },
          // An hour: within the test, pull times are written only when the process stops.
          registry: { pullRecordInterval: '1h' },
          cache: { maxSize: '1GiB' },
        },
        // A loaded machine: restarts under tsx may take a while.
        { startTimeoutMs: 90_000, ...(database ? { database } : {}) },
      );
      const layer = randomBlob(30_000, `observe-${engine}`);
      layerBytes = layer.size;
      layerDigest = layer.digest;
      const config = imageConfig([layer.digest]);
      manifest = buildManifest({ config, layers: [layer] });
      await pushContent(layover.url, 'alice/app', 'v1', [config, layer], manifest, alice);
      await pushContent(layover.url, 'alice/app', 'v2', [config, layer], buildManifest({ config, layers: [layer], annotations: { v: '2' } }), alice);
    }, 180_000);

    afterAll(async () => {
      await layover?.close();
      await pg?.close();
      tmp?.cleanup();
    });

    it('records pulls of pushed images in memory and writes them in one batch at shutdown', async () => {
      const tagOf = async () => {
        const res = await api<{ tagList: { tag: string; pulledAt?: string }[] }>(layover, 'GET', 'repository?name=alice/app');
        expect(res.status).toBe(200);
        return res.body.tagList.find((t) => t.tag === 'v1');
      };
      expect((await tagOf())?.pulledAt).toBeUndefined();
      const before = Date.now();
      // A real client's pull: skopeo GETs the manifest (through the token flow).
      await skopeoInspect(`docker://${layover.host}/alice/app:v1`, { raw: true, creds: alice });
      const head = await request(`${layover.url}/v2/alice/app/manifests/v2`, { method: 'HEAD', headers: { authorization: basicAuthHeader(alice) } });
      await head.body.dump();
      expect(head.statusCode).toBe(200);
      // Batched: nothing written yet (the interval is an hour).
      expect((await tagOf())?.pulledAt).toBeUndefined();
      await layover.restart();
      const pulled = (await tagOf())?.pulledAt;
      expect(pulled).toBeDefined();
      expect(Date.parse(pulled as string)).toBeGreaterThanOrEqual(before - 1000);
      // A HEAD is not a pull.
      const res = await api<{ tagList: { tag: string; pulledAt?: string }[] }>(layover, 'GET', 'repository?name=alice/app');
      expect(res.body.tagList.find((t) => t.tag === 'v2')?.pulledAt).toBeUndefined();
      // And `layover ls REPO` shows it.
      const ls = await cli(['ls', 'alice/app', '--user', `admin:${PASSWORDS.admin}`]);
      expect(ls.code).toBe(0);
      const v1 = ls.stdout.split('\n').find((l) => l.startsWith('v1 '));
      expect(v1).toBeDefined();
      expect(v1?.trim().endsWith('-')).toBe(false);
    });

    it('writes one info access line per push, pull or deletion, with who, what, status, bytes and time', async () => {
      const blob = await getBytes(`${layover.url}/v2/alice/app/blobs/${layerDigest}`, { auth: alice });
      expect(blob.status).toBe(200);
      const probe = await request(`${layover.url}/healthz`);
      await probe.body.dump();
      const lines = logLines(layover.log()).filter((l) => l.access);
      const push = lines.find((l) => l.access?.method === 'PUT' && l.access.route === 'manifest' && l.access.reference === 'v1');
      expect(push?.level).toBe(30);
      expect(push?.access).toMatchObject({ user: 'alice', repository: 'alice/app', status: 201 });
      expect(push?.access?.bytesIn).toBe(manifest.size);
      expect(push?.access?.durationMs).toBeGreaterThanOrEqual(0);
      const layerPut = lines.find((l) => l.access?.method === 'PUT' && l.access.route === 'upload' && l.access.bytesIn === layerBytes);
      expect(layerPut?.access?.status).toBe(201);
      const get = lines.filter((l) => l.access?.method === 'GET' && l.access.route === 'blob' && l.access.reference === layerDigest).at(-1);
      expect(get?.access).toMatchObject({ user: 'alice', status: 200, bytesOut: layerBytes });
      // Everything else is debug, and the level is info: no line for probes or API reads.
      expect(lines.some((l) => l.access?.route === '/healthz')).toBe(false);
      expect(lines.some((l) => l.access?.route === '/api/v1/repository' && l.access.method === 'GET')).toBe(false);
    });

    it('keeps an audit trail of pushes, deletes, logins and account and key changes, for admins only, across restarts', async () => {
      // Logins at the token endpoint: one that works, one that does not.
      const ok = await request(`${layover.url}/token?service=${encodeURIComponent(layover.config.auth.service)}&scope=repository:alice/app:pull`, { headers: { authorization: basicAuthHeader(alice) } });
      expect(ok.statusCode).toBe(200);
      await ok.body.dump();
      const bad = await request(`${layover.url}/token`, { headers: { authorization: basicAuthHeader({ user: 'alice', password: 'wrong-password' }) } });
      expect(bad.statusCode).toBe(401);
      await bad.body.dump();
      const deleted = await api<unknown>(layover, 'DELETE', 'tag?repository=alice/app&tag=v2');
      expect(deleted.status).toBe(200);
      // The CLI's own changes, on the same database.
      expect((await cli(['user', 'add', 'carol', '--password-stdin', '-c', layover.configFile], 'carol-password-1\n')).code).toBe(0);
      expect((await cli(['team', 'add', 'web', '-c', layover.configFile])).code).toBe(0);
      expect((await cli(['team', 'add-member', 'web', 'carol', '-c', layover.configFile])).code).toBe(0);
      const rotated = await cli(['token', 'rotate', '-c', layover.configFile]);
      expect(rotated.code).toBe(0);
      const kid = /new signing key (\S+)/.exec(rotated.stdout)?.[1];
      expect(kid).toBeDefined();

      const check = (events: AuditEntry[]) => {
        const find = (action: string, target: string, outcome = 'ok') => events.find((e) => e.action === action && e.target === target && e.outcome === outcome);
        expect(find('push', 'alice/app:v1')).toMatchObject({ actor: 'alice', detail: { digest: manifest.digest } });
        expect(find('push', 'alice/app:v1')?.client).toBe('127.0.0.1');
        expect(find('login', 'alice')).toMatchObject({ actor: 'alice' });
        expect(find('login', 'alice', 'failed')).toMatchObject({ detail: { reason: expect.any(String) } });
        expect(find('delete', 'alice/app:v2')).toMatchObject({ actor: 'admin', detail: { kind: 'tag' } });
        expect(find('user.add', 'carol')?.actor).toMatch(/^cli/);
        expect(find('team.add', 'web')).toBeDefined();
        expect(find('team.add-member', 'web')).toMatchObject({ detail: { user: 'carol' } });
        expect(find('key.rotate', kid as string)).toBeDefined();
        // Newest first, ids increasing with time.
        const ids = events.map((e) => e.id);
        expect([...ids].sort((a, b) => b - a)).toEqual(ids);
      };
      check(await auditTrail());
      // Admins only.
      const denied = await api<{ error: { code: string } }>(layover, 'GET', 'audit', alice);
      expect(denied.status).toBe(403);
      // Filters and paging.
      const logins = await api<{ events: AuditEntry[] }>(layover, 'GET', 'audit?action=login');
      expect(logins.body.events.length).toBeGreaterThanOrEqual(2);
      expect(logins.body.events.every((e) => e.action === 'login')).toBe(true);
      const users = await api<{ events: AuditEntry[] }>(layover, 'GET', 'audit?action=user');
      expect(users.body.events.map((e) => e.action)).toContain('user.add');
      const [first] = (await api<{ events: AuditEntry[] }>(layover, 'GET', 'audit?limit=1')).body.events;
      const next = await api<{ events: AuditEntry[] }>(layover, 'GET', `audit?limit=1&before=${first?.id}`);
      expect(next.body.events[0]?.id).toBeLessThan(first?.id as number);
      expect((await api<unknown>(layover, 'GET', 'audit?limit=0')).status).toBe(400);

      await layover.restart();
      check(await auditTrail());
      const json = await cli(['audit', '--json', '--user', `admin:${PASSWORDS.admin}`]);
      expect(json.code).toBe(0);
      check((JSON.parse(json.stdout) as { events: AuditEntry[] }).events);
      const table = await cli(['audit', '--action', 'push', '--user', `admin:${PASSWORDS.admin}`]);
      expect(table.stdout).toMatch(/^ID\s+TIME\s+ACTOR\s+ACTION\s+TARGET\s+OUTCOME\s+CLIENT/);
      expect(table.stdout).toMatch(/alice\s+push\s+alice\/app:v1\s+ok/);
      const refused = await cli(['audit', '--user', `alice:${PASSWORDS.alice}`]);
      expect(refused.code).not.toBe(0);
    });

    it('keeps the last gc.history garbage collection runs, what each freed, across restarts', async () => {
      // v2 was untagged above: its manifest goes, and its bytes are freed.
      const runs: { blobs: { bytesFreed: number } }[] = [];
      for (let i = 0; i < 4; i++) {
        const res = await api<{ blobs: { bytesFreed: number } }>(layover, 'POST', 'gc');
        expect(res.status).toBe(200);
        runs.push(res.body);
      }
      expect(runs[0]?.blobs.bytesFreed).toBeGreaterThan(0);
      const dry = await api<unknown>(layover, 'POST', 'gc?dryRun=true');
      expect(dry.status).toBe(200);
      type Status = { intervalMs: number; graceMs: number; running: boolean; lastRun?: { finishedAt: string }; history: { id: number; outcome: string; finishedAt: string; report?: { dryRun: boolean; blobs: { bytesFreed: number } } }[] };
      const before = await api<Status>(layover, 'GET', 'gc');
      expect(before.status).toBe(200);
      // The shape the CLI and the web page knew stays; history is added.
      expect(before.body).toMatchObject({ running: false, intervalMs: expect.any(Number), graceMs: 0 });
      // gc.history: 3, dry runs not kept, newest first.
      expect(before.body.history).toHaveLength(3);
      expect(before.body.history.every((h) => h.outcome === 'ok' && h.report?.dryRun === false)).toBe(true);
      expect(before.body.history.map((h) => h.report?.blobs.bytesFreed)).toEqual(runs.slice(1).reverse().map((r) => r.blobs.bytesFreed));
      await layover.restart();
      const after = await api<Status>(layover, 'GET', 'gc');
      expect(after.body.history).toEqual(before.body.history);
      expect(after.body.lastRun?.finishedAt).toBe(before.body.history[0]?.finishedAt);
      const status = await cli(['gc', '--status', '--user', `admin:${PASSWORDS.admin}`]);
      expect(status.stdout).toMatch(/history:\n\s+\S+.*freed/);
    });

    it('exposes process metrics, latency by templated route, and storage gauges by origin', async () => {
      const res = await request(`${layover.url}/metrics`);
      const text = await res.body.text();
      expect(res.statusCode).toBe(200);
      expect(text).toMatch(/^process_resident_memory_bytes \d+/m);
      expect(text).toMatch(/^nodejs_eventloop_lag_p99_seconds /m);
      expect(text).toMatch(/^layover_http_request_duration_seconds_bucket\{le="[\d.+Inf]+",route="\/api\/v1\/gc",method="GET"\} \d+/m);
      // Bounded labels: templates, never a raw path with a repository name in it.
      const routes = new Set([...text.matchAll(/^layover_http_request_duration_seconds_count\{route="([^"]*)"/gm)].map((m) => m[1]));
      for (const route of routes) expect(route).not.toMatch(/alice/);
      const stored = Number(/^layover_storage_bytes\{origin="pushed"\} (\d+)/m.exec(text)?.[1]);
      expect(stored).toBeGreaterThanOrEqual(layerBytes);
      expect(text).toMatch(/^layover_storage_blobs\{origin="pushed"\} [1-9]\d*/m);
      expect(text).toMatch(/^layover_storage_blobs\{origin="mirrored"\} 0/m);
      expect(text).toMatch(new RegExp(`^layover_cache_max_bytes ${2 ** 30}$`, 'm'));
    });
  });
}
