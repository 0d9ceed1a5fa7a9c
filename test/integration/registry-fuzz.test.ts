// A short fuzz run of the HTTP API against a real layover process with auth on and two mirrors,
// one of a closed loopback port and one of a loopback stub answering junk: random hostile names,
// digests, references, methods, headers and bodies, sent as raw bytes. No answer is a 5xx (but a
// mirror's read that its upstream fails: 503 UNAVAILABLE, and 502 for the junk one's content),
// every error under /v2/ is in the Distribution format, the process survives, and nothing is
// written outside the storage root.
// Replay a failing run with FUZZ_SEED=<seed> (printed with every failure; the junk upstream's
// answers follow the seed too, though the cache's own background fetches may reorder them).
import { existsSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { describeRequest, fuzzRequest, requestBytes, Rng, type FuzzRequest, type FuzzWorld } from '../helpers/http-fuzz.js';
import { junkAnswers, startRawUpstream, type RawUpstream } from '../helpers/junk-upstream.js';
import { spawnLayover, type SpawnedLayover } from '../helpers/layover.js';
import { buildManifest, emptyConfig, randomBlob } from '../helpers/oci-content.js';
import { rawRequest, socketExchange, type SocketAnswer } from '../helpers/raw-http.js';
import { basicAuthHeader, pushContent } from '../helpers/registry-client.js';

const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : Math.floor(Math.random() * 2 ** 31);
// A deeper run by hand: FUZZ_MS=120000 FUZZ_REQUESTS=100000.
const BUDGET_MS = Number(process.env.FUZZ_MS ?? 15_000);
const MAX_REQUESTS = Number(process.env.FUZZ_REQUESTS ?? 4000);
/** Mirrors and the 5xx statuses their reads may answer: unreachable (a closed port), or junk. */
const DOWN_MIRROR = 'docker.io';
const JUNK_MIRROR = 'ghcr.io';
const MIRROR_5XX: Record<string, number[]> = { [DOWN_MIRROR]: [503], [JUNK_MIRROR]: [502, 503] };
const ADMIN = { user: 'admin', password: 'fuzz-admin-password' };
const ALICE = { user: 'alice', password: 'fuzz-alice-password' };
const CODES = new Set([
  'BLOB_UNKNOWN', 'BLOB_UPLOAD_INVALID', 'BLOB_UPLOAD_UNKNOWN', 'DIGEST_INVALID', 'MANIFEST_BLOB_UNKNOWN', 'MANIFEST_INVALID', 'MANIFEST_UNKNOWN',
  'NAME_INVALID', 'NAME_UNKNOWN', 'SIZE_INVALID', 'UNAUTHORIZED', 'DENIED', 'UNSUPPORTED', 'TOOMANYREQUESTS', 'RANGE_INVALID',
  'PAGINATION_NUMBER_INVALID', 'TAG_INVALID', 'UNAVAILABLE',
]);

let layover: SpawnedLayover;
let junk: RawUpstream;
let world: FuzzWorld;

/** Every path under `dir`, relative to it. */
function tree(dir: string): string[] {
  const out: string[] = [];
  const walk = (at: string): void => {
    for (const e of readdirSync(at, { withFileTypes: true })) {
      const p = path.join(at, e.name);
      out.push(path.relative(dir, p));
      if (e.isDirectory()) walk(p);
    }
  };
  if (existsSync(dir)) walk(dir);
  return out.sort();
}

/** Paths up to `depth` levels under `dir` whose name holds `marker` (unreadable directories skipped). */
function findMarked(dir: string, marker: string, depth: number, skip: string): string[] {
  const out: string[] = [];
  let entries: string[] = [];
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of entries) {
    const p = path.join(dir, name);
    if (p === skip) continue;
    if (name.toLowerCase().includes(marker.toLowerCase())) out.push(p);
    try {
      if (depth > 1 && statSync(p).isDirectory()) out.push(...findMarked(p, marker, depth - 1, skip));
    } catch {
      // Gone meanwhile (another test's temp dir): nothing of ours.
    }
  }
  return out;
}

/** The request's path with an absolute form's scheme and authority removed. */
function pathOf(target: string): string {
  const absolute = /^[a-z]+:\/\/[^/?#]*/i.exec(target);
  const rest = absolute ? target.slice(absolute[0].length) || '/' : target;
  return rest.split('?')[0] as string;
}

/** What is wrong with this answer to this request; empty when nothing is. */
function problems(req: FuzzRequest, res: SocketAnswer): string[] {
  const out: string[] = [];
  const v2 = pathOf(req.target).startsWith('/v2/');
  let code: string | undefined;
  if (res.status >= 400 && v2) {
    if (!/^application\/json/.test(res.headers['content-type'] ?? '')) out.push(`content-type ${res.headers['content-type']}`);
    if (res.headers['docker-distribution-api-version'] !== 'registry/2.0') out.push('no Docker-Distribution-API-Version');
    if (req.method !== 'HEAD' || res.body.length) {
      try {
        const doc = JSON.parse(res.body.toString('utf8')) as { errors?: { code?: unknown; message?: unknown }[] };
        const first = doc.errors?.[0];
        code = typeof first?.code === 'string' ? first.code : undefined;
        if (Object.keys(doc).join() !== 'errors' || !first || !CODES.has(String(first.code)) || typeof first.message !== 'string') out.push(`not the error format: ${res.body.toString('utf8').slice(0, 200)}`);
      } catch {
        out.push(`not JSON: ${JSON.stringify(res.body.toString('latin1').slice(0, 200))}`);
      }
    }
  }
  if (res.status >= 500) {
    // A mirror's read (of a mirror repository, or of one containerd's `?ns=` maps onto it) may
    // answer what its upstream's failure makes of it; nothing else may be a 5xx.
    // `ns` names the upstream even when the path starts with another mirror's namespace (the
    // image was ns/path), so it decides first.
    const mirrors = Object.keys(MIRROR_5XX);
    const mirror = mirrors.find((p) => new RegExp(`[?&]ns=${p.replace('.', '\\.')}(&|$)`).test(req.target)) ?? mirrors.find((p) => req.name?.startsWith(`${p}/`));
    const read = req.method === 'GET' || req.method === 'HEAD';
    const allowed = mirror !== undefined && read && MIRROR_5XX[mirror]?.includes(res.status) && (req.method === 'HEAD' || (res.status === 503 ? code === 'UNAVAILABLE' : code !== undefined));
    if (!allowed) out.push(`status ${res.status}`);
  }
  return out;
}

/**
 * A blob the junk upstream sends may fail its digest once its answer has begun: the cache then
 * cuts the connection, by design (proxy-gaps.test.ts), so the client never takes corrupt bytes.
 */
function mayBeCut(req: FuzzRequest): boolean {
  return req.method === 'GET' && Boolean(req.name?.startsWith(`${JUNK_MIRROR}/`)) && /\/blobs\/sha/.test(pathOf(req.target));
}

/** Earlier answers feed later requests: upload sessions and pushed digests. */
function learn(res: SocketAnswer): void {
  const location = res.headers.location;
  if (res.status === 202 && location?.includes('/blobs/uploads/') && world.uploads.length < 50) world.uploads.push(location);
  const digest = res.headers['docker-content-digest'];
  if (res.status === 201 && digest && world.digests.length < 50) world.digests.push(digest);
}

beforeAll(async () => {
  const closedPort = await freePort();
  junk = await startRawUpstream(junkAnswers(new Rng(SEED + 1)));
  layover = await spawnLayover({
    upstreams: [{ prefix: DOWN_MIRROR, url: `http://127.0.0.1:${closedPort}` }, { prefix: JUNK_MIRROR, url: junk.url }],
    registry: { maxManifestSize: '64KiB' },
    // The junk upstream fails often: a tripped circuit breaker would keep the run from reaching it.
    cache: { downAfterFailures: 1_000_000 },
    auth: {
      enabled: true,
      anonymous: true,
      users: [{ name: ADMIN.user, password: ADMIN.password, admin: true }, { name: ALICE.user, password: ALICE.password }],
      // Wrong passwords are part of the run; locking the right ones out would narrow it.
      rateLimit: { perUser: 1_000_000, perClient: 1_000_000 },
    },
  });
  const admin = basicAuthHeader(ADMIN);
  const config = emptyConfig();
  const layer = randomBlob(1000, String(SEED));
  const manifest = buildManifest({ config, layers: [layer] });
  await pushContent(layover.url, 'fuzz/base', 'v1', [config, layer], manifest, ADMIN);
  const token = await rawRequest(layover.url, 'GET', `/token?service=${encodeURIComponent(layover.config.auth.service)}&scope=repository:fuzz/base:pull,push`, { authorization: admin });
  expect(token.status).toBe(200);
  const bearer = (JSON.parse(token.body.toString()) as { token: string }).token;
  world = {
    host: layover.host,
    marker: `fz${SEED.toString(36)}`,
    mirrorPrefixes: [DOWN_MIRROR, JUNK_MIRROR],
    authorizations: [admin, basicAuthHeader(ALICE), `Bearer ${bearer}`],
    digests: [config.digest, layer.digest, manifest.digest],
    uploads: [],
    manifests: [manifest.bytes, config.bytes],
  };
});
afterAll(async () => {
  await layover?.close();
  await junk?.close();
});

it('random hostile requests: no 5xx, the error format under /v2/, no crash, nothing outside the root', async () => {
  const rng = new Rng(SEED);
  const outsideRoot = (): string[] => tree(layover.dir).filter((p) => !path.join(layover.dir, p).startsWith(layover.root) && p !== path.basename(layover.logFile));
  const before = outsideRoot();
  const failures: string[] = [];
  const started = Date.now();
  let sent = 0;
  while (sent < MAX_REQUESTS && Date.now() - started < BUDGET_MS && failures.length < 20) {
    const req = fuzzRequest(world, rng);
    sent += 1;
    let res: SocketAnswer;
    try {
      // This side never half-closes: node (and Go) take a client's FIN as the client going away.
      res = await socketExchange(layover.url, requestBytes(req), { waitMs: 0, timeoutMs: req.framingBroken ? 1000 : 10_000 });
    } catch (err) {
      // No answer is fine only when the request's own framing is broken (the server may wait for the
      // rest), or for a junk blob cut by design.
      if (!req.framingBroken && !mayBeCut(req)) failures.push(`#${sent} ${(err as Error).message} ← ${describeRequest(req)}`);
      continue;
    }
    learn(res);
    const wrong = problems(req, res);
    if (wrong.length) failures.push(`#${sent} ${res.status} ${wrong.join(', ')} ← ${describeRequest(req)}`);
    if (!layover.alive()) {
      failures.push(`#${sent} the process died ← ${describeRequest(req)}`);
      break;
    }
  }
  const seconds = (Date.now() - started) / 1000;
  console.log(`fuzz: seed ${SEED}, ${sent} requests in ${seconds.toFixed(1)} s, ${junk.requests()} to the junk upstream`);

  // Still serving, nothing logged as unhandled, nothing written outside the storage layout.
  expect((await rawRequest(layover.url, 'GET', '/v2/')).status, `seed ${SEED}`).toBe(401);
  const fatal = layover.log().split('\n').filter((line) => /"level":(50|60)/.test(line));
  const marked = findMarked(tmpdir(), world.marker, 3, layover.root);
  const inRoot = tree(layover.root).filter((p) => !/^(blobs|uploads|_tmp|_keys)(\/|$)|^metadata\.db(-wal|-shm)?$/.test(p) || /\.\.|%|[^\x21-\x7e]/.test(p));
  expect({ failures, fatal: fatal.slice(0, 5), outsideRoot: outsideRoot().filter((p) => !before.includes(p)), marked, inRoot }, `seed ${SEED} (replay: FUZZ_SEED=${SEED})`).toEqual({ failures: [], fatal: [], outsideRoot: [], marked: [], inRoot: [] });
  expect(sent).toBeGreaterThan(200);
}, BUDGET_MS + 75_000);
