// GET/HEAD/PUT/DELETE /v2/<name>/manifests/<reference>
import { readLimited } from '../body.js';
import { RegistryError } from '../errors.js';
import { isTag } from '../names.js';
import { parseReference } from '../service.js';
import type { Call, RouteContext } from './context.js';

export async function getManifest(ctx: RouteContext, call: Call, name: string, reference: string): Promise<void> {
  const { req, reply } = call;
  // A name that cannot be a tag names no manifest: reads answer 404 as for any absent tag (the
  // conformance suite asks this); only a write of such a tag is a client error (400 TAG_INVALID).
  if (!reference.includes(':') && !isTag(reference)) throw new RegistryError('MANIFEST_UNKNOWN', undefined, { name, reference: reference.slice(0, 200) });
  parseReference(reference);
  const withBody = req.method !== 'HEAD';
  const hit = await ctx.sourceFor(name).getManifest(name, reference, withBody);
  if (!hit) throw new RegistryError('MANIFEST_UNKNOWN', undefined, { name, reference });
  const { meta } = hit;
  reply.header('Docker-Content-Digest', meta.digest).header('ETag', `"${meta.digest}"`).header('Content-Type', meta.mediaType).header('Content-Length', meta.size);
  if (hit.warning) reply.header('Warning', hit.warning);
  if (!withBody) {
    reply.code(200).send();
    return;
  }
  reply.code(200).send(hit.bytes);
  // A pull is a GET that got the manifest (a HEAD only asks whether it changed).
  if (!ctx.isMirror(name)) ctx.pulls?.record(name, meta.digest);
}

export async function putManifest(ctx: RouteContext, call: Call, name: string, reference: string): Promise<void> {
  const { req, reply, query } = call;
  const bytes = await readLimited(req.raw, ctx.config.registry.maxManifestBytes);
  const tags = query.getAll('tag');
  const result = await ctx.service.putManifest(name, reference, bytes, req.headers['content-type'], tags);
  // One OCI-Tag per ?tag= stored, so the client knows each was applied (distribution-spec main).
  if (tags.length) reply.header('OCI-Tag', [...new Set(tags)]);
  reply.code(201).header('Location', `/v2/${name}/manifests/${result.digest}`).header('Docker-Content-Digest', result.digest).header('Content-Length', 0);
  if (result.subject) reply.header('OCI-Subject', result.subject);
  reply.send();
}

export async function deleteManifest(ctx: RouteContext, call: Call, name: string, reference: string): Promise<void> {
  await ctx.service.deleteManifest(name, reference);
  call.reply.code(202).header('Content-Length', 0).send();
}
