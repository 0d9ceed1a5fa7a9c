// Writing a list of chunks to a file at an offset, as both content drivers' blob writers do
// (filesystem.ts, and s3-io.ts's local spool).
import type { FileHandle } from 'node:fs/promises';

/** The bytes of `chunks` after the first `skip` (what is left after a short write). */
export function sliceChunks(chunks: Buffer[], skip: number): Buffer[] {
  const out: Buffer[] = [];
  for (const chunk of chunks) {
    if (skip >= chunk.length) {
      skip -= chunk.length;
      continue;
    }
    out.push(skip ? chunk.subarray(skip) : chunk);
    skip = 0;
  }
  return out;
}

/** Writes every byte of `chunks` at `position`; returns how many (writev may write less than asked). */
export async function writeChunksAt(handle: FileHandle, chunks: Buffer[], position: number): Promise<number> {
  let total = 0;
  for (const chunk of chunks) total += chunk.length;
  let done = 0;
  while (done < total) {
    const rest = done === 0 ? chunks : sliceChunks(chunks, done);
    const { bytesWritten } = await handle.writev(rest, position + done);
    done += bytesWritten;
  }
  return total;
}
