// The one summary table every benchmark prints at its end: each row a measured figure of
// layover, the peer it is compared with in the same run, their ratio and the target. run.ts
// gathers the tables of all the benchmarks it ran into one overall table, from the marked JSON
// line this prints last (SUMMARY_MARK).

export const SUMMARY_MARK = 'bench-summary ';

export interface SummaryRow {
  metric: string;
  /** layover's figure (a median where runs repeat). */
  layover: number | undefined;
  /** The peer's figure in the same run (docker-registry, a bare server, direct…), when there is one. */
  peer?: number | undefined;
  /** What the peer is, when it differs from the table's default. */
  peerName?: string;
  /** The spread of layover's runs, e.g. "0.41–0.52" (min–max). */
  spread?: string;
  unit?: string;
  digits?: number;
  /** The ratio's own value when it is not layover ÷ peer (e.g. a ratio of ratios). */
  ratio?: number | undefined;
  /** The target, as text ("≤ 1.0", "≤ 70 MiB"), and whether this run met it. */
  target?: string;
  met?: boolean;
}

export interface Summary {
  bench: string;
  peer: string;
  note?: string;
  rows: SummaryRow[];
}

export function ratioOf(row: SummaryRow): number | undefined {
  if (row.ratio !== undefined) return row.ratio;
  const { layover: a, peer: b } = row;
  return a === undefined || b === undefined || b === 0 ? undefined : a / b;
}

/** "min–max" of a run's samples, for the spread column. */
export function spreadOf(xs: number[], digits = 3): string | undefined {
  if (xs.length < 2) return undefined;
  return `${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)}`;
}

function cell(n: number | undefined, digits: number): string {
  return n === undefined || !Number.isFinite(n) ? '-' : n.toFixed(digits);
}

/** The table's lines (shared with run.ts's overall table). */
export function summaryLines(summaries: Summary[], withBench: boolean): string[] {
  const rows = summaries.flatMap((s) => s.rows.map((r) => {
    const digits = r.digits ?? 3;
    const met = r.met === undefined ? '' : r.met ? 'met' : 'NOT met';
    return [
      ...(withBench ? [s.bench] : []),
      `${r.metric}${r.unit ? `, ${r.unit}` : ''}`,
      cell(r.layover, digits),
      r.spread ?? '',
      r.peer === undefined ? '' : `${cell(r.peer, digits)} (${r.peerName ?? s.peer})`,
      cell(ratioOf(r), 2),
      r.target ? `${r.target} ${met}`.trim() : met,
    ];
  }));
  const header = [...(withBench ? ['bench'] : []), 'metric', 'layover', 'spread', 'peer', 'ratio', 'target'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 || (withBench && i === 1) ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)];
}

/** Prints the benchmark's summary table, then the marked JSON line run.ts reads. */
export function printSummary(summary: Summary): void {
  console.log(`\nsummary: ${summary.bench} (ratio = layover ÷ ${summary.peer} unless the row names its own)${summary.note ? `; ${summary.note}` : ''}`);
  for (const l of summaryLines([summary], false)) console.log(l);
  console.log(`${SUMMARY_MARK}${JSON.stringify(summary)}`);
}
