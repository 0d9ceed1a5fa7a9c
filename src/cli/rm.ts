// `layover rm REPO:TAG | REPO@DIGEST | REPO | --namespace NS`: deletes through the API, with the
// caller's rights; garbage collection reclaims the blobs afterwards.
import { parseArgs, UsageError } from './args.js';
import { CLIENT_HELP, CLIENT_OPTIONS, ClientError, LayoverClient, print, printJson } from './client.js';

export const RM_HELP = `layover rm REPO:TAG | REPO@DIGEST | REPO | --namespace NS [options]

Deletes a tag, a manifest (with every tag pointing at it), a whole repository, or every
repository of a namespace. The blobs are reclaimed by the next garbage collection
('layover gc' runs one now).

Deleting a repository or a namespace shows what goes and needs --yes; --dry-run shows it
and deletes nothing (for a tag or a manifest too).

Options:
      --namespace NS    delete every repository in namespace NS
  -y, --yes             confirm deleting a repository or a namespace
      --dry-run         check and show what would be deleted; delete nothing
${CLIENT_HELP}`;

type Target =
  | { kind: 'tag'; repository: string; tag: string }
  | { kind: 'manifest'; repository: string; digest: string }
  | { kind: 'repository'; repository: string };

export function parseTarget(ref: string): Target {
  const at = ref.indexOf('@');
  if (at !== -1) return { kind: 'manifest', repository: ref.slice(0, at), digest: ref.slice(at + 1) };
  const colon = ref.lastIndexOf(':');
  if (colon > ref.lastIndexOf('/')) return { kind: 'tag', repository: ref.slice(0, colon), tag: ref.slice(colon + 1) };
  return { kind: 'repository', repository: ref };
}

type Preview = { dryRun: true; deleted: { repository: string; tags: string[] } | { namespace: string; repositories: string[] } };

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** What deleting a repository or a namespace takes with it, as the server checked it (its rights included). */
function describe(preview: Preview): string[] {
  const d = preview.deleted;
  if ('namespace' in d) return [`namespace ${d.namespace}: ${plural(d.repositories.length, 'repository', 'repositories')}`, ...d.repositories.map((r) => `  ${r}`)];
  return [`repository ${d.repository}: ${plural(d.tags.length, 'tag', 'tags')}${d.tags.length ? ` (${d.tags.join(', ')})` : ''}`];
}

export async function rm(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: { ...CLIENT_OPTIONS, namespace: { type: 'string' }, yes: { type: 'boolean', short: 'y' }, 'dry-run': { type: 'boolean' } },
  });
  if (values.namespace !== undefined ? positionals.length !== 0 : positionals.length !== 1) {
    throw new UsageError('usage: layover rm REPO:TAG | REPO@DIGEST | REPO | --namespace NS');
  }
  const target: Target | { kind: 'namespace'; namespace: string } =
    values.namespace !== undefined ? { kind: 'namespace', namespace: values.namespace } : parseTarget(positionals[0] as string);
  const dry = values['dry-run'] ?? false;
  const client = await LayoverClient.from(values);
  let path: string;
  let params: Record<string, string>;
  let done: string;
  switch (target.kind) {
    case 'tag':
      [path, params, done] = ['tag', { repository: target.repository, tag: target.tag }, `tag ${target.repository}:${target.tag}`];
      break;
    case 'manifest':
      [path, params, done] = ['manifest', { repository: target.repository, digest: target.digest }, `manifest ${target.repository}@${target.digest}`];
      break;
    case 'repository':
      [path, params, done] = ['repository', { name: target.repository }, `repository ${target.repository}`];
      break;
    case 'namespace':
      [path, params, done] = ['namespace', { name: target.namespace }, `namespace ${target.namespace}`];
      break;
  }
  const wide = target.kind === 'repository' || target.kind === 'namespace';
  if (dry || (wide && !values.yes)) {
    if (!wide) {
      // A tag or manifest takes nothing else with it; a tag's presence is checked with a read.
      if (target.kind === 'tag') {
        const repo = await client.call<{ tagList: { tag: string; digest: string }[] }>('GET', 'repository', { name: target.repository });
        if (!repo.tagList.some((t) => t.tag === target.tag)) throw new ClientError(`no tag "${target.tag}" in ${target.repository}`, 404);
      }
      if (values.json) return printJson({ dryRun: true, deleted: params });
      return print(`would delete ${done} (dry run: nothing was deleted)`);
    }
    const preview = await client.call<Preview>('DELETE', path, { ...params, dryRun: 'true' });
    if (values.json) return printJson(preview);
    print(`${dry ? 'Would delete' : 'Deleting'} ${describe(preview).join('\n')}`);
    print(dry ? 'Dry run: nothing was deleted.' : 'Nothing was deleted. Run again with --yes to delete it.');
    return;
  }
  const answer = await client.call<{ deleted: { namespace?: string; repositories?: string[] } }>('DELETE', path, params);
  if (values.json) return printJson(answer);
  if (target.kind === 'namespace') {
    const repositories = answer.deleted.repositories ?? [];
    const n = repositories.length;
    return print(`deleted namespace ${target.namespace}: ${plural(n, 'repository', 'repositories')}${n ? ` (${repositories.join(', ')})` : ''}`);
  }
  print(`deleted ${done}`);
}
