// Issue 14 benchmark: metadata at scale, layover on both metadata engines (SQLite, the embedded
// default, and PostgreSQL) side by side with docker-registry (Distribution 2.8, filesystem), in one
// run. `npx tsx test/bench/metadata.ts [--repos 5000,50000] [--tags 10000] [--runs N]
// [--engine sqlite,postgres] [--peer-walk-budget SECONDS] [--legacy-import] [--cpu-prof DIR]`
// (--cpu-prof: layover writes a V8 CPU profile per scenario into DIR; PostgreSQL: a private
// server, test/helpers/postgres.ts). layover runs compiled (dist/, as the container image does).
// Scenarios, each with every registry seeded with the same content:
//   tags:    one repository with --tags tags on one manifest
//   repos-N: N repositories, each with one tagged manifest (its own) over a shared config and layer
// Figures: `_catalog?n=100` first page (median of --runs), a full catalog walk by n=100 pages
// following Link, tags/list walked the same way, GC dry run (docker-registry garbage-collect
// --dry-run, a process; layover POST /api/v1/gc?dryRun=true), and layover's ls/du both as the API
// calls they make and as `layover ls`, `layover ls REPO`, `layover du` processes (node
// bin/layover.js, which runs dist/ once built, as a user's `npx layover` does; median of 3).
// docker-registry's catalog walk is quadratic (every page lists the whole tree: 2.2 s a page at
// 50,000 repositories): past --peer-walk-budget seconds (default 60) it stops and the full walk is
// extrapolated linearly from the pages walked, which understates it; the output says so.
// Seeding: docker-registry's on-disk layout as Distribution keeps it (repositories/<name>/_manifests/
// revisions/sha256/<hex>/link, tags/<t>/current/link + index, _layers/.../link,
// blobs/sha256/xx/<hex>/data); layover's metadata straight into its SQL tables (SQLite's
// metadata.db or PostgreSQL), blobs as the filesystem driver keeps them. --legacy-import seeds
// layover's pre-SQL file layout instead, which its first start imports (that migration is timed).
// Prints a table and one JSON line (`{"bench":"metadata",…}`), then the summary table.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { request } from 'undici';
import { startDockerRegistry, type DockerRegistry } from '../helpers/docker-registry.js';
import { compiledEntry, spawnLayover, type SpawnedLayover } from '../helpers/layover.js';
import { requireTool, runTool } from '../helpers/run-tool.js';
import { makeTempDir } from '../helpers/temp-dir.js';
import { startPostgres, type Postgres } from '../helpers/postgres.js';
import { Database } from '../../src/database/database.js';
import { PostgresMetadata } from '../../src/registry/storage/metadata/postgres.js';
import { SqliteMetadata } from '../../src/registry/storage/metadata/sqlite.js';
import { median } from './measure.js';
import { printSummary } from './summary.js';

const { values: args } = parseArgs({
  options: {
    repos: { type: 'string', default: '5000' },
    tags: { type: 'string', default: '10000' },
    runs: { type: 'string', default: '9' },
    'cpu-prof': { type: 'string' },
    engine: { type: 'string', default: 'sqlite,postgres' },
    'peer-walk-budget': { type: 'string', default: '60' },
    'legacy-import': { type: 'boolean', default: false },
  },
});
type Engine = 'sqlite' | 'postgres';
const ENGINES = [...new Set(args.engine.split(',').map((e) => e.trim()))].map((e): Engine => {
  if (e !== 'sqlite' && e !== 'postgres') throw new Error(`--engine: "${e}" is neither sqlite nor postgres`);
  return e;
});
const RUNS = Math.max(1, Number(args.runs));
const PEER_WALK_BUDGET_MS = Number(args['peer-walk-budget']) * 1000;
const CLI_RUNS = 3;
const BIN = path.resolve(import.meta.dirname, '../../bin/layover.js');
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

function put(file: string, data: string | Buffer): void {
  try {
    writeFileSync(file, data);
  } catch {
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, data);
  }
}

interface Seed {
  blobs: Buffer[];
  /** repository → [tag, manifest index in `manifests`][] */
  repos: Map<string, [string, number][]>;
  manifests: Buffer[];
  layers: string[];
}

function content(repoCount: number, tagCount: number): Seed {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const layer = Buffer.from('a shared layer, small: the bench is about metadata');
  const manifestFor = (name: string) =>
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${sha(config)}`, size: config.length },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: `sha256:${sha(layer)}`, size: layer.length }],
        annotations: { 'org.example.repository': name },
      }),
    );
  const repos = new Map<string, [string, number][]>();
  const manifests: Buffer[] = [];
  if (tagCount > 0) {
    manifests.push(manifestFor('bench/tags'));
    repos.set(
      'bench/tags',
      Array.from({ length: tagCount }, (_, i) => [`t${String(i).padStart(6, '0')}`, 0]),
    );
  }
  for (let i = 0; i < repoCount; i++) {
    const name = `bench/r${String(i).padStart(6, '0')}`;
    manifests.push(manifestFor(name));
    repos.set(name, [['latest', manifests.length - 1]]);
  }
  return { blobs: [config, layer], repos, manifests, layers: [sha(config), sha(layer)] };
}

function seedDistribution(root: string, seed: Seed): void {
  const v2 = path.join(root, 'docker', 'registry', 'v2');
  const hexOf = seed.manifests.map((m) => sha(m));
  for (const b of [...seed.blobs, ...seed.manifests]) {
    const hex = sha(b);
    put(path.join(v2, 'blobs', 'sha256', hex.slice(0, 2), hex, 'data'), b);
  }
  for (const [name, tags] of seed.repos) {
    const dir = path.join(v2, 'repositories', ...name.split('/'));
    const hexes = new Set(tags.map(([, m]) => hexOf[m]!));
    for (const hex of hexes) put(path.join(dir, '_manifests', 'revisions', 'sha256', hex, 'link'), `sha256:${hex}`);
    for (const [tag, m] of tags) {
      const hex = hexOf[m]!;
      put(path.join(dir, '_manifests', 'tags', tag, 'current', 'link'), `sha256:${hex}`);
      put(path.join(dir, '_manifests', 'tags', tag, 'index', 'sha256', hex, 'link'), `sha256:${hex}`);
    }
    for (const hex of seed.layers) put(path.join(dir, '_layers', 'sha256', hex, 'link'), `sha256:${hex}`);
  }
}

/** layover's file layout before the SQL metadata; its first start imports it. */
function seedLayoverLegacy(root: string, seed: Seed): void {
  for (const b of [...seed.blobs, ...seed.manifests]) {
    const hex = sha(b);
    put(path.join(root, 'blobs', 'sha256', hex.slice(0, 2), hex), b);
  }
  for (const [name, tags] of seed.repos) {
    const dir = path.join(root, 'repositories', ...name.split('/'));
    const seen = new Set<number>();
    for (const [, m] of tags) {
      if (seen.has(m)) continue;
      seen.add(m);
      const bytes = seed.manifests[m]!;
      const hex = sha(bytes);
      put(path.join(dir, '_manifests', 'revisions', 'sha256', hex), JSON.stringify({ digest: `sha256:${hex}`, mediaType: OCI_MANIFEST, size: bytes.length }));
    }
    for (const [tag, m] of tags) put(path.join(dir, '_manifests', 'tags', tag), `sha256:${sha(seed.manifests[m]!)}`);
    for (const hex of seed.layers) put(path.join(dir, '_layers', 'sha256', hex), `sha256:${hex}`);
  }
}


/** Every row of `items` in batches of `size`. */
function batches<T>(items: T[], size = 5_000): T[][] {
  return Array.from({ length: Math.ceil(items.length / size) }, (_, i) => items.slice(i * size, (i + 1) * size));
}

function writeBlobs(root: string, seed: Seed): void {
  for (const b of [...seed.blobs, ...seed.manifests]) {
    const hex = sha(b);
    put(path.join(root, 'blobs', 'sha256', hex.slice(0, 2), hex), b);
  }
}

/** The rows of layover's metadata tables for the seed (both engines insert the same). */
function metadataRows(seed: Seed) {
  const manifestDigest = seed.manifests.map((m) => `sha256:${sha(m)}`);
  const blobs = [...seed.blobs, ...seed.manifests].map((b) => [`sha256:${sha(b)}`, b.length] as const);
  const refs = manifestDigest.flatMap((m) => seed.layers.map((l) => [m, `sha256:${l}`] as const));
  const names = [...seed.repos.keys()];
  const links = names.flatMap((n) => seed.layers.map((l) => [n, `sha256:${l}`] as const));
  const revisions = names.flatMap((n) => [...new Set(seed.repos.get(n)!.map(([, m]) => m))].map((m) => [n, manifestDigest[m]!, seed.manifests[m]!.length] as const));
  const tags = names.flatMap((n) => seed.repos.get(n)!.map(([t, m]) => [n, t, manifestDigest[m]!] as const));
  return { blobs, refs, names, links, revisions, tags };
}

/** layover's metadata straight into SQLite (<root>/metadata.db, schema by SqliteMetadata.open), in one transaction. */
async function seedLayoverSqlite(root: string, seed: Seed): Promise<void> {
  writeBlobs(root, seed);
  const meta = new SqliteMetadata(path.join(root, 'metadata.db'));
  await meta.open();
  try {
    const db = meta.database;
    const now = Date.now();
    const rows = metadataRows(seed);
    meta.transaction(() => {
      const blob = db.prepare('INSERT INTO blobs (digest, size, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING');
      for (const [d, size] of rows.blobs) blob.run(d, size, now);
      const ref = db.prepare("INSERT INTO manifest_refs (manifest, kind, ref) VALUES (?, 'blob', ?) ON CONFLICT DO NOTHING");
      for (const [m, r] of rows.refs) ref.run(m, r);
      const repository = db.prepare('INSERT INTO repositories (name, created_at) VALUES (?, ?)');
      for (const n of rows.names) repository.run(n, now);
      const link = db.prepare('INSERT INTO links (repository, digest, created_at) VALUES (?, ?, ?)');
      for (const [n, d] of rows.links) link.run(n, d, now);
      const revision = db.prepare('INSERT INTO manifests (repository, digest, media_type, size, created_at) VALUES (?, ?, ?, ?, ?)');
      for (const [n, d, size] of rows.revisions) revision.run(n, d, OCI_MANIFEST, size, now);
      const tag = db.prepare('INSERT INTO tags (repository, tag, digest, updated_at) VALUES (?, ?, ?, ?)');
      for (const [n, t, d] of rows.tags) tag.run(n, t, d, now);
    });
    // The maintained summaries (schema.ts migration 4) of rows written straight into the tables:
    // the migration's own backfill, as an upgraded registry would have them.
    const backfill = await timed(() => meta.backfillSummaries());
    console.error(`[seed] sqlite: summaries backfilled in ${backfill.ms.toFixed(0)} ms`);
    db.exec('ANALYZE');
  } finally {
    await meta.close();
  }
}

/** layover's metadata straight into PostgreSQL (schema by PostgresMetadata.open), blob files as the filesystem driver keeps them. */
async function seedLayoverPostgres(root: string, url: string, seed: Seed): Promise<void> {
  writeBlobs(root, seed);
  const db = new Database(url, { maxConnections: 2 });
  try {
    await new PostgresMetadata(db).open();
    const now = Date.now();
    const rows = metadataRows(seed);
    const columns = <T extends readonly unknown[]>(batch: T[], i: number) => batch.map((r) => r[i]);
    for (const b of batches(rows.blobs)) await db.query('INSERT INTO blobs (digest, size, created_at) SELECT d, s, $3 FROM unnest($1::text[], $2::bigint[]) AS x (d, s) ON CONFLICT DO NOTHING', [columns(b, 0), columns(b, 1), now]);
    for (const b of batches(rows.refs)) await db.query("INSERT INTO manifest_refs (manifest, kind, ref) SELECT m, 'blob', r FROM unnest($1::text[], $2::text[]) AS x (m, r) ON CONFLICT DO NOTHING", [columns(b, 0), columns(b, 1)]);
    for (const b of batches(rows.names)) await db.query('INSERT INTO repositories (name, created_at) SELECT n, $2 FROM unnest($1::text[]) AS x (n)', [b, now]);
    for (const b of batches(rows.links)) await db.query('INSERT INTO links (repository, digest, created_at) SELECT n, d, $3 FROM unnest($1::text[], $2::text[]) AS x (n, d)', [columns(b, 0), columns(b, 1), now]);
    for (const b of batches(rows.revisions)) await db.query('INSERT INTO manifests (repository, digest, media_type, size, created_at) SELECT n, d, $4, s, $5 FROM unnest($1::text[], $2::text[], $3::bigint[]) AS x (n, d, s)', [columns(b, 0), columns(b, 1), columns(b, 2), OCI_MANIFEST, now]);
    for (const b of batches(rows.tags)) await db.query('INSERT INTO tags (repository, tag, digest, updated_at) SELECT n, t, d, $4 FROM unnest($1::text[], $2::text[], $3::text[]) AS x (n, t, d)', [columns(b, 0), columns(b, 1), columns(b, 2), now]);
    await db.query('ANALYZE');
    // The maintained summaries (schema.ts migration 4), by the migration's own backfill.
    const backfill = await timed(() => new PostgresMetadata(db).backfillSummaries());
    console.error(`[seed] postgres: summaries backfilled in ${backfill.ms.toFixed(0)} ms`);
    await db.query('ANALYZE repository_summaries');
  } finally {
    await db.close();
  }
}

async function timed<T>(work: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = performance.now();
  const value = await work();
  return { ms: performance.now() - t0, value };
}

async function getJson(url: string, init: { method?: 'GET' | 'POST' } = {}): Promise<{ body: unknown; link?: string }> {
  const res = await request(url, { method: init.method ?? 'GET', headersTimeout: 600_000, bodyTimeout: 600_000 });
  const body = await res.body.json();
  if (res.statusCode !== 200) throw new Error(`${url}: HTTP ${res.statusCode} ${JSON.stringify(body).slice(0, 300)}`);
  const link = res.headers.link;
  return { body, link: typeof link === 'string' ? link : undefined };
}

/**
 * Walks a paged listing following Link headers; returns how many entries it saw and whether it
 * stopped at `budgetMs` before the end.
 */
async function walk(base: string, first: string, key: 'repositories' | 'tags', budgetMs = Infinity): Promise<{ count: number; cut: boolean }> {
  const t0 = performance.now();
  let count = 0;
  for (let next: string | undefined = first; next; ) {
    if (performance.now() - t0 > budgetMs) return { count, cut: true };
    const page = await getJson(`${base}${next}`);
    count += ((page.body as Record<string, string[] | null>)[key] ?? []).length;
    next = page.link?.match(/^<([^>]+)>/)?.[1];
  }
  return { count, cut: false };
}

/** CPU milliseconds a process has used so far (utime + stime from /proc; clock ticks of 10 ms). */
function processCpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/**
 * `layover ARGS…` as a user runs it: a process of its own (under /usr/bin/time for its CPU);
 * medians of CLI_RUNS of its wall time, its CPU and the server's CPU meanwhile, and how many
 * lines it printed. CPU figures do not grow with the machine's load as wall times do.
 */
async function cli(url: string, argv: string[], serverPid: number): Promise<{ ms: number; cpuMs: number; serverCpuMs: number; lines: number }> {
  const times: number[] = [];
  const cpus: number[] = [];
  const serverCpus: number[] = [];
  let lines = 0;
  const timeFile = path.join(tmpdir(), `layover-bench-cli-${process.pid}`);
  for (let i = 0; i < CLI_RUNS; i++) {
    const server0 = processCpuMs(serverPid);
    const t0 = performance.now();
    const stdout = await new Promise<string>((resolve, reject) =>
      execFile('/usr/bin/time', ['-f', '%U %S', '-o', timeFile, process.execPath, BIN, ...argv, '--url', url], { maxBuffer: 1 << 30, timeout: 600_000, env: { ...process.env, NODE_OPTIONS: undefined } }, (err, out, stderr) =>
        err ? reject(new Error(`layover ${argv.join(' ')}: ${err.message} ${stderr}`)) : resolve(out),
      ),
    );
    times.push(performance.now() - t0);
    serverCpus.push(processCpuMs(serverPid) - server0);
    const [user, sys] = readFileSync(timeFile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
    cpus.push(((user ?? 0) + (sys ?? 0)) * 1000);
    lines = stdout.split('\n').length - 1;
  }
  return { ms: median(times), cpuMs: median(cpus), serverCpuMs: median(serverCpus), lines };
}

type Kind = Engine | 'docker';

interface Row {
  scenario: string;
  metric: string;
  ms: Partial<Record<Kind, number>>;
  target: string;
  /** Said under the table (e.g. how a figure was extrapolated). */
  note?: string;
}


async function scenario(name: string, repoCount: number, tagCount: number, rows: Row[], postgres: Postgres | undefined): Promise<Record<string, number>> {
  const seed = content(repoCount, tagCount);
  const repoTotal = seed.repos.size;
  const tmp = makeTempDir('layover-bench-meta-');
  const figures: Record<string, number> = {};
  const layovers: Partial<Record<Engine, SpawnedLayover>> = {};
  let peer: DockerRegistry | undefined;
  try {
    const docker = (peer = await startDockerRegistry({ logLevel: 'error' }));
    figures.seedDockerMs = (await timed(async () => seedDistribution(docker.root, seed))).ms;
    for (const engine of ENGINES) {
      const root = path.join(tmp.path, `layover-${engine}`);
      const database = engine === 'postgres' ? await postgres!.createDatabase(`bench_${name.replace(/\W/g, '_')}`) : undefined;
      const legacy = engine === 'sqlite' && args['legacy-import'];
      figures[`seed.${engine}Ms`] = (await timed(async () => (database ? seedLayoverPostgres(root, database, seed) : legacy ? seedLayoverLegacy(root, seed) : seedLayoverSqlite(root, seed)))).ms;
      const start = await timed(() =>
        spawnLayover(
          { gc: { interval: '1000h' } },
          { root, logLevel: 'warn', compiled: true, startTimeoutMs: 1_800_000, ...(database ? { database } : {}), nodeArgs: args['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${args['cpu-prof']}`] : [] },
        ),
      );
      layovers[engine] = start.value;
      figures[`start.${engine}Ms`] = start.ms;
    }
    const kinds: Kind[] = [...ENGINES, 'docker'];
    const urlOf = (kind: Kind) => (kind === 'docker' ? docker.url : layovers[kind]!.url);
    const record = (metric: string, target: string, ms: Partial<Record<Kind, number>>, note?: string) => {
      rows.push({ scenario: name, metric, ms, target, ...(note ? { note } : {}) });
      console.error(`[${name}] ${metric}: ${Object.entries(ms).map(([k, v]) => `${k} ${v.toFixed(1)} ms`).join(', ')}`); // progress, in case a later scenario fails
      for (const [k, v] of Object.entries(ms)) figures[`${metric}.${k}`] = v;
    };
    const each = async (metric: string, target: string, measure: (kind: Kind) => Promise<number>, only: Kind[] = kinds) => {
      const ms: Partial<Record<Kind, number>> = {};
      for (const kind of only) ms[kind] = await measure(kind);
      record(metric, target, ms);
    };

    if (repoCount > 0) {
      await each('catalog first page n=100', '≤ 5 ms', async (kind) => {
        for (let i = 0; i < 3; i++) await getJson(`${urlOf(kind)}/v2/_catalog?n=100`); // warm the route (and the pool's connections)
        const times: number[] = [];
        for (let i = 0; i < RUNS; i++) times.push((await timed(() => getJson(`${urlOf(kind)}/v2/_catalog?n=100`))).ms);
        return median(times);
      });
      const walkMs: Partial<Record<Kind, number>> = {};
      let note: string | undefined;
      for (const kind of kinds) {
        await getJson(`${urlOf(kind)}/v2/_catalog?n=100&last=bench%2Fr000100`); // warm the route past the first page
        const budget = kind === 'docker' ? PEER_WALK_BUDGET_MS : Infinity;
        const { ms, value } = await timed(() => walk(urlOf(kind), '/v2/_catalog?n=100', 'repositories', budget));
        if (value.cut) {
          // Linear from the pages walked: the pages still to come cost at least as much (each lists the whole tree), so this is a lower bound.
          walkMs[kind] = (ms * repoTotal) / value.count;
          note = `docker-registry's full walk stopped after ${(ms / 1000).toFixed(0)} s at ${value.count} of ${repoTotal} repositories; the figure is extrapolated linearly (a lower bound: its pages cost O(repositories) each)`;
        } else {
          if (value.count !== repoTotal) throw new Error(`${kind}: catalog walk saw ${value.count} of ${repoTotal} repositories`);
          walkMs[kind] = ms;
        }
      }
      record('catalog full walk n=100', '≤ docker-registry', walkMs, note);
    }
    if (tagCount > 0) {
      // Debian's docker-registry (Distribution 2.8.2) ignores `n` on tags/list: its "walk" is one
      // response with every tag. Both are shown: the paged walk (100 requests for layover) and the
      // whole list in one request each, which compares the same work.
      await each('tags/list walk n=100', '≤ docker-registry', async (kind) => {
        await getJson(`${urlOf(kind)}/v2/bench/tags/tags/list?n=100`); // warm
        const { ms, value } = await timed(() => walk(urlOf(kind), '/v2/bench/tags/tags/list?n=100', 'tags'));
        if (value.count !== tagCount) throw new Error(`${kind}: tags walk saw ${value.count} of ${tagCount} tags`);
        return ms;
      });
      await each('tags/list unpaged', '≤ docker-registry', async (kind) => {
        const times: number[] = [];
        for (let i = 0; i < RUNS; i++) {
          const { ms, value } = await timed(() => walk(urlOf(kind), '/v2/bench/tags/tags/list', 'tags'));
          if (value.count !== tagCount) throw new Error(`${kind}: tags list had ${value.count} of ${tagCount} tags`);
          times.push(ms);
        }
        return median(times);
      });
    }
    await each('GC dry run', '≤ docker-registry', async (kind) => {
      if (kind !== 'docker') {
        const { ms, value } = await timed(() => getJson(`${urlOf(kind)}/api/v1/gc?dryRun=true`, { method: 'POST' }));
        const report = value.body as { manifests: { kept: number; deleted: number }; blobs: { kept: number; deleted: number } };
        if (report.blobs.deleted !== 0 || report.manifests.deleted !== 0) throw new Error(`layover GC dry run would delete: ${JSON.stringify(report)}`);
        return ms;
      }
      const { ms } = await timed(() => runTool(requireTool('docker-registry'), ['garbage-collect', '--dry-run', docker.configFile], { timeoutMs: 1_800_000 }));
      return ms;
    });

    // ls/du: the API calls the CLI makes (warm, median of --runs), then the CLI itself as processes.
    const oneRepo = tagCount > 0 ? 'bench/tags' : (seed.repos.keys().next().value as string);
    /** The first call's time, when asked for: what a first request after seeding costs. */
    const apiMedian = async (call: () => Promise<void>, first?: (ms: number) => void) => {
      const firstMs = (await timed(call)).ms;
      first?.(firstMs);
      const times: number[] = [];
      for (let i = 0; i < Math.min(RUNS, 5); i++) times.push((await timed(call)).ms);
      return median(times);
    };
    // ls serves maintained rows (repository_summaries), backfilled after seeding: the first call
    // finds every row current, so it costs what later ones do save for cold caches. It is shown
    // apart so that a difference would be seen, not averaged away.
    const firstLs: Partial<Record<Kind, number>> = {};
    await each('API ls (all pages)', '< 1 s', (kind) =>
      apiMedian(async () => {
        let listed = 0;
        for (let after: string | undefined; ; ) {
          const page = (await getJson(`${urlOf(kind)}/api/v1/repositories?limit=10000${after ? `&after=${encodeURIComponent(after)}` : ''}`)).body as { repositories: unknown[]; next?: string };
          listed += page.repositories.length;
          if (!page.next) break;
          after = page.next;
        }
        if (listed !== repoTotal) throw new Error(`${kind}: ls listed ${listed} of ${repoTotal}`);
      }, (ms) => (firstLs[kind] = ms)), ENGINES);
    record('API ls (all pages), first after seeding', '< 1 s', firstLs);
    await each(`API ls REPO (${seed.repos.get(oneRepo)!.length} tags)`, '< 1 s', (kind) => apiMedian(async () => void (await getJson(`${urlOf(kind)}/api/v1/repository?name=${encodeURIComponent(oneRepo)}`))), ENGINES);
    await each('API du', '< 1 s', (kind) => apiMedian(async () => void (await getJson(`${urlOf(kind)}/api/v1/storage`))), ENGINES);
    const cliRun = async (metric: string, argv: string[], expectLines?: number) => {
      const wall: Partial<Record<Kind, number>> = {};
      const cpu: Partial<Record<Kind, number>> = {};
      for (const engine of ENGINES) {
        const run = await cli(urlOf(engine), argv, layovers[engine]!.pid);
        if (expectLines !== undefined && run.lines !== expectLines) throw new Error(`${engine}: layover ${argv.join(' ')} printed ${run.lines} lines, not ${expectLines}`);
        wall[engine] = run.ms;
        cpu[engine] = run.cpuMs + run.serverCpuMs;
        console.error(`[${name}] layover ${argv.join(' ')} on ${engine}: CPU ${run.cpuMs.toFixed(0)} ms in the CLI, ${run.serverCpuMs.toFixed(0)} ms in the server`);
      }
      record(metric, '< 1 s', wall);
      record(`${metric}: CPU (CLI + server)`, '-', cpu);
    };
    await cliRun('CLI layover ls', ['ls'], repoTotal + 1);
    await cliRun(`CLI layover ls REPO (${seed.repos.get(oneRepo)!.length} tags)`, ['ls', oneRepo], seed.repos.get(oneRepo)!.length + 1);
    await cliRun('CLI layover du', ['du']);
    return figures;
  } finally {
    for (const layover of Object.values(layovers)) await layover.close();
    await peer?.close();
    tmp.cleanup();
  }
}

async function main(): Promise<void> {
  requireTool('docker-registry');
  // dist/ once, before any timing: layover runs compiled, and bin/layover.js (the CLI) picks it up.
  await compiledEntry();
  const rows: Row[] = [];
  const results: Record<string, Record<string, number>> = {};
  const tagCount = Number(args.tags);
  const postgres = ENGINES.includes('postgres') ? await startPostgres() : undefined;
  try {
    if (tagCount > 0) results[`tags-${tagCount}`] = await scenario(`tags-${tagCount}`, 0, tagCount, rows, postgres);
    for (const n of args.repos.split(',').map(Number).filter((x) => x > 0)) results[`repos-${n}`] = await scenario(`repos-${n}`, n, 0, rows, postgres);
  } finally {
    await postgres?.close();
  }
  const fmt = (ms: number | undefined) => (ms === undefined ? '-' : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`);
  const kinds: Kind[] = [...ENGINES, 'docker'];
  const label = (k: Kind) => (k === 'docker' ? 'docker-reg' : `layover-${k === 'sqlite' ? 'sqlite' : 'pg'}`);
  console.log(`${'scenario'.padEnd(12)} ${'metric'.padEnd(34)} ${kinds.map((k) => label(k).padStart(14)).join(' ')}  target`);
  for (const r of rows) console.log(`${r.scenario.padEnd(12)} ${r.metric.padEnd(34)} ${kinds.map((k) => fmt(r.ms[k]).padStart(14)).join(' ')}  ${r.target}`);
  for (const r of rows) if (r.note) console.log(`note (${r.scenario} ${r.metric}): ${r.note}`);
  for (const [name, f] of Object.entries(results)) console.log(`${name}: seed docker-registry ${fmt(f.seedDockerMs)}; ${ENGINES.map((e) => `${e} seed ${fmt(f[`seed.${e}Ms`])}, start${e === 'sqlite' && args['legacy-import'] ? ' incl. import' : ''} ${fmt(f[`start.${e}Ms`])}`).join('; ')}`);
  console.log(`load average: ${(await import('node:os')).loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  console.log(JSON.stringify({ bench: 'metadata', engines: ENGINES, runs: RUNS, results }));
  printSummary({
    bench: 'metadata',
    peer: 'docker-registry',
    note: rows.some((r) => r.note) ? 'docker-registry full catalog walks marked extrapolated: see the notes above' : undefined,
    rows: rows.flatMap((r) =>
      ENGINES.filter((e) => r.ms[e] !== undefined).map((e) => ({ metric: `${r.scenario} ${r.metric} (${e})`, unit: 'ms', digits: 1, layover: r.ms[e], peer: r.ms.docker, target: r.target })),
    ),
  });
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
