// The access matrix through real clients: principals × namespaces × actions, each cell pushed,
// pulled or deleted with skopeo (credentials on the command line, as users give them) against a
// real listening layover; catalog and cross-repository mount over HTTP; containerd pulls with
// credentials. Every cell asserts allowed or denied.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLayover, type InProcessLayover } from '../helpers/layover.js';
import { makeOciImage, type OciImage } from '../helpers/oci-layout.js';
import { skopeoCopy, skopeoDelete, type Creds } from '../helpers/skopeo.js';
import { startContainerd, type Containerd } from '../helpers/containerd.js';
import { startDockerRegistry, type DockerRegistry } from '../helpers/docker-registry.js';
import { makeTempDir, type TempDir } from '../helpers/temp-dir.js';
import { ToolError, requireTool } from '../helpers/run-tool.js';
import { PASSWORDS, TEST_USERS } from '../fixtures/auth/config.js';

type Who = 'admin' | 'alice' | 'carol' | 'namespace:shop' | 'anonymous';
type Column = 'own' | 'otherUser' | 'team' | 'otherTeam' | 'mirror';
const PRINCIPALS: Who[] = ['admin', 'alice', 'carol', 'namespace:shop', 'anonymous'];
const COLUMNS: Column[] = ['own', 'otherUser', 'team', 'otherTeam', 'mirror'];
const MIRROR = 'docker.io/library/base';

/** Which repository each column means for each principal (alice is in team dev, carol in none; namespace shop is granted dev). */
const REPO: Record<Who, Record<Column, string>> = {
  admin: { own: 'admin/app', otherUser: 'alice/app', team: 'dev/app', otherTeam: 'ops/app', mirror: MIRROR },
  alice: { own: 'alice/app', otherUser: 'carol/app', team: 'dev/app', otherTeam: 'ops/app', mirror: MIRROR },
  carol: { own: 'carol/app', otherUser: 'alice/app', team: 'dev/app', otherTeam: 'ops/app', mirror: MIRROR },
  'namespace:shop': { own: 'shop/app', otherUser: 'alice/app', team: 'dev/app', otherTeam: 'ops/app', mirror: MIRROR },
  anonymous: { own: 'shop/app', otherUser: 'alice/app', team: 'dev/app', otherTeam: 'ops/app', mirror: MIRROR },
};
const ALL_REPOS = ['admin/app', 'alice/app', 'carol/app', 'dev/app', 'ops/app', 'shop/app', MIRROR];

/**
 * pull, push, delete, mount (into the principal's own namespace) per column: a letter is allowed,
 * '-' denied. A mirror is pull-only for everyone; only an admin deletes cached mirror content.
 */
const EXPECTED: Record<Who, Record<Column, string>> = {
  admin: { own: 'ppdm', otherUser: 'ppdm', team: 'ppdm', otherTeam: 'ppdm', mirror: 'p-dm' },
  alice: { own: 'ppdm', otherUser: '----', team: 'ppdm', otherTeam: '----', mirror: 'p--m' },
  carol: { own: 'ppdm', otherUser: '----', team: '----', otherTeam: '----', mirror: 'p--m' },
  'namespace:shop': { own: 'p---', otherUser: '----', team: 'p---', otherTeam: '----', mirror: 'p---' },
  anonymous: { own: '----', otherUser: '----', team: '----', otherTeam: '----', mirror: 'p---' },
};
const CATALOG: Record<Who, string[] | 'denied'> = {
  admin: [...ALL_REPOS].sort(),
  alice: ['alice/app', 'dev/app', MIRROR].sort(),
  carol: ['carol/app', MIRROR].sort(),
  'namespace:shop': ['dev/app', MIRROR, 'shop/app'].sort(),
  anonymous: 'denied',
};

const DENIED = /unauthorized|denied|forbidden|authentication required|status 401|status 403|insufficient_scope/i;

let layover: InProcessLayover;
let upstream: DockerRegistry;
let tmp: TempDir;
let layout: string;
const images = new Map<string, OciImage>();
const creds = new Map<Who, Creds | undefined>();
const ADMIN: Creds = { user: 'admin', password: PASSWORDS.admin };

async function image(tag: string): Promise<OciImage> {
  let img = images.get(tag);
  if (!img) {
    img = await makeOciImage(layout, { layers: [700], seed: tag, tag });
    images.set(tag, img);
  }
  return img;
}

/** Runs a client operation; 'allowed' on success, 'denied' on an auth refusal, throws on anything else. */
async function outcome(op: () => Promise<unknown>): Promise<'allowed' | 'denied'> {
  try {
    await op();
    return 'allowed';
  } catch (err) {
    const text = err instanceof ToolError ? err.stderr : (err as Error).message;
    if (DENIED.test(text)) return 'denied';
    throw err;
  }
}

function basicHeader(who: Who): Record<string, string> {
  const c = creds.get(who);
  return c ? { authorization: `Basic ${Buffer.from(`${c.user}:${c.password}`).toString('base64')}` } : {};
}

beforeAll(async () => {
  requireTool('skopeo');
  tmp = makeTempDir('layover-auth-matrix-');
  layout = path.join(tmp.path, 'layout');
  // The mirror column is a real pull-through of a docker-registry upstream.
  upstream = await startDockerRegistry();
  layover = await startLayover({
    upstreams: [{ prefix: 'docker.io', url: upstream.url }],
    auth: {
      enabled: true,
      anonymous: true,
      users: TEST_USERS,
      namespaceGrants: { shop: ['dev'] },
    },
  });
  const ns = await layover.app.auth!.mintNamespaceToken('shop');
  creds.set('admin', ADMIN);
  creds.set('alice', { user: 'alice', password: PASSWORDS.alice });
  creds.set('carol', { user: 'carol', password: PASSWORDS.carol });
  // As a pull secret carries it: user "namespace:shop", the token as password.
  creds.set('namespace:shop', { user: 'namespace:shop', password: ns.token });
  creds.set('anonymous', undefined);

  // Seed every repository: tag 1 to pull, and one unique image per principal to delete. Mirror
  // content is pushed upstream and pulled through once by the admin, so that it is cached.
  for (const repo of ALL_REPOS) {
    const tags = ['1', ...PRINCIPALS.map((who) => `del-${who.replace(':', '-')}`)];
    const sources = [`seed-${repo}`, ...PRINCIPALS.map((who) => `del-${who}-${repo}`)];
    for (const [i, tag] of tags.entries()) {
      const img = await image(sources[i] as string);
      if (repo !== MIRROR) {
        await skopeoCopy(img.ref, `docker://${layover.host}/${repo}:${tag}`, { destCreds: ADMIN });
        continue;
      }
      await skopeoCopy(img.ref, `docker://${upstream.host}/library/base:${tag}`);
      mkdirSync(path.join(tmp.path, 'warm', tag), { recursive: true });
      await skopeoCopy(`docker://${layover.host}/${repo}:${tag}`, `dir:${path.join(tmp.path, 'warm', tag)}`, { srcCreds: ADMIN });
    }
  }
}, 600_000);

afterAll(async () => {
  await layover?.close();
  await upstream?.close();
  tmp?.cleanup();
});

describe('access matrix through skopeo', () => {
  for (const who of PRINCIPALS) {
    it(`${who}: pull, push, delete, mount in own, other user's, team, other team and mirror namespaces`, async () => {
      const actual: Record<string, string> = {};
      const c = creds.get(who);
      for (const column of COLUMNS) {
        const repo = REPO[who][column];
        const into = path.join(tmp.path, 'pulled', who.replace(':', '-'), column);
        mkdirSync(into, { recursive: true });
        const pull = await outcome(() => skopeoCopy(`docker://${layover.host}/${repo}:1`, `dir:${into}`, { srcCreds: c }));
        const push = await outcome(() => image('push').then((img) => skopeoCopy(img.ref, `docker://${layover.host}/${repo}:pushed-${who.replace(':', '-')}`, { destCreds: c })));
        const target = images.get(`del-${who}-${repo}`) as OciImage;
        const del = await outcome(() => skopeoDelete(`docker://${layover.host}/${repo}@${target.manifest.digest}`, c));
        // Mount a layer only the source repository holds into the principal's own namespace.
        const layer = (images.get(`seed-${repo}`) as OciImage).layers[0]!.digest;
        const res = await fetch(`${layover.url}/v2/${REPO[who].own}/blobs/uploads/?mount=${layer}&from=${repo}`, { method: 'POST', headers: basicHeader(who) });
        await res.arrayBuffer();
        if (![201, 202, 401, 403].includes(res.status)) throw new Error(`mount answered ${res.status}`);
        // 202 is the fallback to a plain upload: the source's existence is not revealed.
        const mount = res.status === 201 ? 'm' : '-';
        if (res.status === 202 && column === 'own') throw new Error('mount from own namespace fell back');
        actual[column] = `${pull === 'allowed' ? 'p' : '-'}${push === 'allowed' ? 'p' : '-'}${del === 'allowed' ? 'd' : '-'}${mount}`;
      }
      expect(actual).toEqual(EXPECTED[who]);
    }, 300_000);
  }

  it('lists in the catalog only what each principal may pull', async () => {
    const actual: Record<string, string[] | 'denied'> = {};
    for (const who of PRINCIPALS) {
      const res = await fetch(`${layover.url}/v2/_catalog?n=1000`, { headers: basicHeader(who) });
      actual[who] = res.status === 200 ? ((await res.json()) as { repositories: string[] }).repositories.sort() : (await res.arrayBuffer(), res.status === 401 ? 'denied' : `status ${res.status}` as never);
    }
    expect(actual).toEqual(CATALOG);
  });

  it('logs denials without any credential', () => {
    const log = layover.log();
    expect(log).toMatch(/"access denied"/);
    for (const c of creds.values()) if (c) expect(log.includes(c.password)).toBe(false);
    expect(log).not.toMatch(/Basic [A-Za-z0-9+/=]{8}|Bearer ey/);
  });
});

describe('containerd with credentials', () => {
  let containerd: Containerd;
  beforeAll(async () => {
    containerd = await startContainerd();
  }, 120_000);
  afterAll(async () => {
    await containerd?.close();
  });

  it('pulls with a user password and with a namespace token, and is refused elsewhere', async () => {
    const alice = creds.get('alice') as Creds;
    await containerd.pullWithCtr(`${layover.host}/alice/app:1`, { plainHttp: true, user: alice });
    const shop = creds.get('namespace:shop') as Creds;
    await containerd.pullWithCtr(`${layover.host}/shop/app:1`, { plainHttp: true, user: shop });
    await containerd.pullWithCtr(`${layover.host}/dev/app:1`, { plainHttp: true, user: shop });
    const digests = (await containerd.images()).map((i) => i.digest);
    for (const repo of ['alice/app', 'shop/app', 'dev/app']) expect(digests).toContain((images.get(`seed-${repo}`) as OciImage).manifest.digest);

    await expect(containerd.pullWithCtr(`${layover.host}/ops/app:1`, { plainHttp: true, user: alice })).rejects.toThrow(DENIED);
    await expect(containerd.pullWithCtr(`${layover.host}/alice/app:1`, { plainHttp: true, user: { user: 'alice', password: 'wrong' } })).rejects.toThrow(DENIED);
    await expect(containerd.pullWithCtr(`${layover.host}/alice/app:1`, { plainHttp: true, user: shop })).rejects.toThrow(DENIED);
  }, 300_000);
});
