// `layover token namespace|rotate|keys`: namespace tokens and the signing keys behind them.
import { loadConfig } from '../config/load.js';
import { parseDuration } from '../config/units.js';
import { openKeyRing, tokenService } from '../registry/auth/auth.js';
import { isKubernetesNamespace } from '../registry/auth/names.js';
import { parseArgs, UsageError } from './args.js';

export const TOKEN_HELP = `layover token <namespace|rotate|keys> [options]

  namespace NAME [--ttl 365d]   print a token for principal namespace:NAME (use it as the
                                password of user "namespace:NAME" in a pull secret)
  rotate [--grace 24h]          make a new signing key; tokens signed by older keys stop
                                working after the grace period (0: at once, revoking them)
  keys                          list the signing keys

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
    options: { config: { type: 'string', short: 'c' }, ttl: { type: 'string' }, grace: { type: 'string' } },
  });
  const [sub, name, ...extra] = positionals;
  if (extra.length) throw new UsageError(`unexpected arguments: ${extra.join(' ')}`);
  const config = await loadConfig(values.config ?? process.env.LAYOVER_CONFIG);
  const keys = await openKeyRing(config);
  switch (sub) {
    case 'namespace': {
      if (!name || !isKubernetesNamespace(name)) throw new UsageError('usage: layover token namespace NAME (a Kubernetes namespace name)');
      const issued = await tokenService(config, keys).mintNamespaceToken(name, duration(values.ttl, 365 * 86_400_000, 'ttl'));
      process.stdout.write(`${issued.token}\n`);
      process.stderr.write(`token for namespace:${name}, key ${issued.keyId}, expires ${issued.expiresAt.toISOString()}\n`);
      return;
    }
    case 'rotate': {
      const kid = await keys.rotate(duration(values.grace, 24 * 3_600_000, 'grace'));
      process.stdout.write(`new signing key ${kid}\n`);
      return;
    }
    case 'keys':
      for (const k of keys.list()) {
        process.stdout.write(`${k.kid}\t${k.createdAt.toISOString()}\t${k.current ? 'current' : `retires ${k.retireAt?.toISOString() ?? '-'}`}\n`);
      }
      return;
    default:
      throw new UsageError(`unknown subcommand "${sub ?? ''}"`, true);
  }
}
