// An upstream registry that answers every request with raw bytes on loopback: seeded junk (any
// status, wrong or missing lengths and digests, odd challenges and redirects, random bodies) for
// fuzzing what the pull-through cache makes of a misbehaving upstream, or one fixed answer for a
// regression test. Every answer closes its connection, so nothing ever waits on it.
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Rng } from './http-fuzz.js';

export interface RawUpstream {
  url: string;
  /** How many requests it has answered. */
  requests(): number;
  close(): Promise<void>;
}

/** Seeded junk, one answer per request: any status, wrong lengths and digests, odd challenges and redirects. */
export function junkAnswers(rng: Rng): (port: number) => Buffer {
  return (port) => junkAnswer(rng, port);
}

function junkAnswer(rng: Rng, port: number): Buffer {
  const status = rng.pick([200, 200, 200, 206, 301, 307, 401, 403, 404, 429, 500, 503]);
  const body = rng.pick([
    () => Buffer.alloc(0),
    () => rng.bytes(rng.int(4096)),
    () => Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'x', digest: `sha256:${rng.hex(64)}`, size: 2 }, layers: [] })),
    () => Buffer.from(rng.pick(['{}', '{"errors":[]}', '{"token":""}', '{"token":"a.b.c"}', 'null', '{'])),
  ])();
  const headers: string[] = [];
  if (rng.chance(0.7)) headers.push(`Content-Type: ${rng.pick(['application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json', 'application/octet-stream', 'text/html', '', 'x'.repeat(300)])}`);
  if (rng.chance(0.5)) headers.push(`Docker-Content-Digest: ${rng.pick([`sha256:${rng.hex(64)}`, 'sha256:x', '', `md5:${rng.hex(32)}`])}`);
  const length = rng.pick([body.length, body.length, body.length + 10, Math.max(0, body.length - 1), -1, 'abc']);
  if (length !== -1) headers.push(`Content-Length: ${length}`);
  if (status === 401) headers.push(`WWW-Authenticate: ${rng.pick([`Bearer realm="http://127.0.0.1:${port}/token",service="junk"`, 'Bearer realm="http://127.0.0.1:1/token"', 'Basic realm="x"', 'Bearer', 'Bearer realm="ftp://x"', ''])}`);
  if (status === 301 || status === 307) headers.push(`Location: ${rng.pick([`http://127.0.0.1:${port}/x`, 'http://127.0.0.1:1/x', '/relative', '', 'ftp://x'])}`);
  if (status === 206) headers.push(`Content-Range: ${rng.pick(['bytes 0-1/2', 'bytes */0', 'x'])}`);
  return Buffer.concat([Buffer.from(`HTTP/1.1 ${status} Junk\r\n${headers.map((h) => `${h}\r\n`).join('')}Connection: close\r\n\r\n`, 'latin1'), body]);
}

/** A loopback server that answers each request with `answer(its port, the request's head)` and closes the connection. */
export async function startRawUpstream(answer: (port: number, head: string) => Buffer): Promise<RawUpstream> {
  let count = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let seen = '';
    socket.on('data', (chunk: Buffer) => {
      seen += chunk.toString('latin1');
      if (!seen.includes('\r\n\r\n') || socket.writableEnded) return;
      count += 1;
      const { port } = server.address() as AddressInfo;
      socket.end(answer(port, seen));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests: () => count,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
