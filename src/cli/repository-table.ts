// `layover ls`'s table (REPOSITORY, TAGS, SIZE, PUSHED), built in bytes: the API's TSV pages
// are kept as they came, then read where they lie, each row's cells written once into one
// buffer, and the table laid out into one output buffer. At 50,000 repositories, JSON objects,
// a string per cell, a string per line and the joined text cost ~12 µs a row (much of it
// garbage collection); this costs about 1 µs, most of it before V8 has optimised the loops.
// What it prints is what TableBuilder printed from RepositoryInfo
// rows, to the byte: widths count UTF-16 code units as String.length did, lines lose trailing
// blanks as trimEnd did, sizes and times read as humanBytes and shortTime wrote them.
import { isAscii } from 'node:buffer';
import type { RepositoryInfo } from '../api/inventory.js';
import { humanBytes, shortTime } from './client.js';

const HEADER = ['REPOSITORY', 'TAGS', 'SIZE', 'PUSHED'] as const;
/** Columns aligned right (TAGS and SIZE); the last one is never padded. */
const RIGHT = [false, true, true, false] as const;
const MIRROR = Buffer.from(' (mirror)');
const COLUMNS = ['name', 'mirror', 'tags', 'manifests', 'size', 'pushedAt'];
const UNITS = [' B', ' KiB', ' MiB', ' GiB', ' TiB'].map((u) => Buffer.from(u));
const TAB = 9;
const NL = 10;
const SPACE = 32;
/** Sizes below this are formatted in integer arithmetic: size × 10 stays exact in a double. */
const EXACT_SIZE = 2 ** 49;

/** What humanBytes writes, into `out` at `at`; returns the end. */
function writeHumanBytes(out: Buffer, at: number, n: number): number {
  if (!(Number.isInteger(n) && n >= 0 && n < EXACT_SIZE)) return at + out.write(humanBytes(n), at, 'utf8');
  if (n < 1024) return writeUnit(out, writeDigits(out, at, n), 0);
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  // value × 10 is exact (n × 10 / 1024^unit with n × 10 < 2^53), so rounding it half up picks
  // the tenths toFixed(1) picks: the nearest, the larger of two equally near.
  const tenths = Math.round(value * 10);
  let end = writeDigits(out, at, Math.floor(tenths / 10));
  out[end++] = 46; // .
  out[end++] = 48 + (tenths % 10);
  return writeUnit(out, end, unit);
}

function writeUnit(out: Buffer, at: number, unit: number): number {
  const u = UNITS[unit]!;
  for (let i = 0; i < u.length; i++) out[at + i] = u[i]!;
  return at + u.length;
}

/** A non-negative safe integer's decimal digits. */
function writeDigits(out: Buffer, at: number, n: number): number {
  let digits = 1;
  for (let rest = n; rest >= 10; rest = Math.floor(rest / 10)) digits++;
  for (let i = digits - 1, rest = n; i >= 0; i--, rest = Math.floor(rest / 10)) out[at + i] = 48 + (rest % 10);
  return at + digits;
}

/** UTF-16 code units of UTF-8 bytes (what String.length counts): a 4-byte sequence is two. */
function unitsOf(bytes: Buffer, start: number, end: number): number {
  let units = 0;
  for (let i = start; i < end; i++) {
    const b = bytes[i]!;
    if (b < 0x80 || b >= 0xc0) units += b >= 0xf0 ? 2 : 1;
  }
  return units;
}

/**
 * The rows of repositories pages, laid out as one table. Pages are only kept as they come; the
 * work is two loops in toBuffer (cells and widths, then lines), each run once over every row:
 * a process runs them once, mostly before V8 has optimised them, so there is one compilation of
 * each loop (the loop per page it replaced was compiled again for every page) and no call or
 * property read per cell.
 */
export class RepositoryTable {
  private readonly pages: Buffer[] = [];

  /**
   * A page as the API writes it for `Accept: text/tab-separated-values`: a header line naming
   * the columns (found by name, so columns added later do not matter), then a row a line.
   */
  addTsv(page: Buffer): void {
    this.pages.push(page);
  }

  /** Rows from a JSON page (a server that answers JSON only), as the TSV it stands for. */
  addRepositories(repositories: readonly RepositoryInfo[]): void {
    let tsv = `${COLUMNS.join('\t')}\n`;
    for (const r of repositories) tsv += `${r.name}\t${r.mirror}\t${r.tags}\t${r.manifests}\t${r.size ?? ''}\t${r.pushedAt ?? ''}\n`;
    this.pages.push(Buffer.from(tsv));
  }

  /**
   * The table as TableBuilder wrote it: columns two spaces apart, no trailing blanks, lines
   * joined by "\n"; undefined when there is no row.
   */
  toBuffer(): Buffer | undefined {
    // Room for every row before the loop (a branch in it that V8 had not seen run would cost a
    // recompilation): a row's cells take at most its bytes (3× where text is replaced),
    // " (mirror)", a size (≤ 32 bytes) and a time (≥ 20). Rows are counted, not bounded by
    // bytes: tens of megabytes of buffers made V8 collect garbage for their sake.
    let bytes = 0;
    let rowBound = 0;
    for (const page of this.pages) {
      bytes += page.length;
      for (let i = page.indexOf(NL); i !== -1; i = page.indexOf(NL, i + 1)) rowBound++;
      rowBound++;
    }
    const cells = Buffer.allocUnsafe(3 * bytes + 64 * rowBound);
    /** Per row, per cell: its end in `cells`, then its width in UTF-16 code units. */
    const ends = new Uint32Array(8 * rowBound);
    const table: Cells = { cells, ends, used: 0, count: 0, widths: HEADER.map((h) => h.length) };
    for (const page of this.pages) readPage(page, table);
    return table.count ? layOut(cells, ends, table.count, table.widths) : undefined;
  }
}

/** Cells and widths of the rows read so far (toBuffer's state, handed from page to page). */
interface Cells {
  cells: Buffer;
  /** Per row, per cell: its end in `cells`, then its width in UTF-16 code units. */
  ends: Uint32Array;
  used: number;
  count: number;
  widths: number[];
}

/**
 * One page's rows into `table`: one loop with its state in locals. It runs once per process,
 * mostly before V8 has optimised it: calls and property reads per cell would cost there, and V8
 * reuses the loop's compiled code from page to page.
 */
function readPage(page: Buffer, table: Cells): void {
  const { cells, ends } = table;
  let used = table.used;
  let count = table.count;
  let [w0, w1, w2, w3] = table.widths as [number, number, number, number];
  let lineEnd = page.indexOf(NL);
  if (lineEnd === -1) lineEnd = page.length;
  const names = page.toString('utf8', 0, lineEnd).split('\t');
  const column = (name: string) => {
    const i = names.indexOf(name);
    if (i === -1) throw new Error(`the repositories page has no "${name}" column`);
    return i;
  };
  const nameAt = column('name');
  const mirrorAt = column('mirror');
  const tagsAt = column('tags');
  const sizeAt = column('size');
  const pushedAt = column('pushedAt');
  const fields = names.length;
  // Repository names are ASCII (names.ts): then a cell's width is its length in bytes.
  const ascii = isAscii(page);
  const starts = new Int32Array(fields + 1);
  for (let start = lineEnd + 1; start < page.length; ) {
    let end = start;
    let field = 0;
    starts[0] = start;
    for (; end < page.length; end++) {
      const b = page[end]!;
      if (b === NL) break;
      if (b === TAB && field < fields - 1) starts[++field] = end + 1;
    }
    if (end === start) {
      start = end + 1;
      continue;
    }
    if (field !== fields - 1) throw new Error(`a repositories page row has ${field + 1} fields, not ${fields}`);
    starts[fields] = end + 1;
    const k = count * 8;

    // REPOSITORY: the name, " (mirror)" after a mirror's.
    const nameStart = used;
    const nameEnd = starts[nameAt + 1]! - 1;
    for (let i = starts[nameAt]!; i < nameEnd; i++) cells[used++] = page[i]!;
    const mirrorStart = starts[mirrorAt]!;
    if (starts[mirrorAt + 1]! - 1 - mirrorStart === 4 && page[mirrorStart] === 116 /* t */) for (let i = 0; i < MIRROR.length; i++) cells[used++] = MIRROR[i]!;
    let u = ascii ? used - nameStart : unitsOf(cells, nameStart, used);
    ends[k] = used;
    ends[k + 4] = u;
    if (u > w0) w0 = u;

    // TAGS: as written.
    const tagsStart = used;
    const tagsEnd = starts[tagsAt + 1]! - 1;
    for (let i = starts[tagsAt]!; i < tagsEnd; i++) cells[used++] = page[i]!;
    u = ascii ? used - tagsStart : unitsOf(cells, tagsStart, used);
    ends[k + 1] = used;
    ends[k + 5] = u;
    if (u > w1) w1 = u;

    // SIZE: humanBytes of the number ("-" when there is none).
    const sizeStart = starts[sizeAt]!;
    const sizeEnd = starts[sizeAt + 1]! - 1;
    const humanStart = used;
    if (sizeEnd === sizeStart) {
      cells[used++] = 45; // -
    } else {
      let size = 0;
      let plain = sizeEnd - sizeStart <= 15;
      for (let i = sizeStart; plain && i < sizeEnd; i++) {
        const d = page[i]! - 48;
        if (d < 0 || d > 9) plain = false;
        else size = size * 10 + d;
      }
      if (!plain) size = Number(page.toString('utf8', sizeStart, sizeEnd));
      used = writeHumanBytes(cells, used, size);
    }
    u = used - humanStart;
    ends[k + 2] = used;
    ends[k + 6] = u;
    if (u > w2) w2 = u;

    // PUSHED: shortTime of the ISO time ("YYYY-MM-DD HH:MM:SSZ"), "-" when empty.
    const t = starts[pushedAt]!;
    const tEnd = starts[pushedAt + 1]! - 1;
    if (tEnd - t === 24 && page[t + 10] === 84 /* T */ && page[t + 19] === 46 /* . */ && page[t + 23] === 90 /* Z */) {
      for (let i = t; i < t + 10; i++) cells[used++] = page[i]!;
      cells[used++] = SPACE;
      for (let i = t + 11; i < t + 19; i++) cells[used++] = page[i]!;
      cells[used++] = 90; // Z
      u = 20;
    } else {
      const text = shortTime(tEnd > t ? page.toString('utf8', t, tEnd) : undefined);
      used += cells.write(text, used, 'utf8');
      u = text.length;
    }
    ends[k + 3] = used;
    ends[k + 7] = u;
    if (u > w3) w3 = u;

    count++;
    start = end + 1;
  }
  table.used = used;
  table.count = count;
  table.widths = [w0, w1, w2, w3];
}

/**
 * The lines: the header, then each row's cells padded to `widths` (TAGS and SIZE on the right),
 * two spaces apart, without trailing blanks (trimEnd), joined by "\n".
 */
function layOut(cells: Buffer, ends: Uint32Array, count: number, widths: number[]): Buffer {
  const [w0, w1, w2] = widths as [number, number, number, number];
  // A line is at most its cells' bytes, the padding (≤ the widths) and 6 blanks between.
  const out = Buffer.allocUnsafe((count + 1) * (w0 + w1 + w2 + widths[3]! + 7) + (count ? ends[(count - 1) * 8 + 3]! : 0));
  let at = 0;
  const header = Buffer.from(HEADER.map((h, i) => (RIGHT[i] ? h.padStart(widths[i]!) : i === HEADER.length - 1 ? h : h.padEnd(widths[i]!))).join('  '));
  at += header.copy(out, 0);
  while (at > 0 && isBlank(out[at - 1]!)) at--;
  let start = 0;
  for (let r = 0; r < count; r++) {
    const k = r * 8;
    out[at++] = NL;
    const lineStart = at;
    // REPOSITORY, left-aligned.
    let end = ends[k]!;
    for (let i = start; i < end; i++) out[at++] = cells[i]!;
    for (let g = w0 - ends[k + 4]!; g > 0; g--) out[at++] = SPACE;
    out[at++] = SPACE;
    out[at++] = SPACE;
    // TAGS, right-aligned.
    start = end;
    end = ends[k + 1]!;
    for (let g = w1 - ends[k + 5]!; g > 0; g--) out[at++] = SPACE;
    for (let i = start; i < end; i++) out[at++] = cells[i]!;
    out[at++] = SPACE;
    out[at++] = SPACE;
    // SIZE, right-aligned.
    start = end;
    end = ends[k + 2]!;
    for (let g = w2 - ends[k + 6]!; g > 0; g--) out[at++] = SPACE;
    for (let i = start; i < end; i++) out[at++] = cells[i]!;
    out[at++] = SPACE;
    out[at++] = SPACE;
    // PUSHED, last: not padded.
    start = end;
    end = ends[k + 3]!;
    for (let i = start; i < end; i++) out[at++] = cells[i]!;
    start = end;
    while (at > lineStart && isBlank(out[at - 1]!)) at--;
  }
  return out.subarray(0, at);
}

/** What trimEnd removes, among single bytes: ASCII white space (tab, line breaks, space). */
function isBlank(b: number): boolean {
  return b === SPACE || (b >= 9 && b <= 13);
}
