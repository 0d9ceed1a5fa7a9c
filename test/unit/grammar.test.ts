// The grammars that guard the filesystem and the protocol: repository names, tags, digests,
// HTTP Range and chunk Content-Range, the /v2/ path splitter, and the storage layout's own checks.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { assertDigest, digestOf, isDigest, parseDigest } from '../../src/registry/digest.js';
import { RegistryError } from '../../src/registry/errors.js';
import { assertRepositoryName, assertTag, isRepositoryName, isTag, MAX_NAME_LENGTH, namespaceOf } from '../../src/registry/names.js';
import { parseChunkRange, parseRange } from '../../src/registry/range.js';
import { parseEndpoint } from '../../src/registry/routes/path.js';
import { parseReference } from '../../src/registry/service.js';
import { Layout } from '../../src/registry/storage/layout.js';

const HEX64 = 'a'.repeat(64);
const HEX128 = 'b'.repeat(128);

describe('repository names', () => {
  it.each([
    'a', 'library/ubuntu', 'a/b/c/d/e', 'my-app', 'my--app', 'my_app', 'my__app', 'my.app', 'docker.io/library/nginx',
    'ghcr.io/org/repo', '0', '9lives/a1', 'a'.repeat(MAX_NAME_LENGTH),
  ])('accepts %s', (name) => {
    expect(isRepositoryName(name)).toBe(true);
    expect(assertRepositoryName(name)).toBe(name);
  });

  it.each([
    ['empty', ''],
    ['dot-dot', '..'],
    ['dot-dot component', 'a/../b'],
    ['leading dot-dot', '../etc/passwd'],
    ['single dot component', 'a/./b'],
    ['absolute', '/etc/passwd'],
    ['trailing slash', 'a/'],
    ['double slash', 'a//b'],
    ['upper case', 'Library/Ubuntu'],
    ['one upper-case letter', 'librarY'],
    ['encoded dots', '%2e%2e'],
    ['encoded slash', 'a%2fb'],
    ['NUL', 'a\u0000b'],
    ['NUL at the end', 'abc\u0000'],
    ['backslash', 'a\\b'],
    ['windows drive', 'c:/x'],
    ['space', 'a b'],
    ['newline', 'a\nb'],
    ['leading separator', '-abc'],
    ['trailing separator', 'abc-'],
    ['leading dot', '.abc'],
    ['triple underscore', 'a___b'],
    ['dot then dash', 'a.-b'],
    ['double dot', 'a..b'],
    ['fullwidth letters', 'ｌｉｂｒａｒｙ'],
    ['cyrillic a look-alike', 'librаry'],
    ['dotless i', 'ıbrary'],
    ['fraction slash', 'a⁄b'],
    ['division slash', 'a∕b'],
    ['one over the limit', 'a'.repeat(MAX_NAME_LENGTH + 1)],
    ['very long', 'a/'.repeat(5000) + 'a'],
    ['tilde', '~root'],
    ['colon', 'a:b'],
  ])('refuses %s', (_what, name) => {
    expect(isRepositoryName(name)).toBe(false);
    expect(() => assertRepositoryName(name)).toThrow(RegistryError);
    try {
      assertRepositoryName(name);
    } catch (err) {
      expect((err as RegistryError).code).toBe('NAME_INVALID');
      expect((err as RegistryError).status).toBe(400);
    }
  });

  it('namespaceOf is the first path component', () => {
    expect(namespaceOf('docker.io/library/nginx')).toBe('docker.io');
    expect(namespaceOf('alone')).toBe('alone');
  });
});

describe('tags', () => {
  it.each(['latest', 'v1.2.3', '1', '_private', 'UPPER', 'a-b_c.d', 'x'.repeat(128)])('accepts %s', (tag) => {
    expect(isTag(tag)).toBe(true);
    expect(assertTag(tag)).toBe(tag);
  });

  it.each([
    ['empty', ''],
    ['dot-dot', '..'],
    ['leading dot', '.hidden'],
    ['leading dash', '-v1'],
    ['slash', 'a/b'],
    ['traversal', '../../etc/passwd'],
    ['encoded', '%2e%2e'],
    ['NUL', 'v1\u0000'],
    ['colon', 'sha256:abc'],
    ['at sign', 'v1@x'],
    ['space', 'v 1'],
    ['129 characters', 'x'.repeat(129)],
    ['unicode digit', 'v١'],
    ['fullwidth', 'ｖ1'],
    ['newline', 'v1\n'],
  ])('refuses %s', (_what, tag) => {
    expect(isTag(tag)).toBe(false);
    expect(() => assertTag(tag)).toThrow(expect.objectContaining({ code: 'TAG_INVALID', status: 400 }));
  });
});

describe('digests', () => {
  it('accepts sha256 and sha512 with lower-case hex of the right length', () => {
    expect(parseDigest(`sha256:${HEX64}`)).toEqual({ algorithm: 'sha256', hex: HEX64, digest: `sha256:${HEX64}` });
    expect(parseDigest(`sha512:${HEX128}`)).toEqual({ algorithm: 'sha512', hex: HEX128, digest: `sha512:${HEX128}` });
    expect(isDigest(digestOf('x'))).toBe(true);
    expect(isDigest(digestOf('x', 'sha512'))).toBe(true);
  });

  it('digestOf matches the known values', () => {
    expect(digestOf('')).toBe('sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(digestOf('', 'sha512')).toBe(
      'sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e',
    );
  });

  it.each([
    ['empty', ''],
    ['no algorithm', HEX64],
    ['no hex', 'sha256:'],
    ['63 hex', `sha256:${'a'.repeat(63)}`],
    ['65 hex', `sha256:${'a'.repeat(65)}`],
    ['sha512 length under sha256', `sha256:${HEX128}`],
    ['sha256 length under sha512', `sha512:${HEX64}`],
    ['upper-case hex', `sha256:${'A'.repeat(64)}`],
    ['upper-case algorithm', `SHA256:${HEX64}`],
    ['non-hex', `sha256:${'g'.repeat(64)}`],
    ['unsupported algorithm', `md5:${'a'.repeat(32)}`],
    ['sha384', `sha384:${'a'.repeat(96)}`],
    ['blake3', `blake3:${HEX64}`],
    ['registered-looking with extra', `sha256+b64u:${HEX64}`],
    ['traversal', `sha256:../../${'a'.repeat(58)}`],
    ['encoded traversal', `sha256:%2e%2e${'a'.repeat(58)}`],
    ['NUL', `sha256:${'a'.repeat(63)}\u0000`],
    ['trailing newline', `sha256:${HEX64}\n`],
    ['leading space', ` sha256:${HEX64}`],
    ['two colons', `sha256:${HEX64}:x`],
    ['fullwidth hex', `sha256:${'ａ'.repeat(64)}`],
    ['very long', `sha256:${'a'.repeat(100_000)}`],
  ])('refuses %s', (_what, input) => {
    expect(parseDigest(input)).toBeUndefined();
    expect(isDigest(input)).toBe(false);
    expect(() => assertDigest(input)).toThrow(expect.objectContaining({ code: 'DIGEST_INVALID', status: 400 }));
  });

  it('the error detail never echoes more than 200 characters', () => {
    try {
      assertDigest(`sha256:${'a'.repeat(10_000)}`);
      expect.unreachable();
    } catch (err) {
      expect(JSON.stringify((err as RegistryError).body()).length).toBeLessThan(400);
    }
  });
});

describe('manifest references', () => {
  it('a tag or a digest', () => {
    expect(parseReference('latest')).toEqual({ tag: 'latest' });
    expect(parseReference(`sha256:${HEX64}`)).toEqual({ digest: `sha256:${HEX64}` });
  });

  it('a malformed digest is DIGEST_INVALID, a malformed tag is TAG_INVALID; both 400', () => {
    expect(() => parseReference('sha256:1234')).toThrow(expect.objectContaining({ code: 'DIGEST_INVALID', status: 400 }));
    for (const bad of ['..', '.x', '-x', 'x'.repeat(129), 'a\u0000', '%2e%2e']) {
      expect(() => parseReference(bad), bad).toThrow(expect.objectContaining({ code: 'TAG_INVALID', status: 400 }));
    }
  });
});

describe('HTTP Range', () => {
  const size = 1000;
  it.each([
    ['bytes=0-0', { kind: 'partial', start: 0, end: 0 }],
    ['bytes=0-999', { kind: 'partial', start: 0, end: 999 }],
    ['bytes=10-19', { kind: 'partial', start: 10, end: 19 }],
    ['bytes=990-', { kind: 'partial', start: 990, end: 999 }],
    ['bytes=-10', { kind: 'partial', start: 990, end: 999 }],
    ['bytes=-5000', { kind: 'partial', start: 0, end: 999 }],
    ['bytes=500-99999', { kind: 'partial', start: 500, end: 999 }],
    ['BYTES = 1 - 2', { kind: 'partial', start: 1, end: 2 }],
  ] as const)('%s is served partially', (header, want) => {
    expect(parseRange(header, size)).toEqual(want);
  });

  it.each(['bytes=1000-', 'bytes=1000-1000', 'bytes=5000-6000', 'bytes=-0', 'bytes=500-0', 'bytes=5-2', 'bytes=5000-, 2-1'])('%s is unsatisfiable', (header) => {
    expect(parseRange(header, size)).toEqual({ kind: 'unsatisfiable' });
  });

  it('any range of an empty blob is unsatisfiable', () => {
    expect(parseRange('bytes=0-', 0)).toEqual({ kind: 'unsatisfiable' });
    expect(parseRange('bytes=-1', 0)).toEqual({ kind: 'unsatisfiable' });
  });

  it.each([
    undefined, '', 'bytes', 'bytes=', 'bytes=-', 'bytes=a-b', 'bytes=0-1,3-4', 'bytes=0-1,5000-', 'bytes=0-1,x', 'items=0-1', 'bytes=1.5-2',
    'bytes=-1-2', 'bytes=0x10-', `bytes=${'9'.repeat(16)}-`, `bytes=0-${'9'.repeat(16)}`, 'bytes=+1-2', 'bytes=１-２', 'bytes=0-1\u0000',
  ])('%s is ignored (full content)', (header) => {
    expect(parseRange(header, size)).toEqual({ kind: 'full' });
  });
});

describe('chunk Content-Range', () => {
  it.each([
    ['0-0', { start: 0, end: 0 }],
    ['0-999', { start: 0, end: 999 }],
    ['1000-1999', { start: 1000, end: 1999 }],
    ['bytes 0-9', { start: 0, end: 9 }],
    ['bytes=0-9', { start: 0, end: 9 }],
    ['0-9/100', { start: 0, end: 9 }],
    ['0-9/*', { start: 0, end: 9 }],
  ] as const)('%s', (header, want) => {
    expect(parseChunkRange(header)).toEqual(want);
  });

  it.each(['', '-', '0-', '-9', '9-0', 'a-b', '0 - 9 - 10', '0-9/abc', '1e3-2e3', `0-${'9'.repeat(16)}`, '-1-5', '0-9,10-19', '０-９', '0-9\u0000'])(
    '%s is malformed',
    (header) => {
      expect(parseChunkRange(header)).toBeUndefined();
    },
  );
});

describe('/v2/ path splitting', () => {
  it('finds the endpoint from the end, so names may contain the endpoint words', () => {
    expect(parseEndpoint('')).toEqual({ kind: 'base' });
    expect(parseEndpoint('_catalog')).toEqual({ kind: 'catalog' });
    expect(parseEndpoint('a/b/manifests/latest')).toEqual({ kind: 'manifest', name: 'a/b', reference: 'latest' });
    expect(parseEndpoint('blobs/blobs/blobs/x')).toEqual({ kind: 'blob', name: 'blobs/blobs', digest: 'x' });
    expect(parseEndpoint('manifests/tags/list')).toEqual({ kind: 'tags', name: 'manifests' });
    expect(parseEndpoint('a/blobs/uploads/')).toEqual({ kind: 'uploads', name: 'a' });
    expect(parseEndpoint('a/blobs/uploads')).toEqual({ kind: 'uploads', name: 'a' });
    expect(parseEndpoint('a/blobs/uploads/id-1')).toEqual({ kind: 'upload', name: 'a', id: 'id-1' });
    expect(parseEndpoint('a/referrers/sha256:x')).toEqual({ kind: 'referrers', name: 'a', digest: 'sha256:x' });
  });

  it('percent-encoding is decoded before matching; what it hides is left for the name grammar', () => {
    const e = parseEndpoint('%2e%2e/manifests/latest');
    expect(e).toEqual({ kind: 'manifest', name: '..', reference: 'latest' });
    expect(isRepositoryName((e as { name: string }).name)).toBe(false);
    expect(parseEndpoint('a/manifests/%2e%2e')).toEqual({ kind: 'manifest', name: 'a', reference: '..' });
  });

  it('an encoded slash stays inside its part instead of reshaping the path', () => {
    expect(parseEndpoint('a/manifests/x%2Fy')).toEqual({ kind: 'manifest', name: 'a', reference: 'x/y' });
    expect(parseEndpoint('a/blobs/sha256:%2e%2e%2fx')).toEqual({ kind: 'blob', name: 'a', digest: 'sha256:../x' });
    expect(parseEndpoint('a/blobs/uploads/%2e%2e%2f%2e%2e')).toEqual({ kind: 'upload', name: 'a', id: '../..' });
    // In a name an encoded slash is just a slash, as Docker Distribution reads it.
    expect(parseEndpoint('a%2Fb/tags/list')).toEqual({ kind: 'tags', name: 'a/b' });
  });

  it('malformed escapes and unknown endpoints are undefined', () => {
    expect(parseEndpoint('a/manifests/%zz')).toBeUndefined();
    expect(parseEndpoint('a/unknown/x')).toBeUndefined();
    expect(parseEndpoint('a/manifests/')).toBeUndefined();
    expect(parseEndpoint('a/manifests/x/y')).toBeUndefined();
  });
});

describe('storage layout refuses what the grammars refuse', () => {
  const layout = new Layout('/srv/root');
  const inside = (p: string): boolean => p.startsWith(`/srv/root${path.sep}`) && !p.split(path.sep).includes('..');

  it('paths of valid inputs stay under the root', () => {
    expect(inside(layout.blob(`sha256:${HEX64}`))).toBe(true);
    expect(layout.blob(`sha256:${HEX64}`)).toBe(`/srv/root/blobs/sha256/aa/${HEX64}`);
    expect(inside(layout.tag('a/b', 'v1'))).toBe(true);
    expect(inside(layout.upload('0f8fad5b-d9cb-469f-a165-70867728950e'))).toBe(true);
  });

  it.each(['..', '../x', '/abs', 'A', 'a/../../b', '%2e%2e', 'a\u0000'])('repository %j throws', (name) => {
    expect(() => layout.repository(name)).toThrow(/refusing/);
    expect(() => layout.tags(name)).toThrow(/refusing/);
  });

  it.each(['..', '../../x', '.x', 'a/b', ''])('tag %j throws', (tag) => {
    expect(() => layout.tag('a', tag)).toThrow(/refusing/);
  });

  it.each([`sha256:../${'a'.repeat(61)}`, 'sha256:x', `SHA256:${HEX64}`, `md5:${HEX64}`])('digest %j throws', (digest) => {
    expect(() => layout.blob(digest as `sha256:${string}`)).toThrow(/refusing/);
    expect(() => layout.layerLink('a', digest as `sha256:${string}`)).toThrow(/refusing/);
  });

  it.each(['..', '../uploads', 'not-a-uuid', '0F8FAD5B-D9CB-469F-A165-70867728950E', ''])('upload id %j throws', (id) => {
    expect(() => layout.upload(id)).toThrow(/refusing/);
  });
});
