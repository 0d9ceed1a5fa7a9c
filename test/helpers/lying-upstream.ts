// An upstream that lies, on a bare socket on 127.0.0.1: it answers each request with whatever
// status, headers and bytes the test says, whether or not they agree with each other (a declared
// Content-Length, then more or fewer bytes, or a body that stalls short of what it declared). Node's HTTP server would refuse
// to send a body that contradicts its Content-Length, hence plain TCP. One request per connection.
import { createServer, type Socket } from 'node:net';

export interface LyingRequest { method: string; path: string }

export interface LyingAnswer {
  status: number;
  /** Sent as written: nothing is added but `Connection: close`. */
  headers?: Record<string, string>;
  /** Bytes after the headers, whatever the headers say (none for HEAD unless given). */
  body?: Buffer;
  /** After `body`, keep the connection open (a body still "on its way") until the client hangs up. */
  hold?: boolean;
}

export interface LyingUpstream {
  url: string;
  requests(): LyingRequest[];
  /** Body bytes written to clients for requests whose path matches. */
  bodyBytesSent(path?: string | RegExp): number;
  /** Whether every connection that asked for a matching path has been closed by the client. */
  hungUp(path?: string | RegExp): boolean;
  close(): Promise<void>;
}

export async function startLyingUpstream(answer: (req: LyingRequest) => LyingAnswer): Promise<LyingUpstream> {
  const seen: (LyingRequest & { sent: number; closed: boolean })[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) return;
      socket.off('data', onData);
      const [method = '', target = ''] = head.subarray(0, end).toString('latin1').split('\r\n')[0]?.split(' ') ?? [];
      const entry = { method, path: target.split('?')[0] ?? '', sent: 0, closed: false };
      seen.push(entry);
      socket.on('close', () => (entry.closed = true));
      const a = answer(entry);
      const lines = [`HTTP/1.1 ${a.status} X`, ...Object.entries(a.headers ?? {}).map(([k, v]) => `${k}: ${v}`), 'Connection: close', '', ''];
      socket.write(lines.join('\r\n'));
      if (a.body) {
        socket.write(a.body);
        entry.sent += a.body.length;
      }
      if (!a.hold) socket.end();
    };
    socket.on('data', onData);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address !== 'object') throw new Error('no address');
  const matches = (p: string, want?: string | RegExp) => want === undefined || (typeof want === 'string' ? p === want : want.test(p));
  return {
    url: `http://127.0.0.1:${address.port}`,
    requests: () => seen.map(({ method, path }) => ({ method, path })),
    bodyBytesSent: (path) => seen.filter((r) => matches(r.path, path)).reduce((n, r) => n + r.sent, 0),
    hungUp: (path) => seen.filter((r) => matches(r.path, path)).every((r) => r.closed),
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
