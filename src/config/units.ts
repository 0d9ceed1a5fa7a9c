// Durations ("48h", "60s", "1h30m") and sizes ("10GiB", "512MB") as people write them in YAML.

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const SIZE_UNITS: Record<string, number> = {
  '': 1, b: 1,
  k: 1e3, kb: 1e3, m: 1e6, mb: 1e6, g: 1e9, gb: 1e9, t: 1e12, tb: 1e12,
  ki: 2 ** 10, kib: 2 ** 10, mi: 2 ** 20, mib: 2 ** 20, gi: 2 ** 30, gib: 2 ** 30, ti: 2 ** 40, tib: 2 ** 40,
};

/** Milliseconds in a duration string; a bare number is seconds. Throws on anything else. */
export function parseDuration(input: string | number): number {
  if (typeof input === 'number') {
    if (!Number.isFinite(input) || input < 0) throw new Error(`not a duration: ${input}`);
    return input * 1000;
  }
  const text = input.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text) * 1000;
  const parts = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$/.test(text) ? text.match(/\d+(?:\.\d+)?(?:ms|s|m|h|d)/g) : null;
  if (!parts) throw new Error(`not a duration: "${input}" (use e.g. 30s, 10m, 48h)`);
  let total = 0;
  for (const part of parts) {
    const [, value, unit] = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(part) as RegExpExecArray;
    total += Number(value) * (DURATION_UNITS[unit as string] as number);
  }
  return total;
}

/** Bytes in a size string ("10GiB", "500MB", "1048576"). Throws on anything else. */
export function parseSize(input: string | number): number {
  if (typeof input === 'number') {
    if (!Number.isSafeInteger(input) || input < 0) throw new Error(`not a size: ${input}`);
    return input;
  }
  const match = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(input.trim());
  const factor = match ? SIZE_UNITS[(match[2] as string).toLowerCase()] : undefined;
  if (!match || factor === undefined) throw new Error(`not a size: "${input}" (use e.g. 512MiB, 10GiB)`);
  return Math.floor(Number(match[1]) * factor);
}

/** host:port → parts; accepts "[::1]:5000", "0.0.0.0:8443", ":5000". */
export function parseListen(input: string): { host: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(input.trim());
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) throw new Error(`not a host:port: "${input}"`);
  return { host: match[1] ?? (match[2] || '0.0.0.0'), port };
}
