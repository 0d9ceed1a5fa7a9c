// `npm run bench`: runs every benchmark in test/bench/ one after another (they measure the
// machine, so never in parallel), each in its own process, passing the arguments through; then
// prints one overall table of every benchmark's summary rows. BENCH_ONLY=registry,webhook runs
// only those.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { SUMMARY_MARK, summaryLines, type Summary } from './summary.js';

const dir = path.dirname(fileURLToPath(import.meta.url));
const HELPERS = new Set(['run.ts', 'measure.ts', 'summary.ts']);
const only = process.env.BENCH_ONLY?.split(',').map((s) => s.trim()).filter(Boolean);
const benches = readdirSync(dir)
  .filter((f) => f.endsWith('.ts') && !HELPERS.has(f) && !f.startsWith('_'))
  .filter((f) => !only || only.includes(f.replace(/\.ts$/, '')))
  .sort();

const summaries: Summary[] = [];
const failed: string[] = [];
for (const file of benches) {
  console.log(`\n== ${file}`);
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(dir, file), ...process.argv.slice(2)], { stdio: ['inherit', 'pipe', 'inherit'] });
  // Passed through as it comes; the marked summary line is kept for the overall table.
  createInterface({ input: child.stdout! }).on('line', (line) => {
    if (line.startsWith(SUMMARY_MARK)) summaries.push(JSON.parse(line.slice(SUMMARY_MARK.length)) as Summary);
    else console.log(line);
  });
  const [code] = (await once(child, 'close')) as [number | null];
  if (code !== 0) failed.push(file);
}

console.log(`\n== overall summary of ${benches.length} benchmark(s)${failed.length ? `; FAILED: ${failed.join(', ')}` : ''}`);
for (const l of summaryLines(summaries, true)) console.log(l);
const without = benches.filter((f) => !summaries.some((s) => `${s.bench}.ts` === f));
if (without.length) console.log(`no summary from: ${without.join(', ')}`);
process.exit(failed.length ? 1 : 0);
