// The overview's charts over time, drawn with uPlot (served by layover itself: /ui/vendor/uplot.js,
// loaded before this module as a classic script that defines window.uPlot).

const COLORS = ['#2f6fed', '#e07b00', '#1e8a4c', '#a23bc4', '#c8372d', '#0a8f9c', '#6b7385'];
/** Namespaces beyond this many (the largest first) are drawn as one "other" line. */
const MAX_LINES = 6;
const charts = new Map();

export function formatBytes(n) {
  if (n === undefined || n === null) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

function draw(container, series, data) {
  charts.get(container)?.destroy();
  const width = Math.max(240, container.clientWidth);
  const opts = {
    width,
    height: 220,
    series: [{}, ...series.map((s, i) => ({ label: s, stroke: COLORS[i % COLORS.length], width: 2, value: (_u, v) => formatBytes(v) }))],
    axes: [{}, { size: 84, values: (_u, ticks) => ticks.map(formatBytes) }],
    // From zero, with headroom above the highest point so a peak is not cut by the frame.
    scales: { y: { range: (_u, _min, max) => [0, Math.max(max * 1.15, 1)] } },
    legend: { live: false },
    cursor: { drag: { x: false, y: false } },
  };
  const chart = new window.uPlot(opts, data, container);
  charts.set(container, chart);
  return chart;
}

/** Bytes served from the cache vs fetched upstream, per sample. */
export function drawTraffic(container, samples) {
  const xs = samples.map((s) => Math.round(s.at / 1000));
  return draw(container, ['Served from cache', 'Fetched upstream'], [xs, samples.map((s) => s.servedFromCacheBytes), samples.map((s) => s.fetchedUpstreamBytes)]);
}

/** Each namespace's bytes over time (the largest few; the rest together). */
export function drawStorage(container, samples) {
  const latest = samples[samples.length - 1]?.namespaces ?? {};
  const all = new Set(samples.flatMap((s) => Object.keys(s.namespaces)));
  const ranked = [...all].sort((a, b) => (latest[b] ?? 0) - (latest[a] ?? 0) || a.localeCompare(b));
  const shown = ranked.slice(0, MAX_LINES);
  const rest = ranked.slice(MAX_LINES);
  const xs = samples.map((s) => Math.round(s.at / 1000));
  const data = [xs, ...shown.map((ns) => samples.map((s) => s.namespaces[ns] ?? null))];
  const labels = [...shown];
  if (rest.length) {
    labels.push(`${rest.length} other`);
    data.push(samples.map((s) => rest.reduce((a, ns) => a + (s.namespaces[ns] ?? 0), 0)));
  }
  return draw(container, labels, data);
}

/** Keeps the charts as wide as their cards when the window changes. */
export function resizeCharts() {
  for (const [container, chart] of charts) chart.setSize({ width: Math.max(240, container.clientWidth), height: 220 });
}
