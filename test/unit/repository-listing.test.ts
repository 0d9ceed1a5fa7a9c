// GET /api/v1/repositories is written as text straight from the summary rows: its JSON must be,
// byte for byte, what JSON.stringify wrote for the RepositoryInfo objects built before (the web
// UI and users read it), the TSV the same rows, and the Accept negotiation must keep JSON the
// default for browsers, curl and fetch.
import { describe, expect, it } from 'vitest';
import type { RepositoryInfo } from '../../src/api/inventory.js';
import { prefersTsv, repositoriesJson, repositoriesTsv, TSV_COLUMNS } from '../../src/api/repository-listing.js';
import { namespaceOf } from '../../src/registry/names.js';
import type { RepositorySummary } from '../../src/registry/storage/metadata/types.js';

const mirrors = new Set(['docker.io', 'ghcr.io']);
const isMirror = (ns: string) => mirrors.has(ns);

/** What infoOf built and fastify's JSON.stringify wrote. */
function before(rows: RepositorySummary[], next?: string): string {
  const repositories: RepositoryInfo[] = rows.map((s) => ({
    name: s.name,
    namespace: namespaceOf(s.name),
    mirror: isMirror(namespaceOf(s.name)),
    tags: s.tags,
    manifests: s.manifests,
    size: s.size,
    ...(s.pushedAt !== undefined ? { pushedAt: new Date(s.pushedAt).toISOString() } : {}),
  }));
  return JSON.stringify({ repositories, ...(next ? { next } : {}) });
}

const rows: RepositorySummary[] = [
  { name: 'team/app', tags: 3, manifests: 4, size: 123_456, pushedAt: Date.UTC(2026, 10, 29, 19, 52, 20, 123) },
  { name: 'docker.io/library/nginx', tags: 1, manifests: 1, size: 0, pushedAt: 0 },
  { name: 'solo', tags: 0, manifests: 0, size: 2 ** 53 + 2 },
  { name: 'ghcr.io/a/b/c', tags: 10_000, manifests: 1, size: 1e21, pushedAt: 253_402_300_799_999 },
  { name: 'team/quote"and\\back\u2028', tags: 1, manifests: 1, size: 1.5, pushedAt: 253_402_300_800_000 },
  { name: 'team/before-1970', tags: 1, manifests: 1, size: NaN, pushedAt: -1 },
];

describe('repositoriesJson', () => {
  it('is JSON.stringify of the objects infoOf built, with and without next', () => {
    expect(repositoriesJson(rows, isMirror, undefined)).toBe(before(rows));
    expect(repositoriesJson(rows, isMirror, 'team/app')).toBe(before(rows, 'team/app'));
    expect(repositoriesJson([], isMirror, undefined)).toBe(before([]));
  });
});

describe('repositoriesTsv', () => {
  it('has a header naming the columns, then one line a repository', () => {
    const tsv = repositoriesTsv(rows.slice(0, 3), isMirror).toString();
    expect(tsv).toBe(
      `${TSV_COLUMNS.join('\t')}\n` +
        'team/app\tfalse\t3\t4\t123456\t2026-11-29T19:52:20.123Z\n' +
        'docker.io/library/nginx\ttrue\t1\t1\t0\t1970-01-01T00:00:00.000Z\n' +
        `solo\tfalse\t0\t0\t${2 ** 53 + 2}\t\n`,
    );
    expect(repositoriesTsv([], isMirror).toString()).toBe('name\tmirror\ttags\tmanifests\tsize\tpushedAt\n');
    // Every value as `${value}` and toISOString write it, whatever it is (times around every field's edges, and at random).
    const lines = repositoriesTsv(rows, isMirror).toString('utf8').split('\n').slice(1, -1);
    const times = [0, 1, 999, 1000, 59_999, 60_000, 3_599_999, 86_399_999, 86_400_000, 951_782_400_000, 1_709_164_800_000, 253_402_300_799_999, 253_402_300_800_000, -1, -86_400_001, 8.64e15, 1.5];
    const timed = times.map((pushedAt, i): RepositorySummary => ({ name: `team/t${i}`, tags: 1, manifests: 1, size: 1, pushedAt }));
    expect(repositoriesTsv(timed, isMirror).toString().split('\n').slice(1, -1)).toEqual(times.map((t, i) => `team/t${i}\tfalse\t1\t1\t1\t${new Date(t).toISOString()}`));
    expect(() => repositoriesTsv([{ name: 'a', tags: 1, manifests: 1, size: 1, pushedAt: 8.64e15 + 1 }], isMirror)).toThrow(RangeError);
    expect(lines).toEqual(rows.map((r) => [r.name, isMirror(namespaceOf(r.name)), r.tags, r.manifests, r.size, r.pushedAt === undefined ? '' : new Date(r.pushedAt).toISOString()].join('\t')));
    let seed = 5;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const many = Array.from({ length: 5000 }, (_, i): RepositorySummary => ({ name: `team/r${i}`, tags: Math.floor(random() * 10 ** (i % 8)), manifests: i, size: Math.floor(random() * 2 ** (i % 60)), pushedAt: Math.floor(random() * 4e12) }));
    expect(repositoriesTsv(many, isMirror).toString().split('\n').slice(1, -1)).toEqual(many.map((r) => `${r.name}\tfalse\t${r.tags}\t${r.manifests}\t${r.size}\t${new Date(r.pushedAt!).toISOString()}`));
  });
});

describe('prefersTsv', () => {
  it.each([
    [undefined, false],
    ['', false],
    ['*/*', false],
    ['application/json', false],
    ['application/json, text/plain, */*', false],
    ['text/tab-separated-values', true],
    ['Text/Tab-Separated-Values', true],
    ['text/tab-separated-values, application/json;q=0.5', true],
    ['application/json, text/tab-separated-values', true],
    ['application/json, text/tab-separated-values;q=0.9', false],
    ['text/tab-separated-values;q=0', false],
    ['text/tab-separated-values; q=0.8, application/json; q=0.5', true],
  ])('%j → %s', (accept, tsv) => expect(prefersTsv(accept)).toBe(tsv));
});
