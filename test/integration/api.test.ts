// The /api/v1 admin/developer API on a real layover with auth on: every call obeys the same
// access rules as the Distribution API (own and team namespaces for users, everything for admins,
// mirror content deletable by admins only), and listings and details describe what is stored.
import { Readable } from 'node:stream';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Digest } from '../../src/registry/digest.js';
import { RegistryService } from '../../src/registry/service.js';
import { PASSWORDS, TEST_USERS } from '../fixtures/auth/config.js';
import { openStoreOf, startLayover, type InProcessLayover } from '../helpers/layover.js';
import { buildIndex, buildManifest, emptyConfig, imageConfig, randomBlob, type Content } from '../helpers/oci-content.js';
import { basicAuthHeader, getBytes, pushContent, type Auth } from '../helpers/registry-client.js';

const admin: Auth = { user: 'admin', password: PASSWORDS.admin };
const alice: Auth = { user: 'alice', password: PASSWORDS.alice };
const bob: Auth = { user: 'bob', password: PASSWORDS.bob };
let layover: InProcessLayover;

async function call(method: string, path: string, auth?: Auth): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await request(`${layover.url}/api/v1/${path}`, { method: method as 'GET', headers: auth ? { authorization: basicAuthHeader(auth) } : {} });
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
}

function image(seed: string, platform = { os: 'linux', architecture: 'amd64' }) {
  const layer = randomBlob(10_000, seed);
  const config = imageConfig([layer.digest], platform);
  return { blobs: [config, layer], manifest: buildManifest({ config, layers: [layer] }), size: config.size + layer.size };
}

async function push(repo: string, tag: string, auth: Auth, seed = `${repo}:${tag}`) {
  const img = image(seed);
  await pushContent(layover.url, repo, tag, img.blobs, img.manifest, auth);
  return img;
}

async function tags(repo: string): Promise<string[]> {
  const res = await getBytes(`${layover.url}/v2/${repo}/tags/list`, { auth: admin });
  return res.status === 200 ? (JSON.parse(res.body.toString()) as { tags: string[] }).tags : [];
}

beforeAll(async () => {
  layover = await startLayover({
    upstreams: [{ prefix: 'docker.io', url: 'http://127.0.0.1:9' }],
    auth: {
      enabled: true,
      users: TEST_USERS,
    },
    log: { level: 'info' },
  });
  await push('alice/app', 'v1', alice);
  await push('alice/app', 'v2', alice);
  await push('dev/tool', 'v1', alice);
  await push('bob/secret', 'v1', bob);
  // A multi-platform index in alice/multi.
  const amd = image('multi-amd');
  const arm = image('multi-arm', { os: 'linux', architecture: 'arm64' });
  await pushContent(layover.url, 'alice/multi', amd.manifest.digest, amd.blobs, amd.manifest, alice);
  await pushContent(layover.url, 'alice/multi', arm.manifest.digest, arm.blobs, arm.manifest, alice);
  const index = buildIndex({ manifests: [{ ...amd.manifest, platform: { os: 'linux', architecture: 'amd64' } }, { ...arm.manifest, platform: { os: 'linux', architecture: 'arm64' } }] });
  await pushContent(layover.url, 'alice/multi', 'latest', [], index, alice);
  // Mirrored content, as the pull-through cache would have stored it (same storage root).
  const cacheStore = await openStoreOf(layover);
  const cache = new RegistryService(cacheStore, layover.config);
  const mirrored = image('mirrored');
  for (const b of mirrored.blobs as Content[]) await cache.ingest('docker.io/library/nginx', Readable.from([b.bytes]), b.digest as Digest, b.size);
  await cache.putManifest('docker.io/library/nginx', 'latest', mirrored.manifest.bytes, mirrored.manifest.mediaType);
  await cacheStore.close();
});

afterAll(async () => {
  await layover?.close();
});

describe('/api/v1 with auth on', () => {
  it('answers 401 without credentials or with a wrong password, and says who is logged in otherwise', async () => {
    expect((await call('GET', 'me')).status).toBe(401);
    expect((await call('GET', 'repositories')).status).toBe(401);
    expect((await call('GET', 'me', { user: 'alice', password: 'wrong' })).status).toBe(401);
    const me = await call('GET', 'me', alice);
    expect(me.status).toBe(200);
    expect(me.body).toMatchObject({ name: 'alice', admin: false, namespaces: ['alice', 'dev'], authEnabled: true, registryHost: layover.config.registry.publicHost });
    expect((await call('GET', 'me', admin)).body.admin).toBe(true);
  });

  it('lists only the repositories the caller may pull, with sizes', async () => {
    const mine = (await call('GET', 'repositories', alice)).body.repositories as { name: string; size: number; mirror: boolean }[];
    expect(mine.map((r) => r.name).sort()).toEqual(['alice/app', 'alice/multi', 'dev/tool', 'docker.io/library/nginx']);
    const app = mine.find((r) => r.name === 'alice/app')!;
    expect(app.size).toBeGreaterThan(20_000);
    expect(mine.find((r) => r.name === 'docker.io/library/nginx')!.mirror).toBe(true);
    const all = (await call('GET', 'repositories', admin)).body.repositories as { name: string }[];
    expect(all.map((r) => r.name)).toContain('bob/secret');
    const bobs = (await call('GET', 'repositories?namespace=bob', bob)).body.repositories as { name: string }[];
    expect(bobs.map((r) => r.name)).toEqual(['bob/secret']);
    // Pages (what `layover ls` walks): only what the caller sees, `next` while more follow.
    const walked: string[] = [];
    let followed = 0;
    for (let after: string | undefined; ; followed++) {
      const page = (await call('GET', `repositories?limit=2${after ? `&after=${encodeURIComponent(after)}` : ''}`, alice)).body as { repositories: { name: string }[]; next?: string };
      expect(page.repositories.length).toBeLessThanOrEqual(2);
      walked.push(...page.repositories.map((r) => r.name));
      if (!page.next) break;
      after = page.next;
    }
    expect(walked).toEqual(mine.map((r) => r.name).sort());
    expect(followed).toBe(1); // 4 visible, 2 a page: one `next`
    // The same rows as TSV (what `layover ls` asks for), `next` in a Link header; JSON stays the default.
    const asJson = await request(`${layover.url}/api/v1/repositories`, { headers: { authorization: basicAuthHeader(alice) } });
    expect(asJson.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(asJson.headers.vary).toBe('Accept');
    const jsonRows = ((await asJson.body.json()) as { repositories: { name: string; mirror: boolean; tags: number; manifests: number; size: number; pushedAt?: string }[] }).repositories;
    const tsvRows: string[] = [];
    const tsvWalk: string[] = [];
    for (let next: string | undefined = '/api/v1/repositories?limit=2'; next; ) {
      const res: Awaited<ReturnType<typeof request>> = await request(`${layover.url}${next}`, { headers: { authorization: basicAuthHeader(alice), accept: 'text/tab-separated-values, application/json;q=0.5' } });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toBe('text/tab-separated-values; charset=utf-8');
      const [header, ...lines] = (await res.body.text()).split('\n');
      expect(header).toBe('name\tmirror\ttags\tmanifests\tsize\tpushedAt');
      expect(lines.pop()).toBe('');
      tsvRows.push(...lines);
      tsvWalk.push(next);
      next = /^<([^>]+)>; rel="next"$/.exec(String(res.headers.link ?? ''))?.[1];
    }
    expect(tsvWalk).toEqual(['/api/v1/repositories?limit=2', '/api/v1/repositories?limit=2&after=alice%2Fmulti']);
    expect(tsvRows).toEqual(jsonRows.map((r) => [r.name, r.mirror, r.tags, r.manifests, r.size, r.pushedAt ?? ''].join('\t')));
    expect((await call('GET', 'repositories?limit=0', alice)).status).toBe(400);
    expect((await call('GET', 'repositories?limit=2&after=..', alice)).status).toBe(400);
  });

  it('describes tags with digest, size, platforms and push time; refuses other namespaces', async () => {
    const res = await call('GET', 'repository?name=alice/multi', alice);
    expect(res.status).toBe(200);
    const [latest] = res.body.tagList as { tag: string; digest: string; size: number; platforms: string[]; pushedAt: string; mediaType: string }[];
    expect(latest!.tag).toBe('latest');
    expect(latest!.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(latest!.platforms).toEqual(['linux/amd64', 'linux/arm64']);
    expect(latest!.size).toBeGreaterThan(20_000); // both children's layers
    expect(Date.now() - Date.parse(latest!.pushedAt)).toBeLessThan(120_000);
    const single = (await call('GET', 'repository?name=alice/app', alice)).body.tagList as { platforms: string[] }[];
    expect(single[0]!.platforms).toEqual(['linux/amd64']);

    expect((await call('GET', 'repository?name=bob/secret', alice)).status).toBe(403);
    expect((await call('GET', 'repository?name=alice/nothing', alice)).status).toBe(404);
    expect((await call('GET', 'repository?name=Not..Valid', alice)).status).toBe(400);
  });

  it('deletes a tag only where the caller may delete', async () => {
    expect((await call('DELETE', 'tag?repository=bob/secret&tag=v1', alice)).status).toBe(403);
    expect(await tags('bob/secret')).toEqual(['v1']);
    const ok = await call('DELETE', 'tag?repository=alice/app&tag=v1', alice);
    expect(ok.status).toBe(200);
    expect(await tags('alice/app')).toEqual(['v2']);
    expect((await call('DELETE', 'tag?repository=alice/app&tag=v1', alice)).status).toBe(404);
  });

  it('deletes a manifest by digest with every tag on it', async () => {
    const [v2] = (await call('GET', 'repository?name=alice/app', alice)).body.tagList as { digest: string }[];
    expect((await call('DELETE', `manifest?repository=alice/app&digest=${v2!.digest}`, bob)).status).toBe(403);
    expect((await call('DELETE', `manifest?repository=alice/app&digest=${v2!.digest}`, alice)).status).toBe(200);
    expect(await tags('alice/app')).toEqual([]);
    expect((await getBytes(`${layover.url}/v2/alice/app/manifests/${v2!.digest}`, { auth: alice })).status).toBe(404);
  });

  it('lets only admins delete mirrored content', async () => {
    expect((await call('DELETE', 'tag?repository=docker.io/library/nginx&tag=latest', alice)).status).toBe(403);
    expect((await call('DELETE', 'namespace?name=docker.io', alice)).status).toBe(403);
    expect(await tags('docker.io/library/nginx')).toEqual(['latest']);
  });

  it('reports storage by namespace, mirror vs pushed; the whole volume only to admins', async () => {
    const adminView = (await call('GET', 'storage', admin)).body as { namespaces: { namespace: string; kind: string; bytes: number }[]; mirrorBytes: number; pushedBytes: number; storedBytes: number };
    const kinds = Object.fromEntries(adminView.namespaces.map((n) => [n.namespace, n.kind]));
    expect(kinds).toMatchObject({ alice: 'pushed', bob: 'pushed', dev: 'pushed', 'docker.io': 'mirror' });
    expect(adminView.mirrorBytes).toBeGreaterThan(10_000);
    expect(adminView.storedBytes).toBeGreaterThanOrEqual(adminView.pushedBytes);
    const aliceView = (await call('GET', 'storage', alice)).body as { namespaces: { namespace: string }[]; storedBytes?: number };
    expect(aliceView.namespaces.map((n) => n.namespace)).not.toContain('bob');
    expect(aliceView.storedBytes).toBeUndefined();
  });

  it('keeps GC for admins: status, dry run and run', async () => {
    expect((await call('GET', 'gc', alice)).status).toBe(403);
    expect((await call('POST', 'gc', alice)).status).toBe(403);
    expect((await call('GET', 'upstreams', alice)).status).toBe(403);
    const dry = await call('POST', 'gc?dryRun=true', admin);
    expect(dry.status).toBe(200);
    expect(dry.body.dryRun).toBe(true);
    const status = await call('GET', 'gc', admin);
    expect(status.body).toMatchObject({ running: false, keepUntagged: false });
    expect((status.body.lastDryRun as { finishedAt: string }).finishedAt).toBe(dry.body.finishedAt);
    expect((await call('GET', 'upstreams', admin)).status).toBe(200);
    // ?grace= overrides gc.grace for one run; a bad one is refused before anything runs.
    const bad = await call('POST', 'gc?dryRun=true&grace=soon', admin);
    expect(bad.status).toBe(400);
    expect((bad.body.error as { code: string }).code).toBe('GRACE_INVALID');
    expect((await call('POST', 'gc?dryRun=true&grace=0', admin)).status).toBe(200);
  });

  it('a dry run of deleting a repository or a namespace checks everything and deletes nothing', async () => {
    expect((await call('DELETE', 'repository?name=bob/secret&dryRun=true', alice)).status).toBe(403);
    const repo = await call('DELETE', 'repository?name=bob/secret&dryRun=true', bob);
    expect(repo.body).toEqual({ dryRun: true, deleted: { repository: 'bob/secret', tags: ['v1'] } });
    const ns = await call('DELETE', 'namespace?name=bob&dryRun=true', bob);
    expect(ns.body).toEqual({ dryRun: true, deleted: { namespace: 'bob', repositories: ['bob/secret'] } });
    expect(await tags('bob/secret')).toEqual(['v1']);
  });

  it('deletes a namespace only when the caller may delete all of it', async () => {
    expect((await call('DELETE', 'namespace?name=bob', alice)).status).toBe(403);
    expect(await tags('bob/secret')).toEqual(['v1']);
    expect((await call('DELETE', 'namespace?name=nobody', alice)).status).toBe(403);
    expect((await call('DELETE', 'namespace?name=nobody', admin)).status).toBe(404);
    const res = await call('DELETE', 'namespace?name=dev', alice);
    expect(res.status).toBe(200);
    expect((res.body.deleted as { repositories: string[] }).repositories).toEqual(['dev/tool']);
    const catalog = JSON.parse((await getBytes(`${layover.url}/v2/_catalog`, { auth: admin })).body.toString()) as { repositories: string[] };
    expect(catalog.repositories).not.toContain('dev/tool');
  });

  it('deletes a repository', async () => {
    expect((await call('DELETE', 'repository?name=alice/multi', bob)).status).toBe(403);
    expect((await call('DELETE', 'repository?name=alice/multi', alice)).status).toBe(200);
    expect((await call('GET', 'repository?name=alice/multi', alice)).status).toBe(404);
  });

  it('keeps the web page\'s admin figures for admins: cache, usage history, users and teams', async () => {
    for (const endpoint of ['cache', 'usage', 'users', 'teams']) {
      expect((await call('GET', endpoint)).status, endpoint).toBe(401);
      expect((await call('GET', endpoint, alice)).status, endpoint).toBe(403);
    }
    const cache = await call('GET', 'cache', admin);
    expect(cache.body).toEqual({ evictions: { runs: 0, images: 0, bytesFreed: 0 } });
    const usage = await call('GET', 'usage?since=1h', admin);
    expect(usage.body).toMatchObject({ intervalMs: 300_000, keepMs: 14 * 86_400_000, samples: [] });
    const bad = await call('GET', 'usage?since=yesterday', admin);
    expect(bad.status).toBe(400);
    expect((bad.body.error as { code: string }).code).toBe('SINCE_INVALID');
    const users = (await call('GET', 'users', admin)).body.users as { name: string; admin: boolean; teams: string[] }[];
    expect(users).toContainEqual({ name: 'alice', admin: false, teams: ['dev'] });
    expect(users).toContainEqual({ name: 'admin', admin: true, teams: [] });
    // No password hash (nor anything else secret) leaves the server.
    expect(JSON.stringify(users)).not.toMatch(/password|hash/i);
    const teams = (await call('GET', 'teams', admin)).body.teams as { name: string; members: string[] }[];
    expect(teams).toContainEqual({ name: 'dev', members: ['alice'] });
  });

  it('lists referrers to whoever may pull the repository, and labels tags by kind', async () => {
    const subject = image('referred');
    await pushContent(layover.url, 'alice/signed', 'v1', subject.blobs, subject.manifest, alice);
    const empty = emptyConfig();
    const payload = randomBlob(100, 'sbom', 'application/spdx+json');
    const sbom = buildManifest({ config: empty, layers: [payload], artifactType: 'application/spdx+json', subject: subject.manifest });
    await pushContent(layover.url, 'alice/signed', sbom.digest, [empty, payload], sbom, alice);
    const res = await call('GET', `referrers?repository=alice/signed&digest=${subject.manifest.digest}`, alice);
    expect(res.body).toEqual({ referrers: [{ digest: sbom.digest, mediaType: sbom.mediaType, artifactType: 'application/spdx+json', kind: 'sbom', size: sbom.size }] });
    expect((await call('GET', `referrers?repository=alice/signed&digest=${subject.manifest.digest}`, bob)).status).toBe(403);
    expect((await call('GET', 'referrers?repository=alice/signed&digest=nope', alice)).status).toBe(400);
    const repo = (await call('GET', 'repository?name=alice/signed', alice)).body.tagList as { tag: string; kind: string; referrers: number }[];
    expect(repo).toEqual([expect.objectContaining({ tag: 'v1', kind: 'image', referrers: 1 })]);
  });

  it('serves the UI page with a strict content security policy', async () => {
    const page = await getBytes(`${layover.url}/ui/`);
    expect(page.status).toBe(200);
    expect(page.body.toString()).toContain('<script type="module" src="/ui/app.js">');
    expect(String(page.headers['content-security-policy'])).toContain("script-src 'self'");
    expect((await getBytes(`${layover.url}/ui/app.js`)).status).toBe(200);
    const uplot = await getBytes(`${layover.url}/ui/vendor/uplot.js`);
    expect(uplot.status).toBe(200);
    expect(uplot.body.toString()).toContain('uPlot');
    expect((await getBytes(`${layover.url}/ui/../package.json`)).status).not.toBe(200);
  });
});
