// The node role reads the registry's response heads and chunked bodies from raw socket bytes
// (src/node/response-head.ts, chunked-decoder.ts): strict parsing, framing by RFC 9112, and
// bytes split at every possible point decode the same.
import { describe, expect, it } from 'vitest';
import { ChunkedDecoder, ChunkedBodyError } from '../../src/node/chunked-decoder.js';
import { MAX_HEAD_BYTES, ResponseHeadError, bodyFraming, parseResponseHead } from '../../src/node/response-head.js';

const head = (text: string) => Buffer.from(text, 'latin1');

describe('response head', () => {
  it('parses the status, lower-cases names, keeps repeated fields as a list, and reports the head length', () => {
    const bytes = head('HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm="a"\r\nWww-Authenticate: Basic realm="b"\r\nContent-Length: 12\r\n\r\n{"errors":[]}');
    const parsed = parseResponseHead(bytes);
    expect(parsed).toEqual({ status: 401, headers: { 'www-authenticate': ['Bearer realm="a"', 'Basic realm="b"'], 'content-length': '12' }, length: bytes.indexOf('{') });
  });

  it('waits for more bytes until the blank line, and refuses a head that never ends', () => {
    expect(parseResponseHead(head('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n'))).toBeUndefined();
    expect(() => parseResponseHead(Buffer.alloc(MAX_HEAD_BYTES + 1, 0x61))).toThrow(ResponseHeadError);
  });

  it.each([
    ['a malformed status line', 'HTTP/2 200 OK\r\n\r\n'],
    ['obs-fold', 'HTTP/1.1 200 OK\r\nX-A: 1\r\n  continued\r\n\r\n'],
    ['whitespace before the colon', 'HTTP/1.1 200 OK\r\nContent-Length : 1\r\n\r\n'],
    ['a line without a colon', 'HTTP/1.1 200 OK\r\nnonsense\r\n\r\n'],
    ['a bare CR in a value', 'HTTP/1.1 200 OK\r\nX-A: a\rb\r\n\r\n'],
  ])('refuses %s', (_name, text) => {
    expect(() => parseResponseHead(head(text))).toThrow(ResponseHeadError);
  });

  it('frames bodies as RFC 9112 says, and refuses smuggling shapes', () => {
    const of = (method: string, text: string) => bodyFraming(method, parseResponseHead(head(text))!);
    expect(of('GET', 'HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n')).toEqual({ kind: 'length', length: 42 });
    expect(of('HEAD', 'HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n')).toEqual({ kind: 'none' });
    expect(of('GET', 'HTTP/1.1 204 No Content\r\n\r\n')).toEqual({ kind: 'none' });
    expect(of('GET', 'HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n')).toEqual({ kind: 'none' });
    expect(of('GET', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n')).toEqual({ kind: 'chunked' });
    expect(of('GET', 'HTTP/1.1 200 OK\r\n\r\n')).toEqual({ kind: 'close' });
    // The same length twice (a list, or two fields) is one length; two different ones are not.
    expect(of('GET', 'HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n')).toEqual({ kind: 'length', length: 5 });
    expect(() => of('GET', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n')).toThrow(ResponseHeadError);
    expect(() => of('GET', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n')).toThrow(ResponseHeadError);
    expect(() => of('GET', 'HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n')).toThrow(ResponseHeadError);
    expect(() => of('GET', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n')).toThrow(ResponseHeadError);
  });
});

describe('chunked body', () => {
  const body = head('5;ext=1\r\nhello\r\n1b\r\n, the node role forwards it\r\n0\r\nTrailer: x\r\n\r\nNEXT');

  it('decodes the data, ignores extensions and trailers, and says where the body ends', () => {
    const decoder = new ChunkedDecoder();
    const { data, used } = decoder.push(body);
    expect(Buffer.concat(data).toString()).toBe('hello, the node role forwards it');
    expect(decoder.done).toBe(true);
    expect(body.subarray(used).toString()).toBe('NEXT');
  });

  it('gives the same result however the bytes are split', () => {
    const end = body.length - 4;
    for (let a = 1; a < end; a++) {
      for (const b of [a + 1, Math.min(end, a + 7), end]) {
        const decoder = new ChunkedDecoder();
        const out = [body.subarray(0, a), body.subarray(a, b), body.subarray(b, end)].flatMap((piece) => decoder.push(piece).data);
        expect(Buffer.concat(out).toString(), `split at ${a}/${b}`).toBe('hello, the node role forwards it');
        expect(decoder.done).toBe(true);
      }
    }
  });

  it.each([
    ['a bad size', 'zz\r\nhello\r\n0\r\n\r\n'],
    ['data longer than its size', '3\r\nhello\r\n0\r\n\r\n'],
    ['a bare LF', '5\nhello\r\n0\r\n\r\n'],
  ])('refuses %s', (_name, text) => {
    expect(() => new ChunkedDecoder().push(head(text))).toThrow(ChunkedBodyError);
  });
});

describe('the registry Service\'s address, cached', () => {
  it('looks a name up once per TTL, answers both lookup shapes net.connect uses, and never caches a failure', async () => {
    const { cachedLookup } = await import('../../src/node/cached-lookup.js');
    let clock = 0;
    const asked: string[] = [];
    let fail = false;
    const lookup = cachedLookup({
      ttlMs: 5_000,
      now: () => clock,
      resolve: (hostname, _options, callback) => {
        asked.push(hostname);
        if (fail) callback(Object.assign(new Error('ENOTFOUND'), { code: 'ENOTFOUND' }), '', 0);
        else callback(null, '10.96.0.10', 4);
      },
    });
    const one = (all: boolean) => new Promise<unknown>((resolve, reject) => {
      lookup('layover-registry.layover.svc', { all } as never, (err: Error | null, address: unknown, family?: number) => (err ? reject(err) : resolve(all ? address : [address, family])));
    });
    expect(await one(false)).toEqual(['10.96.0.10', 4]);
    expect(await one(true)).toEqual([{ address: '10.96.0.10', family: 4 }]);
    expect(asked).toHaveLength(1);
    clock = 6_000;
    fail = true;
    await expect(one(false)).rejects.toThrow(/ENOTFOUND/);
    await expect(one(false)).rejects.toThrow(/ENOTFOUND/);
    expect(asked).toHaveLength(3);
    fail = false;
    expect(await one(true)).toEqual([{ address: '10.96.0.10', family: 4 }]);
  });
});
