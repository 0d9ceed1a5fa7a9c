// The node role's header rules (src/node/headers.ts): what a reverse proxy drops, adds and
// rewrites. The forwarding itself is tested end to end in test/integration/node-role.test.ts.
import { describe, expect, it } from 'vitest';
import { requestHeaders, responseHeaders, rewriteChallenge, rewriteLocation } from '../../src/node/headers.js';

const NODE = 'http://127.0.0.1:5005';
const REGISTRY = 'http://layover-registry.layover.svc:5000';

describe('node role headers', () => {
  it('request: hop-by-hop headers and those Connection names are dropped; Host kept; X-Forwarded-* added', () => {
    const out = requestHeaders({
      host: '127.0.0.1:5005',
      connection: 'keep-alive, x-private',
      'keep-alive': 'timeout=5',
      'x-private': 'per-hop',
      te: 'trailers',
      'transfer-encoding': 'chunked',
      'proxy-authorization': 'Basic c2VjcmV0',
      expect: '100-continue',
      authorization: 'Bearer abc',
      'content-length': '12',
      'x-forwarded-for': '10.0.0.1',
    }, { remoteAddress: '127.0.0.1', host: '127.0.0.1:5005' });
    expect(out).toEqual({
      host: '127.0.0.1:5005',
      authorization: 'Bearer abc',
      'content-length': '12',
      'x-forwarded-for': '10.0.0.1, 127.0.0.1',
      'x-forwarded-host': '127.0.0.1:5005',
      'x-forwarded-proto': 'http',
    });
  });

  it('response: the Bearer realm moves to the node address, whatever origin it named; other parameters stay', () => {
    const challenge = `Bearer realm="${REGISTRY}/token",service="layover",scope="repository:shop/app:pull"`;
    expect(rewriteChallenge(challenge, NODE)).toBe(`Bearer realm="${NODE}/token",service="layover",scope="repository:shop/app:pull"`);
    expect(rewriteChallenge('Bearer realm="https://registry.example.com/token?x=1",service="layover"', NODE)).toBe(`Bearer realm="${NODE}/token?x=1",service="layover"`);
    expect(rewriteChallenge('Basic realm="layover"', NODE)).toBe('Basic realm="layover"');
  });

  it('response: Locations on the registry\'s origin move to the node address; relative and foreign ones stay', () => {
    expect(rewriteLocation(`${REGISTRY}/v2/shop/app/blobs/uploads/1`, REGISTRY, NODE)).toBe(`${NODE}/v2/shop/app/blobs/uploads/1`);
    expect(rewriteLocation('/v2/shop/app/blobs/uploads/1?_state=x', REGISTRY, NODE)).toBe('/v2/shop/app/blobs/uploads/1?_state=x');
    expect(rewriteLocation('https://s3.example.com/bucket/blob', REGISTRY, NODE)).toBe('https://s3.example.com/bucket/blob');
    const out = responseHeaders({
      'content-length': '0',
      connection: 'keep-alive',
      'keep-alive': 'timeout=72',
      location: `${REGISTRY}/v2/x`,
      'www-authenticate': [`Bearer realm="${REGISTRY}/token"`],
      'docker-content-digest': 'sha256:00',
    }, REGISTRY, NODE);
    expect(out).toEqual({ 'content-length': '0', location: `${NODE}/v2/x`, 'www-authenticate': [`Bearer realm="${NODE}/token"`], 'docker-content-digest': 'sha256:00' });
  });
});
