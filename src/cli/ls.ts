// `layover ls [REPO]`: the repositories one may pull, with sizes; or one repository's tags.
import type { RepositoryInfo, TagInfo } from '../api/inventory.js';
import { parseArgs, UsageError } from './args.js';
import { CLIENT_HELP, CLIENT_OPTIONS, humanBytes, LayoverClient, print, printJson, shortTime, table } from './client.js';

/** The API's largest page (api/plugin.ts MAX_PAGE): 5,000 repositories are one request, one statement. */
const PAGE = 10_000;

export const LS_HELP = `layover ls [REPO] [options]

Without REPO: every repository you may pull, with its tag count, size and last push.
With REPO: its tags with digest, size, platforms, and when each was pushed and last pulled.

Options:
      --namespace NS    only repositories in namespace NS
${CLIENT_HELP}`;

/** Pages through the API (a page is one bounded statement on the server, whatever the registry's size). */
async function allRepositories(client: LayoverClient, namespace: string | undefined): Promise<RepositoryInfo[]> {
  const out: RepositoryInfo[] = [];
  for (let after: string | undefined; ; ) {
    const page = await client.call<{ repositories: RepositoryInfo[]; next?: string }>('GET', 'repositories', {
      limit: String(PAGE),
      ...(namespace ? { namespace } : {}),
      ...(after ? { after } : {}),
    });
    out.push(...page.repositories);
    if (!page.next) return out;
    after = page.next;
  }
}

export async function ls(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, strict: true, options: { ...CLIENT_OPTIONS, namespace: { type: 'string' } } });
  if (positionals.length > 1) throw new UsageError('usage: layover ls [REPO]');
  const client = await LayoverClient.from(values);
  const repo = positionals[0];
  if (repo === undefined) {
    const answer = { repositories: await allRepositories(client, values.namespace) };
    if (values.json) return printJson(answer);
    if (!answer.repositories.length) return print('no repositories');
    print(
      table(
        ['REPOSITORY', 'TAGS', 'SIZE', 'PUSHED'],
        answer.repositories.map((r) => [r.mirror ? `${r.name} (mirror)` : r.name, String(r.tags), humanBytes(r.size), shortTime(r.pushedAt)]),
        [1, 2],
      ),
    );
    return;
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
