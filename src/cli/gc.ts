// `layover gc [--dry-run] [--status]`: runs garbage collection on the running layover now (admins).
import type { GcReport } from '../registry/gc/collector.js';
import type { GcHistoryEntry, GcStatus } from '../registry/gc/scheduler.js';
import { parseDuration } from '../config/units.js';
import { parseArgs, UsageError } from './args.js';
import { CLIENT_HELP, CLIENT_OPTIONS, humanBytes, LayoverClient, print, printJson, shortTime } from './client.js';

export const GC_HELP = `layover gc [--dry-run | --status] [options]

Runs garbage collection on the running layover now (admins only): untagged manifests
(unless gc.keepUntagged) and blobs no manifest references go, except what is younger than
gc.grace; pushes and pulls go on meanwhile. Abandoned uploads are removed too.

Options:
      --dry-run         report what would be deleted and how many bytes, delete nothing
      --grace DURATION  this run only, instead of gc.grace (default 10m): also collect what
                        was written more recently (0: everything unreferenced; a push still
                        in progress may then have to start over)
      --status          show the schedule and what the last run did
${CLIENT_HELP}`;

function summary(r: GcReport): string {
  const verb = r.dryRun ? 'would free' : 'freed';
  return [
    `${r.dryRun ? 'dry run' : 'garbage collection'}: ${verb} ${humanBytes(r.blobs.bytesFreed)} (${r.blobs.bytesFreed} bytes) in ${r.durationMs} ms`,
    `  blobs:     ${r.blobs.deleted} ${r.dryRun ? 'to delete' : 'deleted'}, ${r.blobs.kept} kept, ${r.blobs.recent} too recent or in use (${humanBytes(r.blobs.bytesKept)} kept)`,
    `  manifests: ${r.manifests.deleted} untagged ${r.dryRun ? 'to delete' : 'deleted'}, ${r.manifests.kept} kept, in ${r.repositories} repositories`,
    `  uploads:   ${r.uploadsRemoved} abandoned ${r.dryRun ? 'to remove' : 'removed'}`,
  ].join('\n');
}

export async function gc(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, strict: true, options: { ...CLIENT_OPTIONS, 'dry-run': { type: 'boolean' }, status: { type: 'boolean' }, grace: { type: 'string' } } });
  if (positionals.length) throw new UsageError('usage: layover gc [--dry-run | --status]');
  if (values.status && (values['dry-run'] || values.grace !== undefined)) throw new UsageError('--status takes neither --dry-run nor --grace');
  if (values.grace !== undefined) {
    try {
      parseDuration(values.grace);
    } catch (err) {
      throw new UsageError(`--grace: ${(err as Error).message}`);
    }
  }
  const client = await LayoverClient.from(values);
  if (values.status) {
    const s = await client.call<GcStatus & { history?: GcHistoryEntry[] }>('GET', 'gc');
    if (values.json) return printJson(s);
    print(`schedule:  every ${Math.round(s.intervalMs / 3_600_000)} h, grace ${Math.round(s.graceMs / 1000)} s${s.keepUntagged ? ', untagged manifests kept' : ''}${s.running ? ' (running now)' : ''}`);
    print(`next run:  ${shortTime(s.nextRunAt)}`);
    print(s.lastRun ? `last run:  ${shortTime(s.lastRun.finishedAt)}, freed ${humanBytes(s.lastRun.blobs.bytesFreed)} (${s.lastRun.blobs.deleted} blobs, ${s.lastRun.manifests.deleted} manifests)` : 'last run:  never');
    if (s.lastError) print(`last error: ${shortTime(s.lastError.at)} ${s.lastError.message}`);
    if (s.history?.length) {
      print('history:');
      for (const h of s.history) print(`  ${shortTime(h.finishedAt)}  ${h.report ? `freed ${humanBytes(h.report.blobs.bytesFreed)} (${h.report.blobs.deleted} blobs, ${h.report.manifests.deleted} manifests) in ${h.report.durationMs} ms` : `failed: ${h.error ?? ''}`}`);
    }
    return;
  }
  const report = await client.call<GcReport>('POST', 'gc', { ...(values['dry-run'] ? { dryRun: 'true' } : {}), ...(values.grace !== undefined ? { grace: values.grace } : {}) });
  if (values.json) return printJson(report);
  print(summary(report));
}
