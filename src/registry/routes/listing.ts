// Tags list, catalog and referrers: the read-only listings, all paginated lexically.
import { assertDigest } from '../digest.js';
import { RegistryError } from '../errors.js';
import { REFERRERS_INDEX_TYPE } from '../service.js';
import type { Store } from '../storage/store.js';
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

/** Fetched per round when the caller may not see every repository (filtering shrinks pages). */
const CATALOG_BATCH = 500;

/**
 * A page of the repositories `visible` admits, after `last`: read from the store's index in
 * batches until `n` (+1, to know whether more follow) are found, so a page costs O(n) when the
 * caller sees most repositories, never a read of the whole catalog.
 */
async function visiblePage(store: Store, visible: (repo: string) => boolean, n: number | undefined, last: string | undefined): Promise<{ tags: string[]; more: boolean }> {
  if (n === undefined) return { tags: (await store.listRepositories({ after: last })).filter(visible), more: false };
  if (n === 0) return { tags: [], more: false };
  const found: string[] = [];
  const limit = Math.max(n + 1, Math.min(CATALOG_BATCH, 2 * n + 1));
  for (let after = last; found.length <= n; ) {
    const names = await store.listRepositories({ after, limit });
    for (const name of names) {
      if (visible(name)) found.push(name);
      if (found.length > n) break;
    }
    if (names.length < limit) break;
    after = names[names.length - 1];
  }
  return { tags: found.slice(0, n), more: found.length > n };
}

export async function catalog(ctx: RouteContext, call: Call): Promise<void> {
  const { n, last } = pageArgs(call.query);
  // The catalog shows only what the caller could pull; everything else does not exist for them.
  const page = await visiblePage(ctx.service.store, (repo) => ctx.access.allows(call.principal, repo, 'pull'), n, last);
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
