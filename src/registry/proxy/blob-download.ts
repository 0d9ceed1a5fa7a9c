// One upstream blob download shared by every client that asks for it meanwhile. The body is
// written to a temporary file (the store's BlobWriter, which hashes it) and, as it arrives, kept
// in a bounded in-memory window of the most recent upstream chunks. A client that keeps pace with
// the download is served those very chunks (no copy, no read back from disk); one that falls
// behind the window, or arrives late, reads the file until it catches up. The upstream is paced
// by the disk, never by a client, so a slow client cannot hold back the cache fill or the others.
// The last byte is released only after the digest is verified: a client can never receive a
// complete response of corrupt bytes; on a mismatch every reader is destroyed, which cuts its
// connection. A client that only wants the bytes gets its last byte on that verdict, while the
// commit (data sync, rename, metadata, link) runs behind it: 40-100 ms of a cold 256 MiB pull
// here. A reader that links on completion (a peer replica's follower) waits for the commit.
// Nothing unverified is ever stored; a commit that fails after the verdict stores nothing and
// only cuts readers still waiting for the commit.
//
// Upstream chunks are views of the socket's slabs (slab-connector.ts). A piece is given back
// (releaseChunk) once it is on disk, out of the window and in no client write that has not
// called back, so its slab can be read into again. Whenever that is not certain (a write that
// failed, a stream that keeps what it is given, a failed download) nothing more is given back,
// and the garbage collector takes the slabs.
import { open, type FileHandle } from 'node:fs/promises';
import { finished, type Readable } from 'node:stream';
import { StreamSink, type BlobSink } from '../blob-response.js';
import { RegistryError } from '../errors.js';
import { asStorageError } from '../storage/errors.js';
import type { BlobStat, BlobWriter, ByteRange } from '../storage/store.js';
import { releaseChunk } from './slab-connector.js';


/** Read size for clients behind the window. */
const READ_CHUNK = 512 * 1024;
/**
 * Upstream bytes waiting for the disk before the upstream is paused. Chunks go to the disk as soon
 * as the previous write is done, often one 64 KiB chunk per write: holding them for 256 KiB
 * writes left the cold pull's CPU the same (event loop 0.807 vs 0.803 CPU-s, 6 alternating
 * pairs in test/bench/_cold-ab.ts).
 */
const WRITE_BUFFER = 1 * 1024 * 1024;
/** Bytes already on disk still kept in memory for clients at the download's heels. */
const WINDOW = 1 * 1024 * 1024;
/** At the download's heels, a client waits for this much before the next write (fewer, larger writes)... */
const MIN_BATCH = 256 * 1024;
/** ...and takes at most this much in one. */
const MAX_BATCH = 1024 * 1024;

type State = { kind: 'running' } | { kind: 'committed'; stat: BlobStat } | { kind: 'failed'; error: Error };

/**
 * When a reader may take the last byte: once the blob is committed (stored and linked), or once
 * its digest is verified, with the commit still running behind it. `verified` is for a client
 * that only wants the bytes; whoever links on completion (a peer replica's follower) needs
 * `committed`.
 */
export type ReleaseOn = 'verified' | 'committed';

/** A chunk as it came from the upstream, and where it starts in the blob. */
interface Piece { start: number; bytes: Buffer }

export interface DownloadHooks {
  /** Counts body bytes as they arrive. */
  onBytes?(n: number): void;
  /** Runs once the digest is verified, before any reader may take the last byte on that verdict. */
  onVerified?(): void;
  /** Runs after the verified commit and before the last byte is released to readers that wait for the commit (link the repository). */
  onCommitted?(stat: BlobStat): Promise<void>;
}

export class BlobDownload {
  private state: State = { kind: 'running' };
  /** The writer's verdict on the digest came back good (the commit may still be running or fail). */
  private verified = false;
  private wake: () => void = () => undefined;
  private tick: Promise<void>;
  /** One descriptor shared by every reader (positional reads); it outlives the rename on commit. */
  private readHandle: FileHandle | undefined;
  private users = 1; // the download itself
  /** Bytes received from the upstream so far. */
  private received = 0;
  /** The window: contiguous pieces covering [windowStart, received); `first` skips dropped ones. */
  private pieces: Piece[] = [];
  private first = 0;
  /** Whether pieces may still be given back to their slabs (see the top of this file). */
  private giving = true;
  /** Pieces out of the window that a client write still holds, oldest first. */
  private held: Piece[] = [];
  /** The bytes [start, end) of each client write from the window that has not called back yet. */
  private readonly inFlight = new Set<{ start: number; end: number }>();
  /** Settles when the download is committed or has failed (it never rejects; see `error`). */
  settled: Promise<void> = Promise.resolve();
  /** The upstream body, for abort(). */
  private source: Readable | undefined;

  private constructor(readonly size: number, private readonly writer: BlobWriter) {
    this.tick = new Promise((resolve) => (this.wake = resolve));
  }

  /** Starts writing `source` (the upstream body, `size` bytes) and returns at once. */
  static async start(source: Readable, size: number, writer: BlobWriter, hooks: DownloadHooks = {}): Promise<BlobDownload> {
    const download = new BlobDownload(size, writer);
    try {
      download.readHandle = await open(writer.path, 'r');
    } catch (err) {
      source.on('error', () => undefined);
      source.destroy();
      await writer.abort();
      throw err;
    }
    download.source = source;
    download.settled = download.run(source, hooks);
    return download;
  }

  /** Bytes received from the upstream so far (for a watch on its rate). */
  get bytesReceived(): number {
    return this.received;
  }

  /** Fails the download with `err`, as a broken upstream body would: nothing is committed. */
  abort(err: Error): void {
    if (this.state.kind === 'running') this.source?.destroy(err);
  }

  get error(): Error | undefined {
    return this.state.kind === 'failed' ? this.state.error : undefined;
  }

  get committed(): boolean {
    return this.state.kind === 'committed';
  }

  /**
   * True once the download is over and nobody reads it: its file handle and window are gone, so
   * a client that got hold of it just then must read the stored blob instead.
   */
  get released(): boolean {
    return this.users === 0;
  }

  private async run(source: Readable, hooks: DownloadHooks): Promise<void> {
    const writer = this.writer;
    const written = () => {
      this.trimWindow();
      this.notify();
    };
    // Bytes handed to the writer so far: never more than the declared size (an upstream that
    // sends more is cut here, whatever its HTTP framing let through).
    let accepted = 0;
    const write = (chunks: Buffer[], done: (err?: Error | null) => void) => {
      for (const chunk of chunks) accepted += chunk.length;
      if (accepted > this.size) {
        done(new RegistryError('SIZE_INVALID', `upstream sent more than the ${this.size} bytes it declared`, undefined, { status: 502 }));
        return;
      }
      writer.write(chunks).then(() => {
        written();
        done();
      }, (err: unknown) => done(asStorageError(err)));
    };
    const counter = hooks.onBytes;
    // Readers at the heels wait for MIN_BATCH anyway: waking them (and counting) per upstream
    // chunk, which can be a few KiB, only cost CPU.
    let unannounced = 0;
    const announce = () => {
      if (unannounced === 0) return;
      counter?.(unannounced);
      unannounced = 0;
      this.notify();
    };
    // Attached in the same tick as pump()'s listener, so this sees every chunk it writes, on arrival.
    source.on('data', (chunk: Buffer) => {
      this.pieces.push({ start: this.received, bytes: chunk });
      this.received += chunk.length;
      unannounced += chunk.length;
      if (unannounced >= MIN_BATCH) announce();
    });
    source.once('end', announce);
    try {
      await this.pump(source, write);
      if (writer.verify) {
        await writer.verify().catch((err: unknown) => Promise.reject(asStorageError(err)));
        hooks.onVerified?.();
        this.verified = true;
        this.notify();
      }
      // Failures from here on are the storage's (a full disk), not the upstream's: the caller
      // must not count them against the upstream. The commit's verdicts on the bytes stay as they are.
      const stat = await writer.commit().catch((err: unknown) => Promise.reject(asStorageError(err)));
      await hooks.onCommitted?.(stat).catch((err: unknown) => Promise.reject(asStorageError(err)));
      this.state = { kind: 'committed', stat };
    } catch (err) {
      // A write to the file may still be in flight and reading its chunks.
      this.giving = false;
      announce();
      await writer.abort().catch(() => undefined);
      this.state = { kind: 'failed', error: err instanceof Error ? err : new Error(String(err)) };
      this.dropWindow();
    }
    this.notify();
    this.release();
  }

  /**
   * Feeds the upstream body to `write`: chunks that arrive during a write go together into the
   * next one (one writev), and
   * the body is paused while WRITE_BUFFER bytes wait. Settles once every byte is written, or
   * with the body's error, a premature end, or the first write's failure (the body is destroyed).
   * It does what a pipeline into a Writable with writev did, without a stream's machinery per
   * chunk: over alternating cold pulls of 256 MiB the process took 0.84+0.61 CPU-s (user+system)
   * instead of 0.95+0.68, its event loop 0.36+0.39 instead of 0.43+0.42 (means of 4 pulls each).
   */
  private pump(source: Readable, write: (chunks: Buffer[], done: (err?: Error | null) => void) => void): Promise<void> {
    return new Promise((resolve, reject) => {
      let queue: Buffer[] = [];
      let queued = 0;
      let writing = false;
      let ended = false;
      let over = false;
      const fail = (err: Error) => {
        if (over) return;
        over = true;
        source.destroy();
        reject(err);
      };
      const flush = () => {
        if (over) return;
        if (queue.length === 0) {
          if (ended) {
            over = true;
            resolve();
          }
          return;
        }
        const chunks = queue;
        queue = [];
        queued = 0;
        writing = true;
        if (source.isPaused() && !ended) source.resume();
        write(chunks, (err) => {
          writing = false;
          if (err) fail(err);
          else flush();
        });
      };
      source.on('data', (chunk: Buffer) => {
        queue.push(chunk);
        queued += chunk.length;
        if (!writing) flush();
        else if (queued >= WRITE_BUFFER) source.pause();
      });
      finished(source, (err) => {
        if (err) return fail(err);
        ended = true;
        if (!writing) flush();
      });
    });
  }

  /** Drops pieces that are on disk while the window holds more than WINDOW bytes of them. */
  private trimWindow(): void {
    const onDisk = this.writer.written;
    const pieces = this.pieces;
    let i = this.first;
    while (i < pieces.length) {
      const piece = pieces[i] as Piece;
      const end = piece.start + piece.bytes.length;
      if (end > onDisk || onDisk - end < WINDOW) break;
      i += 1;
    }
    if (i === this.first) return;
    if (this.giving) for (let k = this.first; k < i; k++) this.held.push(pieces[k] as Piece);
    this.first = i;
    this.giveBack();
    // Compact now and then rather than shift() per piece.
    if (this.first > 256) {
      this.pieces = pieces.slice(this.first);
      this.first = 0;
    }
  }

  private dropWindow(): void {
    this.pieces = [];
    this.first = 0;
    this.held = [];
  }

  /**
   * Gives back the pieces out of the window that no client write in flight holds. Only pieces
   * inside such a write are kept: a client that stops reading pins one batch, not the download.
   */
  private giveBack(): void {
    if (this.held.length === 0) return;
    if (!this.giving) {
      this.held = [];
      return;
    }
    const kept: Piece[] = [];
    for (const piece of this.held) {
      const start = piece.start;
      const end = start + piece.bytes.length;
      let inUse = false;
      for (const write of this.inFlight) if (start < write.end && write.start < end) inUse = true;
      if (inUse) kept.push(piece);
      else releaseChunk(piece.bytes);
    }
    this.held = kept;
  }

  /** Where the window starts: bytes before it are read from the file. */
  private windowStart(): number {
    return (this.pieces[this.first] as Piece | undefined)?.start ?? this.received;
  }

  private notify(): void {
    const wake = this.wake;
    this.tick = new Promise((resolve) => (this.wake = resolve));
    wake();
  }

  private release(): void {
    this.users -= 1;
    if (this.users > 0) return;
    // Nobody reads any more and every write has called back; committed, every byte is on disk.
    if (this.committed && this.giving) {
      for (let k = this.first; k < this.pieces.length; k++) this.held.push(this.pieces[k] as Piece);
      this.giveBack();
    }
    this.dropWindow();
    void this.readHandle?.close().catch(() => undefined);
  }

  /** Whether a reader that releases on `on` may take the last byte now. */
  private complete(on: ReleaseOn): boolean {
    return this.state.kind === 'committed' || (on === 'verified' && this.verified);
  }

  /**
   * What stops a reader that releases on `on`: the download's failure, except for a reader of
   * verified bytes, who keeps reading them from the open file even if the commit then fails.
   */
  private failure(on: ReleaseOn): Error | undefined {
    return on === 'verified' && this.verified ? undefined : this.error;
  }

  /** How many bytes from the start readers may take now: all but the last until the verdict. */
  private available(on: ReleaseOn): number {
    if (this.complete(on)) return this.size;
    return Math.max(0, Math.min(this.received, this.size - 1));
  }

  /** Index of the window piece that holds byte `pos` (pos within the window). */
  private pieceAt(pos: number): number {
    const pieces = this.pieces;
    // Readers are nearly always at the download's heels: look from the end.
    let i = pieces.length - 1;
    while (i > this.first && (pieces[i] as Piece).start > pos) i -= 1;
    return i;
  }

  /** The window's bytes from..to (exclusive) as slices of the upstream chunks; `from` must be in the window. */
  private slices(from: number, to: number): Buffer[] {
    const out: Buffer[] = [];
    let i = this.pieceAt(from);
    let pos = from;
    while (pos < to) {
      const piece = this.pieces[i] as Piece;
      const start = pos - piece.start;
      const stop = Math.min(piece.bytes.length, to - piece.start);
      out.push(start === 0 && stop === piece.bytes.length ? piece.bytes : piece.bytes.subarray(start, stop));
      pos += stop - start;
      i += 1;
    }
    return out;
  }

  /**
   * Sends bytes start..end (inclusive) to `response` as they arrive: from the window in batches
   * (one writev each), from the file when behind it. The status line goes with the first bytes
   * (or the end), so a download that fails before then throws its error, and the client is told
   * why; once anything is sent, a failure cuts the connection. The last byte waits for `on`.
   */
  async send(response: BlobSink, start: number, end: number, on: ReleaseOn = 'committed'): Promise<void> {
    if (this.error) throw this.error;
    if (this.released) throw new Error('BlobDownload: released; read the stored blob');
    this.users += 1;
    // Behind the window: one buffer, refilled only after the socket has taken its bytes (a
    // stream keeps the chunks it is given, so it gets a fresh one each time).
    let buffer: Buffer | undefined;
    let begun = false;
    const begin = () => {
      if (begun) return;
      begun = true;
      response.begin();
    };
    try {
      let pos = start;
      while (pos <= end) {
        const failed = this.failure(on);
        if (failed) throw failed;
        const limit = Math.min(this.available(on), end + 1);
        // Once every byte is in, nothing more comes before the verdict: no point waiting for a batch.
        const worthIt = limit - pos >= MIN_BATCH || limit === end + 1 || this.received === this.size || this.complete(on);
        if (pos < limit && worthIt) {
          const windowStart = this.windowStart();
          if (pos >= windowStart) {
            const chunks = this.slices(pos, Math.min(limit, pos + MAX_BATCH));
            if (!response.releasesChunks) this.giving = false;
            const write = { start: pos, end: pos };
            for (const chunk of chunks) pos += chunk.length;
            write.end = pos;
            this.inFlight.add(write);
            try {
              begin();
              await response.write(chunks);
            } catch (err) {
              // The socket may hold the chunks until it closes.
              this.giving = false;
              throw err;
            } finally {
              this.inFlight.delete(write);
              this.giveBack();
            }
          } else {
            if (!buffer || !response.releasesChunks) buffer = Buffer.allocUnsafe(READ_CHUNK);
            const length = Math.min(READ_CHUNK, windowStart - pos, limit - pos);
            const { bytesRead } = await (this.readHandle as FileHandle).read(buffer, 0, length, pos);
            if (bytesRead === 0) throw new Error('cached download ended early');
            pos += bytesRead;
            begin();
            await response.write([buffer.subarray(0, bytesRead)]);
          }
          continue;
        }
        await response.until(this.tick);
      }
      // An empty range (a 0-byte blob) has no last byte to hold back: its status line alone would
      // be the complete answer, so it too waits for the verdict.
      while (end < start && !this.complete(on)) {
        const failed = this.failure(on);
        if (failed) throw failed;
        await response.until(this.tick);
      }
      begin();
      response.end();
    } catch (err) {
      if (!begun && err === this.error) throw err;
      response.abort(err instanceof Error ? err : new Error(String(err)));
    } finally {
      this.release();
    }
  }

  /** A stream of the blob (or an inclusive range of it) that follows the download, as send() does. */
  open(range?: ByteRange, on: ReleaseOn = 'committed'): Readable {
    if (this.error) throw this.error;
    if (this.released) throw new Error('BlobDownload: released; read the stored blob');
    const sink = new StreamSink();
    this.send(sink, range?.start ?? 0, range?.end ?? this.size - 1, on).catch((err: unknown) => sink.abort(err instanceof Error ? err : new Error(String(err))));
    return sink.stream;
  }
}
