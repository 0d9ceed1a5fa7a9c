// `layover ls [REPO]`: the repositories one may pull, with sizes; or one repository's tags.
import type { RepositoryInfo, TagInfo } from '../api/inventory.js';
import { parseArgs, UsageError } from './args.js';
import { CLIENT_HELP, CLIENT_OPTIONS, humanBytes, LayoverClient, print, printJson, shortTime, table, TableBuilder } from './client.js';

/** The API's largest page (api/plugin.ts MAX_PAGE): 5,000 repositories are one request, one statement. */
const PAGE = 10_000;

export const LS_HELP = `layover ls [REPO] [options]

Without REPO: every repository you may pull, with its tag count, size and last push.
With REPO: its tags with digest, size, platforms, and when each was pushed and last pulled.

Options:
      --namespace NS    only repositories in namespace NS
${CLIENT_HELP}`;

type RepositoryPage = { repositories: RepositoryInfo[]; next?: string };

/**
 * Pages through the API (a page is one bounded statement on the server, whatever the registry's
 * size), handing each page to `take` once the request for the next one is on its way: the
 * server works out page N+1 while this process formats page N.
 */
async function eachRepositoryPage(client: LayoverClient, namespace: string | undefined, take: (page: RepositoryInfo[]) => void): Promise<void> {
  const ask = (after: string | undefined) =>
    client.start<RepositoryPage>('GET', 'repositories', {
      limit: String(PAGE),
      ...(namespace ? { namespace } : {}),
      ...(after ? { after } : {}),
    });
  let pending: { sent: Promise<void>; answer: Promise<RepositoryPage> } | undefined = ask(undefined);
  while (pending) {
    const page: RepositoryPage = await pending.answer;
    pending = page.next ? ask(page.next) : undefined;
    if (pending) {
      // A failure shows when the answer is awaited; the next turn awaits it.
      pending.answer.catch(() => undefined);
      await pending.sent;
    }
    take(page.repositories);
  }
}

export async function ls(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, strict: true, options: { ...CLIENT_OPTIONS, namespace: { type: 'string' } } });
  if (positionals.length > 1) throw new UsageError('usage: layover ls [REPO]');
  const client = await LayoverClient.from(values);
  const repo = positionals[0];
  if (repo === undefined) {
    if (values.json) {
      const repositories: RepositoryInfo[] = [];
      await eachRepositoryPage(client, values.namespace, (page) => {
        for (const r of page) repositories.push(r);
      });
      return printJson({ repositories });
    }
    const rows = new TableBuilder(['REPOSITORY', 'TAGS', 'SIZE', 'PUSHED'], [1, 2]);
    await eachRepositoryPage(client, values.namespace, (page) => {
      for (const r of page) rows.add([r.mirror ? `${r.name} (mirror)` : r.name, String(r.tags), humanBytes(r.size), shortTime(r.pushedAt)]);
    });
    return print(rows.rows ? rows.toString() : 'no repositories');
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
