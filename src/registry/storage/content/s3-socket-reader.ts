// Positional reads of an object from a plain-http object store (Ceph RGW, MinIO on a cluster
// network) for blob responses, read from the TCP socket straight into the caller's buffer.
//
// Why not an HTTP client library: every socket read of a net.Socket without `onread` lands in a
// fresh 64 KiB ArrayBuffer, so a 256 MiB GET allocates 256 MiB of short-lived external memory;
// V8 answers with a full (mark-compact) collection every few hundred milliseconds, which was
// the largest part of layover's CPU per streamed GET (measured per 256 MiB: undici 0.56-1.19
// CPU-s, node:http 1.41, this reader 0.26, docker-registry 0.17-0.21). Node's documented
// `onread` option lets each read land in memory we choose. The protocol needed is tiny: one GET
// of a presigned URL with a Range, a status line and headers, then exactly Content-Length body
// bytes on a connection of its own (`Connection: close`). Anything else (TLS endpoints) goes
// through undici (S3Objects.get).
import net from 'node:net';
import { ObjectStoreUnavailableError } from '../errors.js';
import type { BlobReader } from '../store.js';
import { asObjectStoreOutage } from './s3-client.js';

/**
 * Socket reads land here only for the response head and the first read after a pause; every
 * other read goes straight into the waiting caller's buffer, as large as its free space.
 */
const SCRATCH_SIZE = 64 * 1024;
/** A response head larger than this is not an object store's. */
const MAX_HEAD = 64 * 1024;
/** No bytes from the object store for this long: the read fails. */
const IDLE_MS = 120_000;

class NotFound extends Error {}

interface PendingRead {
  target: Buffer;
  filled: number;
  length: number;
  resolve(filled: number): void;
  reject(err: Error): void;
}

/** One ranged GET (`bytes=start-`) on its own connection, read on demand into callers' buffers. */
class RangedResponse {
  private readonly socket: net.Socket;
  private readonly scratch = Buffer.allocUnsafe(SCRATCH_SIZE);
  /** Received bytes no read has taken yet (a copy: the scratch buffer is reused by the next read). */
  private spill: Buffer | undefined;
  private head: Buffer | undefined = Buffer.alloc(0);
  /** Body bytes still to come from the socket, once the head is parsed. */
  private remaining = -1;
  private pending: PendingRead | undefined;
  private failure: Error | undefined;
  private readonly opened: Promise<void>;
  private settleOpen: { resolve(): void; reject(err: Error): void } | undefined;

  constructor(url: URL, private readonly start: number) {
    this.opened = new Promise<void>((resolve, reject) => (this.settleOpen = { resolve, reject }));
    this.opened.catch(() => undefined);
    this.socket = net.connect({
      host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: Number(url.port || 80),
      noDelay: true,
      onread: { buffer: () => this.nextBuffer(), callback: (n: number, buffer: Uint8Array) => this.received(n, buffer) },
    });
    // Counted only while a read waits: a slow client may hold the socket paused for longer.
    this.socket.setTimeout(IDLE_MS);
    this.socket.on('timeout', () => this.socket.destroy(Object.assign(new Error(`no bytes from the object store for ${IDLE_MS / 1000} s`), { code: 'ETIMEDOUT' })));
    this.socket.on('error', (err) => this.fail(asObjectStoreOutage(err, 'GetObject') ?? err));
    this.socket.on('close', () => this.fail(new ObjectStoreUnavailableError('GetObject: the object store closed the connection mid-body', undefined)));
    this.socket.write(`GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nRange: bytes=${start}-\r\nConnection: close\r\n\r\n`);
  }

  /** Resolves once the head says the body follows; rejects with NotFound on 404. */
  ready(): Promise<void> {
    return this.opened;
  }

  /** Fills `target` up to `length` bytes (fewer only at the body's end). */
  read(target: Buffer, length: number): Promise<number> {
    if (this.failure) return Promise.reject(this.failure);
    let filled = 0;
    if (this.spill) {
      filled = this.spill.copy(target, 0, 0, Math.min(length, this.spill.length));
      this.spill = filled < this.spill.length ? this.spill.subarray(filled) : undefined;
    }
    if (filled === length || this.remaining === 0) return Promise.resolve(filled);
    return new Promise<number>((resolve, reject) => {
      this.pending = { target, filled, length, resolve, reject };
      this.socket.setTimeout(IDLE_MS);
      this.socket.resume();
    });
  }

  close(): void {
    this.socket.destroy();
  }

  /** Where the next socket read goes (Node asks after each read): the waiting read's free space, else the scratch buffer. */
  private nextBuffer(): Buffer {
    const p = this.pending;
    if (!p || this.head || this.remaining <= 0 || this.spill) return this.scratch;
    return p.target.subarray(p.filled, p.filled + Math.min(p.length - p.filled, this.remaining));
  }

  /** `n` new bytes at the start of `buffer`; false pauses the socket until the next read. */
  private received(n: number, buffer: Uint8Array): boolean {
    const p = this.pending;
    if (buffer !== this.scratch) {
      // Read straight into p's free space (nextBuffer), never beyond it nor beyond the body.
      if (!p) {
        // Cannot happen (nextBuffer hands out a caller's buffer only while its read waits); a
        // throw here would be uncaught, so the read fails instead.
        this.socket.destroy(new Error('S3 GET: a socket read with no read waiting'));
        return false;
      }
      p.filled += n;
      this.remaining -= n;
    } else {
      let data: Buffer = this.scratch.subarray(0, n);
      if (this.head) {
        const body = this.parseHead(data);
        if (!body) return true;
        data = body;
      }
      data = data.subarray(0, Math.max(0, this.remaining)); // nothing beyond the body is ours
      this.remaining -= data.length;
      if (p) {
        const taken = data.copy(p.target, p.filled, 0, Math.min(data.length, p.length - p.filled));
        p.filled += taken;
        data = data.subarray(taken);
      }
      if (data.length) this.spill = this.spill ? Buffer.concat([this.spill, data]) : Buffer.from(data);
    }
    if (p && (p.filled === p.length || this.remaining === 0)) {
      this.pending = undefined;
      p.resolve(p.filled);
    }
    if (this.remaining === 0) {
      this.socket.destroy();
      return false;
    }
    if (this.pending) return true;
    this.socket.setTimeout(0);
    return false;
  }

  /** Gathers the response head; once complete returns the body bytes after it (maybe none). */
  private parseHead(data: Buffer): Buffer | undefined {
    const head = Buffer.concat([this.head as Buffer, data]);
    const end = head.indexOf('\r\n\r\n');
    if (end < 0) {
      if (head.length > MAX_HEAD) this.socket.destroy(new Error('S3 GET: response head too large'));
      else this.head = head;
      return undefined;
    }
    this.head = undefined;
    const [statusLine = '', ...lines] = head.toString('latin1', 0, end).split('\r\n');
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0);
    const headers = new Map(lines.map((l) => [l.slice(0, l.indexOf(':')).trim().toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
    const length = headers.get('content-length');
    let err: Error | undefined;
    if (status === 404) err = new NotFound('object not found');
    else if (status >= 500) err = new ObjectStoreUnavailableError(`GetObject: HTTP ${status}`, undefined);
    else if (status !== 206 && (status !== 200 || this.start > 0)) err = new Error(`S3 GET: HTTP ${status || statusLine.slice(0, 100)}`);
    else if (headers.has('transfer-encoding') || !length || !/^\d+$/.test(length)) err = new Error('S3 GET: a body without Content-Length');
    if (err) {
      this.fail(err);
      this.socket.destroy();
      return undefined;
    }
    this.remaining = Number(length);
    this.settleOpen?.resolve();
    this.settleOpen = undefined;
    // A copy: the scratch buffer is overwritten by the next socket read.
    return Buffer.from(head.subarray(end + 4));
  }

  private fail(err: Error): void {
    if (this.remaining === 0 && !this.head) return; // done: a close is expected
    this.failure ??= err;
    this.settleOpen?.reject(this.failure);
    this.settleOpen = undefined;
    const p = this.pending;
    this.pending = undefined;
    p?.reject(this.failure);
  }
}

/**
 * A BlobReader over presigned plain-http URLs: sequential reads continue one ranged GET, a read
 * elsewhere opens another there. `presign` gives a fresh URL for each GET.
 */
export class SocketObjectReader implements BlobReader {
  private response: RangedResponse | undefined;
  private position = -1;

  constructor(private readonly size: number, private readonly presign: () => Promise<string>) {}

  async read(target: Buffer, length: number, position: number): Promise<number> {
    if (position >= this.size || length <= 0) return 0;
    if (!this.response || position !== this.position) {
      this.response?.close();
      this.response = undefined;
      const response = new RangedResponse(new URL(await this.presign()), position);
      this.response = response;
      try {
        await response.ready();
      } catch (err) {
        throw err instanceof NotFound ? new Error('blob is gone') : err;
      }
      this.position = position;
    }
    const n = await this.response.read(target, Math.min(length, this.size - position));
    this.position += n;
    return n;
  }

  async close(): Promise<void> {
    this.response?.close();
    this.response = undefined;
  }
}
