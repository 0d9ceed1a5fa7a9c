// Closing a connection without losing the answer just written on it.
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

/**
 * How long a closing connection keeps reading (and discarding) after its answer has been written
 * and its write side shut: a socket closed with unread bytes, or bytes still arriving, sends a TCP
 * reset, and a reset can reach the client before it has read the answer (Go waits 500 ms too).
 */
export const LINGER_MS = 500;

/** Shuts the write side once what is queued has been sent, discards what still arrives, and destroys the socket after LINGER_MS. */
export function closeGently(socket: Duplex): void {
  socket.end();
  socket.resume();
  setTimeout(() => socket.destroy(), LINGER_MS).unref();
}

/**
 * Node ends a `Connection: close` answer with `socket.destroySoon()`, which destroys the socket
 * as soon as the answer is written, and the reset that follows can cost the client its answer:
 * this socket closes gently instead.
 */
export function lingerOnClose(socket: Socket): void {
  socket.destroySoon = () => closeGently(socket);
}
