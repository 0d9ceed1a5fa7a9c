// What `layover ls` prints, built for speed (one pass per column, no regex per row, the
// repositories table laid out in bytes from the API's TSV pages), must be what the
// straightforward code printed: the table and shortTime against reference implementations, the
// byte-built table against the reference over awkward rows (mirrors, non-ASCII names, sizes at
// every unit's edges, missing and odd times), and ls over several pages (a loopback server
// answering /api/v1/repositories page by page, as TSV or as JSON only) against the table of all
// rows at once.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { RepositoryInfo } from '../../src/api/inventory.js';
import { repositoriesTsv, TSV_TYPE } from '../../src/api/repository-listing.js';
import { humanBytes, nextAfter, shortTime, table, TableBuilder } from '../../src/cli/client.js';
import { ls } from '../../src/cli/ls.js';
import { RepositoryTable } from '../../src/cli/repository-table.js';

/** The table as it was written before (map, pad, join, trimEnd per line). */
function referenceTable(header: string[], rows: string[][], right: number[] = []): string {
  const widths = header.map((h, i) => rows.reduce((w, r) => Math.max(w, (r[i] ?? '').length), h.length));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (right.includes(i) ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

const referenceShortTime = (iso: string | undefined) => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '-');

describe('table', () => {
  it('prints what the reference prints: alignment, empty and trailing-blank cells, short rows', () => {
    const header = ['NAME', 'N', 'SIZE', 'LAST'];
    const rows = [
      ['a', '1', '584 B', '2026-11-29 19:52:20Z'],
      ['a-much-longer-name', '12345', '1.5 GiB', ''],
      ['', '', '', 'x  '],
      ['b', '2', '3 B'],
      ['trailing ', '0', '0 B', '-'],
    ];
    for (const right of [[], [1, 2], [3], [0, 1, 2, 3]]) expect(table(header, rows, right)).toBe(referenceTable(header, rows, right));
    expect(table(['ONLY'], [])).toBe('ONLY');
    const built = new TableBuilder(header, [1, 2]);
    rows.forEach((r) => built.add(r));
    expect(built.rows).toBe(rows.length);
    expect(built.toString()).toBe(referenceTable(header, rows, [1, 2]));
  });
});

describe('shortTime', () => {
  it.each(['2026-11-29T19:52:20.123Z', '1970-01-01T00:00:00.000Z', '2026-11-29T19:52:20Z', '2026-11-29T19:52:20.1Z', '+275760-09-13T00:00:00.000Z', 'not a time', ''])('%j as the regexes cut it', (iso) => {
    expect(shortTime(iso)).toBe(referenceShortTime(iso));
  });
  it('undefined is a dash', () => expect(shortTime(undefined)).toBe('-'));
});

/** The rows as ls printed them before: TableBuilder over RepositoryInfo. */
function referenceRepositories(rows: RepositoryInfo[]): string {
  return referenceTable(
    ['REPOSITORY', 'TAGS', 'SIZE', 'PUSHED'],
    rows.map((r) => [r.mirror ? `${r.name} (mirror)` : r.name, String(r.tags), humanBytes(r.size), referenceShortTime(r.pushedAt)]),
    [1, 2],
  );
}

/** The API's TSV page of these rows (api/repository-listing.ts). */
function tsvPage(rows: RepositoryInfo[]): Buffer {
  const mirrors = new Set(rows.filter((r) => r.mirror).map((r) => r.namespace));
  const summaries = rows.map((r) => ({ name: r.name, tags: r.tags, manifests: r.manifests, size: r.size, ...(r.pushedAt ? { pushedAt: Date.parse(r.pushedAt) } : {}) }));
  return Buffer.from(repositoriesTsv(summaries, (ns) => mirrors.has(ns)));
}

function repo(name: string, size: number, extra: Partial<RepositoryInfo> = {}): RepositoryInfo {
  const namespace = name.split('/')[0]!;
  return { name, namespace, mirror: namespace === 'docker.io', tags: size % 7, manifests: 1, size, pushedAt: new Date(Date.UTC(2026, 10, 29, 19, 52, 20, size % 1000)).toISOString(), ...extra };
}

describe('RepositoryTable (ls in bytes)', () => {
  // Sizes at every unit's edges, halves that toFixed(1) rounds up, and past what is exact in tenths.
  const sizes = [0, 1, 1023, 1024, 1075, 1126, 1280, 1536, 10 * 1024 - 52, 1024 ** 2 - 1, 1024 ** 2, 1024 ** 2 * 1.25, 1024 ** 3 - 1, 1024 ** 3 + 51 * 1024 ** 2, 1024 ** 4 - 1, 1024 ** 4, 999 * 1024 ** 4, 2 ** 49 - 1, 2 ** 49, 2 ** 52 + 2, 1e15, 1e21];
  let seed = 7;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let i = 0; i < 3000; i++) sizes.push(Math.floor(random() ** 3 * 2 ** (10 + Math.floor(random() * 40))));

  it('prints what TableBuilder printed, from TSV pages and from JSON rows alike', () => {
    const rows = [
      ...sizes.map((size, i) => repo(`${i % 3 ? 'team' : 'docker.io'}/r${i}${'x'.repeat(i % 40)}`, size)),
      repo('team/caf\u00e9', 5),
      repo('team/\u65e5\u672c\u8a9e-with-a-longer-name-than-any-other-one-here-at-all-0123456789', 6),
      repo('team/\u{1F600}\u{1F600}', 7, { tags: 12_345 }),
      repo('team/no-push', 8, { pushedAt: undefined }),
      repo('docker.io/library/nginx', 9, { pushedAt: undefined }),
    ];
    const expected = referenceRepositories(rows);
    const fromTsv = new RepositoryTable();
    for (let i = 0; i < rows.length; i += 1000) fromTsv.addTsv(tsvPage(rows.slice(i, i + 1000)));
    expect(fromTsv.toBuffer()!.toString('utf8')).toBe(expected);
    const fromJson = new RepositoryTable();
    for (let i = 0; i < rows.length; i += 700) fromJson.addRepositories(rows.slice(i, i + 700));
    expect(fromJson.toBuffer()!.toString('utf8')).toBe(expected);
  });

  it('reads times and sizes that are not what the API writes as shortTime and humanBytes did', () => {
    const rows = ['2026-11-29T19:52:20Z', '2026-11-29T19:52:20.1Z', '+275760-09-13T00:00:00.000Z', 'not a time', ' ', 'x  '].map((pushedAt, i) => repo(`team/odd${i}`, i * 1_000_000.5, { pushedAt }));
    const table = new RepositoryTable();
    table.addRepositories(rows);
    expect(table.toBuffer()!.toString('utf8')).toBe(referenceRepositories(rows));
  });

  it('finds the columns by name, and is empty without rows', () => {
    const empty = new RepositoryTable();
    empty.addTsv(tsvPage([]));
    expect(empty.toBuffer()).toBeUndefined();
    // Columns in another order, one more, no trailing line break.
    const rows = [repo('team/a', 2048), repo('docker.io/b', 3)];
    const page = Buffer.from(`extra\tpushedAt\tsize\tmanifests\ttags\tmirror\tname\n${rows.map((r) => `?\t${r.pushedAt}\t${r.size}\t1\t${r.tags}\t${r.mirror}\t${r.name}`).join('\n')}`);
    const table = new RepositoryTable();
    table.addTsv(page);
    expect(table.toBuffer()!.toString('utf8')).toBe(referenceRepositories(rows));
    const broken = new RepositoryTable();
    broken.addTsv(Buffer.from('name\tmirror\ttags\tsize\tpushedAt\nteam/a\tfalse\t1\n'));
    expect(() => broken.toBuffer()).toThrow('fields');
    const missing = new RepositoryTable();
    missing.addTsv(Buffer.from('name\ttags\nteam/a\t1\n'));
    expect(() => missing.toBuffer()).toThrow('no "mirror" column');
  });

  it('takes the next cursor from a Link header', () => {
    expect(nextAfter('</api/v1/repositories?limit=2&after=team%2Fa%2Bb>; rel="next"')).toBe('team/a+b');
    expect(nextAfter('<https://x/a?after=z>; rel="prev", </b?after=y>; rel=next')).toBe('y');
    expect(nextAfter('</api/v1/repositories?limit=2>; rel="next"')).toBeUndefined();
    expect(nextAfter(undefined)).toBeUndefined();
  });
});

describe('ls over several pages', () => {
  let server: Server | undefined;
  afterEach(async () => {
    vi.restoreAllMocks();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    server = undefined;
  });

  const repositories: RepositoryInfo[] = Array.from({ length: 11 }, (_, i) => ({
    name: `${i % 3 ? 'team' : 'docker.io'}/r${String(i).padStart(2, '0')}${'x'.repeat(i)}`,
    namespace: i % 3 ? 'team' : 'docker.io',
    mirror: i % 3 === 0,
    tags: i * 7,
    manifests: i,
    size: 1000 ** (i % 4) + i,
    ...(i % 5 ? { pushedAt: new Date(Date.UTC(2026, 0, 1, i, i, i, i)).toISOString() } : {}),
  }));

  /**
   * Answers /api/v1/repositories in pages of 4 by `after`, as the API does: TSV with a Link
   * header when the request's Accept asks for it and `tsv` is set (else JSON, as an older
   * server); records the cursors and Accept headers asked with.
   */
  async function pagedApi(asked: (string | null)[], opts: { tsv?: boolean; accepts?: (string | undefined)[] } = {}): Promise<string> {
    server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname !== '/api/v1/repositories') return void res.writeHead(404).end();
      const after = url.searchParams.get('after');
      asked.push(after);
      opts.accepts?.push(req.headers.accept);
      const rest = repositories.filter((r) => after === null || r.name > after).sort((a, b) => (a.name < b.name ? -1 : 1));
      const page = rest.slice(0, 4);
      const next = rest.length > 4 ? page[page.length - 1]!.name : undefined;
      if (opts.tsv && req.headers.accept?.startsWith(TSV_TYPE)) {
        const body = tsvPage(page);
        const link = next ? { link: `</api/v1/repositories?limit=10000&after=${encodeURIComponent(next)}>; rel="next"` } : {};
        return void res.writeHead(200, { 'content-type': `${TSV_TYPE}; charset=utf-8`, 'content-length': body.length, ...link }).end(body);
      }
      const body = JSON.stringify({ repositories: page, ...(next ? { next } : {}) });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(server!.address() as AddressInfo).port}`;
  }

  async function output(argv: string[]): Promise<string> {
    let out = '';
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => ((out += String(chunk)), true));
    await ls(argv);
    vi.restoreAllMocks();
    return out;
  }

  it.each([
    ['TSV pages', true],
    ['JSON pages (a server without TSV)', false],
  ])('prints every page as one table, the same as the rows formatted at once, and --json the same content: %s', async (_, tsv) => {
    const asked: (string | null)[] = [];
    const accepts: (string | undefined)[] = [];
    const url = await pagedApi(asked, { tsv, accepts });
    const sorted = [...repositories].sort((a, b) => (a.name < b.name ? -1 : 1));
    expect(await output(['--url', url])).toBe(`${referenceRepositories(sorted)}\n`);
    expect(asked).toEqual([null, sorted[3]!.name, sorted[7]!.name]);
    expect(accepts.every((a) => a?.startsWith(TSV_TYPE))).toBe(true);
    accepts.length = 0;
    expect(JSON.parse(await output(['--url', url, '--json']))).toEqual({ repositories: sorted });
    expect(accepts).toEqual([undefined, undefined, undefined]);
  });

  it('prints "no repositories" for an empty registry, TSV or JSON', async () => {
    for (const tsv of [true, false]) {
      server = createServer((req, res) => {
        if (tsv) return void res.writeHead(200, { 'content-type': TSV_TYPE }).end(tsvPage([]));
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ repositories: [] }));
      });
      await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
      expect(await output(['--url', `http://127.0.0.1:${(server.address() as AddressInfo).port}`])).toBe('no repositories\n');
      await new Promise<void>((resolve) => server!.close(() => resolve()));
    }
    server = undefined;
  });

  it.each([true, false])('a page that fails stops ls with the error, after the pages before it (TSV: %s)', async (tsv) => {
    const asked: (string | null)[] = [];
    server = createServer((req, res) => {
      const after = new URL(req.url ?? '/', 'http://x').searchParams.get('after');
      asked.push(after);
      if (after) return void res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: 'database unavailable' } }));
      if (tsv) return void res.writeHead(200, { 'content-type': TSV_TYPE, link: `</api/v1/repositories?after=${encodeURIComponent(repositories[1]!.name)}>; rel="next"` }).end(tsvPage(repositories.slice(0, 2)));
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ repositories: repositories.slice(0, 2), next: repositories[1]!.name }));
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    await expect(ls(['--url', url])).rejects.toThrow('database unavailable');
    expect(asked).toEqual([null, repositories[1]!.name]);
  });
});
