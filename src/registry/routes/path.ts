// Splits a `/v2/…` path into the endpoint and its parts. Repository names contain '/', so the
// endpoint is found from the end of the path; names are validated later, by the route.
export type Endpoint =
  | { kind: 'base' }
  | { kind: 'catalog' }
  | { kind: 'tags'; name: string }
  | { kind: 'manifest'; name: string; reference: string }
  | { kind: 'blob'; name: string; digest: string }
  | { kind: 'uploads'; name: string }
  | { kind: 'upload'; name: string; id: string }
  | { kind: 'referrers'; name: string; digest: string };

const PATTERNS: [RegExp, (m: string[]) => Endpoint][] = [
  [/^(.+)\/blobs\/uploads\/?$/, ([name]) => ({ kind: 'uploads', name: name as string })],
  [/^(.+)\/blobs\/uploads\/([^/]+)$/, ([name, id]) => ({ kind: 'upload', name: name as string, id: id as string })],
  [/^(.+)\/blobs\/([^/]+)$/, ([name, digest]) => ({ kind: 'blob', name: name as string, digest: digest as string })],
  [/^(.+)\/manifests\/([^/]+)$/, ([name, reference]) => ({ kind: 'manifest', name: name as string, reference: reference as string })],
  [/^(.+)\/tags\/list$/, ([name]) => ({ kind: 'tags', name: name as string })],
  [/^(.+)\/referrers\/([^/]+)$/, ([name, digest]) => ({ kind: 'referrers', name: name as string, digest: digest as string })],
];

/**
 * `rest` is the path after `/v2/`, without the query string. The endpoint is matched on the
 * path as sent and each part decoded afterwards: an encoded '/' inside a digest, tag or upload id
 * stays inside it (and fails that part's grammar with a 400) instead of reshaping the path.
 */
export function parseEndpoint(rest: string): Endpoint | undefined {
  if (rest === '') return { kind: 'base' };
  if (rest === '_catalog') return { kind: 'catalog' };
  for (const [re, build] of PATTERNS) {
    const m = re.exec(rest);
    if (!m) continue;
    try {
      return build(m.slice(1).map((part) => decodeURIComponent(part)));
    } catch {
      return undefined;
    }
  }
  return undefined;
}
