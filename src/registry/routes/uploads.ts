// Blob uploads: POST (start, monolithic, mount), PATCH (stream or chunk), PUT (finish),
// GET (status), DELETE (cancel).
import type { FastifyReply } from 'fastify';
import { assertDigest } from '../digest.js';
import { RegistryError } from '../errors.js';
import { isRepositoryName } from '../names.js';
import { parseChunkRange } from '../range.js';
import type { UploadState } from '../storage/store.js';
import { clientSignal, type Call, type RouteContext } from './context.js';

function rangeOf(size: number): string {
  return `0-${Math.max(0, size - 1)}`;
}

function uploadLocation(upload: UploadState): string {
  return `/v2/${upload.repository}/blobs/uploads/${upload.id}`;
}

function sendUploadState(reply: FastifyReply, upload: UploadState, status: number): void {
  reply
    .code(status)
    .header('Location', uploadLocation(upload))
    .header('Range', rangeOf(upload.size))
    .header('Docker-Upload-UUID', upload.id)
    .header('Content-Length', 0)
    .send();
}

function sendCreated(reply: FastifyReply, name: string, digest: string): void {
  reply.code(201).header('Location', `/v2/${name}/blobs/${digest}`).header('Docker-Content-Digest', digest).header('Content-Length', 0).send();
}

function hasBody(call: Call): boolean {
  const length = call.req.headers['content-length'];
  return call.req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

function declaredLength(call: Call): number | undefined {
  const length = call.req.headers['content-length'];
  return length !== undefined && /^\d+$/.test(length) ? Number(length) : undefined;
}

export async function startUpload(ctx: RouteContext, call: Call, name: string): Promise<void> {
  const { query, reply, req } = call;
  const mount = query.get('mount');
  if (mount !== null) {
    const { digest } = assertDigest(mount);
    const from = query.get('from');
    // Mounting needs pull on the source too; without it the client just uploads, and learns
    // nothing about whether the source has the blob. A mirror is a fine source (an image built
    // FROM a mirrored base): only what it has cached mounts, and eviction never deletes a blob
    // that a pushed repository links.
    // Without `from`, any repository the caller may pull will do (automatic content discovery).
    const mounted =
      from === null
        ? await ctx.service.mountFromReadable(name, digest, (repository) => ctx.access.allows(call.principal, repository, 'pull'))
        : isRepositoryName(from) && ctx.access.allows(call.principal, from, 'pull')
          ? await ctx.service.mount(name, digest, from)
          : undefined;
    if (mounted) {
      req.raw.resume();
      sendCreated(reply, name, digest);
      return;
    }
  }
  const digestParam = query.get('digest');
  if (digestParam !== null && mount === null) {
    const { digest } = assertDigest(digestParam);
    await ctx.service.ingest(name, req.raw, digest, declaredLength(call), clientSignal(reply));
    sendCreated(reply, name, digest);
    return;
  }
  req.raw.resume();
  const upload = await ctx.service.startUpload(name);
  if (ctx.config.registry.chunkMinLength > 0) reply.header('OCI-Chunk-Min-Length', ctx.config.registry.chunkMinLength);
  sendUploadState(reply, upload, 202);
}

/** The spec's 416 for a chunk the session cannot take: the client resumes from the Range it names. */
function rangeRefused(upload: UploadState, message: string, detail?: unknown): RegistryError {
  return new RegistryError('RANGE_INVALID', message, detail, {
    headers: { Location: uploadLocation(upload), Range: rangeOf(upload.size), 'Docker-Upload-UUID': upload.id },
  });
}

/** Appends the request body; a refused chunk answers 416 with the session's Location and Range. */
async function appendChunk(ctx: RouteContext, call: Call, upload: UploadState, offset: number | undefined): Promise<UploadState> {
  try {
    return await ctx.service.store.appendUpload(upload, call.req.raw, offset, clientSignal(call.reply));
  } catch (err) {
    if (err instanceof RegistryError && err.code === 'RANGE_INVALID') {
      const current = (await ctx.service.store.getUpload(upload.repository, upload.id)) ?? upload;
      throw rangeRefused(current, err.message);
    }
    throw err;
  }
}

/** The chunk's start from `Content-Range`, checked against Content-Length; undefined when absent. */
function chunkOffset(call: Call, upload: UploadState): number | undefined {
  const header = call.req.headers['content-range'];
  if (header === undefined) return undefined;
  const range = parseChunkRange(header);
  // The spec lists an invalid Content-Range among the reasons for a 416.
  if (!range) throw rangeRefused(upload, 'malformed Content-Range', { 'content-range': header.slice(0, 80) });
  const length = declaredLength(call);
  if (length !== undefined && length !== range.end - range.start + 1) {
    throw new RegistryError('SIZE_INVALID', 'Content-Length does not match Content-Range');
  }
  return range.start;
}

export async function patchUpload(ctx: RouteContext, call: Call, name: string, id: string): Promise<void> {
  const upload = await ctx.service.upload(name, id);
  const updated = await appendChunk(ctx, call, upload, chunkOffset(call, upload));
  sendUploadState(call.reply, updated, 202);
}

export async function finishUpload(ctx: RouteContext, call: Call, name: string, id: string): Promise<void> {
  const { reply, query } = call;
  const digestParam = query.get('digest');
  if (digestParam === null) throw new RegistryError('DIGEST_INVALID', 'digest query parameter is required');
  const { digest } = assertDigest(digestParam);
  let upload = await ctx.service.upload(name, id);
  if (hasBody(call)) upload = await appendChunk(ctx, call, upload, chunkOffset(call, upload));
  await ctx.service.finishUpload(upload, digest);
  sendCreated(reply, name, digest);
}

export async function uploadStatus(ctx: RouteContext, call: Call, name: string, id: string): Promise<void> {
  sendUploadState(call.reply, await ctx.service.upload(name, id), 204);
}

export async function cancelUpload(ctx: RouteContext, call: Call, name: string, id: string): Promise<void> {
  if (!(await ctx.service.store.cancelUpload(name, id))) throw new RegistryError('BLOB_UPLOAD_UNKNOWN');
  call.reply.code(204).send();
}
