// Where each thing lives in the bucket. Keys are built only from validated digests, validated
// upload ids and names this process makes up (random hex, offsets): no string from a request
// ever becomes part of a key.
import { randomBytes } from 'node:crypto';
import { parseDigest, type Digest } from '../../digest.js';
import { isUploadId } from '../layout.js';

/** One stored chunk of an upload session: `<offset>-<nonce>` under the session's prefix. */
const CHUNK_NAME = /^\d{16}-[0-9a-f]{16}$/;
const TMP_NAME = /^[0-9a-f]{32}$/;

export function isChunkName(name: string): boolean {
  return CHUNK_NAME.test(name);
}

export class S3Keys {
  readonly blobs: string;
  readonly uploads: string;
  readonly tmp: string;

  /** `prefix` is validated by the configuration: empty, or path segments ending in '/'. */
  constructor(readonly prefix: string) {
    this.blobs = `${prefix}blobs/`;
    this.uploads = `${prefix}uploads/`;
    this.tmp = `${prefix}_tmp/`;
  }

  blob(digest: Digest): string {
    const parsed = parseDigest(digest);
    if (!parsed) throw new Error(`storage: refusing invalid digest ${String(digest).slice(0, 80)}`);
    return `${this.blobs}${parsed.algorithm}/${parsed.hex.slice(0, 2)}/${parsed.hex}`;
  }

  /** The digest a blob key names; undefined for anything else found under blobs/. */
  digestOf(key: string): Digest | undefined {
    if (!key.startsWith(this.blobs)) return undefined;
    const [algorithm, two, hex, ...rest] = key.slice(this.blobs.length).split('/');
    if (rest.length || !hex || two !== hex.slice(0, 2)) return undefined;
    return parseDigest(`${algorithm}:${hex}`)?.digest;
  }

  upload(id: string): string {
    if (!isUploadId(id)) throw new Error('storage: refusing invalid upload id');
    return `${this.uploads}${id}/`;
  }

  /** A fresh name for a chunk that starts at `offset` (unique: a retry never overwrites). */
  newChunkName(offset: number): string {
    return `${String(offset).padStart(16, '0')}-${randomBytes(8).toString('hex')}`;
  }

  chunk(id: string, name: string): string {
    if (!isChunkName(name)) throw new Error('storage: refusing invalid chunk name');
    return `${this.upload(id)}${name}`;
  }

  /** A temporary object: written, verified, then copied to its blob key and deleted. */
  newTmp(): string {
    return `${this.tmp}${randomBytes(16).toString('hex')}`;
  }

  isTmp(key: string): boolean {
    return key.startsWith(this.tmp) && TMP_NAME.test(key.slice(this.tmp.length));
  }
}
