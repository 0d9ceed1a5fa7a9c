// A page of GET /api/v1/repositories in its two forms, from the metadata's summary rows:
//   JSON (the default, what the web UI and users read): `{ repositories: RepositoryInfo[],
//   next? }`, serialised once by JSON.stringify (V8's native path; a string built row by row
//   was slower, its many small pieces surviving the server's small young generation);
//   TSV (`Accept: text/tab-separated-values`, what `layover ls` asks for): one header line naming
//   the columns, then one line a repository, about 40% of the JSON's bytes, written straight
//   into one buffer with no object or string per row; `next` goes in a Link header, as on the
//   Distribution API's catalog.
import { namespaceOf } from '../registry/names.js';
import type { RepositorySummary } from '../registry/storage/metadata/types.js';
import type { RepositoryInfo } from './inventory.js';

export const TSV_TYPE = 'text/tab-separated-values';

/** The TSV's columns, in order (a reader finds them by name in the header line). */
export const TSV_COLUMNS = ['name', 'mirror', 'tags', 'manifests', 'size', 'pushedAt'] as const;

const DAY_MS = 86_400_000;

/** `{"repositories":[…],"next":…}` as infoOf's objects serialised (pushedAt when known; next when given). */
export function repositoriesJson(rows: readonly RepositorySummary[], isMirror: (namespace: string) => boolean, next: string | undefined): string {
  const repositories = new Array<RepositoryInfo>(rows.length);
  for (let i = 0; i < rows.length; i++) {
    const { name, tags, manifests, size, pushedAt } = rows[i]!;
    const namespace = namespaceOf(name);
    const mirror = isMirror(namespace);
    // One literal per shape (a property added afterwards lives outside the object); a flat
    // string from toISOString (one pieced together is flattened again by JSON.stringify).
    repositories[i] = pushedAt === undefined ? { name, namespace, mirror, tags, manifests, size } : { name, namespace, mirror, tags, manifests, size, pushedAt: new Date(pushedAt).toISOString() };
  }
  return JSON.stringify(next === undefined ? { repositories } : { repositories, next });
}

const TAB = 9;
const NL = 10;
const TSV_HEADER = Buffer.from(`${TSV_COLUMNS.join('\t')}\n`);
const TRUE = Buffer.from('true');
const FALSE = Buffer.from('false');
/** The first 11 bytes of toISOString ("YYYY-MM-DDT") by day since the epoch; bounded. */
const dayBytes = new Map<number, Buffer>();

function copyInto(out: Buffer, at: number, bytes: Buffer): number {
  for (let i = 0; i < bytes.length; i++) out[at + i] = bytes[i]!;
  return at + bytes.length;
}

/** `${n}`: digits for a non-negative safe integer, else the string. */
function writeNumber(out: Buffer, at: number, n: number): number {
  if (!(Number.isSafeInteger(n) && n >= 0)) return at + out.write(`${n}`, at, 'latin1');
  let digits = 1;
  for (let rest = n; rest >= 10; rest = Math.floor(rest / 10)) digits++;
  for (let i = digits - 1, rest = n; i >= 0; i--, rest = Math.floor(rest / 10)) out[at + i] = 48 + (rest % 10);
  return at + digits;
}

function writeDigits(out: Buffer, at: number, n: number, width: number): number {
  for (let i = width - 1, rest = n; i >= 0; i--, rest = Math.floor(rest / 10)) out[at + i] = 48 + (rest % 10);
  return at + width;
}

/**
 * What `new Date(ms).toISOString()` writes, in bytes: the date part once per day, the time in
 * digits. Times before 1970 or after 9999, or not whole milliseconds: toISOString.
 */
function writeIso(out: Buffer, at: number, ms: number): number {
  if (!(Number.isInteger(ms) && ms >= 0 && ms < 253_402_300_800_000)) return at + out.write(new Date(ms).toISOString(), at, 'latin1');
  const day = Math.floor(ms / DAY_MS);
  let date = dayBytes.get(day);
  if (date === undefined) {
    if (dayBytes.size >= 4096) dayBytes.clear();
    date = Buffer.from(new Date(day * DAY_MS).toISOString().slice(0, 11), 'latin1');
    dayBytes.set(day, date);
  }
  let end = copyInto(out, at, date);
  let rest = ms - day * DAY_MS;
  const milli = rest % 1000;
  rest = (rest - milli) / 1000;
  const second = rest % 60;
  rest = (rest - second) / 60;
  const minute = rest % 60;
  end = writeDigits(out, end, (rest - minute) / 60, 2);
  out[end++] = 58; // :
  end = writeDigits(out, end, minute, 2);
  out[end++] = 58;
  end = writeDigits(out, end, second, 2);
  out[end++] = 46; // .
  end = writeDigits(out, end, milli, 3);
  out[end++] = 90; // Z
  return end;
}

/**
 * The same rows as tab-separated values: a header line (TSV_COLUMNS), then per repository its
 * name, mirror (true/false), tag and manifest counts, size in bytes and newest push as ISO 8601
 * (empty when it has no tag), as `${value}` writes them. Repository names hold no tab or line
 * break (names.ts).
 */
export function repositoriesTsv(rows: readonly RepositorySummary[], isMirror: (namespace: string) => boolean): Buffer {
  // A name's UTF-8 is at most 3 bytes a UTF-16 unit; the rest of a row at most ~130 bytes.
  let bound = TSV_HEADER.length;
  for (let i = 0; i < rows.length; i++) bound += 3 * rows[i]!.name.length + 160;
  const out = Buffer.allocUnsafe(bound);
  let at = copyInto(out, 0, TSV_HEADER);
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]!;
    at += out.write(r.name, at, 'utf8');
    out[at++] = TAB;
    at = copyInto(out, at, isMirror(namespaceOf(r.name)) ? TRUE : FALSE);
    out[at++] = TAB;
    at = writeNumber(out, at, r.tags);
    out[at++] = TAB;
    at = writeNumber(out, at, r.manifests);
    out[at++] = TAB;
    at = writeNumber(out, at, r.size);
    out[at++] = TAB;
    if (r.pushedAt !== undefined) at = writeIso(out, at, r.pushedAt);
    out[at++] = NL;
  }
  return out.subarray(0, at);
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
