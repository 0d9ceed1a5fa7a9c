// The node role's forwarding against a scripted registry on 127.0.0.1 (a bare TCP server that
// answers exactly the bytes each case gives): what it sends the registry, how it frames what it
// gets back, and that anything malformed or cut short reaches the client as a 502 or a broken
// transfer, never as a different or shorter body.
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lineLogger } from '../../src/node/line-logger.js';
import { startNode, type NodeRole } from '../../src/node/server.js';

interface Received { head: string; body: Buffer }

/** A registry that records each request and answers with what `answer` writes. */
class ScriptedRegistry {
  readonly received: Received[] = [];
  answer: (socket: Socket, request: Received) => void = (s) => s.end('HTTP/1.1 204 No Content\r\n\r\n');
  private constructor(readonly server: Server) {}

  static async start(): Promise<ScriptedRegistry> {
    const registry = new ScriptedRegistry(createServer());
    registry.server.on('connection', (socket) => registry.serve(socket));
    registry.server.listen(0, '127.0.0.1');
    await once(registry.server, 'listening');
    return registry;
  }

  get url(): string {
    const address = this.server.address() as { port: number };
    return `http://127.0.0.1:${address.port}`;
  }

  private serve(socket: Socket): void {
    let bytes = Buffer.alloc(0);
    let answered = false;
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      bytes = Buffer.concat([bytes, chunk]);
      const end = bytes.indexOf('\r\n\r\n');
      if (answered || end < 0) return;
      const head = bytes.subarray(0, end).toString('latin1');
      const rest = bytes.subarray(end + 4);
      const length = /\r\ncontent-length: (\d+)/i.exec(head)?.[1];
      const chunked = /\r\ntransfer-encoding: chunked/i.test(head);
      const complete = length !== undefined ? rest.length >= Number(length) : chunked ? rest.includes('0\r\n\r\n') : true;
      if (!complete) return;
      answered = true;
      const request = { head, body: rest };
      this.received.push(request);
      this.answer(socket, request);
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

let registry: ScriptedRegistry;
let node: NodeRole;

beforeAll(async () => {
  registry = await ScriptedRegistry.start();
  node = await startNode({ host: '127.0.0.1', port: 0, registry: registry.url }, { logger: lineLogger('silent') });
});

afterAll(async () => {
  await node?.close();
  await registry?.close();
});

describe('what the registry receives', () => {
  it('the request line and end-to-end fields as sent, hop-by-hop ones dropped, one connection per request', async () => {
    registry.answer = (s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    const res = await fetch(`${node.url}/v2/a/b/manifests/latest?x=1`, { headers: { authorization: 'Bearer t', te: 'trailers', 'x-custom': 'v' } });
    expect(await res.text()).toBe('ok');
    const { head } = registry.received.at(-1)!;
    const lines = head.split('\r\n');
    expect(lines[0]).toBe('GET /v2/a/b/manifests/latest?x=1 HTTP/1.1');
    expect(lines).toContain('authorization: Bearer t');
    expect(lines).toContain('x-custom: v');
    expect(lines).toContain(`host: ${new URL(node.url).host}`);
    expect(lines).toContain('connection: close');
    expect(head).not.toMatch(/\r\nte:/i);
    expect(head).not.toMatch(/content-length|transfer-encoding/i);
  });

  it('a body with a length is forwarded with it; a streamed body is chunked, byte for byte', async () => {
    registry.answer = (s, r) => s.end(`HTTP/1.1 202 Accepted\r\nContent-Length: ${String(r.body.length).length}\r\n\r\n${r.body.length}`);
    const fixed = Buffer.alloc(70_000, 7);
    const a = await fetch(`${node.url}/v2/a/blobs/uploads/`, { method: 'POST', body: fixed });
    expect(a.status).toBe(202);
    expect(registry.received.at(-1)!.head).toMatch(/\r\ncontent-length: 70000(\r\n|$)/);
    expect(registry.received.at(-1)!.body.equals(fixed)).toBe(true);

    const pieces = [Buffer.from('first '), Buffer.from('second '), Buffer.alloc(100_000, 0x41)];
    const stream = new ReadableStream<Uint8Array>({ start(c) { for (const p of pieces) c.enqueue(p); c.close(); } });
    const b = await fetch(`${node.url}/v2/a/blobs/uploads/x`, { method: 'PATCH', body: stream, duplex: 'half' } as RequestInit);
    expect(b.status).toBe(202);
    const { head, body } = registry.received.at(-1)!;
    expect(head).toMatch(/\r\ntransfer-encoding: chunked/);
    // Decode what the registry got: it must be exactly the client's bytes.
    const decoded: Buffer[] = [];
    let at = 0;
    for (;;) {
      const lf = body.indexOf('\r\n', at);
      const size = parseInt(body.toString('latin1', at, lf), 16);
      expect(Number.isInteger(size), `chunk size at ${at}`).toBe(true);
      if (size === 0) break;
      decoded.push(body.subarray(lf + 2, lf + 2 + size));
      at = lf + 2 + size + 2;
    }
    expect(Buffer.concat(decoded).equals(Buffer.concat(pieces))).toBe(true);
  });
});

describe('what the client gets back', () => {
  it('a chunked answer, decoded and re-framed for the client', async () => {
    registry.answer = (s) => {
      s.write('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n');
      s.write('7\r\n{"repos');
      setTimeout(() => s.end('\r\n6\r\n":[]}\n\r\n0\r\n\r\n'), 20);
    };
    const res = await fetch(`${node.url}/v2/_catalog`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('{"repos":[]}\n');
  });

  it('an interim 100 before the answer is skipped; a body delimited by the connection\'s end is whole', async () => {
    registry.answer = (s) => s.end('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end');
    const res = await fetch(`${node.url}/v2/x`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('until the end');
  });

  it('HEAD: the length is passed on, no body is waited for', async () => {
    registry.answer = (s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nDocker-Content-Digest: sha256:abc\r\n\r\n');
    const res = await fetch(`${node.url}/v2/a/blobs/sha256:abc`, { method: 'HEAD', signal: AbortSignal.timeout(5_000) });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe('1234');
    expect(res.headers.get('docker-content-digest')).toBe('sha256:abc');
  });

  it.each([
    ['a length beside a transfer coding', 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n'],
    ['a malformed status line', 'HTTP/1.0200 OK\r\n\r\n'],
    ['a folded header', 'HTTP/1.1 200 OK\r\nX-A: 1\r\n continued\r\nContent-Length: 0\r\n\r\n'],
    ['no answer at all', ''],
  ])('%s from the registry → 502 in the registry error format', async (_name, answer) => {
    registry.answer = (s) => s.end(answer);
    const res = await fetch(`${node.url}/v2/`);
    expect(res.status).toBe(502);
    expect(await res.json()).toMatchObject({ errors: [{ code: 'UNAVAILABLE' }] });
  });

  it('a body cut short of its length breaks the client\'s transfer instead of ending it', async () => {
    registry.answer = (s) => s.end(`HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n${'x'.repeat(5000)}`);
    const res = await fetch(`${node.url}/v2/a/blobs/sha256:def`);
    expect(res.status).toBe(200);
    await expect(res.arrayBuffer()).rejects.toThrow();
  });

  it('a head that never ends is refused, not buffered without bound', async () => {
    registry.answer = (s) => s.end(`HTTP/1.1 200 OK\r\n${'X-Pad: y\r\n'.repeat(10_000)}`);
    const res = await fetch(`${node.url}/v2/`);
    expect(res.status).toBe(502);
  });
});
