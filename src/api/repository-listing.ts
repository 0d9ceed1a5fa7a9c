// A page of GET /api/v1/repositories written straight as text from the metadata's summary rows:
// no RepositoryInfo object, Date or serializer pass per row (at 50,000 repositories those were
// most of the route's CPU after the statement itself). Two forms of the same rows:
//   JSON (the default, what the web UI and users read): byte for byte what JSON.stringify
//   wrote for `{ repositories: RepositoryInfo[], next? }`;
//   TSV (`Accept: text/tab-separated-values`, what `layover ls` asks for): one header line naming
//   the columns, then one line a repository, about a third of the JSON's bytes; `next` goes in
//   a Link header, as on the Distribution API's catalog.
import { namespaceOf } from '../registry/names.js';
import type { RepositorySummary } from '../registry/storage/metadata/types.js';

export const TSV_TYPE = 'text/tab-separated-values';

/** The TSV's columns, in order (a reader finds them by name in the header line). */
export const TSV_COLUMNS = ['name', 'mirror', 'tags', 'manifests', 'size', 'pushedAt'] as const;

/** Printable ASCII without `"` and `\`: JSON.stringify writes such a string as it is, in quotes. */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

function jsonString(s: string): string {
  return PLAIN.test(s) ? `"${s}"` : JSON.stringify(s);
}

/** What JSON.stringify writes for a number (null for NaN and infinities). */
function jsonNumber(n: number): string {
  return Number.isFinite(n) ? `${n}` : 'null';
}

const pad = (width: number) => (_: unknown, i: number) => String(i).padStart(width, '0');
const TWO_DIGITS = Array.from({ length: 100 }, pad(2));
const THREE_DIGITS = Array.from({ length: 1000 }, pad(3));
const DAY_MS = 86_400_000;
/** The first 11 characters of toISOString ("YYYY-MM-DDT") by day since the epoch; bounded. */
const days = new Map<number, string>();

/**
 * What `new Date(ms).toISOString()` writes (and throws), as infoOf wrote it: the date part once
 * per day, the time from tables of digits. A Date and its toISOString per row were a sixth of
 * the route's CPU. Times before 1970 or after 9999, or not whole milliseconds: toISOString.
 */
export function isoOf(ms: number): string {
  if (!(Number.isInteger(ms) && ms >= 0 && ms < 253_402_300_800_000)) return new Date(ms).toISOString();
  const day = Math.floor(ms / DAY_MS);
  let date = days.get(day);
  if (date === undefined) {
    if (days.size >= 4096) days.clear();
    date = new Date(day * DAY_MS).toISOString().slice(0, 11);
    days.set(day, date);
  }
  let rest = ms - day * DAY_MS;
  const milli = rest % 1000;
  rest = (rest - milli) / 1000;
  const second = rest % 60;
  rest = (rest - second) / 60;
  const minute = rest % 60;
  return `${date}${TWO_DIGITS[(rest - minute) / 60]}:${TWO_DIGITS[minute]}:${TWO_DIGITS[second]}.${THREE_DIGITS[milli]}Z`;
}

/**
 * `{"repositories":[…],"next":…}` exactly as JSON.stringify wrote the objects infoOf built
 * (name, namespace, mirror, tags, manifests, size, pushedAt when known; then next when given).
 */
export function repositoriesJson(rows: readonly RepositorySummary[], isMirror: (namespace: string) => boolean, next: string | undefined): string {
  let out = '{"repositories":[';
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]!;
    const namespace = namespaceOf(r.name);
    if (i) out += ',';
    out += `{"name":${jsonString(r.name)},"namespace":${jsonString(namespace)},"mirror":${isMirror(namespace)},"tags":${jsonNumber(r.tags)},"manifests":${jsonNumber(r.manifests)},"size":${jsonNumber(r.size)}`;
    out += r.pushedAt === undefined ? '}' : `,"pushedAt":"${isoOf(r.pushedAt)}"}`;
  }
  out += ']';
  if (next !== undefined) out += `,"next":${jsonString(next)}`;
  return `${out}}`;
}

/**
 * The same rows as tab-separated values: a header line (TSV_COLUMNS), then per repository its
 * name, mirror (true/false), tag and manifest counts, size in bytes and newest push as ISO 8601
 * (empty when it has no tag). Repository names hold no tab or line break (names.ts).
 */
export function repositoriesTsv(rows: readonly RepositorySummary[], isMirror: (namespace: string) => boolean): string {
  let out = `${TSV_COLUMNS.join('\t')}\n`;
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]!;
    out += `${r.name}\t${isMirror(namespaceOf(r.name))}\t${r.tags}\t${r.manifests}\t${r.size}\t${r.pushedAt === undefined ? '' : isoOf(r.pushedAt)}\n`;
  }
  return out;
}

/**
 * Whether an Accept header asks for TSV before JSON: it names text/tab-separated-values with a
 * q above 0 and above any application/json it names. No Accept, `*\/*` or JSON keep the JSON.
 */
export function prefersTsv(header: string | undefined): boolean {
  const accept = header?.toLowerCase();
  if (!accept || !accept.includes(TSV_TYPE)) return false;
  let tsv = 0;
  let json = 0;
  for (const part of accept.split(',')) {
    const [type = '', ...params] = part.split(';');
    const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    const weight = q === undefined ? 1 : Number(q.slice(2));
    const media = type.trim();
    if (media === TSV_TYPE) tsv = Math.max(tsv, Number.isFinite(weight) ? weight : 0);
    else if (media === 'application/json') json = Math.max(json, Number.isFinite(weight) ? weight : 0);
  }
  return tsv > 0 && tsv >= json;
}
