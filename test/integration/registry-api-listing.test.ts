// Tags list and catalog against a real listening layover: lexical order, n/last pagination
// followed through Link headers, invalid n, unknown repository.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLayover, type InProcessLayover } from '../helpers/layover.js';
import { buildManifest, emptyConfig, type Content } from '../helpers/oci-content.js';
import { putManifest, uploadBlob } from '../helpers/registry-client.js';
import { rawRequest, type Answer } from '../helpers/raw-http.js';

let layover: InProcessLayover;


async function call(method: string, path: string): Promise<Answer> {
  return rawRequest(layover.url, method, path);
}

function json<T>(res: Answer): T {
  return JSON.parse(res.body.toString('utf8')) as T;
}

function expectError(res: Answer, status: number, code: string): void {
  expect(res.status).toBe(status);
  expect(String(res.headers['content-type'])).toMatch(/^application\/json/);
  expect(json<{ errors: { code: string }[] }>(res).errors[0]?.code).toBe(code);
}

/** The target of a `Link: <url>; rel="next"` header, or undefined. */
function nextLink(res: Answer): string | undefined {
  const link = res.headers.link;
  if (link === undefined) return undefined;
  const m = /^<([^>]+)>;\s*rel="next"$/.exec(String(link));
  expect(m, `Link header ${String(link)}`).not.toBeNull();
  return m?.[1];
}

// Deliberately not in lexical order when pushed; includes upper case, digits, '.', '-', '_'.
const TAGS = ['v10', 'latest', 'V2', '1.0', '1.0-rc1', '_x', 'a', 'b', 'A', 'v1', 'v1.1', '0'];
const REPOS = ['zeta/app', 'alpha', 'alpha/nested', 'mid.dle/x-y', 'beta_1/c', 'a0', 'alpha-2'];
let manifest: Content;

beforeAll(async () => {
  layover = await startLayover();
  const config = emptyConfig();
  manifest = buildManifest({ config, layers: [] });
  for (const repo of REPOS) {
    await uploadBlob(layover.url, repo, config.digest, config.bytes);
    await putManifest(layover.url, repo, 'base', manifest);
  }
  for (const tag of TAGS) await putManifest(layover.url, 'zeta/app', tag, manifest);
});
afterAll(async () => {
  await layover?.close();
});

describe('tags list', () => {
  const sorted = [...TAGS, 'base'].sort();

  it('lists every tag in lexical (byte) order', async () => {
    const res = await call('GET', '/v2/zeta/app/tags/list');
    expect(res.status).toBe(200);
    expect(String(res.headers['content-type'])).toMatch(/^application\/json/);
    expect(json(res)).toEqual({ name: 'zeta/app', tags: sorted });
    expect(sorted.slice(0, 4)).toEqual(['0', '1.0', '1.0-rc1', 'A']);
    expect(res.headers.link).toBeUndefined();
  });

  it('pages with n, and following Link headers visits every tag exactly once', async () => {
    for (const n of [1, 2, 5, sorted.length - 1]) {
      const seen: string[] = [];
      let path: string | undefined = `/v2/zeta/app/tags/list?n=${n}`;
      let pages = 0;
      while (path) {
        const res = await call('GET', path);
        expect(res.status).toBe(200);
        const page = json<{ tags: string[] }>(res).tags;
        expect(page.length).toBeLessThanOrEqual(n);
        seen.push(...page);
        path = nextLink(res);
        if (path) {
          expect(page.length).toBe(n);
          expect(path).toMatch(/^\/v2\/zeta\/app\/tags\/list\?/);
        }
        pages += 1;
        expect(pages).toBeLessThan(50);
      }
      expect(seen, `n=${n}`).toEqual(sorted);
      expect(pages).toBe(Math.ceil(sorted.length / n));
    }
  });

  it('n equal to the number of tags returns them all without a Link', async () => {
    const res = await call('GET', `/v2/zeta/app/tags/list?n=${sorted.length}`);
    expect(json<{ tags: string[] }>(res).tags).toEqual(sorted);
    expect(res.headers.link).toBeUndefined();
  });

  it('last alone starts after the given tag, even one that does not exist', async () => {
    expect(json<{ tags: string[] }>(await call('GET', '/v2/zeta/app/tags/list?last=v1')).tags).toEqual(sorted.filter((t) => t > 'v1'));
    expect(json<{ tags: string[] }>(await call('GET', '/v2/zeta/app/tags/list?last=b0')).tags).toEqual(sorted.filter((t) => t > 'b0'));
    expect(json<{ tags: string[] }>(await call('GET', '/v2/zeta/app/tags/list?last=zzz')).tags).toEqual([]);
    expect(json<{ tags: string[] }>(await call('GET', '/v2/zeta/app/tags/list?n=2&last=a')).tags).toEqual(sorted.filter((t) => t > 'a').slice(0, 2));
  });

  it('n=0 is an empty list without a Link header', async () => {
    const res = await call('GET', '/v2/zeta/app/tags/list?n=0');
    expect(res.status).toBe(200);
    expect(json<{ tags: string[] }>(res).tags).toEqual([]);
    expect(res.headers.link).toBeUndefined();
  });

  it('an invalid n is 400 PAGINATION_NUMBER_INVALID', async () => {
    for (const n of ['-1', 'abc', '1.5', '', '0x10', '99999999999999999999']) {
      expectError(await call('GET', `/v2/zeta/app/tags/list?n=${n}`), 400, 'PAGINATION_NUMBER_INVALID');
    }
  });

  it('an unknown repository is 404 NAME_UNKNOWN', async () => {
    expectError(await call('GET', '/v2/no/such/repo/tags/list'), 404, 'NAME_UNKNOWN');
  });

  it('a repository whose tags were all deleted lists an empty array', async () => {
    const res = await call('GET', '/v2/alpha/tags/list');
    expect(json(res)).toEqual({ name: 'alpha', tags: ['base'] });
    expect((await call('DELETE', '/v2/alpha/manifests/base')).status).toBe(202);
    expect(json(await call('GET', '/v2/alpha/tags/list'))).toEqual({ name: 'alpha', tags: [] });
  });
});

describe('catalog', () => {
  const sorted = [...REPOS].sort();

  it('lists every repository in lexical order, nested ones included', async () => {
    const res = await call('GET', '/v2/_catalog');
    expect(res.status).toBe(200);
    expect(json(res)).toEqual({ repositories: sorted });
    expect(sorted).toContain('alpha/nested');
  });

  it('pages with n and Link headers', async () => {
    for (const n of [1, 3]) {
      const seen: string[] = [];
      let path: string | undefined = `/v2/_catalog?n=${n}`;
      while (path) {
        const res = await call('GET', path);
        expect(res.status).toBe(200);
        const page = json<{ repositories: string[] }>(res).repositories;
        expect(page.length).toBeLessThanOrEqual(n);
        seen.push(...page);
        path = nextLink(res);
        if (path) expect(path).toMatch(/^\/v2\/_catalog\?/);
      }
      expect(seen, `n=${n}`).toEqual(sorted);
    }
  });

  it('last starts after the given name; invalid n is PAGINATION_NUMBER_INVALID', async () => {
    expect(json<{ repositories: string[] }>(await call('GET', '/v2/_catalog?last=alpha')).repositories).toEqual(sorted.filter((r) => r > 'alpha'));
    expectError(await call('GET', '/v2/_catalog?n=-3'), 400, 'PAGINATION_NUMBER_INVALID');
  });
});
