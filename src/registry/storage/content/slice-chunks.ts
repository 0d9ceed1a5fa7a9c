// A writer handed chunks it has partly written already (a retried write): the bytes after `skip`.
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
