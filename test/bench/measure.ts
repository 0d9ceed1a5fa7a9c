// What the benchmarks share: timing a GET with curl (a client whose cost is not ours), medians,
// and writing a large reproducible blob to disk.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { seededChunks } from '../helpers/random-bytes.js';
import { requireTool } from '../helpers/run-tool.js';

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/** One curl GET to /dev/null; resolves with seconds, checking the status and the size. */
export function curlGet(url: string, expectedSize: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(requireTool('curl'), ['-sS', '-o', '/dev/null', '-w', '%{http_code} %{size_download} %{time_total}', url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.once('close', () => {
      const [code, size, seconds] = out.trim().split(' ');
      if (code !== '200' || Number(size) !== expectedSize) reject(new Error(`GET ${url}: HTTP ${code}, ${size} bytes ${err}`));
      else resolve(Number(seconds));
    });
  });
}

/** Writes `size` seeded bytes to `file`; resolves with their sha256 digest. */
export async function writeBlobFile(file: string, seed: string, size: number): Promise<string> {
  const hash = createHash('sha256');
  const out = createWriteStream(file);
  for (const chunk of seededChunks(seed, size)) {
    hash.update(chunk);
    if (!out.write(chunk)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  return `sha256:${hash.digest('hex')}`;
}
