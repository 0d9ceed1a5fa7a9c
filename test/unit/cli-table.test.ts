// What `layover ls` prints, built for speed (one pass per column, no regex per row, pages
// formatted while the next is on its way), must be what the straightforward code printed: the
// table and shortTime against reference implementations, and ls over several pages (a loopback
// server answering /api/v1/repositories page by page) against the table of all rows at once.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { RepositoryInfo } from '../../src/api/inventory.js';
import { humanBytes, shortTime, table, TableBuilder } from '../../src/cli/client.js';
import { ls } from '../../src/cli/ls.js';

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

  /** Answers /api/v1/repositories in pages of 4 by `after`, as the API does; records the cursors asked for. */
  async function pagedApi(asked: (string | null)[]): Promise<string> {
    server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname !== '/api/v1/repositories') return void res.writeHead(404).end();
      const after = url.searchParams.get('after');
      asked.push(after);
      const rest = repositories.filter((r) => after === null || r.name > after).sort((a, b) => (a.name < b.name ? -1 : 1));
      const page = rest.slice(0, 4);
      const body = JSON.stringify({ repositories: page, ...(rest.length > 4 ? { next: page[page.length - 1]!.name } : {}) });
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

  it('prints every page as one table, the same as the rows formatted at once, and --json the same content', async () => {
    const asked: (string | null)[] = [];
    const url = await pagedApi(asked);
    const sorted = [...repositories].sort((a, b) => (a.name < b.name ? -1 : 1));
    const expected = referenceTable(
      ['REPOSITORY', 'TAGS', 'SIZE', 'PUSHED'],
      sorted.map((r) => [r.mirror ? `${r.name} (mirror)` : r.name, String(r.tags), humanBytes(r.size), referenceShortTime(r.pushedAt)]),
      [1, 2],
    );
    expect(await output(['--url', url])).toBe(`${expected}\n`);
    expect(asked).toEqual([null, sorted[3]!.name, sorted[7]!.name]);
    expect(JSON.parse(await output(['--url', url, '--json']))).toEqual({ repositories: sorted });
  });

  it('a page that fails stops ls with the error, after the pages before it', async () => {
    server = createServer((req, res) => {
      const after = new URL(req.url ?? '/', 'http://x').searchParams.get('after');
      if (after) return void res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: 'database unavailable' } }));
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ repositories: repositories.slice(0, 2), next: repositories[1]!.name }));
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    await expect(ls(['--url', url])).rejects.toThrow('database unavailable');
  });
});
