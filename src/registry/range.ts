// HTTP Range (blob GET) and the distribution-spec Content-Range of chunked PATCH uploads.

export type RangeResult =
  | { kind: 'full' }
  | { kind: 'partial'; start: number; end: number }
  | { kind: 'unsatisfiable' };

const RANGE_SPEC = /^(\d*)\s*-\s*(\d*)$/;

/**
 * Parses `Range: bytes=…` for a resource of `size` bytes (RFC 9110 §14.1.1, §14.2). A header that
 * does not follow the grammar, or names another unit, is ignored (a full 200). One that follows it
 * but where no range can be served (every `first-last` has last < first, or starts past the end)
 * is unsatisfiable (416). Several ranges are served whole (no multipart answers), unless none of
 * them is satisfiable.
 */
export function parseRange(header: string | undefined, size: number): RangeResult {
  if (header === undefined) return { kind: 'full' };
  const match = /^\s*bytes\s*=\s*(.*?)\s*$/i.exec(header);
  if (!match) return { kind: 'full' };
  const specs = (match[1] ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (specs.length === 0) return { kind: 'full' };
  const ranges: RangeResult[] = [];
  for (const spec of specs) {
    const parts = RANGE_SPEC.exec(spec);
    if (!parts) return { kind: 'full' };
    const [, first = '', last = ''] = parts;
    if (first === '' && last === '') return { kind: 'full' };
    if (first.length > 15 || last.length > 15) return { kind: 'full' };
    ranges.push(oneRange(first, last, size));
  }
  const satisfiable = ranges.filter((r) => r.kind === 'partial');
  if (satisfiable.length === 0) return { kind: 'unsatisfiable' };
  return ranges.length === 1 ? (ranges[0] as RangeResult) : { kind: 'full' };
}

function oneRange(first: string, last: string, size: number): RangeResult {
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  // An int-range whose last-pos is before its first-pos is invalid (§14.1.1): nothing to serve.
  if (last !== '' && Number(last) < start) return { kind: 'unsatisfiable' };
  if (start >= size) return { kind: 'unsatisfiable' };
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
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
