// `layover ls [REPO]`: the repositories one may pull, with sizes; or one repository's tags.
import type { RepositoryInfo, TagInfo } from '../api/inventory.js';
import { parseArgs, UsageError } from './args.js';
import { CLIENT_HELP, CLIENT_OPTIONS, humanBytes, LayoverClient, nextAfter, print, printBytes, printJson, shortTime, table, type RawAnswer } from './client.js';
import { RepositoryTable } from './repository-table.js';

/** The API's largest page (api/plugin.ts MAX_PAGE): 5,000 repositories are one request, one statement. */
const PAGE = 10_000;

export const LS_HELP = `layover ls [REPO] [options]

Without REPO: every repository you may pull, with its tag count, size and last push.
With REPO: its tags with digest, size, platforms, and when each was pushed and last pulled.

Options:
      --namespace NS    only repositories in namespace NS
${CLIENT_HELP}`;

type RepositoryPage = { repositories: RepositoryInfo[]; next?: string };

/** What the API writes a page of repositories as for `ls` (api/repository-listing.ts TSV_TYPE). */
const TSV = 'text/tab-separated-values';

/**
 * Pages through the API (a page is one bounded statement on the server, whatever the registry's
 * size), handing each page to `take` once the request for the next one is on its way: the
 * server works out page N+1 while this process formats page N. `read` says what an answer holds
 * and which page follows.
 */
async function eachRepositoryPage<P>(client: LayoverClient, namespace: string | undefined, accept: string | undefined, read: (answer: RawAnswer) => { page: P; next?: string }, take: (page: P) => void): Promise<void> {
  const ask = (after: string | undefined) =>
    client.startRaw(
      'GET',
      'repositories',
      {
        limit: String(PAGE),
        ...(namespace ? { namespace } : {}),
        ...(after ? { after } : {}),
      },
      accept,
    );
  let pending: { sent: Promise<void>; answer: Promise<RawAnswer> } | undefined = ask(undefined);
  while (pending) {
    const { page, next } = read(await pending.answer);
    pending = next ? ask(next) : undefined;
    if (pending) {
      // A failure shows when the answer is awaited; the next turn awaits it.
      pending.answer.catch(() => undefined);
      await pending.sent;
    }
    take(page);
  }
}

export async function ls(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, strict: true, options: { ...CLIENT_OPTIONS, namespace: { type: 'string' } } });
  if (positionals.length > 1) throw new UsageError('usage: layover ls [REPO]');
  const client = await LayoverClient.from(values);
  const repo = positionals[0];
  if (repo === undefined) {
    const json = (answer: RawAnswer) => {
      const page = client.json<RepositoryPage>(answer);
      return { page: page.repositories, ...(page.next ? { next: page.next } : {}) };
    };
    if (values.json) {
      const repositories: RepositoryInfo[] = [];
      await eachRepositoryPage(client, values.namespace, undefined, json, (page) => {
        for (const r of page) repositories.push(r);
      });
      return printJson({ repositories });
    }
    // TSV: a third of the JSON's bytes, read in place (repository-table.ts); a server that
    // answers JSON only still gets its rows printed the same.
    const table = new RepositoryTable();
    await eachRepositoryPage<Buffer | RepositoryInfo[]>(
      client,
      values.namespace,
      `${TSV}, application/json;q=0.5`,
      (answer) => {
        if (!answer.type.toLowerCase().startsWith(TSV)) return json(answer);
        const next = nextAfter(answer.link);
        return { page: answer.body, ...(next ? { next } : {}) };
      },
      (page) => (Buffer.isBuffer(page) ? table.addTsv(page) : table.addRepositories(page)),
    );
    const text = table.toBuffer();
    return text ? printBytes(text) : print('no repositories');
  }
  const answer = await client.call<RepositoryInfo & { tagList: TagInfo[] }>('GET', 'repository', { name: repo });
  if (values.json) return printJson(answer);
  if (!answer.tagList.length) return print(`${repo}: no tags`);
  print(
    table(
      ['TAG', 'DIGEST', 'SIZE', 'PLATFORMS', 'PUSHED', 'PULLED'],
      answer.tagList.map((t) => [t.tag, t.digest, humanBytes(t.size), t.platforms.join(',') || '-', shortTime(t.pushedAt), shortTime(t.pulledAt)]),
      [2],
    ),
  );
}
