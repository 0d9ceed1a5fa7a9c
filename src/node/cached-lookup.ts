// The registry Service's address, looked up once every few seconds instead of for every request:
// the node role opens a connection per request, and on the host network with
// ClusterFirstWithHostNet each lookup of `layover-registry.layover.svc` walks the resolv.conf
// search list (ndots:5), several DNS queries each time. A Service's ClusterIP does not change
// while it exists; a short TTL still follows a re-created Service. Failures are not cached.
import { lookup as dnsLookup, type LookupAddress, type LookupOneOptions } from 'node:dns';
import type { LookupFunction } from 'node:net';

interface Entry { address: string; family: number; expires: number }

type Resolve = (hostname: string, options: { family?: LookupOneOptions['family']; hints?: number }, callback: (err: NodeJS.ErrnoException | null, address: string, family: number) => void) => void;

export function cachedLookup(options: { ttlMs?: number; now?: () => number; resolve?: Resolve } = {}): LookupFunction {
  const { ttlMs = 5_000, now = () => performance.now(), resolve = dnsLookup as Resolve } = options;
  const cache = new Map<string, Entry>();
  return ((hostname: string, lookupOptions: LookupOneOptions, callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void) => {
    const key = `${hostname}/${lookupOptions.family ?? 0}`;
    const hit = cache.get(key);
    if (hit && hit.expires > now()) {
      if ((lookupOptions as { all?: boolean }).all) return process.nextTick(callback, null, [{ address: hit.address, family: hit.family }]);
      return process.nextTick(callback, null, hit.address, hit.family);
    }
    resolve(hostname, { family: lookupOptions.family, hints: lookupOptions.hints }, (err, address, family) => {
      if (err) return callback(err, '', 0);
      cache.set(key, { address, family, expires: now() + ttlMs });
      if ((lookupOptions as { all?: boolean }).all) return callback(null, [{ address, family }]);
      callback(null, address, family);
    });
  }) as LookupFunction;
}
