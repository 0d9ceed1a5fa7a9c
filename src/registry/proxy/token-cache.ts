// Upstream tokens by scope, bounded by bytes rather than by count: a token is whatever the
// upstream sent (a few KiB usually), so a count alone bounds nothing (one upstream answered
// 400 MB per token, and every scope kept one).
import { LRUCache } from 'lru-cache';

export interface CachedToken {
  token: string;
  /** Date.now() after which the token is not used any more. */
  until: number;
}

/** What an entry costs besides its strings (key, object, LRU bookkeeping), roughly. */
const ENTRY_OVERHEAD = 128;

export class TokenCache {
  private readonly cache: LRUCache<string, CachedToken>;

  /** `maxBytes` bounds all entries together; an entry larger than that is not kept at all. */
  constructor(maxBytes: number, maxEntries = 1000) {
    this.cache = new LRUCache<string, CachedToken>({
      max: maxEntries,
      maxSize: maxBytes,
      // Strings count at two bytes a character: V8 may store them as UTF-16.
      sizeCalculation: (value, key) => 2 * (value.token.length + key.length) + ENTRY_OVERHEAD,
    });
  }

  get(scope: string): CachedToken | undefined {
    return this.cache.get(scope);
  }

  set(scope: string, entry: CachedToken): void {
    this.cache.set(scope, entry);
  }

  delete(scope: string): void {
    this.cache.delete(scope);
  }

  /** Bytes held by the entries, as sizeCalculation counts them. */
  get bytes(): number {
    return this.cache.calculatedSize;
  }

  get size(): number {
    return this.cache.size;
  }
}
