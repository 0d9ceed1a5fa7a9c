// HTTP Range (blob GET) and the distribution-spec Content-Range of chunked PATCH uploads.

export type RangeResult =
  | { kind: 'full' }
  | { kind: 'partial'; start: number; end: number }
  | { kind: 'unsatisfiable' };

/**
 * Parses `Range: bytes=…` for a resource of `size` bytes (RFC 9110 §14.1.2). Only a single range is
 * served partially; a header that is malformed, of another unit, or lists several ranges is
 * ignored (a full 200), as the RFC allows.
 */
export function parseRange(header: string | undefined, size: number): RangeResult {
  if (header === undefined) return { kind: 'full' };
  const match = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!match) return { kind: 'full' };
  const [, first = '', last = ''] = match;
  if (first.length > 15 || last.length > 15) return { kind: 'full' };
  if (first === '' && last === '') return { kind: 'full' };
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  if (last !== '' && Number(last) < start) return { kind: 'full' };
  if (start >= size) return { kind: 'unsatisfiable' };
  return { kind: 'partial', start, end };
}

/**
 * The chunk range of a PATCH: `Content-Range: <start>-<end>` (inclusive; the distribution spec's
 * form, without a unit), tolerating the `bytes ` prefix some clients send.
 */
export function parseChunkRange(header: string): { start: number; end: number } | undefined {
  const match = /^\s*(?:bytes[ =])?(\d{1,15})-(\d{1,15})(?:\/(?:\d{1,15}|\*))?\s*$/.exec(header);
  if (!match) return undefined;
  const start = Number(match[1]);
  const end = Number(match[2]);
  return end < start ? undefined : { start, end };
}
