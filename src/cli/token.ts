// `layover token namespace|rotate|keys`: namespace tokens and the signing keys behind them.
import { loadConfig } from '../config/load.js';
import { parseDuration } from '../config/units.js';
import { openKeyRing, tokenService } from '../registry/auth/auth.js';
import type { KeyRing } from '../registry/auth/keys.js';
import { isKubernetesNamespace } from '../registry/auth/names.js';
import type { Config } from '../config/config.js';
import type { AuditEntry } from '../audit/audit-log.js';
import { auditFromCli } from '../audit/cli-audit.js';
import { parseArgs, UsageError } from './args.js';
import { print, printJson, table } from './client.js';

export const TOKEN_HELP = `layover token <namespace|rotate|keys> [options]

  namespace NAME [--ttl 365d]   print a token for principal namespace:NAME (use it as the
                                password of user "namespace:NAME" in a pull secret)
  rotate [--grace 24h]          make a new signing key; tokens signed by older keys stop
                                working after the grace period (0: at once, revoking them)
  keys [--json]                 list the signing keys

Options:
  -c, --config FILE    configuration (else $LAYOVER_CONFIG, else embedded defaults)`;

function duration(value: string | undefined, fallback: number, option: string): number {
  if (value === undefined) return fallback;
  try {
    return parseDuration(value);
  } catch (err) {
    throw new UsageError(`--${option}: ${(err as Error).message}`);
  }
}

export async function token(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: { config: { type: 'string', short: 'c' }, ttl: { type: 'string' }, grace: { type: 'string' }, json: { type: 'boolean' } },
  });
  const [sub, name, ...extra] = positionals;
  if (sub === undefined) throw new UsageError('usage: layover token <namespace|rotate|keys> ...', true);
  if (!['namespace', 'rotate', 'keys'].includes(sub)) throw new UsageError(`unknown subcommand "${sub.slice(0, 80)}"`, true);
  if (extra.length) throw new UsageError(`unexpected arguments: ${extra.join(' ')}`, true);
  const config = await loadConfig(values.config ?? process.env.LAYOVER_CONFIG);
  // With database.url the keys are the replicas' shared ones: a rotation here reaches them all.
  const database = config.database ? await (await import('../database/open.js')).openDatabase(config.database, { waitMs: 0, applicationName: 'layover-cli' }) : undefined;
  try {
    await tokenCommand(sub, name, values, await openKeyRing(config, database), config, (entry) => auditFromCli(config, database, entry));
  } finally {
    await database?.close();
  }
}

type Audit = (entry: Omit<AuditEntry, 'actor'>) => Promise<void>;

async function tokenCommand(sub: string | undefined, name: string | undefined, values: { ttl?: string; grace?: string; json?: boolean }, keys: KeyRing, config: Config, audit: Audit): Promise<void> {
  switch (sub) {
    case 'namespace': {
      if (!name || !isKubernetesNamespace(name)) throw new UsageError('usage: layover token namespace NAME (a Kubernetes namespace name)');
      const issued = await tokenService(config, keys).mintNamespaceToken(name, duration(values.ttl, 365 * 86_400_000, 'ttl'));
      await audit({ action: 'token.namespace', target: `namespace:${name}`, outcome: 'ok', detail: { keyId: issued.keyId, expiresAt: issued.expiresAt.toISOString() } });
      process.stdout.write(`${issued.token}\n`);
      process.stderr.write(`token for namespace:${name}, key ${issued.keyId}, expires ${issued.expiresAt.toISOString()}\n`);
      return;
    }
    case 'rotate': {
      const kid = await keys.rotate(duration(values.grace, 24 * 3_600_000, 'grace'));
      await audit({ action: 'key.rotate', target: kid, outcome: 'ok', detail: { graceMs: duration(values.grace, 24 * 3_600_000, 'grace') } });
      process.stdout.write(`new signing key ${kid}\n`);
      return;
    }
    case 'keys': {
      const list = keys.list().map((k) => ({ kid: k.kid, createdAt: k.createdAt.toISOString(), current: k.current, ...(k.retireAt ? { retireAt: k.retireAt.toISOString() } : {}) }));
      if (values.json) return printJson({ keys: list });
      print(table(['KEY', 'CREATED', 'STATUS'], list.map((k) => [k.kid, k.createdAt, k.current ? 'current' : `retires ${k.retireAt ?? '-'}`])));
      return;
    }
    default:
      throw new UsageError(`unknown subcommand "${sub ?? ''}"`, true);
  }
}
