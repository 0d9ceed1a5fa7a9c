// Tags list, catalog and referrers: the read-only listings, all paginated lexically.
import { assertDigest } from '../digest.js';
import { RegistryError } from '../errors.js';
import { paginate, REFERRERS_INDEX_TYPE } from '../service.js';
import { parseCount, type Call, type RouteContext } from './context.js';

function pageArgs(query: URLSearchParams): { n?: number; last?: string } {
  const n = parseCount(query.get('n'));
  if (n !== undefined && Number.isNaN(n)) throw new RegistryError('PAGINATION_NUMBER_INVALID', undefined, { n: query.get('n')?.slice(0, 20) });
  return { n, last: query.get('last') ?? undefined };
}

function nextLink(path: string, n: number, last: string): string {
  return `<${path}?n=${n}&last=${encodeURIComponent(last)}>; rel="next"`;
}

export async function listTags(ctx: RouteContext, call: Call, name: string): Promise<void> {
  const { n, last } = pageArgs(call.query);
  const page = await ctx.service.listTags(name, n, last);
  if (page.more && n !== undefined) call.reply.header('Link', nextLink(`/v2/${name}/tags/list`, n, page.tags[page.tags.length - 1] as string));
  call.reply.code(200).type('application/json').send({ name, tags: page.tags });
}

export async function catalog(ctx: RouteContext, call: Call): Promise<void> {
  const { n, last } = pageArgs(call.query);
  const all = await ctx.service.store.listRepositories();
  // The catalog shows only what the caller could pull; everything else does not exist for them.
  const visible = all.filter((repo) => ctx.access.allows(call.principal, repo, 'pull'));
  const page = paginate(visible, n, last);
  if (page.more && n !== undefined) call.reply.header('Link', nextLink('/v2/_catalog', n, page.tags[page.tags.length - 1] as string));
  call.reply.code(200).type('application/json').send({ repositories: page.tags });
}

export async function referrers(ctx: RouteContext, call: Call, name: string, rawDigest: string): Promise<void> {
  const { digest } = assertDigest(rawDigest);
  const artifactType = call.query.get('artifactType') ?? undefined;
  const manifests = await ctx.service.referrers(name, digest, artifactType);
  if (artifactType !== undefined) call.reply.header('OCI-Filters-Applied', 'artifactType');
  // A Buffer, not a string: fastify would append '; charset=utf-8' to the media type of a string.
  const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: REFERRERS_INDEX_TYPE, manifests }));
  call.reply.code(200).header('Content-Type', REFERRERS_INDEX_TYPE).send(body);
}
