// What a reverse proxy changes in the headers it passes on, and nothing more: hop-by-hop headers
// belong to one connection (RFC 9110 §7.6.1) and are dropped, X-Forwarded-* say where the
// request came from, and the addresses the registry hands out are made reachable through the
// node-local address the client used.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

/** Always hop-by-hop; `expect` too: node:http answers 100-continue itself before we forward. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'expect']);

/** Header names the Connection header lists are hop-by-hop for this message as well. */
function droppable(headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>): Set<string> {
  const drop = new Set(HOP_BY_HOP);
  const connection = headers.connection;
  for (const value of [connection].flat()) {
    for (const name of (value ?? '').split(',')) if (name.trim()) drop.add(name.trim().toLowerCase());
  }
  return drop;
}

export interface ClientSide {
  /** The client's address (appended to X-Forwarded-For). */
  remoteAddress: string | undefined;
  /** The Host the client sent, or the node address when it sent none. */
  host: string;
}

/**
 * The request headers to send to the registry. Host is kept as the client sent it (the registry
 * builds its token realm from it), and X-Forwarded-Host/Proto/For record it as well, so a
 * registry behind further proxies can tell.
 */
export function requestHeaders(incoming: IncomingHttpHeaders, client: ClientSide): Record<string, string | string[]> {
  const drop = droppable(incoming);
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(incoming)) {
    if (value === undefined || drop.has(name)) continue;
    out[name] = value;
  }
  out.host = client.host;
  const forwardedFor = [incoming['x-forwarded-for']].flat().filter(Boolean).join(', ');
  if (client.remoteAddress) out['x-forwarded-for'] = forwardedFor ? `${forwardedFor}, ${client.remoteAddress}` : client.remoteAddress;
  out['x-forwarded-host'] = client.host;
  // The node role serves plain HTTP on loopback only.
  out['x-forwarded-proto'] = 'http';
  return out;
}

/** `scheme://host` of a URL, or undefined when it is relative or not a URL. */
function originOf(url: string): string | undefined {
  if (!/^https?:\/\//i.test(url)) return undefined;
  try {
    return new URL(url).origin;
  } catch {
    return undefined;
  }
}

/**
 * A Bearer challenge's realm moved to the node address. The node role fronts one layover
 * registry, whose token endpoint is always its own: whatever origin it names (its Service
 * name, or `registry.url` set for clients elsewhere), the same path is reachable here, and the
 * realm is the one address a node's containerd may not be able to reach otherwise.
 */
export function rewriteChallenge(value: string, nodeOrigin: string): string {
  return value.replace(/(\brealm=")([^"]*)(")/i, (whole, open: string, realm: string, close: string) => {
    const origin = originOf(realm);
    return origin ? `${open}${nodeOrigin}${realm.slice(origin.length)}${close}` : whole;
  });
}

/** A Location on the registry's own origin moved to the node address; others are left alone. */
export function rewriteLocation(value: string, registryOrigin: string, nodeOrigin: string): string {
  const origin = originOf(value);
  return origin !== undefined && origin.toLowerCase() === registryOrigin.toLowerCase() ? `${nodeOrigin}${value.slice(origin.length)}` : value;
}

/** The registry's response headers for the client: hop-by-hop dropped, addresses rewritten. */
export function responseHeaders(incoming: Record<string, string | string[] | undefined>, registryOrigin: string, nodeOrigin: string): OutgoingHttpHeaders {
  const drop = droppable(incoming);
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(incoming)) {
    if (value === undefined || drop.has(name)) continue;
    const rewrite = name === 'www-authenticate' ? (v: string) => rewriteChallenge(v, nodeOrigin)
      : name === 'location' || name === 'content-location' ? (v: string) => rewriteLocation(v, registryOrigin, nodeOrigin)
        : undefined;
    out[name] = rewrite ? (Array.isArray(value) ? value.map(rewrite) : rewrite(value)) : value;
  }
  return out;
}
