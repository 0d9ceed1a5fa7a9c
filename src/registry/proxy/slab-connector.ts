// Upstream sockets that read into slabs. A plain socket reads into a fresh 64 KiB buffer every
// time, from malloc, shrunk to size with realloc: a 256 MiB blob is 4,096 such buffers, alive
// until V8 collects them. Measured on one undici GET of three 256 MiB blobs: 0.24 CPU-s per blob,
// half of it in the kernel handing out and trimming pages, and a malloc heap fragmented to
// 50-65 MiB that stays resident after the downloads. Read with `onread` into consecutive
// views of one large slab instead, the same GETs cost 0.08-0.1 CPU-s per blob, and a slab
// (from mmap) goes back to the system as a whole once the last chunk cut from it is collected.
//
// The chunks pushed to undici are those views, and undici hands out body chunks as views of
// them: no byte is copied.
//
// Fresh memory is itself the expensive part on this kind of machine (a page the process has
// not touched costs a fault and a zeroing; 1 MiB slabs straight from mmap raised the kernel
// time of those GETs from 0.2 to 0.67 s). So full-size slabs are reused: a consumer that knows
// it is done with a chunk (the blob download, once the bytes are on disk and no client write
// holds them) gives it back with releaseChunk(). A slab goes back to the pool only when its
// socket has moved on to another slab and every byte read into it was given back; bytes nobody
// gives back (headers, manifests, a download that failed or handed chunks to a stream) keep
// their slab out of the pool for good, and the garbage collector takes it as before.
import type { Socket } from 'node:net';
import { buildConnector } from 'undici';

/** The largest slab. Above glibc's mmap threshold, so each is its own mapping. */
const MAX_SLAB = 1024 * 1024;
/** The first slab of a connection: most carry only small manifests and token answers. */
const FIRST_SLAB = 64 * 1024;
/** What one read may fill (what libuv asks for on a plain socket). */
const READ_SIZE = 64 * 1024;
/** A slab with less room than this left is retired for a new one. */
const MIN_READ = 16 * 1024;

/** Full-size slabs whose bytes are all given back, ready for the next one a socket needs. */
const pool: Buffer[] = [];
/** Enough for one download in flight (window, disk queue, client batches); more is RSS at rest. */
const POOL_MAX = 8;
/** An idle process gives its pool back to the system. */
const POOL_IDLE_MS = 30_000;
let poolTimer: NodeJS.Timeout | undefined;

interface SlabState {
  slab: Buffer;
  /** Bytes the socket read into it. */
  filled: number;
  /** Bytes given back with releaseChunk(). */
  released: number;
  /** The socket has moved on to another slab. */
  retired: boolean;
}

const states = new WeakMap<ArrayBufferLike, SlabState>();

function takeSlab(size: number): Buffer {
  const slab = (size === MAX_SLAB ? pool.pop() : undefined) ?? Buffer.allocUnsafeSlow(size);
  if (size === MAX_SLAB) states.set(slab.buffer, { slab, filled: 0, released: 0, retired: false });
  return slab;
}

function recycle(state: SlabState): void {
  if (!state.retired || state.released !== state.filled) return;
  states.delete(state.slab.buffer);
  if (pool.length >= POOL_MAX) return;
  pool.push(state.slab);
  poolTimer ??= setTimeout(() => {
    pool.length = 0;
    poolTimer = undefined;
  }, POOL_IDLE_MS).unref();
  poolTimer.refresh();
}

/**
 * Gives back a chunk read by an upstream socket: the caller holds no reference to its bytes any
 * more and none is in flight (a write that has not called back). Each byte must be given back
 * at most once; a chunk from anywhere else is ignored.
 */
export function releaseChunk(chunk: Buffer): void {
  const state = states.get(chunk.buffer);
  if (!state) return;
  state.released += chunk.length;
  recycle(state);
}

/** Slabs waiting in the pool (for tests). */
export function pooledSlabs(): number {
  return pool.length;
}

/** Empties the pool (for tests). */
export function emptySlabPool(): void {
  pool.length = 0;
}

interface OnRead {
  buffer: () => Buffer;
  callback: (this: Socket, bytes: number, buffer: Buffer) => boolean;
}

/**
 * Read buffers for one socket: consecutive views of a slab. Slabs double from FIRST_SLAB to
 * MAX_SLAB while the connection keeps reading, so an idle keep-alive connection holds at most
 * one small slab, and a blob download takes a new 1 MiB one every 16 reads.
 */
export function slabReads(): OnRead {
  let size = FIRST_SLAB;
  let slab = takeSlab(size);
  let offset = 0;
  return {
    buffer() {
      if (slab.length - offset < MIN_READ) {
        const state = states.get(slab.buffer);
        if (state) {
          state.retired = true;
          recycle(state);
        }
        size = Math.min(MAX_SLAB, size * 2);
        slab = takeSlab(size);
        offset = 0;
      }
      return slab.subarray(offset, offset + READ_SIZE);
    },
    callback(bytes, buffer) {
      offset += bytes;
      const state = states.get(buffer.buffer);
      if (state) state.filled += bytes;
      // push() returning false stops reading until the consumer (undici's parser) reads again,
      // exactly as for a socket's own buffers.
      return this.push(buffer.subarray(0, bytes));
    },
  };
}

/**
 * An undici `connect` function: undici's own connector (TLS, timeouts, keep-alive), with the
 * socket reading into slabs. `options` are buildConnector's (ca, rejectUnauthorized, timeout).
 */
export function slabConnector(options: buildConnector.BuildOptions): buildConnector.connector {
  return (connectOptions, callback) => {
    // onread is per socket, and undici spreads the connector's options into net/tls.connect:
    // one connector per connection. (It costs the TLS session cache: a new connection to an
    // upstream does a full handshake; connections are pooled and kept alive.)
    const connect = buildConnector({ ...options, onread: slabReads() } as buildConnector.BuildOptions);
    connect(connectOptions, callback);
  };
}
