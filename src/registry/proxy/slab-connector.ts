// Upstream sockets that read into reused slabs. A plain socket reads into a fresh 64 KiB buffer
// every time, from malloc, shrunk to size with realloc: a 256 MiB blob is 4,096 such buffers,
// alive until V8 collects them. Measured with one undici GET after another of three 256 MiB
// blobs: 0.24 CPU-s per blob, more than a third of it in the kernel handing out and trimming
// pages, and a malloc heap fragmented to 50-65 MiB that stayed resident afterwards. A socket
// reading with `onread` into one reused buffer took 0.06-0.08 CPU-s per blob: the floor.
//
// Here a socket reads into consecutive views of a slab; the chunks pushed to undici are those
// views, and its body chunks are views of them (its parser works on a copy), so the download
// holds the very slab memory. Fresh memory is itself expensive on this kind of machine (a page
// the process has not touched costs a fault and a zeroing): 1 MiB slabs straight from mmap,
// never reused, raised the kernel time of those GETs to 0.22 s per blob. So full-size slabs
// are reused. A consumer that is done with a chunk (the blob download, once the bytes are on
// disk and no client write holds them) gives it back with releaseChunk(); a slab goes back to
// the pool only when its socket has moved on to another slab and every byte read into it was
// given back. Bytes nobody gives back (headers, manifests, a download that failed or handed its
// chunks to a stream) keep their slab out of the pool for good; the garbage collector takes it.
// So do bytes undici gets as a copy: it reads the socket in paused mode, and when several reads
// are waiting (an event loop running late), Readable.read() joins them into a new buffer. Reuse
// is therefore best effort; a chunk is never given back while anything can still read it.
// In test/bench/proxy.ts a 256 MiB cache miss went from 0.86 to 0.5-0.64 CPU-s, and the peak
// RSS under 16 concurrent misses from 155-178 MiB to 132 (115-123 with the Dockerfile's 4 MiB
// young generation as well).
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
    const connect = buildConnector({ ...options, onread: slabReads() });
    connect(connectOptions, callback);
  };
}
