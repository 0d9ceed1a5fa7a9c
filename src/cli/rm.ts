// `layover rm REPO:TAG | REPO@DIGEST | REPO | --namespace NS`: deletes through the API, with the
// caller's rights; garbage collection reclaims the blobs afterwards.
import { parseArgs } from 'node:util';
import { UsageError } from './args.js';
import { CLIENT_HELP, CLIENT_OPTIONS, LayoverClient, print, printJson } from './client.js';

export const RM_HELP = `layover rm REPO:TAG | REPO@DIGEST | REPO | --namespace NS [options]

Deletes a tag, a manifest (with every tag pointing at it), a whole repository, or every
repository of a namespace. The blobs are reclaimed by the next garbage collection
('layover gc' runs one now).

Options:
      --namespace NS    delete every repository in namespace NS
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

export async function rm(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, strict: true, options: { ...CLIENT_OPTIONS, namespace: { type: 'string' } } });
  if (values.namespace !== undefined ? positionals.length !== 0 : positionals.length !== 1) {
    throw new UsageError('usage: layover rm REPO:TAG | REPO@DIGEST | REPO | --namespace NS');
  }
  const client = await LayoverClient.from(values);
  if (values.namespace !== undefined) {
    const answer = await client.call<{ deleted: { namespace: string; repositories: string[] } }>('DELETE', 'namespace', { name: values.namespace });
    if (values.json) return printJson(answer);
    const n = answer.deleted.repositories.length;
    return print(`deleted namespace ${answer.deleted.namespace}: ${n} ${n === 1 ? 'repository' : 'repositories'}${n ? ` (${answer.deleted.repositories.join(', ')})` : ''}`);
  }
  const target = parseTarget(positionals[0] as string);
  let answer: unknown;
  let done: string;
  if (target.kind === 'tag') {
    answer = await client.call('DELETE', 'tag', { repository: target.repository, tag: target.tag });
    done = `deleted tag ${target.repository}:${target.tag}`;
  } else if (target.kind === 'manifest') {
    answer = await client.call('DELETE', 'manifest', { repository: target.repository, digest: target.digest });
    done = `deleted manifest ${target.repository}@${target.digest}`;
  } else {
    answer = await client.call('DELETE', 'repository', { name: target.repository });
    done = `deleted repository ${target.repository}`;
  }
  if (values.json) return printJson(answer);
  print(done);
}
