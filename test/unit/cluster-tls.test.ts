// The connector a replica follows its peers through when the registry serves TLS
// (cluster-tls.ts): only a peer presenting this replica's own certificate gets a request, whatever
// address it is reached at; a certificate from the same CA, one that names the address, or plain
// HTTP is refused before a byte of the request (and its replica token) is sent.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { certificateFingerprint, pinnedPeerConnector } from '../../src/registry/proxy/cluster-tls.js';
import { runTool } from '../helpers/run-tool.js';
import { makeTempDir, type TempDir } from '../helpers/temp-dir.js';

let tmp: TempDir;
const servers: (http.Server | https.Server)[] = [];
const seen = new Map<string, number>();
let agent: Agent;
let own: string;
let sibling: string;
let plain: string;

async function serve(name: string, server: http.Server | https.Server): Promise<string> {
  server.on('request', (_req: http.IncomingMessage, res: http.ServerResponse) => {
    seen.set(name, (seen.get(name) ?? 0) + 1);
    res.end(name);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `${server instanceof https.Server ? 'https' : 'http'}://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

beforeAll(async () => {
  tmp = makeTempDir('layover-cluster-tls-');
  const openssl = (args: string[]) => runTool('openssl', args, { cwd: tmp.path });
  await openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=layover test CA']);
  // Two leaves from one CA: ours names the registry's public name only; the sibling even names 127.0.0.1.
  for (const [name, san] of [['own', 'DNS:registry.layover.test'], ['sibling', 'IP:127.0.0.1']]) {
    await openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
    await runTool('sh', ['-c', `printf 'subjectAltName=${san}\\n' > ${name}.ext`], { cwd: tmp.path });
    await openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`]);
  }
  const pair = (name: string) => ({ cert: readFileSync(`${tmp.path}/${name}.crt`), key: readFileSync(`${tmp.path}/${name}.key`) });
  own = await serve('own', https.createServer(pair('own')));
  sibling = await serve('sibling', https.createServer(pair('sibling')));
  plain = await serve('plain', http.createServer());
  agent = new Agent({ connect: pinnedPeerConnector(certificateFingerprint(readFileSync(`${tmp.path}/own.crt`, 'utf8')), 3_000) });
});

afterAll(async () => {
  await agent?.close();
  for (const s of servers) s.close();
  tmp?.cleanup();
});

describe('pinnedPeerConnector', () => {
  it('reaches a peer presenting this replica\'s own certificate at an address the certificate does not name, on new connections too', async () => {
    for (let i = 0; i < 3; i++) {
      const res = await request(`${own}/x`, { dispatcher: agent, reset: true });
      expect(await res.body.text()).toBe('own');
    }
    expect(seen.get('own')).toBe(3);
  });

  it('refuses a certificate from the same CA that names the address, before any request', async () => {
    await expect(request(`${sibling}/x`, { dispatcher: agent })).rejects.toThrow(/is not this replica's own/);
    expect(seen.get('sibling')).toBeUndefined();
  });

  it('refuses a plain-HTTP peer', async () => {
    await expect(request(`${plain}/x`, { dispatcher: agent })).rejects.toThrow(/follows only TLS peers/);
    expect(seen.get('plain')).toBeUndefined();
  });
});
