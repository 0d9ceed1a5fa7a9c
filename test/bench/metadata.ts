// Issue 14 benchmark: metadata at scale, layover (SQLite metadata) against docker-registry
// (Distribution 2.8, filesystem) on the same machine, in one run. Run with
// `npx tsx test/bench/metadata.ts [--repos 5000,50000] [--tags 10000] [--runs N] [--cpu-prof DIR]`
// (--cpu-prof: layover writes a V8 CPU profile per scenario into DIR). `--engine postgres`: layover's
// metadata in PostgreSQL (a private server, test/helpers/postgres.ts), seeded by SQL, not imported.
// Scenarios, each with both registries seeded with the same content:
//   tags:    one repository with --tags tags on one manifest
//   repos-N: N repositories, each with one tagged manifest (its own) over a shared config and layer
// Figures: `_catalog?n=100` first page (median of --runs), a full catalog walk by n=100 pages
// following Link, tags/list walked the same way, GC dry run (docker-registry garbage-collect
// --dry-run, a process; layover POST /api/v1/gc?dryRun=true), and layover's ls/du (the API calls
// `layover ls`/`layover du` make: GET /api/v1/repositories, /api/v1/storage).
// Seeding: both on-disk layouts are written directly. docker-registry's as Distribution keeps it
// (repositories/<name>/_manifests/revisions/sha256/<hex>/link, tags/<t>/current/link + index,
// _layers/.../link, blobs/sha256/xx/<hex>/data); layover's in its pre-SQL file layout, which its
// first start imports into metadata.db (legacy-import.ts): the bench times that migration too.
// Prints a table and one JSON line (`{"bench":"metadata",…}`).
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { request } from 'undici';
import { startDockerRegistry, type DockerRegistry } from '../helpers/docker-registry.js';
import { spawnLayover, type SpawnedLayover } from '../helpers/layover.js';
import { requireTool, runTool } from '../helpers/run-tool.js';
import { makeTempDir } from '../helpers/temp-dir.js';
import { startPostgres, type Postgres } from '../helpers/postgres.js';
import { Database } from '../../src/database/database.js';
import { PostgresMetadata } from '../../src/registry/storage/metadata/postgres.js';
import { median } from './measure.js';
import { printSummary } from './summary.js';

const { values: args } = parseArgs({ options: { repos: { type: 'string', default: '5000' }, tags: { type: 'string', default: '10000' }, runs: { type: 'string', default: '9' }, 'cpu-prof': { type: 'string' }, engine: { type: 'string', default: 'sqlite' } } });
const ENGINE = args.engine === 'postgres' ? 'postgres' : 'sqlite';
const RUNS = Math.max(1, Number(args.runs));
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
  for (const b of [...seed.blobs, ...seed.manifests]) {
    const hex = sha(b);
    put(path.join(v2, 'blobs', 'sha256', hex.slice(0, 2), hex, 'data'), b);
  }
  for (const [name, tags] of seed.repos) {
    const dir = path.join(v2, 'repositories', ...name.split('/'));
    const hexes = new Set(tags.map(([, m]) => sha(seed.manifests[m]!)));
    for (const hex of hexes) put(path.join(dir, '_manifests', 'revisions', 'sha256', hex, 'link'), `sha256:${hex}`);
    for (const [tag, m] of tags) {
      const hex = sha(seed.manifests[m]!);
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

/** layover's metadata straight into PostgreSQL (schema by PostgresMetadata.open), blob files as the filesystem driver keeps them. */
async function seedLayoverPostgres(root: string, url: string, seed: Seed): Promise<void> {
  for (const b of [...seed.blobs, ...seed.manifests]) {
    const hex = sha(b);
    put(path.join(root, 'blobs', 'sha256', hex.slice(0, 2), hex), b);
  }
  const db = new Database(url, { maxConnections: 2 });
  try {
    await new PostgresMetadata(db).open();
    const now = Date.now();
    const rows = <T>(items: T[], size = 5_000) => Array.from({ length: Math.ceil(items.length / size) }, (_, i) => items.slice(i * size, (i + 1) * size));
    const blobs = [...seed.blobs, ...seed.manifests].map((b) => [`sha256:${sha(b)}`, b.length] as const);
    for (const batch of rows(blobs)) await db.query('INSERT INTO blobs (digest, size, created_at) SELECT d, s, $3 FROM unnest($1::text[], $2::bigint[]) AS x (d, s) ON CONFLICT DO NOTHING', [batch.map((b) => b[0]), batch.map((b) => b[1]), now]);
    const refs = seed.manifests.flatMap((m) => seed.layers.map((l) => [`sha256:${sha(m)}`, `sha256:${l}`] as const));
    for (const batch of rows(refs)) await db.query("INSERT INTO manifest_refs (manifest, kind, ref) SELECT m, 'blob', r FROM unnest($1::text[], $2::text[]) AS x (m, r) ON CONFLICT DO NOTHING", [batch.map((r) => r[0]), batch.map((r) => r[1])]);
    const names = [...seed.repos.keys()];
    for (const batch of rows(names)) {
      await db.query('INSERT INTO repositories (name, created_at) SELECT n, $2 FROM unnest($1::text[]) AS x (n)', [batch, now]);
      const links = batch.flatMap((n) => seed.layers.map((l) => [n, `sha256:${l}`] as const));
      await db.query('INSERT INTO links (repository, digest, created_at) SELECT n, d, $3 FROM unnest($1::text[], $2::text[]) AS x (n, d)', [links.map((l) => l[0]), links.map((l) => l[1]), now]);
      const revisions = batch.flatMap((n) => [...new Set(seed.repos.get(n)!.map(([, m]) => m))].map((m) => [n, `sha256:${sha(seed.manifests[m]!)}`, seed.manifests[m]!.length] as const));
      await db.query('INSERT INTO manifests (repository, digest, media_type, size, created_at) SELECT n, d, $4, s, $5 FROM unnest($1::text[], $2::text[], $3::bigint[]) AS x (n, d, s)', [revisions.map((r) => r[0]), revisions.map((r) => r[1]), revisions.map((r) => r[2]), OCI_MANIFEST, now]);
      const tags = batch.flatMap((n) => seed.repos.get(n)!.map(([t, m]) => [n, t, `sha256:${sha(seed.manifests[m]!)}`] as const));
      for (const tb of rows(tags)) await db.query('INSERT INTO tags (repository, tag, digest, updated_at) SELECT n, t, d, $4 FROM unnest($1::text[], $2::text[], $3::text[]) AS x (n, t, d)', [tb.map((t) => t[0]), tb.map((t) => t[1]), tb.map((t) => t[2]), now]);
    }
    await db.query('ANALYZE');
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

/** Walks a paged listing following Link headers; returns how many entries it saw. */
async function walk(base: string, first: string, key: 'repositories' | 'tags'): Promise<number> {
  let count = 0;
  for (let next: string | undefined = first; next; ) {
    const page = await getJson(`${base}${next}`);
    count += ((page.body as Record<string, string[] | null>)[key] ?? []).length;
    next = page.link?.match(/^<([^>]+)>/)?.[1];
  }
  return count;
}

interface Row {
  scenario: string;
  metric: string;
  layoverMs: number;
  dockerMs?: number;
  target: string;
}

async function scenario(name: string, repoCount: number, tagCount: number, rows: Row[], postgres?: Postgres): Promise<Record<string, number>> {
  const seed = content(repoCount, tagCount);
  const repoTotal = seed.repos.size;
  const tmp = makeTempDir('layover-bench-meta-');
  const layoverRoot = path.join(tmp.path, 'layover');
  let docker: DockerRegistry | undefined;
  let layover: SpawnedLayover | undefined;
  const figures: Record<string, number> = {};
  try {
    const database = postgres ? await postgres.createDatabase(`bench_${name.replace(/\W/g, '_')}`) : undefined;
    const seedMs = (await timed(async () => (database ? seedLayoverPostgres(layoverRoot, database, seed) : seedLayoverLegacy(layoverRoot, seed)))).ms;
    docker = await startDockerRegistry({ logLevel: 'error' });
    seedDistribution(docker.root, seed);
    figures.seedLayoverMs = seedMs;
    const start = await timed(() => spawnLayover({ gc: { interval: '1000h' } }, { root: layoverRoot, logLevel: 'warn', startTimeoutMs: 1_800_000, ...(database ? { database } : {}), nodeArgs: args['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${args['cpu-prof']}`] : [] }));
    layover = start.value;
    figures.layoverStartWithImportMs = start.ms;

    const both = async (metric: string, target: string, path: (kind: 'layover' | 'docker') => Promise<number>) => {
      const l = await path('layover');
      const d = await path('docker');
      rows.push({ scenario: name, metric, layoverMs: l, dockerMs: d, target });
      console.error(`[${name}] ${metric}: layover ${l.toFixed(1)} ms, docker-registry ${d.toFixed(1)} ms`); // progress, in case a later scenario fails
      figures[`${metric}.layover`] = l;
      figures[`${metric}.docker`] = d;
    };
    const urlOf = (kind: 'layover' | 'docker') => (kind === 'layover' ? layover!.url : docker!.url);

    if (repoCount > 0) {
      await both('catalog first page n=100', '≤ 5 ms', async (kind) => {
        await getJson(`${urlOf(kind)}/v2/_catalog?n=100`);
        const times: number[] = [];
        for (let i = 0; i < RUNS; i++) times.push((await timed(() => getJson(`${urlOf(kind)}/v2/_catalog?n=100`))).ms);
        return median(times);
      });
      await both('catalog full walk n=100', '≤ docker-registry', async (kind) => {
        await getJson(`${urlOf(kind)}/v2/_catalog?n=100&last=bench%2Fr000100`); // warm the route past the first page
        const { ms, value } = await timed(() => walk(urlOf(kind), '/v2/_catalog?n=100', 'repositories'));
        if (value !== repoTotal) throw new Error(`${kind}: catalog walk saw ${value} of ${repoTotal} repositories`);
        return ms;
      });
    }
    if (tagCount > 0) {
      // Debian's docker-registry (Distribution 2.8.2) ignores `n` on tags/list: its "walk" is one
      // response with every tag. Both are shown: the paged walk (100 requests for layover) and the
      // whole list in one request each, which compares the same work.
      await both('tags/list walk n=100', '≤ docker-registry', async (kind) => {
        await getJson(`${urlOf(kind)}/v2/bench/tags/tags/list?n=100`); // warm
        const { ms, value } = await timed(() => walk(urlOf(kind), '/v2/bench/tags/tags/list?n=100', 'tags'));
        if (value !== tagCount) throw new Error(`${kind}: tags walk saw ${value} of ${tagCount} tags`);
        return ms;
      });
      await both('tags/list unpaged', '≤ docker-registry', async (kind) => {
        const times: number[] = [];
        for (let i = 0; i < RUNS; i++) {
          const { ms, value } = await timed(() => walk(urlOf(kind), '/v2/bench/tags/tags/list', 'tags'));
          if (value !== tagCount) throw new Error(`${kind}: tags list had ${value} of ${tagCount} tags`);
          times.push(ms);
        }
        return median(times);
      });
    }
    await both('GC dry run', '≤ docker-registry', async (kind) => {
      if (kind === 'layover') {
        const { ms, value } = await timed(() => getJson(`${layover!.url}/api/v1/gc?dryRun=true`, { method: 'POST' }));
        const report = value.body as { manifests: { kept: number; deleted: number }; blobs: { kept: number; deleted: number } };
        if (report.blobs.deleted !== 0 || report.manifests.deleted !== 0) throw new Error(`layover GC dry run would delete: ${JSON.stringify(report)}`);
        return ms;
      }
      const { ms } = await timed(() => runTool(requireTool('docker-registry'), ['garbage-collect', '--dry-run', docker!.configFile], { timeoutMs: 1_800_000 }));
      return ms;
    });
    const lsOne = await timed(() => getJson(`${layover!.url}/api/v1/repository?name=${seed.repos.keys().next().value as string}`));
    // `layover ls` pages by 1,000 (cli/ls.ts): its first answer, and the whole walk.
    const lsFirst = await timed(() => getJson(`${layover!.url}/api/v1/repositories?limit=1000`));
    const ls = await timed(async () => {
      let listed = 0;
      for (let after: string | undefined; ; ) {
        const page = (await getJson(`${layover!.url}/api/v1/repositories?limit=1000${after ? `&after=${encodeURIComponent(after)}` : ''}`)).body as { repositories: unknown[]; next?: string };
        listed += page.repositories.length;
        if (!page.next) return listed;
        after = page.next;
      }
    });
    if (ls.value !== repoTotal) throw new Error(`layover ls listed ${ls.value} of ${repoTotal}`);
    const du = await timed(() => getJson(`${layover!.url}/api/v1/storage`));
    console.error(`[${name}] layover start (with import) ${start.ms.toFixed(0)} ms; ls first page ${lsFirst.ms.toFixed(1)} ms, ls all ${ls.ms.toFixed(1)} ms, ls REPO ${lsOne.ms.toFixed(1)} ms, du ${du.ms.toFixed(1)} ms`);
    rows.push({ scenario: name, metric: 'ls first page (1,000)', layoverMs: lsFirst.ms, target: '< 1 s' });
    rows.push({ scenario: name, metric: 'ls (all, by 1,000)', layoverMs: ls.ms, target: '< 1 s' });
    rows.push({ scenario: name, metric: 'ls REPO (its tags)', layoverMs: lsOne.ms, target: '< 1 s' });
    rows.push({ scenario: name, metric: 'du', layoverMs: du.ms, target: '< 1 s' });
    figures['lsFirstPage.layover'] = lsFirst.ms;
    figures['ls.layover'] = ls.ms;
    figures['lsRepo.layover'] = lsOne.ms;
    figures['du.layover'] = du.ms;
    return figures;
  } finally {
    await layover?.close();
    await docker?.close();
    tmp.cleanup();
  }
}

async function main(): Promise<void> {
  requireTool('docker-registry');
  const rows: Row[] = [];
  const results: Record<string, Record<string, number>> = {};
  const tagCount = Number(args.tags);
  const postgres = ENGINE === 'postgres' ? await startPostgres() : undefined;
  try {
    if (tagCount > 0) results[`tags-${tagCount}`] = await scenario(`tags-${tagCount}`, 0, tagCount, rows, postgres);
    for (const n of args.repos.split(',').map(Number).filter((x) => x > 0)) results[`repos-${n}`] = await scenario(`repos-${n}`, n, 0, rows, postgres);
  } finally {
    await postgres?.close();
  }
  const fmt = (ms: number | undefined) => (ms === undefined ? '-' : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`);
  console.log(`${'scenario'.padEnd(12)} ${'metric'.padEnd(26)} ${'layover'.padStart(10)} ${'docker-reg'.padStart(10)} ${'ratio'.padStart(7)}  target`);
  for (const r of rows) {
    const ratio = r.dockerMs ? (r.layoverMs / r.dockerMs).toFixed(3) : '-';
    console.log(`${r.scenario.padEnd(12)} ${r.metric.padEnd(26)} ${fmt(r.layoverMs).padStart(10)} ${fmt(r.dockerMs).padStart(10)} ${ratio.padStart(7)}  ${r.target}`);
  }
  for (const [name, f] of Object.entries(results)) console.log(`${name} (${ENGINE}): seed ${fmt(f.seedLayoverMs)}, layover start${ENGINE === 'sqlite' ? ' incl. import' : ''} ${fmt(f.layoverStartWithImportMs)}`);
  printSummary({
    bench: `metadata (${ENGINE})`,
    peer: 'docker-registry',
    rows: rows.map((r) => ({ metric: `${r.scenario} ${r.metric}`, unit: 'ms', digits: 1, layover: r.layoverMs, peer: r.dockerMs, target: r.target })),
  });
  console.log(JSON.stringify({ bench: 'metadata', engine: ENGINE, runs: RUNS, results }));
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
