// Where the registry role's resident memory goes at rest (issue 16): `npx tsx test/bench/memory-breakdown.ts`.
// Starts layover as the image runs it (spawnLayover compiled: the image's node flags and malloc
// settings), waits out idle-gc.ts's two collections, then prints RSS by mapping (the node binary's
// file pages, anonymous memory, malloc's main heap, shared libraries) beside V8's own figures,
// read inside the process through a preloaded SIGUSR2 handler.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { spawnLayover } from '../helpers/layover.js';
import { makeTempDir } from '../helpers/temp-dir.js';

const MiB = 2 ** 20;
const REST_MS = 10_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const PRELOAD = `
const v8 = require('node:v8');
process.on('SIGUSR2', () => {
  const mib = (n) => +(n / ${MiB}).toFixed(2);
  const mu = Object.fromEntries(Object.entries(process.memoryUsage()).map(([k, v]) => [k, mib(v)]));
  const spaces = Object.fromEntries(v8.getHeapSpaceStatistics().filter((s) => s.space_size).map((s) => [s.space_name, { size: mib(s.space_size), used: mib(s.space_used_size) }]));
  const code = Object.fromEntries(Object.entries(v8.getHeapCodeStatistics()).map(([k, v]) => [k, mib(v)]));
  require('node:fs').writeFileSync(process.env.MEMORY_BREAKDOWN_OUT, JSON.stringify({ memoryUsage: mu, spaces, code }));
});
`;

/** Resident KiB per mapping name ([anon] for unnamed mappings). */
function rssByMapping(pid: number): Map<string, number> {
  const by = new Map<string, number>();
  let name = '';
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const header = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (header) {
      name = header[1] || '[anon]';
      continue;
    }
    const rss = /^Rss:\s+(\d+)/.exec(line);
    if (rss) by.set(name, (by.get(name) ?? 0) + Number(rss[1]));
  }
  return by;
}

const tmp = makeTempDir('layover-memory-');
try {
  const preload = path.join(tmp.path, 'preload.cjs');
  const out = path.join(tmp.path, 'v8.json');
  writeFileSync(preload, PRELOAD);
  process.env.MEMORY_BREAKDOWN_OUT = out;
  const l = await spawnLayover({}, { logLevel: 'warn', compiled: true, nodeArgs: ['--require', preload] });
  try {
    await sleep(REST_MS);
    const status = readFileSync(`/proc/${l.pid}/status`, 'utf8');
    const kib = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
    const mappings = [...rssByMapping(l.pid)].sort((a, b) => b[1] - a[1]).filter(([, k]) => k >= 100);
    process.kill(l.pid, 'SIGUSR2');
    await sleep(500);
    console.log(`RSS ${(kib('VmRSS') / 1024).toFixed(1)} MiB: file-backed ${(kib('RssFile') / 1024).toFixed(1)}, anonymous ${(kib('RssAnon') / 1024).toFixed(1)}; threads ${kib('Threads')}`);
    for (const [name, k] of mappings) console.log(`${(k / 1024).toFixed(1).padStart(7)} MiB  ${name}`);
    console.log(readFileSync(out, 'utf8'));
  } finally {
    await l.close();
  }
} finally {
  tmp.cleanup();
}
