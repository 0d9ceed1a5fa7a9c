// The identity of an upstream as far as cached content is concerned: its URL and the account we
// read it with (another account, or credential helper, may see other repositories). A blob may be reused for a mirror
// repository without a download only if this identity delivered it before (storage's provenance
// markers). The prefix is left out: renaming a mirror keeps its cache; pointing a prefix at
// another registry or account does not.
import { createHash } from 'node:crypto';
import type { UpstreamConfig } from '../../config/config.js';

export function sourceId(upstream: Pick<UpstreamConfig, 'url' | 'username' | 'credentialHelper'>): string {
  const account = `${upstream.username ?? ''}\n${upstream.credentialHelper ?? ''}`;
  return createHash('sha256').update(`${upstream.url}\n${account}`).digest('hex').slice(0, 32);
}
