// Reads the YAML file named by --config or LAYOVER_CONFIG (or none: the embedded defaults).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from './config.js';
import { ConfigError } from './errors.js';
import type { Examined } from './examine.js';
import { resolveValues } from './resolve-values.js';

/** How the file's text is parsed and checked against the schema; default: in this process (examine.ts). */
export type Examine = (text: string) => Promise<Examined>;

const inProcess: Examine = async (text) => (await import('./examine.js')).examineConfig(text);

export async function loadConfig(file: string | undefined, warn?: (msg: string) => void, examine: Examine = inProcess): Promise<Config> {
  // The empty document fits the schema (a unit test holds it to that): nothing to parse or check.
  if (!file) return resolveValues({}, [], { warn });
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError([`cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`], file);
  }
  const examined = await examine(text);
  if (!examined.raw) throw new ConfigError(examined.problems, file);
  return resolveValues(examined.raw, examined.problems, { source: file, baseDir: path.dirname(path.resolve(file)), warn });
}
