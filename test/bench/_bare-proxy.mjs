// The floor for test/bench/proxy.ts: the least a Node 20 pull-through can do on this machine.
// A `node:http` server that forwards every GET to one upstream with undici's `request` and
// streams the body back; plain JavaScript, run by `node` itself (no loader), with the image's
// flags. Modes (argv[3]):
//   bare         pipe the body to the response: receive + send, nothing else
//   verify       + SHA-256 of every chunk on the event loop, the last chunk held back until the
//                digest (the URL's) is checked: what "verified before the last byte" costs at least
//   verify-file  + every chunk written to a file as well (fs WriteStream, deleted afterwards)
// Usage: node test/bench/_bare-proxy.mjs UPSTREAM_URL MODE [DIR]; prints `listening PORT`.
// The leading underscore keeps `npm run bench` from running it as a benchmark of its own.
import { createHash } from 'node:crypto';
import { createWriteStream, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import path from 'node:path';
import { request } from 'undici';

const [upstream, mode = 'bare', dir = '/tmp'] = process.argv.slice(2);
if (!upstream || !['bare', 'verify', 'verify-file'].includes(mode)) {
  console.error('usage: _bare-proxy.mjs UPSTREAM_URL bare|verify|verify-file [DIR]');
  process.exit(2);
}
let files = 0;

const server = createServer(async (req, res) => {
  let up;
  try {
    up = await request(upstream + req.url, { method: 'GET' });
  } catch (err) {
    res.writeHead(502).end(String(err));
    return;
  }
  const headers = { 'content-type': up.headers['content-type'] ?? 'application/octet-stream' };
  if (up.headers['content-length']) headers['content-length'] = up.headers['content-length'];
  if (up.headers['docker-content-digest']) headers['docker-content-digest'] = up.headers['docker-content-digest'];
  res.writeHead(up.statusCode, headers);
  const body = up.body;
  // Only a blob has a digest to check; anything else (/v2/) is passed through.
  const want = /\/blobs\/sha256:([0-9a-f]{64})$/.exec(req.url)?.[1];
  if (mode === 'bare' || !want) {
    body.pipe(res);
    body.on('error', () => res.destroy());
    return;
  }
  const hash = createHash('sha256');
  const file = mode === 'verify-file' ? path.join(dir, `bare-${process.pid}-${files++}`) : undefined;
  const out = file ? createWriteStream(file) : undefined;
  // One chunk held back: it goes out only once the digest matches.
  let held;
  let waiting = 0;
  const drained = () => {
    if (--waiting === 0) body.resume();
  };
  res.on('drain', drained);
  out?.on('drain', drained);
  body.on('data', (chunk) => {
    hash.update(chunk);
    if (out && !out.write(chunk)) waiting += 1;
    if (held && !res.write(held)) waiting += 1;
    held = chunk;
    if (waiting > 0) body.pause();
  });
  body.on('error', () => res.destroy());
  body.on('end', () => {
    const finish = () => {
      if (hash.digest('hex') !== want) {
        res.destroy();
        return;
      }
      res.end(held);
    };
    if (!out) return finish();
    out.end(() => {
      rmSync(file, { force: true });
      finish();
    });
  });
});
server.keepAliveTimeout = 5_000;
server.listen(0, '127.0.0.1', () => console.log(`listening ${server.address().port}`));
