// GET/HEAD/DELETE /v2/<name>/blobs/<digest>
import { BlobResponse } from '../blob-response.js';
import { assertDigest } from '../digest.js';
import { RegistryError } from '../errors.js';
import { parseRange } from '../range.js';
import { clientSignal, type Call, type RouteContext } from './context.js';

export async function getBlob(ctx: RouteContext, call: Call, name: string, rawDigest: string): Promise<void> {
  const { digest } = assertDigest(rawDigest);
  const { req, reply } = call;
  const signal = clientSignal(reply);
  const hit = await ctx.sourceFor(name).getBlob(name, digest, req.method !== 'HEAD', signal);
  if (!hit) throw new RegistryError('BLOB_UNKNOWN', undefined, { digest });
  const size = hit.stat.size;
  reply.header('Docker-Content-Digest', digest).header('ETag', `"${digest}"`).header('Accept-Ranges', 'bytes').type('application/octet-stream');
  if (req.method === 'HEAD') {
    reply.header('Content-Length', size).code(200).send();
    return;
  }
  // As Distribution's redirect mode: the client fetches the bytes (and any range) from the
  // object store; HEAD stays here. The URL is presigned and short-lived.
  const location = await hit.redirect?.();
  if (location) {
    reply.code(307).header('Location', location).header('Content-Length', 0).removeHeader('Content-Type').send();
    return;
  }
  const range = parseRange(req.headers.range, size);
  if (range.kind === 'unsatisfiable') {
    throw new RegistryError('RANGE_INVALID', undefined, { size }, { headers: { 'Content-Range': `bytes */${size}` } });
  }
  const partial = range.kind === 'partial';
  const start = partial ? range.start : 0;
  const end = partial ? range.end : size - 1;
  if (partial) reply.code(206).header('Content-Range', `bytes ${start}-${end}/${size}`).header('Content-Length', end - start + 1);
  else reply.code(200).header('Content-Length', size);
  if (hit.send) {
    await hit.send(new BlobResponse(reply), start, end);
    return;
  }
  reply.send(await hit.open(partial ? { start, end } : undefined, signal));
}

export async function deleteBlob(ctx: RouteContext, call: Call, name: string, rawDigest: string): Promise<void> {
  const { digest } = assertDigest(rawDigest);
  await ctx.service.deleteBlob(name, digest);
  call.reply.code(202).header('Content-Length', 0).send();
}
